/**
 * The client request path over an in-memory tunnel: what the agent receives, what the client
 * gets back, and every failure status (SRV-9…SRV-18 with ODD-1, ODD-2, ODD-35 fixed).
 * @module
 */

import assert from "node:assert/strict";
import { readServerDomainConfig } from "../config/mod.ts";
import { Flag, type Frame } from "../protocol/mod.ts";
import { MemoryTransport, Mux, type Stream } from "../tunnel/mod.ts";
import {
  type AccessEntry,
  type ClientInfo,
  forwardedRequestHead,
  type ProxyDeps,
  proxyRequest,
} from "./client_proxy.ts";
import { createDomain } from "./registry.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const enc = (value: string) => new TextEncoder().encode(value);

function domainWith(tree: Record<string, unknown>) {
  const { config } = readServerDomainConfig(
    { tree: { groom: { active: "yes", secret: "x", ...tree } } as never },
    { name: "app.example" },
  );
  return createDomain(config);
}

const CLIENT: ClientInfo = {
  remoteAddr: { hostname: "203.0.113.7", port: 50000 },
  name: "app.example",
  port: "443",
  start: 0,
  startMark: 0,
};

/** A server mux and an agent mux over memory; the agent side hands us each new stream. */
function tunnel() {
  const [serverSide, agentSide] = MemoryTransport.pair();
  const streams: Stream[] = [];
  const waiting: ((stream: Stream) => void)[] = [];
  const server = new Mux(serverSide, { role: "server" });
  const agent = new Mux(agentSide, {
    role: "agent",
    onStream: (stream) => {
      const next = waiting.shift();
      if (next) next(stream);
      else streams.push(stream);
    },
  });
  return {
    server,
    agent,
    accepted: (): Promise<Stream> => {
      const ready = streams.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
    close() {
      server.close();
      agent.close();
    },
  };
}

function deps(open: () => Stream | undefined, overrides: Partial<ProxyDeps> = {}) {
  const entries: AccessEntry[] = [];
  const value: ProxyDeps = {
    open,
    writeTimeoutMs: 2_000,
    bodyIdleTimeoutMs: 2_000,
    headersSize: 65_536,
    access: (_request, _client, entry) => entries.push(entry),
    ...overrides,
  };
  return { value, entries };
}

/** Reads frames on the agent side until END or abort; returns the concatenated BODY payloads. */
async function readRequest(
  stream: Stream,
): Promise<{ head: string; body: string; ended: boolean }> {
  const head = await stream.read({ timeoutMs: 2_000 }) as Frame;
  assert.equal(head.kind, "head");
  let body = "";
  while (true) {
    const frame = await stream.read({ timeoutMs: 2_000 }).catch(() => null);
    if (frame === null) return { head: text(head.payload), body, ended: false };
    body += text(frame.payload);
    if (frame.kind === "body" && frame.end) return { head: text(head.payload), body, ended: true };
  }
}

Deno.test("proxyRequest() forwards the head with SRV-9's headers and streams the answer back", async () => {
  const pair = tunnel();
  try {
    const domain = domainWith({});
    const { value, entries } = deps(() => pair.server.open());
    const request = new Request("https://app.example/hello/world?x=1", {
      headers: {
        "user-agent": "curl/7.88.1",
        "x-forwarded-for": "9.9.9.9",
        connection: "keep-alive",
        "proxy-authorization": "Basic c2VjcmV0",
      },
    });
    const responding = proxyRequest(request, CLIENT, domain, value);
    const stream = await pair.accepted();
    const got = await readRequest(stream);
    assert.match(got.head, /^GET \/hello\/world\?x=1 HTTP\/1\.1\r\nHost: app\.example\r\n/);
    assert.match(got.head, /\r\nX-Forwarded-For: 203\.0\.113\.7\r\n/); // untrusted peer: replaced
    assert.match(got.head, /\r\nX-Forwarded-Host: app\.example\r\nX-Forwarded-Port: 443\r\n/);
    assert.match(got.head, /\r\nX-Forwarded-Proto: https\r\nX-Transaction-Id: [0-9a-f-]{36}\r\n/);
    assert.doesNotMatch(got.head, /Proxy-Authorization|Connection:/);
    assert.equal(got.ended, true);
    await stream.send(
      Flag.Head | Flag.Start,
      enc(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n" +
          "X-Multi: one\r\nX-Multi: two\r\nKeep-Alive: timeout=5\r\n\r\n",
      ),
    );
    await stream.send(Flag.Body, enc("hel"));
    await stream.send(Flag.Body | Flag.End, enc("lo"));
    const response = await responding;
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "hello");
    assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
    assert.equal(response.headers.get("x-multi"), "one, two"); // ODD-16: every value kept
    assert.equal(response.headers.get("keep-alive"), null);
    assert.match(response.headers.get("x-transaction-id") ?? "", /^[0-9a-f-]{36}$/);
    assert.deepEqual(entries.map((entry) => entry.status), [200]);
  } finally {
    pair.close();
  }
});

