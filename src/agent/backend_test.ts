import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { Flag, parseRequestHead } from "../protocol/mod.ts";
import {
  type BackendTimeouts,
  type ExchangeOutcome,
  type ForwardOptions,
  forwardRequest,
  planBackendRequest,
  requestPath,
} from "./backend.ts";
import { compileTargets, type Target, type TargetConfig } from "./targets.ts";
import { concatBytes, latin1, TestStream } from "./_test_helpers.ts";

const TLS_DIR = new URL("../../tests/testdata/tls/", import.meta.url);
const CA = Deno.readTextFileSync(new URL("ca.pem", TLS_DIR));
const CERT = Deno.readTextFileSync(new URL("localhost.pem", TLS_DIR));
const KEY = Deno.readTextFileSync(new URL("localhost.key", TLS_DIR));

const encoder = new TextEncoder();
const TIMEOUTS: BackendTimeouts = {
  connectTimeoutMs: 5_000,
  readTimeoutMs: 5_000,
  writeTimeoutMs: 5_000,
};
const FIXED_DATE = new Date("2026-11-25T00:24:58Z");

function target(config: Omit<TargetConfig, "name"> & { name?: string }): Target {
  const { targets, problems } = compileTargets([{ name: "t", ...config }]);
  assert.deepEqual(problems, []);
  return targets[0] as Target;
}

function head(text: string) {
  return parseRequestHead(encoder.encode(text)).head;
}

/** A request as the server sends it: HEAD|START, then the given BODY messages. */
function request(stream: TestStream, headText: string, bodies: (string | Uint8Array)[] = [""]) {
  bodies.forEach((body, index) => {
    stream.push(index === bodies.length - 1 ? Flag.Body | Flag.End : Flag.Body, body);
  });
  return head(headText);
}

/** Reads from `conn` until the bytes satisfy `done`; returns everything read. */
async function readUntil(
  conn: Deno.Conn,
  done: (text: string) => boolean,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(65_536);
  for (;;) {
    const all = concatBytes(parts);
    if (done(latin1(all))) return all;
    const count = await conn.read(buffer);
    if (count === null) return all;
    parts.push(buffer.slice(0, count));
  }
}

const headDone = (text: string): boolean => text.includes("\r\n\r\n");

/** Reads all bytes until the peer closes (or the connection fails). */
async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(65_536);
  try {
    for (;;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      parts.push(buffer.slice(0, count));
    }
  } catch {
    // A reset also ends the stream.
  }
  return concatBytes(parts);
}

interface TestBackend<T> extends AsyncDisposable {
  readonly port: number;
  /** The script's result, once its connection is done. */
  readonly result: Promise<T>;
}

