import assert from "node:assert/strict";
import { Flag, parseRequestHead } from "../protocol/mod.ts";
import { type BackendTimeouts, type ExchangeOutcome, forwardRequest } from "./backend.ts";
import { BackendPool, dialKey, MAX_IDLE_PER_TARGET, POOL_IDLE_TIMEOUT_MS } from "./backend_pool.ts";
import { compileTargets, type Target } from "./targets.ts";
import { concatBytes, latin1, TEST_CA, TEST_CERT, TEST_KEY, TestStream } from "./_test_helpers.ts";

const encoder = new TextEncoder();
const TIMEOUTS: BackendTimeouts = {
  connectTimeoutMs: 5_000,
  readTimeoutMs: 5_000,
  writeTimeoutMs: 5_000,
};

/** One request as a keep-alive backend read it. */
interface Received {
  /** 0-based index of the backend connection it came on. */
  readonly connection: number;
  /** Its head and body, Latin-1. */
  readonly text: string;
}

/**
 * What a backend script does with a request: answer these bytes (and close after them when
 * `thenClose`), or close without answering.
 */
type Answer = string | Uint8Array | "close" | { readonly reply: string; readonly thenClose: true };

/**
 * A keep-alive HTTP/1.1 backend on 127.0.0.1:0 (plain TCP, or TLS with the test certificate):
 * reads request after request on each connection (head plus Content-Length body) and answers
 * each with `answer`; counts the connections and records when each one ended.
 */
class KeepAliveBackend implements AsyncDisposable {
  readonly #listener: Deno.Listener;
  readonly #tasks: Promise<void>[] = [];
  readonly #accepting: Promise<void>;
  readonly requests: Received[] = [];
  /** Resolves, per connection index, when that connection reached EOF from the agent. */
  readonly ended: PromiseWithResolvers<void>[] = [];
  connections = 0;

  constructor(
    answer: (request: Received, index: number) => Answer | Promise<Answer>,
    options: { readonly tls?: boolean } = {},
  ) {
    const listener = options.tls
      ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: TEST_CERT, key: TEST_KEY })
      : Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const conn of listener) {
        const index = this.connections++;
        this.ended[index] = Promise.withResolvers<void>();
        this.#tasks.push(this.#serve(conn, index, answer));
      }
    })().catch(() => {});
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Resolves when connection `index` ended (it must have been accepted). */
  endOf(index: number): Promise<void> {
    const ended = this.ended[index];
    assert.ok(ended !== undefined, `connection ${index} was accepted`);
    return ended.promise;
  }

  async #serve(
    conn: Deno.Conn,
    index: number,
    answer: (request: Received, index: number) => Answer | Promise<Answer>,
  ): Promise<void> {
    const buffer = new Uint8Array(16_384);
    let pending: Uint8Array = new Uint8Array(0);
    try {
      for (;;) {
        let text = latin1(pending);
        let end = text.indexOf("\r\n\r\n");
        while (end < 0) {
          const count = await conn.read(buffer);
          if (count === null) return;
          pending = concatBytes([pending, buffer.subarray(0, count)]);
          text = latin1(pending);
          end = text.indexOf("\r\n\r\n");
        }
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        while (pending.length < end + 4 + length) {
          const count = await conn.read(buffer);
          if (count === null) return;
          pending = concatBytes([pending, buffer.subarray(0, count)]);
        }
        const request = { connection: index, text: latin1(pending.subarray(0, end + 4 + length)) };
        pending = pending.slice(end + 4 + length);
        this.requests.push(request);
        const reply = await answer(request, this.requests.length - 1);
        if (reply === "close") return;
        if (typeof reply === "object" && "thenClose" in reply) {
          await conn.write(encoder.encode(reply.reply));
          return;
        }
        await conn.write(typeof reply === "string" ? encoder.encode(reply) : reply);
      }
    } catch {
      // Reset by the agent: the connection ended.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      this.ended[index]?.resolve();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await Promise.all(this.#tasks);
  }
}

function target(url: string, insecure = false): Target {
  const { targets, problems } = compileTargets([{ name: "t", target: url, insecure }]);
  assert.deepEqual(problems, []);
  return targets[0] as Target;
}