Deno.test("forwardedRequestHead() appends the peer to a trusted forwarder's chain (SRV-9, ODD-24)", () => {
  const domain = domainWith({ forward: ["203.0.113.0/24"] });
  const request = new Request("https://app.example/", {
    headers: { "x-forwarded-for": "9.9.9.9" },
  });
  const { head } = forwardedRequestHead(request, CLIENT, domain, "id");
  assert.match(text(head), /\r\nX-Forwarded-For: 9\.9\.9\.9, 203\.0\.113\.7\r\n/);
});

Deno.test("proxyRequest() re-chunks a body without length, reads already there as one chunk, and ends it with 0 CRLF CRLF (PROTO-21)", async () => {
  const pair = tunnel();
  try {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(enc("abc"));
        controller.enqueue(enc("defgh"));
        controller.close();
      },
    });
    const { value } = deps(() => pair.server.open());
    const request = new Request("https://app.example/up", { method: "POST", body });
    const responding = proxyRequest(request, CLIENT, domainWith({}), value);
    const stream = await pair.accepted();
    const got = await readRequest(stream);
    assert.match(got.head, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.equal(got.body, "8\r\nabcdefgh\r\n0\r\n\r\n"); // issue 7: batched
    await stream.send(Flag.Head | Flag.Start | Flag.End, enc("HTTP/1.1 204 No Content\r\n\r\n"));
    assert.equal((await responding).status, 204);
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() answers 413 for a declared or streamed body over body_size (ODD-2)", async () => {
  const pair = tunnel();
  try {
    const domain = domainWith({ body_size: "64kB" });
    const { value, entries } = deps(() => pair.server.open());
    const declared = await proxyRequest(
      new Request("https://app.example/", {
        method: "POST",
        body: "x",
        headers: { "content-length": "70000" },
      }),
      CLIENT,
      domain,
      value,
    );
    assert.equal(declared.status, 413);
    const big = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(16_384));
      },
    });
    const streamed = proxyRequest(
      new Request("https://app.example/", { method: "POST", body: big }),
      CLIENT,
      domain,
      value,
    );
    const stream = await pair.accepted();
    const got = await readRequest(stream); // the agent sees an abort, never an END (ODD-35)
    assert.equal(got.ended, false);
    assert.equal((await streamed).status, 413);
    assert.deepEqual(entries.map((entry) => entry.status), [413, 413]);
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() answers 504 when the agent stays silent and 502 when it aborts (ODD-1)", async () => {
  const pair = tunnel();
  try {
    const { value, entries } = deps(() => pair.server.open(), { writeTimeoutMs: 50 });
    const silent = await proxyRequest(
      new Request("https://app.example/"),
      CLIENT,
      domainWith({}),
      value,
    );
    assert.equal(silent.status, 504);
    const aborting = proxyRequest(new Request("https://app.example/"), CLIENT, domainWith({}), {
      ...value,
      writeTimeoutMs: 2_000,
    });
    await pair.accepted(); // the silent one
    const stream = await pair.accepted();
    stream.abort("backend gone");
    assert.equal((await aborting).status, 502);
    assert.deepEqual(entries.map((entry) => entry.status), [504, 502]);
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() answers 429 at the concurrency cap, with the transaction id (SRV-10, SRV-11)", async () => {
  const { value, entries } = deps(() => undefined);
  const response = await proxyRequest(
    new Request("https://app.example/"),
    CLIENT,
    domainWith({}),
    value,
  );
  assert.equal(response.status, 429);
  assert.match(response.headers.get("x-transaction-id") ?? "", /^[0-9a-f-]{36}$/);
  assert.deepEqual(entries.map((entry) => entry.status), [429]);
});

