/**
 * Hostile clients (issue 8): oversized and malformed request lines and headers, invalid Host and
 * SNI values, request smuggling attempts (CL+TE, duplicate Content-Length, obs-fold, odd
 * Transfer-Encodings), slow senders and many connections from one address, all against a real
 * server and agent. The agent's backend here records the raw bytes of every connection, so a
 * test sees exactly what would reach an application. A hostile request gets a 4xx answer or a
 * closed connection, never reaches the backend in a form other than one well-framed request, and
 * the server keeps serving everyone else.
 * @module
 */

import assert from "node:assert/strict";
import { latin1Bytes, rawHttps, type RawHttpsOptions } from "../_harness/rogue.ts";
import { CA_PEM, startStack } from "../_harness/stack.ts";
import { serveRawTcp } from "../_harness/raw_server.ts";

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * A raw HTTP/1.1 backend that records every byte each connection sends and answers `ok` once a
 * request (head, and body as framed) is in, keeping the connection for more requests.
 */
function startRecordingBackend() {
  const connections: string[] = [];
  const answer = latin1Bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const serve = async (conn: Deno.Conn) => {
    const index = connections.push("") - 1;
    const buffer = new Uint8Array(65536);
    let pending = "";
    for (;;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      const piece = String.fromCharCode(...buffer.subarray(0, count));
      connections[index] += piece;
      pending += piece;
      for (;;) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) break;
        const fields = pending.slice(0, end).toLowerCase().split("\r\n");
        const rest = pending.slice(end + 4);
        let used: number;
        if (fields.includes("transfer-encoding: chunked")) {
          const last = rest.indexOf("0\r\n\r\n");
          if (last < 0) break;
          used = last + 5;
        } else {
          const length = fields.find((field) => field.startsWith("content-length:"));
          used = Number(length?.slice(15).trim() ?? 0);
          if (rest.length < used) break;
        }
        pending = rest.slice(used);
        await conn.write(answer);
      }
    }
  };
  const server = serveRawTcp(serve);
  return {
    port: server.port,
    connections,
    /** Every request line the backend received. */
    requestLines(): string[] {
      return connections.flatMap((bytes) =>
        bytes.split("\r\n").filter((line) => / HTTP\/1\.[01]$/.test(line))
      );
    },
    close: () => server.close(),
  };
}

/** A stack whose agent sends everything to a recording backend. */
async function withRecordingStack(
  run: (stack: Stack, backend: ReturnType<typeof startRecordingBackend>) => Promise<void>,
  options: Parameters<typeof startStack>[0] = {},
): Promise<void> {
  const backend = startRecordingBackend();
  try {
    await using stack = await startStack({
      ...options,
      agentDomain: `targets {\n  active = [ recorder ]\n` +
        `  recorder {\n    target = "http://127.0.0.1:${backend.port}"\n  }\n}\n`,
    });
    await run(stack, backend);
  } finally {
    await backend.close();
  }
}

/** Options of a rogue client of `stack` that stops reading after the first response head. */
function raw(stack: Stack, options: Partial<RawHttpsOptions> = {}): RawHttpsOptions {
  return {
    port: stack.port,
    caCerts: [CA_PEM],
    until: (text) => text.includes("\r\n\r\n"),
    ...options,
  };
}

/** The status code of the first response in `text`, or undefined. */
function statusOf(text: string): number | undefined {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** The server still serves a normal request through the tunnel. */
async function stillServes(stack: Stack): Promise<void> {
  const response = await stack.fetch("/still-fine");
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "ok");
}