/** A one-connection backend on 127.0.0.1:0 running `script` (plain TCP, or TLS with the test cert). */
function serveOnce<T>(
  script: (conn: Deno.Conn) => Promise<T>,
  options: { tls?: boolean } = {},
): TestBackend<T> {
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: CERT, key: KEY })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = (async () => {
    const conn = await listener.accept();
    try {
      return await script(conn);
    } finally {
      try {
        conn.close();
      } catch {
        // Closed by the script.
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    result,
    async [Symbol.asyncDispose]() {
      listener.close();
      await result.catch(() => {});
    },
  };
}

async function forward(
  stream: TestStream,
  requestHead: ReturnType<typeof head>,
  routedTo: Target,
  options: Partial<ForwardOptions> = {},
): Promise<ExchangeOutcome> {
  return await forwardRequest(stream, { head: requestHead, target: routedTo }, {
    timeouts: TIMEOUTS,
    now: () => FIXED_DATE,
    ...options,
  });
}

const GET_HEAD = "GET /get?x=1&y=two%20words HTTP/1.1\r\n" +
  "Host: golden.test:63500\r\n" +
  "Accept: */*\r\n" +
  "Connection: keep-alive\r\n" +
  "Keep-Alive: timeout=5\r\n" +
  "X-Empty: \r\n" +
  "X-Multi: one\r\nX-Multi: two\r\n" +
  "X-Transaction-Id: 765e0260-4c33-4534-a6cf-11d7382dd68c\r\n\r\n";

Deno.test("forwardRequest() relays a GET: Host from the target, hop-by-hop dropped, repeated headers and Set-Cookie kept (AGT-10, AGT-11, PROTO-22)", async () => {
  const body = '{"ok":true}';
  await using backend = serveOnce(async (conn) => {
    const received = await readUntil(conn, headDone);
    await conn.write(encoder.encode(
      "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/; HttpOnly\r\n" +
        "X-Multi: one\r\nX-Multi: two\r\nContent-Type: application/json\r\n" +
        `Content-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n${body}`,
    ));
    return latin1(received);
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, GET_HEAD),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  assert.equal(
    await backend.result,
    "GET /get?x=1&y=two%20words HTTP/1.1\r\n" +
      `Host: 127.0.0.1:${backend.port}\r\n` +
      "Accept: */*\r\nX-Empty: \r\nX-Multi: one\r\nX-Multi: two\r\n" +
      "X-Transaction-Id: 765e0260-4c33-4534-a6cf-11d7382dd68c\r\n\r\n",
  );
  assert.deepEqual(stream.sent.map((message) => message.flags), [Flag.Head | Flag.Start, 0x82]);
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n` +
      "Content-Type: application/json\r\nSet-Cookie: a=1; Path=/\r\n" +
      "Set-Cookie: b=2; Path=/; HttpOnly\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n",
  );
  assert.equal(latin1(stream.sent[1]?.payload ?? new Uint8Array()), body);
});

Deno.test("forwardRequest() answers HEAD with HEAD|START and an empty BODY|END (PROTO-23)", async () => {
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 309\r\n\r\n"));
    return await readAll(conn);
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "HEAD /get HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  assert.deepEqual(stream.describe(), ["HEAD|START len=40", "BODY|END len=0"]);
  assert.equal((await backend.result).length, 0, "the connection is closed after the exchange");
});

Deno.test("forwardRequest() copies Content-Length body payloads verbatim and never past the length (PROTO-21, ODD-40)", async () => {
  await using backend = serveOnce(async (conn) => {
    const received = await readUntil(conn, (text) => text.endsWith("hello world"));
    await conn.write(encoder.encode("HTTP/1.1 204 No Content\r\n\r\n"));
    const more = await readAll(conn);
    return latin1(concatBytes([received, more]));
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(
      stream,
      "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n",
      ["hello", " world", "GET /smuggled HTTP/1.1\r\n\r\n"],
    ),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 204 });
  assert.equal(
    await backend.result,
    `POST /upload HTTP/1.1\r\nHost: 127.0.0.1:${backend.port}\r\nContent-Length: 11\r\n\r\n` +
      "hello world",
  );
  assert.deepEqual(stream.describe(), ["HEAD|START len=27", "BODY|END len=0"]);
});

Deno.test("forwardRequest() copies re-chunked body payloads verbatim and de-chunks the response (PROTO-21, PROTO-23)", async () => {
  const chunks = ["c\r\nfirst-chunk\n\r\n", "5\r\nlast\n\r\n", "0\r\n\r\n"];
  await using backend = serveOnce(async (conn) => {
    const received = await readUntil(conn, (text) => text.endsWith("0\r\n\r\n"));
    await conn.write(encoder.encode(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n" +
        "c\r\nfirst-chunk\n\r\n5\r\nlast\n\r\n0\r\n\r\n",
    ));
    return latin1(received);
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(
      stream,
      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
      chunks,
    ),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  assert.equal(
    await backend.result,
    `POST /echo HTTP/1.1\r\nHost: 127.0.0.1:${backend.port}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      chunks.join(""),
  );
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
  );
  const last = stream.sent.at(-1);
  assert.equal(last?.flags, Flag.Body | Flag.End);
  const body = concatBytes(stream.sent.slice(1).map((message) => message.payload));
  assert.equal(latin1(body), "first-chunk\nlast\n");
});

Deno.test("forwardRequest() delivers a gzip body byte for byte with its Content-Encoding (architecture §7 fetch pitfall)", async () => {
  const gzipped = new Uint8Array(gzipSync(encoder.encode("compressed text ".repeat(500))));
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(concatBytes([
      encoder.encode(
        `HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${gzipped.length}\r\n\r\n`,
      ),
      gzipped,
    ]));
  });
  const stream = new TestStream();
  await forward(
    stream,
    request(stream, "GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.match(latin1(stream.sent[0]?.payload ?? new Uint8Array()), /Content-Encoding: gzip\r\n/);
  assert.deepEqual(concatBytes(stream.sent.slice(1).map((m) => m.payload)), gzipped);
  assert.equal(stream.sent.at(-1)?.flags, Flag.Body | Flag.End);
});

Deno.test("forwardRequest() splits a large body into BODY messages of at most 65532 bytes (PROTO-23)", async () => {
  const size = 153_600;
  const payload = new Uint8Array(size).map((_, index) => index % 251);
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`));
    await conn.write(payload);
  });
  const stream = new TestStream();
  await forward(
    stream,
    request(stream, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  const bodies = stream.sent.slice(1);
  assert.ok(bodies.every((message) => message.payload.length <= 65_532));
  assert.ok(bodies.slice(0, -1).every((message) => message.flags === Flag.Body));
  assert.equal(bodies.at(-1)?.flags, Flag.Body | Flag.End);
  assert.deepEqual(concatBytes(bodies.map((message) => message.payload)), payload);
});

Deno.test("forwardRequest() answers a synthetic 502 when the backend refuses the connection (AGT-9, PROTO-24)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET /down HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${port}` }),
  );
  assert.equal(outcome.kind, "synthetic");
  assert.deepEqual(stream.sent.map((message) => message.flags), [0xc1]);
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    "HTTP/1.1 502 Bad Gateway\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n",
  );
});

