/**
 * A rogue server (issue 8, hostile input): the agent dials a TLS WebSocket endpoint that accepts
 * its handshake and then sends malformed messages, messages for unknown streams, oversized
 * messages, floods, more streams than `concurrency`, smuggling attempts inside request heads and
 * requests meant to reach a backend the agent's targets do not list (ODD-41). The agent must drop
 * or refuse each one, keep serving proper requests, reconnect when its tunnel had to close, and
 * never open a connection to a backend no target names.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readAgentConfig } from "../../src/config/mod.ts";
import { startAgent } from "../../src/agent/mod.ts";
import { encodeRawMessage, Flag, MAX_MESSAGE_SIZE } from "../../src/protocol/mod.ts";
import { openLogger } from "../../src/log/mod.ts";
import { type Received, type RogueTunnel, startRogueServer } from "../_harness/rogue.ts";
import { CA_PEM, LogLines, SECRET, TLS_DIR } from "../_harness/stack.ts";
import { serveRawTcp } from "../_harness/raw_server.ts";
import { within } from "../_harness/deadline.ts";

const CERT = Deno.readTextFileSync(join(TLS_DIR, "localhost.pem"));
const KEY = Deno.readTextFileSync(join(TLS_DIR, "localhost.key"));
const text = (value: string) => new TextEncoder().encode(value);
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

/**
 * A raw HTTP/1.1 backend that records every byte each connection sends, answers `ok` once the
 * request (head and body as framed) is in, then closes.
 */
function startRecordingBackend() {
  const connections: string[] = [];
  const serve = async (conn: Deno.Conn) => {
    const index = connections.push("") - 1;
    const buffer = new Uint8Array(65536);
    for (;;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      connections[index] += latin1(buffer.subarray(0, count));
      const seen = connections[index] ?? "";
      const end = seen.indexOf("\r\n\r\n");
      if (end < 0) continue;
      const head = seen.slice(0, end).toLowerCase();
      const body = seen.slice(end + 4);
      const length = /\r\ncontent-length: *(\d+)/.exec(head)?.[1];
      const complete = head.includes("transfer-encoding: chunked")
        ? body.endsWith("0\r\n\r\n")
        : body.length >= Number(length ?? 0);
      if (complete) {
        await conn.write(
          text("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        );
        break;
      }
    }
  };
  const server = serveRawTcp(serve);
  return {
    port: server.port,
    connections,
    close: () => server.close(),
  };
}

/** A backend no target lists: it only counts the connections it gets (there must be none). */
function startForbiddenBackend() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conn.close();
      }
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    async close() {
      listener.close();
      await accepting;
    },
  };
}

interface World {
  readonly tunnel: RogueTunnel;
  readonly server: ReturnType<typeof startRogueServer>;
  readonly backend: ReturnType<typeof startRecordingBackend>;
  readonly forbidden: ReturnType<typeof startForbiddenBackend>;
  readonly agentLog: LogLines;
  /** Sends a request head (and an empty BODY|END) on stream `id`; resolves with the answer head. */
  request(id: number, head: string, body?: Uint8Array[]): Promise<string>;
}