/** Forwards one request (head text, then BODY messages) through `pool`. */
async function exchange(
  pool: BackendPool,
  routedTo: Target,
  headText: string,
  bodies: string[] = [""],
  caCerts?: string[],
): Promise<{ outcome: ExchangeOutcome; stream: TestStream }> {
  const stream = new TestStream();
  bodies.forEach((body, index) => {
    stream.push(index === bodies.length - 1 ? Flag.Body | Flag.End : Flag.Body, body);
  });
  const head = parseRequestHead(encoder.encode(headText)).head;
  const outcome = await forwardRequest(stream, { head, target: routedTo }, {
    timeouts: TIMEOUTS,
    pool,
    ...(caCerts === undefined ? {} : { caCerts }),
  });
  return { outcome, stream };
}

const GET = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/** The body the agent relayed. */
function bodyOf(stream: TestStream): string {
  return latin1(concatBytes(stream.sent.slice(1).map((message) => message.payload)));
}

Deno.test("the pool's limits are named constants: idle timeout below Node's 5 s keep-alive (issue 7)", () => {
  assert.ok(POOL_IDLE_TIMEOUT_MS < 5_000);
  assert.ok(MAX_IDLE_PER_TARGET >= 20, "at least a domain's default concurrency");
});

Deno.test("dialKey() separates every dial property: scheme, host, port, insecure, server name (AGT-9, ODD-11)", () => {
  const base = {
    scheme: "https",
    host: "10.0.0.1",
    port: 443,
    insecure: false,
    serverName: "10.0.0.1",
  } as const;
  const variants = [
    base,
    { ...base, scheme: "http" as const },
    { ...base, host: "10.0.0.2" },
    { ...base, port: 8443 },
    { ...base, insecure: true },
    { ...base, serverName: "other" },
  ];
  assert.equal(new Set(variants.map(dialKey)).size, variants.length);
  assert.equal(dialKey({ ...base }), dialKey(base));
});

Deno.test("forwardRequest() with a pool reuses one backend connection for sequential requests (issue 7, AGT-9 changed)", async () => {
  await using backend = new KeepAliveBackend(() => OK);
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    for (let i = 0; i < 3; i++) {
      const { outcome, stream } = await exchange(pool, routedTo, GET);
      assert.deepEqual(outcome, { kind: "relayed", status: 200 });
      assert.equal(bodyOf(stream), "ok");
    }
    assert.equal(backend.requests.length, 3);
    assert.equal(backend.connections, 1, "one connection served the three requests");
    assert.equal(pool.idle, 1);
    // The request never asks the backend to close (AGT-11: the client's Connection is dropped).
    assert.ok(backend.requests.every((request) => !/\r\nConnection:/i.test(request.text)));
  } finally {
    pool.close();
  }
  await backend.endOf(0);
  assert.equal(pool.idle, 0, "close() closed the idle connection");
});

Deno.test("forwardRequest() reuses after chunked, HEAD, 204 and 304 answers and after a complete upload (issue 7)", async (t) => {
  const cases: { name: string; head: string; bodies?: string[]; answer: string; body: string }[] = [
    {
      name: "chunked",
      head: GET,
      answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      body: "ok",
    },
    {
      name: "HEAD",
      head: "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
      answer: "HTTP/1.1 200 OK\r\nContent-Length: 309\r\n\r\n",
      body: "",
    },
    { name: "204", head: GET, answer: "HTTP/1.1 204 No Content\r\n\r\n", body: "" },
    { name: "304", head: GET, answer: "HTTP/1.1 304 Not Modified\r\n\r\n", body: "" },
    {
      name: "100 then 200",
      head: GET,
      answer: "HTTP/1.1 100 Continue\r\n\r\n" + OK,
      body: "ok",
    },
    {
      name: "POST with a body",
      head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
      bodies: ["he", "llo"],
      answer: OK,
      body: "ok",
    },
  ];
  let steps = 0;
  for (const item of cases) {
    await t.step(item.name, async () => {
      await using backend = new KeepAliveBackend(() => item.answer);
      const pool = new BackendPool();
      try {
        const routedTo = target(`http://127.0.0.1:${backend.port}`);
        for (let i = 0; i < 2; i++) {
          const { outcome, stream } = await exchange(pool, routedTo, item.head, item.bodies);
          assert.equal(outcome.kind, "relayed");
          assert.equal(bodyOf(stream), item.body);
        }
        assert.equal(backend.connections, 1);
        assert.equal(backend.requests.length, 2);
      } finally {
        pool.close();
      }
      steps++;
    });
  }
  assert.equal(steps, cases.length);
});