Deno.test("forwardRequest() answers a synthetic 504 when no response head comes within write_timeout (AGT-13)", async () => {
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    return await readAll(conn); // Never answers; ends when the agent closes.
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
    { timeouts: { ...TIMEOUTS, writeTimeoutMs: 50 } },
  );
  assert.equal(outcome.kind, "synthetic");
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    "HTTP/1.1 504 Gateway Timeout\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n",
  );
  assert.equal(stream.sent.length, 1);
  await backend.result;
});

Deno.test("forwardRequest() ends a truncated body with BODY|END then ABRT (PROTO-27)", async () => {
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n`));
    await conn.write(encoder.encode("t".repeat(500)));
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET /truncated HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.equal(outcome.kind, "truncated");
  const flags = stream.sent.map((message) => message.flags);
  assert.equal(flags[0], Flag.Head | Flag.Start);
  assert.deepEqual(flags.slice(-2), [Flag.Body | Flag.End, Flag.Abort]);
  assert.equal(concatBytes(stream.sent.slice(1).map((m) => m.payload)).length, 500);
});

Deno.test("forwardRequest() sends the response head before the body arrives (ODD-8)", async () => {
  const stream = new TestStream();
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(
      encoder.encode("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"),
    );
    await stream.waitSent(1); // The head is relayed while the body has not started.
    await conn.write(encoder.encode("data: tick 0\n\n"));
  });
  const outcome = await forward(
    stream,
    request(stream, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  assert.deepEqual(stream.describe(), ["HEAD|START len=52", "BODY len=14", "BODY|END len=0"]);
});

Deno.test("forwardRequest() keeps a streaming body alive across gaps longer than write_timeout (ODD-8)", async () => {
  const stream = new TestStream();
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\ndata: tick 0\n\n\r\n",
    ));
    await stream.waitSent(2);
    // A quiet period four times write_timeout: a deliberate gap, not a synchronisation.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await conn.write(encoder.encode("e\r\ndata: tick 1\n\n\r\n0\r\n\r\n"));
  });
  const outcome = await forward(
    stream,
    request(stream, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
    { timeouts: { ...TIMEOUTS, writeTimeoutMs: 50 } },
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  const body = concatBytes(stream.sent.slice(1).map((message) => message.payload));
  assert.equal(latin1(body), "data: tick 0\n\ndata: tick 1\n\n");
});

Deno.test("forwardRequest() closes the backend connection at once on a server ABRT (PROTO-27)", async () => {
  const stream = new TestStream();
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\ndata: tick 0\n\n\r\n",
    ));
    await stream.waitSent(2);
    stream.serverAbort();
    return await readAll(conn); // Ends when the agent closes its side.
  });
  const outcome = await forward(
    stream,
    request(stream, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.equal(outcome.kind, "aborted");
  assert.equal((await backend.result).length, 0);
  assert.deepEqual(stream.describe(), ["HEAD|START len=47", "BODY len=14"]);
});

Deno.test("forwardRequest() relays an upgrade: 101 as HEAD|START|UPGD, the greeting sent with the head as the first RAW (PROTO-25, ODD-6, ODD-17)", async () => {
  const stream = new TestStream();
  await using backend = serveOnce(async (conn) => {
    const received = await readUntil(conn, headDone);
    // The 101 head and a greeting in one write: the agent must not lose the greeting.
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhello-from-backend",
    ));
    const ping = await readUntil(conn, (text) => text === "ping");
    await conn.write(encoder.encode("pong"));
    return latin1(received) + "|" + latin1(ping);
  });
  const upgradeHead = request(
    stream,
    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  const exchange = forward(
    stream,
    upgradeHead,
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  await stream.waitSent(3);
  stream.push(Flag.Raw, "ping");
  const outcome = await exchange;
  assert.deepEqual(outcome, { kind: "upgraded", reason: "backend closed" });
  assert.equal(
    await backend.result,
    `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${backend.port}\r\nConnection: Upgrade\r\n` +
      "Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Websocket-Version: 13\r\n" +
      "Upgrade: websocket\r\n\r\n|ping",
  );
  assert.deepEqual(stream.sent.map((message) => message.flags), [
    0x61,
    0x82,
    Flag.Raw,
    Flag.Raw,
    Flag.Raw | Flag.End,
    Flag.Abort,
  ]);
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" +
      "Sec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nUpgrade: websocket\r\n\r\n",
  );
  assert.equal(latin1(stream.sent[2]?.payload ?? new Uint8Array()), "hello-from-backend");
  assert.equal(latin1(stream.sent[3]?.payload ?? new Uint8Array()), "pong");
});

Deno.test("forwardRequest() skips interim 1xx responses (RFC 9110 §15.2)", async () => {
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode(
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  assert.deepEqual(stream.describe(), ["HEAD|START len=38", "BODY|END len=2"]);
});

Deno.test("forwardRequest() answers 502 for an unparsable backend head (PROTO-24)", async () => {
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, headDone);
    await conn.write(encoder.encode("NOT HTTP AT ALL\r\n\r\n"));
  });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
  );
  assert.equal(outcome.kind, "synthetic");
  assert.match(latin1(stream.sent[0]?.payload ?? new Uint8Array()), /^HTTP\/1\.1 502 /);
});

Deno.test("forwardRequest() stops the upload after read_timeout without a message and reads the response (AGT-12)", async () => {
  const stream = new TestStream();
  await using backend = serveOnce(async (conn) => {
    await readUntil(conn, (text) => text.endsWith("part"));
    await stream.timedOut; // The agent gave up waiting for the rest of the body.
    await conn.write(encoder.encode("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"));
  });
  stream.push(Flag.Body, "part"); // The rest of the body never comes.
  const outcome = await forward(
    stream,
    head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"),
    target({ target: `http://127.0.0.1:${backend.port}` }),
    { timeouts: { ...TIMEOUTS, readTimeoutMs: 50 } },
  );
  assert.deepEqual(outcome, { kind: "relayed", status: 408 });
  assert.equal(stream.timeouts, 1);
});