Deno.test("proxyRequest() aborts the stream when the uploader goes away mid-body (ODD-35)", async () => {
  const pair = tunnel();
  try {
    let fail: (error: Error) => void = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(enc("partial"));
        fail = (error) => controller.error(error);
      },
    });
    const { value } = deps(() => pair.server.open());
    const responding = proxyRequest(
      new Request("https://app.example/", { method: "POST", body }),
      CLIENT,
      domainWith({}),
      value,
    );
    const stream = await pair.accepted();
    const head = await stream.read({ timeoutMs: 2_000 });
    assert.equal(head?.kind, "head");
    const first = await stream.read({ timeoutMs: 2_000 });
    assert.equal(text(first?.payload ?? new Uint8Array()), "7\r\npartial\r\n");
    fail(new Error("connection reset"));
    assert.equal(await stream.read({ timeoutMs: 2_000 }), null); // ABRT, not END
    assert.equal((await responding).status, 502);
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() answers a small Content-Length body complete, as bytes (issue 7, SRV-16, SRV-17)", async () => {
  const pair = tunnel();
  try {
    const { value, entries } = deps(() => pair.server.open());
    const responding = proxyRequest(
      new Request("https://app.example/small"),
      CLIENT,
      domainWith({}),
      value,
    );
    const stream = await pair.accepted();
    await readRequest(stream);
    const head = enc("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Kind: small\r\n\r\n");
    await stream.send(Flag.Head | Flag.Start, head);
    await stream.send(Flag.Body, enc("hello "));
    await stream.send(Flag.Body | Flag.End, enc("world"));
    const response = await responding;
    // Complete before anyone reads the body: the record is written and the stream released.
    assert.deepEqual(entries.map((entry) => [entry.status, entry.reason]), [[200, undefined]]);
    assert.equal(entries[0]?.out, 52 + head.length + 11); // groom's 52 + head + body (SRV-20)
    assert.equal(pair.server.size, 0); // the server's stream is released (PROTO-18)
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), "11");
    assert.equal(response.headers.get("x-kind"), "small");
    assert.equal(await response.text(), "hello world");
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() streams a Content-Length body that pauses, nothing lost (issue 7, ODD-8)", async () => {
  const pair = tunnel();
  try {
    const { value, entries } = deps(() => pair.server.open());
    const responding = proxyRequest(
      new Request("https://app.example/pausing"),
      CLIENT,
      domainWith({}),
      value,
    );
    const stream = await pair.accepted();
    await readRequest(stream);
    await stream.send(Flag.Head | Flag.Start, enc("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
    await stream.send(Flag.Body, enc("hel"));
    // The rest is not there within the turn that brought the head: the answer streams.
    const response = await responding;
    assert.equal(entries.length, 0); // not complete yet
    assert.equal(response.headers.get("content-length"), "5");
    await stream.send(Flag.Body | Flag.End, enc("lo"));
    assert.equal(await response.text(), "hello");
    assert.deepEqual(entries.map((entry) => [entry.status, entry.reason]), [[200, undefined]]);
  } finally {
    pair.close();
  }
});

Deno.test("proxyRequest() still shows truncated bodies as truncated (issue 7, PROTO-27, ODD-35)", async () => {
  const cases = [
    {
      name: "Content-Length body ended short",
      head: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
      reason: "body truncated: shorter than its Content-Length",
      abortAfterEnd: false,
    },
    {
      name: "groom 1.3 style: BODY|END then ABRT, no Content-Length",
      head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      reason: "agent reported a truncated body",
      abortAfterEnd: true,
    },
    {
      name: "Content-Length body aborted mid-way",
      head: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
      reason: "agent aborted the stream",
      abortAfterEnd: undefined,
    },
    {
      name: "tunnel closed before the body (SRV-18: the head still reaches the client)",
      head: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
      reason: /^Stream \d+ was shut/,
      abortAfterEnd: null,
    },
  ];
  let ran = 0;
  for (const { name, head, reason, abortAfterEnd } of cases) {
    const pair = tunnel();
    try {
      const { value, entries } = deps(() => pair.server.open());
      const responding = proxyRequest(
        new Request("https://app.example/cut"),
        CLIENT,
        domainWith({}),
        value,
      );
      const stream = await pair.accepted();
      await readRequest(stream);
      await stream.send(Flag.Head | Flag.Start, enc(head));
      if (abortAfterEnd === null) {
        pair.agent.close();
      } else if (abortAfterEnd === undefined) {
        await stream.send(Flag.Body, enc("part"));
        stream.abort("backend gone");
      } else {
        await stream.send(Flag.Body | Flag.End, enc("part"));
        if (abortAfterEnd) stream.abort("backend cut the body");
      }
      const response = await responding;
      assert.equal(response.status, 200, name);
      await assert.rejects(response.text(), name);
      assert.equal(entries.length, 1, name);
      assert.equal(entries[0]?.status, 200, name);
      if (typeof reason === "string") assert.equal(entries[0]?.reason, reason, name);
      else assert.match(entries[0]?.reason ?? "", reason, name);
      ran++;
    } finally {
      pair.close();
    }
  }
  assert.equal(ran, cases.length);
});