Deno.test("forwardRequest() never reuses a connection after Connection: close, HTTP/1.0, an EOF-delimited body or bytes beyond the body (issue 7)", async (t) => {
  const cases: { name: string; answer: string; body: string; head?: string }[] = [
    {
      name: "a declined upgrade",
      head: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      answer: "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno",
      body: "no",
    },
    {
      name: "Connection: close",
      answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
      body: "ok",
    },
    {
      name: "Connection: Keep-Alive, close",
      answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive, close\r\n\r\nok",
      body: "ok",
    },
    {
      name: "HTTP/1.0 even with keep-alive",
      answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
      body: "ok",
    },
    { name: "EOF-delimited body", answer: "HTTP/1.1 200 OK\r\n\r\nok", body: "ok" },
    {
      name: "bytes after the body",
      answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
      body: "ok",
    },
  ];
  let steps = 0;
  for (const item of cases) {
    await t.step(item.name, async () => {
      // An EOF-delimited body ends when the backend closes after it.
      await using backend = new KeepAliveBackend(() =>
        item.name === "EOF-delimited body" ? { reply: item.answer, thenClose: true } : item.answer
      );
      const pool = new BackendPool();
      try {
        const routedTo = target(`http://127.0.0.1:${backend.port}`);
        const { outcome, stream } = await exchange(pool, routedTo, item.head ?? GET);
        assert.equal(outcome.kind, "relayed");
        assert.equal(bodyOf(stream), item.body);
        assert.equal(pool.idle, 0, "not kept");
        await backend.endOf(0);
        assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
        assert.equal(backend.connections, 2, "the second request used a new connection");
      } finally {
        pool.close();
      }
      steps++;
    });
  }
  assert.equal(steps, cases.length);
});

Deno.test("forwardRequest() retries a stale pooled connection once on a new one for a body-less GET (issue 7)", async () => {
  // Connection 0 answers the first request, then takes the second and closes without answering:
  // the backend closed an idle connection just as the agent reused it.
  await using backend = new KeepAliveBackend((request, index) =>
    request.connection === 0 && index === 1 ? "close" : OK
  );
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
    const { outcome, stream } = await exchange(pool, routedTo, GET);
    assert.deepEqual(outcome, { kind: "relayed", status: 200 });
    assert.equal(bodyOf(stream), "ok");
    assert.equal(backend.connections, 2);
    assert.deepEqual(backend.requests.map((request) => request.connection), [0, 0, 1]);
  } finally {
    pool.close();
  }
});

Deno.test("forwardRequest() retries only once: a new connection closing too gives the 502 (issue 7, PROTO-24)", async () => {
  await using backend = new KeepAliveBackend((_request, index) => index === 0 ? OK : "close");
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
    const { outcome } = await exchange(pool, routedTo, GET);
    assert.equal(outcome.kind, "synthetic");
    assert.equal(outcome.kind === "synthetic" ? outcome.status : 0, 502);
    assert.equal(backend.requests.length, 3, "the first try and one retry");
    assert.equal(backend.connections, 2);
  } finally {
    pool.close();
  }
});

Deno.test("forwardRequest() never retries a request with a body or a non-idempotent method on a stale connection (issue 7, RFC 9112 §9.3.1)", async (t) => {
  const cases = [
    { name: "POST without a body", head: "POST / HTTP/1.1\r\nHost: h\r\n\r\n" },
    {
      name: "PUT with a body",
      head: "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
      bodies: ["abc"],
    },
  ];
  let steps = 0;
  for (const item of cases) {
    await t.step(item.name, async () => {
      await using backend = new KeepAliveBackend((_request, index) => index === 1 ? "close" : OK);
      const pool = new BackendPool();
      try {
        const routedTo = target(`http://127.0.0.1:${backend.port}`);
        assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
        const { outcome } = await exchange(pool, routedTo, item.head, item.bodies);
        assert.equal(outcome.kind === "synthetic" ? outcome.status : 0, 502);
        assert.equal(backend.requests.length, 2, "sent once, never again");
        assert.equal(backend.connections, 1);
      } finally {
        pool.close();
      }
      steps++;
    });
  }
  assert.equal(steps, cases.length);
});

