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

Deno.test("proxyRequest() re-chunks a body without length and ends it with 0 CRLF CRLF (PROTO-21)", async () => {
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
    assert.equal(got.body, "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n");
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
