/**
 * Backend faults through a real tunnel (issue 8, faults): a backend that resets the connection,
 * one that answers slowly, one that closes mid-body (with and without a length). For each, the
 * client gets a prompt, correct status or a visibly truncated body, never a hang and never a
 * body that looks complete while it is not; a request to a healthy path of the same domain
 * meanwhile is served; the access log says what happened.
 * @module
 */

import assert from "node:assert/strict";
import { patternBytes, startBackend } from "../../scripts/sample_backend.ts";
import { startStack } from "../_harness/stack.ts";
import { serveRawTcp } from "../_harness/raw_server.ts";

/** What the scripted backend does after reading a request head, by request path. */
const SCRIPTS: Record<string, (conn: Deno.Conn) => Promise<void>> = {
  // Reads one byte of the request and closes: the unread rest makes the kernel send a RST.
  "/reset": () => Promise.resolve(),
  // A head announcing 100 000 bytes, 1 000 of them, then the connection closes.
  "/cut-length": async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    await conn.write(patternBytes(0, 1000));
  },
  // A chunked answer whose last chunk never comes: the connection closes after two chunks.
  "/cut-chunked": async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    await write(conn, "5\r\nhello\r\n");
    await write(conn, "6\r\n world\r\n");
  },
  // A chunked answer with a malformed chunk-size line (ODD-42).
  "/bad-chunk": async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");
  },
  // A complete chunked answer (the control case).
  "/ok-chunked": async (conn) => {
    await write(
      conn,
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
  },
  // A garbage head.
  "/garbage": async (conn) => {
    await write(conn, "HTTP/9.9 OK maybe\r\n\r\n");
  },
};

async function write(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** A raw TCP backend that plays {@linkcode SCRIPTS}; every connection is closed after its script. */
function startScriptedBackend(): { port: number; close(): Promise<void> } {
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    let head = "";
    // The first 12 bytes tell "GET /reset H…" apart: that one is closed with the rest unread.
    while (head.length < 12) {
      const count = await conn.read(buffer.subarray(0, 12 - head.length));
      if (count === null) return;
      head += new TextDecoder().decode(buffer.subarray(0, count));
    }
    if (head.startsWith("GET /reset ")) return;
    while (!head.includes("\r\n\r\n")) {
      const count = await conn.read(buffer);
      if (count === null) return;
      head += new TextDecoder().decode(buffer.subarray(0, count));
    }
    await SCRIPTS[head.split(" ")[1] ?? ""]?.(conn);
  };
  return serveRawTcp(serve);
}

/**
 * Fetches `path` and reads the body to its end: `error` is set when the request or the body did
 * not end cleanly (over HTTP/2 a body cut early may fail the fetch itself).
 */
async function outcome(
  stack: Stack,
  path: string,
): Promise<{ status?: number; bytes: number; text: string; error?: string }> {
  let text = "";
  let bytes = 0;
  let status: number | undefined;
  try {
    const response = await stack.fetch(path);
    status = response.status;
    for await (const chunk of response.body ?? []) {
      bytes += chunk.length;
      if (text.length < 200) text += new TextDecoder().decode(chunk);
    }
  } catch (error) {
    return { ...(status === undefined ? {} : { status }), bytes, text, error: String(error) };
  }
  return { ...(status === undefined ? {} : { status }), bytes, text };
}

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * A stack whose agent sends the scripted paths to the scripted backend and everything else to a
 * sample backend of its own.
 */
async function withScriptedStack(
  run: (stack: Stack) => Promise<void>,
  options: Parameters<typeof startStack>[0] = {},
): Promise<void> {
  await using sample = startBackend();
  const scripted = startScriptedBackend();
  try {
    await using stack = await startStack({
      ...options,
      agentDomain: `targets {\n  active = [ scripted, sample ]\n` +
        `  scripted {\n    path = "^/(reset|cut-length|cut-chunked|bad-chunk|ok-chunked|garbage)$"\n` +
        `    target = "http://127.0.0.1:${scripted.port}"\n  }\n` +
        `  sample {\n    target = "http://127.0.0.1:${sample.port}"\n  }\n}\n` +
        (options.agentDomain ?? ""),
    });
    await run(stack);
  } finally {
    await scripted.close();
  }
}

/** The access record of `path`, once written. */
async function accessRecord(stack: Stack, path: string): Promise<Record<string, unknown>> {
  await stack.accessLog.waitFor((record) => record.path === path);
  return stack.accessLog.records().find((record) => record.path === path) ?? {};
}

Deno.test("a backend that resets the connection gives a prompt 502, logged, and the domain keeps serving (AGT-9, ODD-1)", async () => {
  await withScriptedStack(async (stack) => {
    const started = performance.now();
    const reset = await stack.fetch("/reset");
    assert.equal(reset.status, 502);
    await reset.body?.cancel();
    assert.ok(performance.now() - started < 3000, "502 within 3 s");
    assert.equal((await accessRecord(stack, "/reset")).status, 502);
    const healthy = await stack.fetch("/hello");
    assert.equal(await healthy.text(), "hello from the backend\n");
  });
});

Deno.test("a garbage backend head gives 502 and the domain keeps serving (PROTO-24)", async () => {
  await withScriptedStack(async (stack) => {
    const garbage = await stack.fetch("/garbage");
    assert.equal(garbage.status, 502);
    await garbage.body?.cancel();
    assert.equal(await (await stack.fetch("/hello")).text(), "hello from the backend\n");
  });
});

Deno.test("a backend that closes mid-body never reaches the client as complete; the log says so (PROTO-27, ODD-42)", async () => {
  await withScriptedStack(async (stack) => {
    for (const path of ["/cut-length", "/cut-chunked", "/bad-chunk"]) {
      const seen = await outcome(stack, path);
      assert.ok(seen.error, `${path}: ${seen.bytes} bytes ("${seen.text}") arrived as complete`);
      assert.ok(seen.status === undefined || seen.status === 200, `${path}: ${seen.status}`);
      const record = await accessRecord(stack, path);
      assert.equal(record.status, 200, path);
      assert.match(String(record.reason), /truncated/, path);
    }
    // The control case: a complete chunked answer is complete, and the domain still serves.
    assert.deepEqual(await outcome(stack, "/ok-chunked"), { status: 200, bytes: 5, text: "hello" });
    assert.equal((await accessRecord(stack, "/ok-chunked")).reason, undefined);
  });
});

Deno.test("a slow backend: past write_timeout the client gets 504 at once while other streams are served (SRV-14, ODD-1)", async () => {
  await withScriptedStack(async (stack) => {
    const started = performance.now();
    const slow = stack.fetch("/slow?ms=30000");
    // While the slow request waits, the domain serves others at full speed.
    for (let i = 0; i < 5; i++) {
      assert.equal(await (await stack.fetch("/hello")).text(), "hello from the backend\n");
    }
    const answer = await slow;
    const elapsed = performance.now() - started;
    assert.equal(answer.status, 504);
    await answer.body?.cancel();
    assert.ok(elapsed >= 4500 && elapsed < 9000, `504 after ${elapsed} ms (write_timeout 5 s)`);
    const record = await accessRecord(stack, "/slow?ms=30000");
    assert.equal(record.status, 504);
    assert.match(String(record.reason), /in time/);
  }, { server: { write_timeout: "5s" } });
});