Deno.test("forwardRequest() does not keep a connection whose body was truncated, and still aborts the stream (issue 7, PROTO-27)", async () => {
  await using backend = new KeepAliveBackend(() => ({
    reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
    thenClose: true,
  }));
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    const { outcome, stream } = await exchange(pool, routedTo, GET);
    assert.equal(outcome.kind, "truncated");
    assert.deepEqual(stream.describe().slice(-2), ["BODY|END len=0", "ABRT len=0"]);
    assert.equal(pool.idle, 0);
  } finally {
    pool.close();
  }
});

Deno.test("forwardRequest() never pools an upgraded (101) connection (issue 7, PROTO-25)", async () => {
  await using backend = new KeepAliveBackend(() =>
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
  );
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    const stream = new TestStream();
    stream.push(Flag.Body | Flag.End);
    const head = parseRequestHead(
      encoder.encode(
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      ),
    ).head;
    const running = forwardRequest(stream, { head, target: routedTo }, {
      timeouts: TIMEOUTS,
      pool,
    });
    await stream.waitSent(2); // HEAD|START|UPGRADE and BODY|END
    stream.serverAbort();
    const outcome = await running;
    assert.equal(outcome.kind, "aborted");
    await backend.endOf(0);
    assert.equal(pool.idle, 0);
  } finally {
    pool.close();
  }
});

Deno.test("BackendPool closes idle connections after the idle timeout (issue 7)", async () => {
  await using backend = new KeepAliveBackend(() => OK);
  const pool = new BackendPool({ idleTimeoutMs: 20 });
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
    assert.equal(pool.idle, 1);
    await backend.endOf(0); // the agent closed it: the backend read EOF
    assert.equal(pool.idle, 0);
  } finally {
    pool.close();
  }
});

Deno.test("BackendPool drops an idle connection the backend closed, and the next request uses a new one (issue 7)", async () => {
  // The backend answers with a known length, then closes (a keep-alive shorter than ours).
  await using backend = new KeepAliveBackend(() => ({ reply: OK, thenClose: true }));
  const pool = new BackendPool();
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    assert.equal((await exchange(pool, routedTo, GET)).outcome.kind, "relayed");
    await backend.endOf(0);
    const { outcome, stream } = await exchange(pool, routedTo, GET);
    assert.deepEqual(outcome, { kind: "relayed", status: 200 });
    assert.equal(bodyOf(stream), "ok");
    assert.deepEqual(backend.requests.map((request) => request.connection), [0, 1]);
  } finally {
    pool.close();
  }
});

Deno.test("BackendPool keeps at most maxIdlePerTarget idle connections and closes the rest (issue 7)", async () => {
  // Two requests in flight at once (two connections); the backend answers once both arrived.
  const both = Promise.withResolvers<void>();
  let arrived = 0;
  await using backend = new KeepAliveBackend(async () => {
    if (++arrived === 2) both.resolve();
    await both.promise;
    return OK;
  });
  const pool = new BackendPool({ maxIdlePerTarget: 1 });
  try {
    const routedTo = target(`http://127.0.0.1:${backend.port}`);
    const results = await Promise.all([
      exchange(pool, routedTo, GET),
      exchange(pool, routedTo, GET),
    ]);
    assert.deepEqual(results.map((result) => result.outcome.kind), ["relayed", "relayed"]);
    assert.equal(backend.connections, 2);
    assert.equal(pool.idle, 1, "one kept");
    await Promise.race([backend.endOf(0), backend.endOf(1)]); // the other one was closed
  } finally {
    pool.close();
  }
});

Deno.test("BackendPool keeps verified and insecure TLS connections apart and reuses each (issue 7, ODD-11)", async () => {
  await using backend = new KeepAliveBackend(() => OK, { tls: true });
  const pool = new BackendPool();
  try {
    for (const insecure of [false, true, false, true]) {
      const routedTo = target(`https://localhost:${backend.port}`, insecure);
      const { outcome } = await exchange(pool, routedTo, GET, [""], [TEST_CA]);
      assert.deepEqual(outcome, { kind: "relayed", status: 200 });
    }
    assert.equal(backend.connections, 2, "one verified and one insecure connection");
    assert.equal(pool.idle, 2);
  } finally {
    pool.close();
  }
});