/** An agent whose only domain `localhost` dials the rogue server. */
async function withRogueServer(run: (world: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "groom-rogue-server-" });
  const backend = startRecordingBackend();
  const forbidden = startForbiddenBackend();
  await using server = startRogueServer({ cert: CERT, key: KEY });
  try {
    await Deno.writeTextFile(
      join(dir, "localhost"),
      `groom {\n  active = yes\n  secret = "${SECRET}"\n  remote = "127.0.0.1:${server.port}"\n` +
        `  targets {\n    active = [ prefix, rest ]\n` +
        `    prefix {\n      path = "^/prefix(.*)$"\n      target = "http://127.0.0.1:${backend.port}/base$1"\n    }\n` +
        `    rest {\n      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n}\n`,
    );
    const { config } = readAgentConfig({ tree: { groom: { mode: "agent", domains: dir } } });
    const agentLog = new LogLines();
    await using _agent = await startAgent(config, {
      logger: openLogger("console(output=stdout,time=no)", { stdout: agentLog, stderr: agentLog }),
      caCerts: [CA_PEM],
      protocols: ["groom"],
    });
    const tunnel = await within(10_000, "the agent dials", server.tunnel(0));
    const claimed = new Set<Received>();
    await run({
      tunnel,
      server,
      backend,
      forbidden,
      agentLog,
      async request(id, head, body = []) {
        tunnel.send({
          kind: "head",
          streamId: id,
          upgrade: false,
          end: false,
          payload: text(head),
        });
        for (const piece of body) {
          tunnel.send({ kind: "body", streamId: id, end: false, payload: piece });
        }
        tunnel.send({ kind: "body", streamId: id, end: true, payload: new Uint8Array(0) });
        const answer = await tunnel.next(
          (m) => m.kind === "head" && m.streamId === id,
          { claimed, timeoutMs: 10_000 },
        );
        return answer.kind === "head" ? latin1(answer.payload).split("\r\n")[0] ?? "" : "";
      },
    });
  } finally {
    await backend.close();
    await forbidden.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a server cannot make the agent reach a backend its targets do not list (ODD-41)", async () => {
  await withRogueServer(async ({ request, forbidden, backend }) => {
    const port = forbidden.port;
    const attempts = [
      `GET /prefix@127.0.0.1:${port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET /prefix%40127.0.0.1:${port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET /prefix:${port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET /prefix/..%2f..%2f@127.0.0.1:${port}/ HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET http://127.0.0.1:${port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET //127.0.0.1:${port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET /x HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
      `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
      `GET @127.0.0.1:${port}/ HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      `GET /prefix\\@127.0.0.1:${port}/ HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    ];
    let id = 1;
    for (const head of attempts) {
      const status = await request(id++, head);
      assert.match(status, /^HTTP\/1\.1 (200|400|502) /, head);
    }
    // A request-target in no RFC 9112 form is refused, as groom 1.3's URL parser did.
    for (const target of [`\\127.0.0.1:${port}/x`, `127.0.0.1:${port}`, "evil"]) {
      const status = await request(id++, `GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      assert.match(status, /^HTTP\/1\.1 400 /, target);
    }
    assert.equal(forbidden.accepted, 0, "the forbidden backend was contacted");
    assert.ok(backend.connections.length >= 1);
  });
});

Deno.test("smuggling attempts inside request heads never give the backend a second request (ODD-40)", async () => {
  await withRogueServer(async ({ request, backend }) => {
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const attempts: [string, Uint8Array[]][] = [
      [
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        [text(`5\r\nhello\r\n0\r\n\r\n${smuggled}`)],
      ],
      ["POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n", [
        text(`hello${smuggled}`),
      ]],
      [
        "POST /c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n",
        [text(`hello${smuggled}`)],
      ],
      [
        "POST /d HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        [text(`5\r\nhello\r\n0\r\n\r\n${smuggled}`)],
      ],
      [
        "POST /e HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        [text(`zz\r\n${smuggled}`)],
      ],
      ["GET /f HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n", []],
      ["GET /g HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\rGET /smuggled HTTP/1.1\r\n\r\n", []],
    ];
    let id = 1;
    for (const [head, body] of attempts) {
      const status = await request(id++, head, body);
      assert.match(status, /^HTTP\/1\.1 (200|400|502) /, head);
    }
    for (const bytes of backend.connections) {
      assert.ok(!bytes.includes("/smuggled"), `the backend received:\n${bytes}`);
      assert.equal(bytes.match(/ HTTP\/1\.1\r\n/g)?.length ?? 0, 1, bytes);
    }
  });
});

Deno.test("malformed messages and messages for unknown streams from a server are dropped; the agent keeps serving (PROTO-10, PROTO-17)", async () => {
  await withRogueServer(async ({ tunnel, request, agentLog }) => {
    const junk = [
      new Uint8Array([1]),
      new Uint8Array([1, 2, 3]),
      encodeRawMessage(0x10, 1, "x"),
      encodeRawMessage(Flag.Head, 2, "x"),
      encodeRawMessage(Flag.Abort, 3, "p"),
      encodeRawMessage(0xff, 4, "x"),
      encodeRawMessage(Flag.Body, 4242, "body for nobody"),
      encodeRawMessage(Flag.Raw, 4243, "raw for nobody"),
      encodeRawMessage(Flag.Abort, 4244, ""),
      encodeRawMessage(Flag.Body | Flag.End, 4245, ""),
    ];
    for (let round = 0; round < 20; round++) for (const bytes of junk) tunnel.sendRaw(bytes);
    assert.match(await request(7, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n"), / 200 /);
    assert.ok(!tunnel.isClosed);
    const errors = agentLog.records().filter((r) => r.event === "error");
    assert.ok(errors.length >= 1 && errors.length <= 20, `${errors.length} error lines`);
  });
});

Deno.test("a flood from a server neither stalls the agent nor floods its log", async () => {
  await withRogueServer(async ({ tunnel, request, agentLog }) => {
    for (let batch = 0; batch < 50; batch++) {
      for (let i = 0; i < 1000; i++) {
        tunnel.sendRaw(encodeRawMessage(Flag.Body, 200_000 + i, "x"));
        tunnel.sendRaw(new Uint8Array([7, 7]));
      }
      await tunnel.drained(1 << 20);
    }
    assert.match(await request(9, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n"), / 200 /);
    assert.ok(agentLog.lines.length < 100, `${agentLog.lines.length} log lines`);
  });
});

Deno.test("more streams than concurrency get the synthetic 502 at once; the agent stays up (ODD-4, AGT-2)", async () => {
  await withRogueServer(async ({ tunnel, request }) => {
    // 100 requests whose bodies never end: the first 20 (concurrency) wait, the rest are refused.
    for (let id = 1000; id < 1100; id++) {
      tunnel.send({
        kind: "head",
        streamId: id,
        upgrade: false,
        end: false,
        payload: text("POST /hold HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n"),
      });
    }
    const refusals = await within(
      10_000,
      "80 refusals",
      (async () => {
        const claimed = new Set<Received>();
        let count = 0;
        while (count < 80) {
          const head = await tunnel.next((m) => m.kind === "head" && m.end, { claimed });
          if (head.kind === "head") assert.match(latin1(head.payload), /^HTTP\/1\.1 502 /);
          count++;
        }
        return count;
      })(),
    );
    assert.equal(refusals, 80);
    for (let id = 1000; id < 1100; id++) {
      tunnel.send({ kind: "abort", streamId: id, payload: new Uint8Array(0) });
    }
    assert.match(await request(5, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n"), / 200 /);
  });
});

Deno.test("an oversized message makes the agent drop the tunnel and dial again (PROTO-12, ODD-34)", async () => {
  await withRogueServer(async ({ tunnel, server }) => {
    tunnel.sendRaw(encodeRawMessage(Flag.Body, 1, new Uint8Array(MAX_MESSAGE_SIZE)));
    await within(5_000, "the agent closes the tunnel", tunnel.closed);
    const again = await within(10_000, "the agent dials again", server.tunnel(1));
    const claimed = new Set<Received>();
    again.send({
      kind: "head",
      streamId: 1,
      upgrade: false,
      end: false,
      payload: text("GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    });
    again.send({ kind: "body", streamId: 1, end: true, payload: new Uint8Array(0) });
    const head = await again.next((m) => m.kind === "head", { claimed, timeoutMs: 10_000 });
    assert.ok(head.kind === "head" && latin1(head.payload).startsWith("HTTP/1.1 200 "));
  });
});