Deno.test("oversized and malformed request lines and headers get a 4xx or a closed connection, never the backend (SRV-22)", async () => {
  const cases: [string, string][] = [
    ["100 kB request target", `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`],
    ["1 MB header", `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"b".repeat(1 << 20)}\r\n\r\n`],
    [
      "10 000 headers",
      `GET / HTTP/1.1\r\nHost: localhost\r\n${"X-N: 1\r\n".repeat(10_000)}\r\n`,
    ],
    ["binary junk", "\x00\x01\x02\x03\xff\xfe\r\n\r\n"],
    ["no version", "GET /\r\nHost: localhost\r\n\r\n"],
    ["unknown version", "GET / HTTP/9.9\r\nHost: localhost\r\n\r\n"],
    ["extra token", "GET / HTTP/1.1 extra\r\nHost: localhost\r\n\r\n"],
    ["bad method", "G(T / HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    ["control character in target", "GET /a\x7fb HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    ["bare CR", "GET / HTTP/1.1\rHost: localhost\r\n\r\n"],
    ["space before colon", "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n"],
    ["header without colon", "GET / HTTP/1.1\r\nHost: localhost\r\nNoColon\r\n\r\n"],
    ["NUL in a header", "GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n"],
  ];
  await withRecordingStack(async (stack, backend) => {
    for (const [name, request] of cases) {
      const exchange = await rawHttps(raw(stack, { deadlineMs: 5_000 }), [request]);
      const status = statusOf(exchange.text);
      assert.ok(
        (status !== undefined && status >= 400 && status < 500) ||
          (status === undefined && exchange.closed),
        `${name}: ${JSON.stringify(exchange.text.slice(0, 200))} closed=${exchange.closed}`,
      );
    }
    assert.deepEqual(backend.requestLines(), []);
    await stillServes(stack);
  });
});

Deno.test("invalid Host values get the stealth status or 400; nothing reaches the backend (SRV-3, SRV-5, ODD-13)", async () => {
  const hosts = [
    "../../etc/passwd",
    "localhost/../x",
    "..",
    "%2e%2e",
    "localhost.",
    "loca\u00adlhost",
    "l\u043ecalhost", // a Cyrillic o
    "localhost:99999999",
    "localhost:443@evil.example",
    "evil.example#localhost",
    "x".repeat(10_000),
    "[::1",
    "",
  ];
  await withRecordingStack(async (stack, backend) => {
    for (const host of hosts) {
      const request = `GET /h HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
      const exchange = await rawHttps(raw(stack), [request]);
      const status = statusOf(exchange.text);
      assert.ok(
        status === 400 || status === 404 || (status === undefined && exchange.closed),
        `Host ${JSON.stringify(host.slice(0, 40))}: ${JSON.stringify(exchange.text.slice(0, 120))}`,
      );
    }
    // Control characters cannot even be sent through fetch; raw, they get 400.
    for (const host of ["local\x01host", "local\x7fhost", "localhost\x00"]) {
      const exchange = await rawHttps(raw(stack), [`GET /h HTTP/1.1\r\nHost: ${host}\r\n\r\n`]);
      assert.ok(statusOf(exchange.text) === 400 || exchange.closed, JSON.stringify(host));
    }
    assert.deepEqual(backend.requestLines(), []);
    // Names are matched case-insensitively (ODD-13): that one is served.
    const upper = await rawHttps(raw(stack, { until: (text) => text.endsWith("ok") }), [
      "GET /upper HTTP/1.1\r\nHost: LOCALHOST\r\n\r\n",
    ]);
    assert.equal(statusOf(upper.text), 200);
    assert.deepEqual(backend.requestLines(), ["GET /upper HTTP/1.1"]);
  }, { server: { log: { disconnected: "yes" } } });
});

/** A TLS 1.2 ClientHello whose server_name extension carries `name` verbatim. */
function clientHello(name: Uint8Array): Uint8Array {
  const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
  const sni = [0x00, ...u16(name.length), ...name];
  const extensions = [
    ...[0x00, 0x00],
    ...u16(sni.length + 2),
    ...u16(sni.length),
    ...sni,
    ...[0x00, 0x0a],
    ...u16(6),
    ...u16(4),
    ...[0x00, 0x1d, 0x00, 0x17],
    ...[0x00, 0x0b],
    ...u16(2),
    ...[0x01, 0x00],
    ...[0x00, 0x0d],
    ...u16(8),
    ...u16(6),
    ...[0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
  ];
  const random = crypto.getRandomValues(new Uint8Array(32));
  const body = [
    0x03,
    0x03,
    ...random,
    0x00,
    ...u16(6),
    ...[0xc0, 0x2b, 0xc0, 0x2f, 0x13, 0x01],
    0x01,
    0x00,
    ...u16(extensions.length),
    ...extensions,
  ];
  const handshake = [0x01, 0x00, ...u16(body.length), ...body];
  return new Uint8Array([0x16, 0x03, 0x01, ...u16(handshake.length), ...handshake]);
}

Deno.test("invalid SNI names in a raw ClientHello are refused or ignored; the listener keeps serving (TLS-4)", async () => {
  await withRecordingStack(async (stack) => {
    const names = [
      "../../etc/passwd",
      "local\x00host",
      "a\r\nb",
      "x".repeat(255),
      "*.localhost",
      "localhost.",
      "\xff\xfe",
      "",
    ];
    for (const name of names) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.port });
      try {
        await conn.write(clientHello(latin1Bytes(name)));
        const buffer = new Uint8Array(5);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const first = await Promise.race([
          conn.read(buffer).then((count) => count === null ? "closed" : buffer[0], () => "reset"),
          new Promise<string>((resolve) => timer = setTimeout(() => resolve("silent"), 3_000)),
        ]);
        clearTimeout(timer);
        // 0x16: a ServerHello (the name ignored), 0x15: an alert; never silence.
        assert.ok(
          first === 0x16 || first === 0x15 || first === "closed" || first === "reset",
          `SNI ${JSON.stringify(name.slice(0, 20))}: ${first}`,
        );
      } finally {
        conn.close();
      }
    }
    await stillServes(stack);
  });
});

Deno.test("request smuggling attempts never give the backend a second request (ODD-40, RFC 9112 §6)", async () => {
  const smuggled = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const cases: [string, string][] = [
    [
      "CL+TE",
      `POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${smuggled}`,
    ],
    [
      "TE+CL",
      `POST /b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${smuggled}`,
    ],
    [
      "duplicate Content-Length",
      `POST /c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello${smuggled}`,
    ],
    [
      "Content-Length list",
      `POST /d HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 50\r\n\r\nhello${smuggled}`,
    ],
    [
      "obs-fold",
      `POST /e HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
    ],
    [
      "xchunked",
      `POST /f HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
    ],
    [
      "chunked, identity",
      `POST /g HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n${smuggled}`,
    ],
    [
      "TE in HTTP/1.0",
      `POST /h HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${smuggled}`,
    ],
    [
      "space before colon",
      `POST /i HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
    ],
    [
      "malformed chunk size (ODD-42)",
      `POST /k HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${smuggled}0\r\n\r\n`,
    ],
    [
      "chunk size overflow (ODD-42)",
      `POST /l HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n`,
    ],
    [
      "negative Content-Length",
      `POST /m HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n${smuggled}`,
    ],
  ];
  await withRecordingStack(async (stack, backend) => {
    for (const [name, request] of cases) {
      const exchange = await rawHttps(raw(stack, { deadlineMs: 3_000 }), [request]);
      const status = statusOf(exchange.text);
      assert.ok(
        status === 200 || status === 400 || status === 413 || status === 502 ||
          (status === undefined && exchange.closed),
        `${name}: ${JSON.stringify(exchange.text.slice(0, 200))}`,
      );
    }
    // ODD-40: a header value that merely contains the text is not chunked framing.
    const note = await rawHttps(raw(stack), [
      "POST /note HTTP/1.1\r\nHost: localhost\r\nX-Note: Transfer-Encoding: chunked\r\n" +
      "Content-Length: 5\r\n\r\nhello",
    ]);
    assert.equal(statusOf(note.text), 200, note.text);
    const forwarded = backend.connections.find((bytes) => bytes.startsWith("POST /note "));
    assert.match(forwarded ?? "", /\r\nContent-Length: 5\r\n/);
    assert.ok(forwarded?.endsWith("\r\n\r\nhello"), forwarded);
    assert.ok(!/\r\nTransfer-Encoding:/i.test(forwarded ?? ""), forwarded);
    const lines = backend.requestLines();
    assert.ok(!lines.some((line) => line.includes("/smuggled")), lines.join("\n"));
    // What did reach the backend, reached it as single, well-framed requests.
    for (const bytes of backend.connections) {
      assert.ok(!bytes.includes("/smuggled"), bytes);
    }
    await stillServes(stack);
  });
});

Deno.test("a slow upload that stalls past body_timeout is cut with 502; the backend never gets it as complete (ODD-21, ODD-35)", async () => {
  await withRecordingStack(async (stack, backend) => {
    // A steady slow sender is fine: 10 bytes, one every 100 ms.
    const steady = await rawHttps(raw(stack, { until: (text) => text.endsWith("ok") }), [
      "POST /steady HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n",
      ...Array.from({ length: 10 }, () => async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }).flatMap((wait) => [wait, "x"]),
    ]);
    assert.equal(statusOf(steady.text), 200, steady.text);
    // A sender that stops: 10 of 100 bytes, then silence.
    const stalled = await rawHttps(raw(stack, { deadlineMs: 9_000 }), [
      "POST /stalled HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789",
    ]);
    assert.ok(
      statusOf(stalled.text) === 502 || (stalled.closed && statusOf(stalled.text) === undefined),
      stalled.text,
    );
    assert.ok(stalled.elapsedMs < 8_000, `cut after ${stalled.elapsedMs} ms`);
    const record = stack.accessLog.records().find((r) => r.path === "/stalled");
    assert.equal(record?.status, 502);
    const upload = backend.connections.find((bytes) => bytes.startsWith("POST /stalled"));
    assert.ok(upload === undefined || upload.endsWith("0123456789"), upload);
  }, { server: { body_timeout: "5s" } });
});

Deno.test({
  name:
    "slowloris: a request head sent one byte per second is cut after read_timeout (SRV-22, DIR-2)",
}, async () => {
  await withRecordingStack(async (stack) => {
    const head = "GET /slowloris HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + "p".repeat(20);
    const pieces = [...head].flatMap((char) => [
      () => new Promise<void>((resolve) => setTimeout(resolve, 1_000)),
      char,
    ]);
    const exchange = await rawHttps(raw(stack, { deadlineMs: 1_000 }), pieces);
    assert.ok(exchange.closed, "the connection was still open after the whole head");
    assert.ok(exchange.elapsedMs < 8_000, `closed after ${exchange.elapsedMs} ms`);
  }, { server: { read_timeout: "5s" } });
});

Deno.test({
  name:
    "connections that send nothing, or nothing more after a request, are closed after read_timeout / idle_timeout (SRV-22)",
}, async () => {
  await withRecordingStack(async (stack) => {
    const started = performance.now();
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: stack.port });
    const silent = await tcp.read(new Uint8Array(16)).then(() => true, () => true);
    tcp.close();
    assert.ok(silent && performance.now() - started < 8_000, "a silent TCP connection stayed");
    // One request, then keep-alive silence: closed after idle_timeout.
    const idle = await rawHttps(raw(stack, { until: () => false, deadlineMs: 8_000 }), [
      "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ]);
    assert.equal(statusOf(idle.text), 200);
    assert.ok(idle.closed, "an idle keep-alive connection stayed open");
  }, { server: { read_timeout: "5s", idle_timeout: "5s" } });
});

Deno.test("hundreds of connections and requests from one address: the excess gets 429, everyone gets an answer (SRV-11)", async () => {
  await withRecordingStack(async (stack) => {
    // 300 idle TLS connections held open at once.
    const idle: Deno.TlsConn[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const conn = await Deno.connectTls({
          hostname: "127.0.0.1",
          port: stack.port,
          caCerts: [CA_PEM],
          serverName: "localhost",
        } as Deno.ConnectTlsOptions);
        await conn.handshake();
        idle.push(conn);
      }
      const started = performance.now();
      await stillServes(stack);
      assert.ok(performance.now() - started < 2_000);
    } finally {
      for (const conn of idle) conn.close();
    }
  });
  await using stack = await startStack({ serverDomain: "  concurrency = 5" });
  // 100 requests at once that the backend holds for a while: 5 run, the rest get 429 at once.
  const answers = await Promise.all(
    Array.from({ length: 100 }, () =>
      stack.fetch("/slow?ms=300").then(async (response) => {
        await response.body?.cancel();
        return response.status;
      })),
  );
  const tally = (status: number) => answers.filter((s) => s === status).length;
  assert.equal(tally(200) + tally(429), 100, JSON.stringify(answers));
  assert.ok(tally(200) >= 5 && tally(429) >= 50, `${tally(200)} served, ${tally(429)} refused`);
});