async function tlsExchange(
  options: { insecure?: boolean; caCerts?: string[] },
): Promise<{ outcome: ExchangeOutcome; stream: TestStream }> {
  await using backend = serveOnce(async (conn) => {
    try {
      await readUntil(conn, headDone);
      await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure"));
    } catch {
      // The handshake failed: the agent refused the certificate.
    }
  }, { tls: true });
  const stream = new TestStream();
  const outcome = await forward(
    stream,
    request(stream, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: `https://localhost:${backend.port}`, insecure: options.insecure ?? false }),
    options.caCerts === undefined ? {} : { caCerts: options.caCerts },
  );
  return { outcome, stream };
}

Deno.test("forwardRequest() verifies backend TLS by default and honours a per-target insecure (ODD-11)", async (t) => {
  await t.step("an unknown issuer is refused with 502", async () => {
    const { outcome } = await tlsExchange({});
    assert.equal(outcome.kind, "synthetic");
    assert.match(outcome.kind === "synthetic" ? outcome.reason : "", /tls/);
  });
  await t.step("the test CA makes it work", async () => {
    const { outcome, stream } = await tlsExchange({ caCerts: [CA] });
    assert.deepEqual(outcome, { kind: "relayed", status: 200 });
    assert.equal(latin1(stream.sent[1]?.payload ?? new Uint8Array()), "secure");
  });
  await t.step("insecure skips verification", async () => {
    const { outcome } = await tlsExchange({ insecure: true });
    assert.deepEqual(outcome, { kind: "relayed", status: 200 });
  });
});