/** A request body that yields `chunks` one read at a time, then ends. */
function bodyOf(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[next++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

Deno.test("proxyRequest() batches upload reads into BODY messages of at most 65 524 data bytes (issue 7, PROTO-21)", async () => {
  const table = [
    { name: "Content-Length", chunked: false },
    { name: "chunked", chunked: true },
  ];
  let ran = 0;
  for (const { name, chunked } of table) {
    const pair = tunnel();
    try {
      // 40 reads of 16 KiB, as TLS delivers them, with a distinct byte in each.
      const chunks = Array.from({ length: 40 }, (_, index) => new Uint8Array(16_384).fill(index));
      const size = 40 * 16_384;
      const { value } = deps(() => pair.server.open());
      const responding = proxyRequest(
        new Request("https://app.example/up", {
          method: "POST",
          body: bodyOf(chunks),
          headers: chunked ? {} : { "content-length": String(size) },
        }),
        CLIENT,
        domainWith({}),
        value,
      );
      const stream = await pair.accepted();
      const head = await stream.read({ timeoutMs: 2_000 });
      assert.equal(head?.kind, "head", name);
      const payloads: Uint8Array[] = [];
      while (true) {
        const frame = await stream.read({ timeoutMs: 2_000 }) as Frame;
        assert.equal(frame.kind, "body", name);
        payloads.push(frame.payload);
        if (frame.kind === "body" && frame.end) break;
      }
      for (const payload of payloads) assert.ok(payload.length <= 65_532, name);
      let data: Uint8Array;
      if (chunked) {
        const wire = text(new Uint8Array(payloads.flatMap((payload) => [...payload])));
        assert.ok(wire.endsWith("0\r\n\r\n"), name);
        data = new Uint8Array(size);
        let offset = 0;
        let at = 0;
        while (true) {
          const eol = wire.indexOf("\r\n", at);
          const length = parseInt(wire.slice(at, eol), 16);
          if (length === 0) break;
          for (let index = 0; index < length; index++) {
            data[offset++] = wire.charCodeAt(eol + 2 + index);
          }
          at = eol + 2 + length + 2;
        }
        assert.equal(offset, size, name);
      } else {
        data = new Uint8Array(payloads.flatMap((payload) => [...payload]));
        assert.equal(payloads.at(-1)?.length, 0, name); // the empty BODY|END
      }
      assert.equal(data.length, size, name);
      for (let index = 0; index < 40; index++) {
        assert.equal(data[index * 16_384], index, name);
        assert.equal(data[index * 16_384 + 16_383], index, name);
      }
      // Fewer messages than reads: 640 KiB in messages of up to 64 KiB, plus the END.
      assert.ok(payloads.length <= 12, `${name}: ${payloads.length} messages`);
      await stream.send(Flag.Head | Flag.Start | Flag.End, enc("HTTP/1.1 204 No Content\r\n\r\n"));
      assert.equal((await responding).status, 204, name);
      ran++;
    } finally {
      pair.close();
    }
  }
  assert.equal(ran, table.length);
});

Deno.test("proxyRequest() forwards a trickling upload as it comes, without waiting for a full batch (issue 7, PROTO-21)", async () => {
  const pair = tunnel();
  try {
    let push: (chunk: Uint8Array | null) => void = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(enc("abc"));
        push = (chunk) => chunk === null ? controller.close() : controller.enqueue(chunk);
      },
    });
    const { value } = deps(() => pair.server.open());
    const responding = proxyRequest(
      new Request("https://app.example/up", { method: "POST", body }),
      CLIENT,
      domainWith({}),
      value,
    );
    const stream = await pair.accepted();
    assert.equal((await stream.read({ timeoutMs: 2_000 }))?.kind, "head");
    // Only "abc" is there: it must arrive on its own, the rest of the body still to come.
    assert.equal(text((await stream.read({ timeoutMs: 2_000 }) as Frame).payload), "3\r\nabc\r\n");
    push(enc("defgh"));
    assert.equal(
      text((await stream.read({ timeoutMs: 2_000 }) as Frame).payload),
      "5\r\ndefgh\r\n",
    );
    push(null);
    const end = await stream.read({ timeoutMs: 2_000 }) as Frame;
    assert.equal(end.kind === "body" && end.end, true);
    assert.equal(text(end.payload), "0\r\n\r\n");
    await stream.send(Flag.Head | Flag.Start | Flag.End, enc("HTTP/1.1 204 No Content\r\n\r\n"));
    assert.equal((await responding).status, 204);
  } finally {
    pair.close();
  }
});