Deno.test("planBackendRequest() never takes the backend authority from the client (ODD-41)", () => {
  const rewriting = target({ target: "http://127.0.0.1:8000/$1", path: "^/prefix(.*)$" });
  const cases = [
    "GET /prefix@evil.example:9/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /prefix%40evil.example:9/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /prefix//evil.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http://evil.example:9/prefix/x HTTP/1.1\r\nHost: h\r\n\r\n",
  ];
  for (const text of cases) {
    const plan = planBackendRequest(head(text), rewriting);
    assert.equal(plan.host, "127.0.0.1", text);
    assert.equal(plan.port, 8000, text);
    const requestLine = latin1(plan.head).split("\r\n")[0] ?? "";
    assert.match(requestLine, /^GET \/[^/]/, `${text} → ${requestLine}`);
    assert.match(latin1(plan.head), /\r\nHost: 127\.0\.0\.1:8000\r\n/);
  }
  assert.equal(cases.length, 4);
  const plain = planBackendRequest(
    head("GET http://evil.example:9/x?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
    target({ target: "http://127.0.0.1:8000" }),
  );
  assert.match(latin1(plain.head), /^GET \/x\?q=1 HTTP\/1\.1\r\n/);
});

Deno.test("planBackendRequest() treats Connection as a token list and removes the fields it names (ODD-17, RFC 9110 §7.6.1)", () => {
  const plan = planBackendRequest(
    head(
      "GET / HTTP/1.0\r\nHost: h\r\nConnection: close, X-Secret, Content-Length\r\nX-Secret: 1\r\n" +
        "TE: trailers\r\nProxy-Connection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    ),
    target({ target: "http://127.0.0.1:8000", host: "remote" }),
  );
  assert.equal(
    latin1(plan.head),
    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
  );
  assert.equal(plan.upgrade, false);
  const noHost = planBackendRequest(
    head("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"),
    target({ target: "http://127.0.0.1:8000", host: "" }),
  );
  assert.equal(latin1(noHost.head), "GET / HTTP/1.1\r\n\r\n", "no Connection: no upgrade (AGT-11)");
});

Deno.test("requestPath() decodes the path without the query, as targets match it (AGT-4)", () => {
  const cases: [string, string | undefined][] = [
    ["/a%20b?x=1", "/a b"],
    ["/static/a/b.css", "/static/a/b.css"],
    ["/caf%C3%A9", "/café"],
    ["http://h:8/p%2Fq?x", "/p/q"],
    ["http://h", "/"],
    ["*", "*"],
    ["/bad%zz", undefined],
    ["/bad%", undefined],
  ];
  for (const [input, expected] of cases) assert.equal(requestPath(input), expected, input);
  assert.equal(cases.length, 8);
});
