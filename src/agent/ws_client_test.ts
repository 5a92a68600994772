import assert from "node:assert/strict";
import {
  IPPROTO_TCP,
  SocketCalls,
  TCP_NODELAY,
  TCP_NOTSENT_LOWAT,
  UNSENT_LIMIT_BYTES,
} from "../sys/mod.ts";
import type { CloseInfo } from "../tunnel/mod.ts";
import {
  acceptKey,
  buildHandshakeRequest,
  connectWebSocket,
  type ConnectWebSocketOptions,
  FRAGMENT_BYTES,
  MAX_MESSAGE_BYTES,
  proxyFromEnvironment,
  type WebSocketConnection,
  WebSocketDialError,
} from "./ws_client.ts";

const TLS_DIR = new URL("../../tests/testdata/tls/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("localhost.pem", TLS_DIR));
const KEY = Deno.readTextFileSync(new URL("localhost.key", TLS_DIR));
const CA = Deno.readTextFileSync(new URL("ca.pem", TLS_DIR));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** shared/protocol/handshake_agent_request.txt: the real agent's upgrade request, byte for byte. */
const GOLDEN_REQUEST = "GET /.well-known/groom-agent HTTP/1.1\r\n" +
  "Host: golden.test:62486\r\n" +
  "User-Agent: uws\r\n" +
  "Authorization: Bearer {{AGENT_SECRET}}\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-Websocket-Key: R7Rz0x8kRmaNhMBE65MiSA==\r\n" +
  "Sec-Websocket-Protocol: groom\r\n" +
  "Sec-Websocket-Version: 13\r\n" +
  "Upgrade: websocket\r\n" +
  "\r\n";
const GOLDEN_KEY = "R7Rz0x8kRmaNhMBE65MiSA==";

// ---- helpers -------------------------------------------------------------------------------

/** Byte-level reader over a raw test connection. */
class RawPeer {
  #conn: Deno.Conn;
  #buffer: Uint8Array = new Uint8Array(0);
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The client's port: the local port of the agent's socket. */
  get clientPort(): number {
    return (this.#conn.remoteAddr as Deno.NetAddr).port;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(256 * 1024);
    const count = await this.#conn.read(chunk);
    if (count === null) return false;
    const next = new Uint8Array(this.#buffer.length + count);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, count), this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  async readExact(count: number): Promise<Uint8Array | null> {
    while (this.#buffer.length < count) {
      if (!(await this.#fill())) return null;
    }
    const out = this.#buffer.slice(0, count);
    this.#buffer = this.#buffer.subarray(count);
    return out;
  }

  async readHead(): Promise<string> {
    for (;;) {
      const text = decoder.decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.subarray(end + 4);
        return text.slice(0, end + 4);
      }
      if (!(await this.#fill())) throw new Error("EOF before the request head");
    }
  }

  /** One client frame, unmasked; `null` at EOF. */
  async readFrame(): Promise<
    | { fin: boolean; opcode: number; masked: boolean; header: Uint8Array; payload: Uint8Array }
    | null
  > {
    const start = await this.readExact(2);
    if (start === null) return null;
    const first = start[0] ?? 0;
    const second = start[1] ?? 0;
    let length = second & 0x7f;
    let extended: Uint8Array = new Uint8Array(0);
    if (length === 126) {
      extended = await this.readExact(2) ?? new Uint8Array(2);
      length = new DataView(extended.buffer, extended.byteOffset, 2).getUint16(0);
    } else if (length === 127) {
      extended = await this.readExact(8) ?? new Uint8Array(8);
      length = Number(new DataView(extended.buffer, extended.byteOffset, 8).getBigUint64(0));
    }
    const masked = (second & 0x80) !== 0;
    const mask = masked ? await this.readExact(4) ?? new Uint8Array(4) : new Uint8Array(4);
    const payload = await this.readExact(length) ?? new Uint8Array(0);
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (mask[i & 3] ?? 0);
    const header = new Uint8Array([first, second, ...extended, ...(masked ? mask : [])]);
    return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, masked, header, payload };
  }

  async write(bytes: Uint8Array | string): Promise<void> {
    const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    let offset = 0;
    while (offset < data.length) offset += await this.#conn.write(data.subarray(offset));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }
}

/** An unmasked server frame. */
function serverFrame(opcode: number, payload: Uint8Array | string, fin = true): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const header = body.length < 126
    ? [body.length]
    : body.length < 65_536
    ? [126, body.length >> 8, body.length & 0xff]
    : [127, 0, 0, 0, 0, ...new Uint8Array(new Uint32Array([body.length]).buffer).reverse()];
  return new Uint8Array([(fin ? 0x80 : 0) | opcode, ...header, ...body]);
}

function upgradeAnswer(key: string, protocol?: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
    (protocol === undefined ? "" : `Sec-WebSocket-Protocol: ${protocol}\r\n`) + "\r\n";
}

function keyOf(request: string): string {
  return /^Sec-Websocket-Key: (.*)$/m.exec(request)?.[1] ?? "";
}

/** A plain-TCP raw server; `answer` builds the handshake response from the request. */
async function rawConnect(
  answer: (request: string) => string | Uint8Array | null,
  options: Partial<ConnectWebSocketOptions> = {},
): Promise<{ peer: RawPeer; request: string; result: Promise<WebSocketConnection> }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = connectWebSocket(`ws://127.0.0.1:${listener.addr.port}/.well-known/groom-agent`, {
    protocols: ["groom"],
    ...options,
  });
  result.catch(() => {}); // observed by the caller
  const peer = new RawPeer(await listener.accept());
  const request = await peer.readHead();
  const response = answer(request);
  if (response !== null) await peer.write(response);
  return { peer, request, result };
}

/** A connected raw session: the test plays the server at frame level. */
async function rawSession(options: Partial<ConnectWebSocketOptions> = {}) {
  const { peer, request, result } = await rawConnect(
    (request) => upgradeAnswer(keyOf(request), "groom"),
    options,
  );
  const ws = await result;
  const messages: Uint8Array[] = [];
  ws.onMessage = (message) => messages.push(message);
  return {
    peer,
    request,
    ws,
    messages,
    async [Symbol.asyncDispose]() {
      ws.close();
      await ws.closed;
      peer.close();
    },
  };
}

interface TlsServerOptions {
  protocol?: string;
  refuse?: number;
  onSocket?: (socket: WebSocket) => void;
}

/** A real `Deno.serve` TLS server on 127.0.0.1:0 that upgrades every request. */
function tlsServer(options: TlsServerOptions = {}) {
  const requests: Headers[] = [];
  const sockets: WebSocket[] = [];
  const socketClosed: Promise<CloseEvent>[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: CERT, key: KEY, onListen() {} },
    (request) => {
      requests.push(new Headers(request.headers));
      if (options.refuse !== undefined) return new Response(null, { status: options.refuse });
      const { socket, response } = Deno.upgradeWebSocket(
        request,
        options.protocol === undefined ? {} : { protocol: options.protocol },
      );
      socket.binaryType = "arraybuffer";
      sockets.push(socket);
      const closed = Promise.withResolvers<CloseEvent>();
      socket.addEventListener("close", (event) => closed.resolve(event));
      socketClosed.push(closed.promise);
      if (options.onSocket) options.onSocket(socket);
      else {
        socket.onmessage = (event) => {
          if (event.data instanceof ArrayBuffer) socket.send(event.data);
        };
      }
      return response;
    },
  );
  return {
    port: server.addr.port,
    requests,
    sockets,
    socketClosed,
    async [Symbol.asyncDispose]() {
      await Promise.all(socketClosed);
      await server.shutdown();
    },
  };
}

async function expectDialError(promise: Promise<unknown>): Promise<WebSocketDialError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WebSocketDialError, String(error));
    return error;
  }
  assert.fail("expected a WebSocketDialError");
}

function pattern(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

function nextMessage(ws: WebSocketConnection): Promise<Uint8Array> {
  return new Promise((resolve) => (ws.onMessage = resolve));
}

// ---- handshake -----------------------------------------------------------------------------

Deno.test("buildHandshakeRequest() equals the original agent's bytes (PROTO-3)", () => {
  const request = buildHandshakeRequest({
    path: "/.well-known/groom-agent",
    host: "golden.test:62486",
    key: GOLDEN_KEY,
    protocols: ["groom"],
    headers: [["authorization", "Bearer {{AGENT_SECRET}}"]],
  });
  assert.equal(request, GOLDEN_REQUEST);
  assert.equal(encoder.encode(request).length, 267);
});

Deno.test("buildHandshakeRequest() sorts extra headers and refuses reserved or broken ones (PROTO-3)", () => {
  const request = buildHandshakeRequest({
    path: "/p?q=1",
    host: "h",
    key: "k",
    protocols: ["groom2", "groom"],
    headers: [["x-b", "2"], ["User-Agent", "test"], ["accept", "*/*"], ["x-b", "1"]],
  });
  assert.equal(
    request,
    "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: test\r\nAccept: */*\r\nConnection: Upgrade\r\n" +
      "Sec-Websocket-Key: k\r\nSec-Websocket-Protocol: groom2, groom\r\n" +
      "Sec-Websocket-Version: 13\r\nUpgrade: websocket\r\nX-B: 2\r\nX-B: 1\r\n\r\n",
  );
  for (
    const headers of [[["Upgrade", "x"]], [["bad name", "x"]], [["X-A", "a\r\nInjected: 1"]]] as [
      string,
      string,
    ][][]
  ) {
    assert.throws(
      () => buildHandshakeRequest({ path: "/", host: "h", key: "k", protocols: [], headers }),
      TypeError,
    );
  }
  assert.throws(
    () => buildHandshakeRequest({ path: "/", host: "h\r\nX: y", key: "k", protocols: [] }),
    TypeError,
  );
});

Deno.test("acceptKey() follows RFC 6455 (PROTO-5)", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("connectWebSocket() writes the golden request layout on the wire (PROTO-3)", async () => {
  const { peer, request, result } = await rawConnect(
    (request) => upgradeAnswer(keyOf(request)),
    { host: "golden.test:62486", headers: [["Authorization", "Bearer {{AGENT_SECRET}}"]] },
  );
  const key = keyOf(request);
  const bytes = Uint8Array.from(atob(key), (char) => char.charCodeAt(0));
  assert.equal(bytes.length, 16);
  assert.equal((bytes[6] ?? 0) >> 4, 4, "UUID v4 version bits");
  assert.equal((bytes[8] ?? 0) >> 6, 2, "UUID variant bits");
  assert.equal(request.replace(key, GOLDEN_KEY), GOLDEN_REQUEST);
  const ws = await result;
  assert.equal(ws.protocol, "groom", "no sub-protocol selected: the legacy one (PROTO-5)");
  ws.close();
  await ws.closed;
  peer.close();
});

Deno.test("connectWebSocket() accepts the original server's answer layout (PROTO-5, PROTO-8)", async () => {
  // shared/protocol/handshake_server_response.txt, with the accept value of this run's key.
  const { peer, result } = await rawConnect((request) =>
    new Uint8Array([
      ...encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" +
          `Sec-Websocket-Accept: ${acceptKey(keyOf(request))}\r\n` +
          "Sec-Websocket-Protocol: groom\r\nUpgrade: websocket\r\n\r\n",
      ),
      ...serverFrame(0x2, "early"),
    ])
  );
  const ws = await result;
  // Bytes that follow the head in the same read are the first frame.
  assert.equal(decoder.decode(await nextMessage(ws)), "early");
  ws.close();
  await ws.closed;
  peer.close();
});

Deno.test("connectWebSocket() refuses a bad upgrade answer with PROTO-5 errors", async () => {
  const cases: [string, (key: string) => string, string][] = [
    [
      "403",
      () => "HTTP/1.1 403 Forbidden\r\n\r\n",
      "websocket: invalid protocol upgrade (status 403)",
    ],
    [
      "no Connection",
      (key) => upgradeAnswer(key).replace("Connection: Upgrade\r\n", ""),
      "websocket: invalid protocol upgrade (status 101): no Connection: upgrade",
    ],
    [
      "no Upgrade",
      (key) => upgradeAnswer(key).replace("Upgrade: websocket", "Upgrade: h2c"),
      "websocket: invalid protocol upgrade (status 101): no Upgrade: websocket",
    ],
    [
      "bad accept",
      () => upgradeAnswer("other"),
      "websocket: invalid protocol upgrade (status 101): wrong Sec-WebSocket-Accept",
    ],
    [
      "unoffered sub-protocol",
      (key) => upgradeAnswer(key, "groom3"),
      'websocket: invalid protocol upgrade (status 101): sub-protocol "groom3" was not offered',
    ],
    ["garbage", () => "SSH-2.0-OpenSSH\r\n\r\n", "websocket: malformed HTTP response"],
    ["eof", () => "HTTP/1.1 101 Switching", "websocket: unexpected EOF"],
    [
      "huge head",
      () => "HTTP/1.1 101 Switching Protocols\r\n" + "X: y\r\n".repeat(5000),
      "websocket: response head larger than 16384 bytes",
    ],
  ];
  for (const [label, answer, message] of cases) {
    const { peer, result } = await rawConnect((request) => answer(keyOf(request)));
    if (label === "eof") peer.close();
    const error = await expectDialError(result);
    assert.equal(error.message, message, label);
    peer.close();
  }
  assert.equal(cases.length, 8);
  // A token list in Connection is accepted (ODD-17 spirit).
  const { peer, result } = await rawConnect((request) =>
    upgradeAnswer(keyOf(request)).replace("Connection: Upgrade", "Connection: keep-alive, Upgrade")
  );
  const ws = await result;
  ws.close();
  await ws.closed;
  peer.close();
});

Deno.test("connectWebSocket() times out and can be aborted during the handshake (PROTO-2)", async () => {
  const silent = await rawConnect(() => null, { timeoutMs: 100 });
  const error = await expectDialError(silent.result);
  assert.equal(error.message, "websocket: handshake timed out after 100 ms");
  silent.peer.close();

  const controller = new AbortController();
  const aborted = await rawConnect(() => null, { signal: controller.signal });
  controller.abort();
  assert.equal((await expectDialError(aborted.result)).message, "websocket: aborted");
  aborted.peer.close();
});

Deno.test("connectWebSocket() reports a refused TCP connection as websocket: dial tcp (PROTO-5)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  for (const [scheme, insecure] of [["ws", false], ["wss", false], ["wss", true]] as const) {
    const error = await expectDialError(
      connectWebSocket(`${scheme}://127.0.0.1:${port}/`, { protocols: ["groom"], insecure }),
    );
    assert.ok(
      error.message.startsWith(`websocket: dial tcp 127.0.0.1:${port}: `),
      `${scheme} insecure=${insecure}: ${error.message}`,
    );
  }
  await assert.rejects(connectWebSocket("https://x/", { protocols: [] }), TypeError);
});

// ---- over TLS against Deno.serve -------------------------------------------------------------

Deno.test("connectWebSocket() echoes small and fragmented 1 MiB+ messages over TLS (PROTO-11)", async () => {
  await using server = tlsServer({ protocol: "groom" });
  const ws = await connectWebSocket(`wss://localhost:${server.port}/.well-known/groom-agent`, {
    protocols: ["groom"],
    caCerts: [CA],
  });
  const received: Uint8Array[] = [];
  const all = Promise.withResolvers<void>();
  ws.onMessage = (message) => {
    received.push(message);
    if (received.length === 4) all.resolve();
  };
  const sizes = [1, 100, FRAGMENT_BYTES + 1, 1024 * 1024 + 17];
  for (const [index, size] of sizes.entries()) ws.send(pattern(size, index));
  await all.promise;
  assert.deepEqual(received.map((message) => message.length), sizes);
  for (const [index, size] of sizes.entries()) {
    assert.deepEqual(received[index], pattern(size, index));
  }
  ws.close();
  await ws.closed;
});

Deno.test("connectWebSocket() negotiates the sub-protocol (PROTO-5, PROTO-8)", async () => {
  for (
    const [selected, expected] of [["groom2", "groom2"], ["groom", "groom"], [undefined, "groom"]]
  ) {
    await using server = tlsServer(selected === undefined ? {} : { protocol: selected });
    const ws = await connectWebSocket(`wss://localhost:${server.port}/`, {
      protocols: ["groom2", "groom"],
      caCerts: [CA],
    });
    assert.equal(ws.protocol, expected, `server picked ${selected}`);
    assert.equal(server.requests[0]?.get("sec-websocket-protocol"), "groom2, groom");
    ws.close();
    await ws.closed;
  }
});

Deno.test("connectWebSocket() sends the configured Host and Authorization (PROTO-3, PROTO-6)", async () => {
  await using server = tlsServer();
  const ws = await connectWebSocket(`wss://127.0.0.1:${server.port}/.well-known/groom-agent`, {
    protocols: ["groom"],
    host: "www.domain.com:443",
    serverName: "localhost",
    headers: [["Authorization", "Bearer s3cret"]],
    caCerts: [CA],
  });
  const headers = server.requests[0];
  assert.equal(headers?.get("host"), "www.domain.com:443");
  assert.equal(headers?.get("authorization"), "Bearer s3cret");
  assert.equal(headers?.get("user-agent"), "uws");
  assert.equal(headers?.get("origin"), null);
  ws.close();
  await ws.closed;
});

Deno.test("connectWebSocket() reports a refused upgrade with its status (PROTO-5, PROTO-7)", async () => {
  await using server = tlsServer({ refuse: 404 });
  const error = await expectDialError(
    connectWebSocket(`wss://localhost:${server.port}/`, { protocols: ["groom"], caCerts: [CA] }),
  );
  assert.equal(error.message, "websocket: invalid protocol upgrade (status 404)");
  assert.equal(error.status, 404);
});

Deno.test("connectWebSocket() verifies the certificate unless insecure (PROTO-2)", async () => {
  await using server = tlsServer();
  const url = `wss://localhost:${server.port}/`;
  const unknown = await expectDialError(connectWebSocket(url, { protocols: ["groom"] }));
  assert.match(unknown.message, /^websocket: tls: .*(certificate|UnknownIssuer)/);
  const wrongName = await expectDialError(
    connectWebSocket(url, { protocols: ["groom"], caCerts: [CA], serverName: "wrong.example" }),
  );
  assert.match(wrongName.message, /^websocket: tls: /);
  // IP literal: no SNI, verified against the certificate's IP SAN.
  const byIp = await connectWebSocket(`wss://127.0.0.1:${server.port}/`, {
    protocols: ["groom"],
    caCerts: [CA],
  });
  byIp.close();
  await byIp.closed;
  // insecure: neither the unknown CA nor the wrong name matter; data flows both ways.
  const ws = await connectWebSocket(url, {
    protocols: ["groom"],
    insecure: true,
    serverName: "wrong.example",
  });
  const echoed = nextMessage(ws);
  ws.send(pattern(300_000));
  assert.deepEqual(await echoed, pattern(300_000));
  ws.close();
  await ws.closed;
});

Deno.test("the connection closes with 1009 above 4 MiB and accepts exactly 4 MiB (PROTO-12)", async () => {
  await using server = tlsServer({
    onSocket(socket) {
      socket.onopen = () => {
        socket.send(new Uint8Array(MAX_MESSAGE_BYTES));
        socket.send(new Uint8Array(MAX_MESSAGE_BYTES + 1));
      };
    },
  });
  const ws = await connectWebSocket(`wss://localhost:${server.port}/`, {
    protocols: ["groom"],
    caCerts: [CA],
  });
  const sizes: number[] = [];
  ws.onMessage = (message) => sizes.push(message.length);
  const info = await ws.closed;
  assert.deepEqual(sizes, [MAX_MESSAGE_BYTES]);
  assert.equal(info.code, 1009);
  assert.ok(info.error);
  // The close frame's bytes are checked at frame level in the PROTO-12 table below: here the
  // server is still writing when the agent closes TCP, so it may see a reset instead.
  await server.socketClosed[0];
});

Deno.test("a received close frame is echoed with its code (PROTO-14)", async () => {
  await using server = tlsServer({
    onSocket(socket) {
      socket.onopen = () => socket.close(4000, "bye");
    },
  });
  const ws = await connectWebSocket(`wss://localhost:${server.port}/`, {
    protocols: ["groom"],
    caCerts: [CA],
  });
  const closedInfo = Promise.withResolvers<CloseInfo>();
  ws.onClose = closedInfo.resolve;
  const info = await closedInfo.promise;
  assert.deepEqual(info, { code: 4000, reason: "bye" });
  assert.deepEqual(await ws.closed, info);
  assert.equal((await server.socketClosed[0])?.code, 4000);
});

Deno.test("connectWebSocket() works through an HTTP CONNECT proxy (PROTO-4)", async () => {
  await using server = tlsServer();
  for (const insecure of [false, true]) {
    using proxyListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const proxied = (async () => {
      const client = await proxyListener.accept();
      const peer = new RawPeer(client);
      const head = await peer.readHead();
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await peer.write("HTTP/1.1 200 Connection established\r\n\r\n");
      await Promise.all([
        client.readable.pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(client.writable).catch(() => {}),
      ]);
      return head;
    })();
    const ws = await connectWebSocket(`wss://localhost:${server.port}/`, {
      protocols: ["groom"],
      caCerts: [CA],
      insecure,
      proxy: {
        hostname: "127.0.0.1",
        port: proxyListener.addr.port,
        authorization: "basic dTpw",
      },
    });
    const echoed = nextMessage(ws);
    ws.send(encoder.encode("through the proxy"));
    assert.equal(decoder.decode(await echoed), "through the proxy");
    ws.close();
    await ws.closed;
    assert.equal(
      await proxied,
      `CONNECT localhost:${server.port} HTTP/1.1\r\nHost: localhost:${server.port}\r\n` +
        "Proxy-Authorization: basic dTpw\r\n\r\n",
    );
  }
  for (const insecure of [false, true]) {
    using proxyListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const refused = (async () => {
      const peer = new RawPeer(await proxyListener.accept());
      await peer.readHead();
      await peer.write("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
      return peer;
    })();
    const error = await expectDialError(connectWebSocket(`wss://localhost:${server.port}/`, {
      protocols: ["groom"],
      insecure,
      proxy: { hostname: "127.0.0.1", port: proxyListener.addr.port },
    }));
    assert.equal(error.message, "websocket: proxy connection error");
    (await refused).close();
  }
});

// ---- framing at byte level ---------------------------------------------------------------

Deno.test({
  name:
    "the tunnel socket holds at most UNSENT_LIMIT_BYTES unsent, so the scheduler orders the streams (issue 6)",
  ignore: Deno.build.os !== "linux",
}, async () => {
  await using session = await rawSession();
  using calls = SocketCalls.open();
  assert.ok(calls !== undefined, "the C library opens with --allow-ffi on Linux");
  const sockets = calls.probe(session.peer.clientPort).sockets.filter((s) => !s.listening);
  assert.equal(sockets.length, 1, "the agent's socket is found by its local port");
  const fd = sockets[0]?.fd ?? -1;
  assert.equal(calls.intOption(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT), UNSENT_LIMIT_BYTES);
  assert.equal(calls.intOption(fd, IPPROTO_TCP, TCP_NODELAY), 1);
});

Deno.test("send() masks each frame and fragments at 65 536 bytes (PROTO-11)", async () => {
  await using session = await rawSession();
  const { ws, peer } = session;
  ws.send(new Uint8Array(0)); // never sent
  ws.send(pattern(150_000));
  ws.send(pattern(FRAGMENT_BYTES, 7));
  const frames = [];
  for (let i = 0; i < 4; i++) frames.push(await peer.readFrame());
  assert.deepEqual(
    frames.map((frame) => [frame?.opcode, frame?.fin, frame?.masked, frame?.payload.length]),
    [
      [2, false, true, 65_536],
      [0, false, true, 65_536],
      [0, true, true, 150_000 - 2 * 65_536],
      [2, true, true, 65_536],
    ],
  );
  const joined = new Uint8Array(150_000);
  let offset = 0;
  for (const frame of frames.slice(0, 3)) {
    joined.set(frame?.payload ?? new Uint8Array(0), offset);
    offset += frame?.payload.length ?? 0;
  }
  assert.deepEqual(joined, pattern(150_000));
  assert.deepEqual(frames[3]?.payload, pattern(FRAGMENT_BYTES, 7));
  const masks = new Set(frames.map((frame) => frame?.header.slice(-4).join(",")));
  assert.equal(masks.size, 4, "a fresh mask per frame");
});

Deno.test("received fragments are reassembled, pings answered in between, text dropped (PROTO-10)", async () => {
  await using session = await rawSession();
  const { ws, peer, messages } = session;
  const delivered = nextMessage(ws);
  await peer.write(serverFrame(0x1, "text is dropped"));
  await peer.write(serverFrame(0x2, "ab", false));
  await peer.write(serverFrame(0x9, "ping!"));
  await peer.write(serverFrame(0x0, "c", false));
  await peer.write(serverFrame(0x0, "d"));
  assert.equal(decoder.decode(await delivered), "abcd");
  assert.equal(messages.length, 0);
  const pong = await peer.readFrame();
  assert.equal(pong?.opcode, 0xa);
  assert.equal(decoder.decode(pong?.payload), "ping!");
});

Deno.test("protocol violations close with the PROTO-12 status codes", async () => {
  const big = new DataView(new ArrayBuffer(8));
  big.setBigUint64(0, BigInt(MAX_MESSAGE_BYTES + 1));
  const huge = new Uint8Array([0x82, 127, ...new Uint8Array(big.buffer)]);
  const cases: [string, Uint8Array, number][] = [
    ["masked server frame", new Uint8Array([0x82, 0x81, 1, 2, 3, 4, 5]), 1002],
    ["unknown opcode", new Uint8Array([0x83, 0x01, 0]), 1002],
    ["reserved bit", new Uint8Array([0xc2, 0x01, 0]), 1002],
    ["fragmented ping", new Uint8Array([0x09, 0x00]), 1002],
    ["continuation first", new Uint8Array([0x80, 0x01, 0]), 1002],
    ["message inside message", new Uint8Array([0x02, 0x01, 0, 0x82, 0x01, 0]), 1002],
    ["1-byte close", new Uint8Array([0x88, 0x01, 3]), 1002],
    ["close code 1005", new Uint8Array([0x88, 0x02, 0x03, 0xed]), 1002],
    ["64-bit length MSB", new Uint8Array([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]), 1002],
    ["control over 125 bytes", serverFrame(0x9, new Uint8Array(126)), 1009],
    ["empty data frame", new Uint8Array([0x82, 0x00]), 1009],
    ["message over 4 MiB", huge, 1009],
    [
      "fragments over 4 MiB",
      new Uint8Array([...serverFrame(0x2, "x", false), ...huge.with(0, 0x80)]),
      1009,
    ],
    ["invalid UTF-8 text", new Uint8Array([0x81, 0x02, 0xc3, 0x28]), 1007],
  ];
  for (const [label, bytes, code] of cases) {
    const { ws, peer } = await rawSession();
    await peer.write(bytes);
    const close = await peer.readFrame();
    assert.equal(close?.opcode, 0x8, label);
    assert.equal(((close?.payload[0] ?? 0) << 8) | (close?.payload[1] ?? 0), code, label);
    const info = await ws.closed;
    assert.equal(info.code, code, label);
    assert.ok(info.error, label);
    assert.equal(await peer.readFrame(), null, `${label}: TCP closed after the close frame`);
    peer.close();
  }
  assert.equal(cases.length, 14);
});

Deno.test("close frames: echo of the code, none without code, local close (PROTO-14)", async () => {
  // Golden agent_tunnel_control.txt: s>a close 03e8 → a>s 0x88 0x82 <mask> 03e8.
  {
    const { ws, peer } = await rawSession();
    await peer.write(serverFrame(0x8, new Uint8Array([0x03, 0xe8, ...encoder.encode("done")])));
    const echo = await peer.readFrame();
    assert.deepEqual([...(echo?.header.slice(0, 2) ?? [])], [0x88, 0x82]);
    assert.deepEqual([...(echo?.payload ?? [])], [0x03, 0xe8]);
    assert.deepEqual(await ws.closed, { code: 1000, reason: "done" });
    assert.equal(await peer.readFrame(), null);
    peer.close();
  }
  {
    const { ws, peer } = await rawSession();
    await peer.write(serverFrame(0x8, new Uint8Array(0)));
    const echo = await peer.readFrame();
    assert.equal(echo?.payload.length, 0);
    assert.deepEqual(await ws.closed, { reason: "" });
    peer.close();
  }
  {
    const { ws, peer } = await rawSession();
    // Data sent before a local close goes out before the close frame (ODD-33: a stopping agent's
    // last BODY|END must reach the server).
    ws.send(encoder.encode("sent before the close"));
    ws.send(new Uint8Array(300_000).fill(7));
    ws.close();
    ws.send(encoder.encode("ignored after close"));
    const first = await peer.readFrame();
    assert.equal(first?.opcode, 0x2);
    assert.equal(new TextDecoder().decode(first?.payload), "sent before the close");
    let size = 0;
    let frame = await peer.readFrame();
    while (frame !== null && frame.opcode !== 0x8) {
      size += frame.payload.length;
      frame = await peer.readFrame();
    }
    assert.equal(size, 300_000, "the second message, every fragment, before the close frame");
    assert.equal(frame?.opcode, 0x8);
    assert.equal(frame?.payload.length, 0, "deliberate close: no status code");
    assert.equal(await peer.readFrame(), null, "TCP closed at once");
    assert.deepEqual(await ws.closed, { reason: "" });
    peer.close();
  }
  {
    const { ws, peer } = await rawSession();
    ws.close(4001, "going");
    const frame = await peer.readFrame();
    assert.deepEqual(frame?.payload, new Uint8Array([0x0f, 0xa1, ...encoder.encode("going")]));
    assert.deepEqual(await ws.closed, { code: 4001, reason: "going" });
    peer.close();
  }
  {
    const { ws, peer } = await rawSession();
    peer.close();
    const info = await ws.closed;
    assert.equal(info.code, undefined);
    assert.match(info.error?.message ?? "", /closed without a close frame/);
  }
});

Deno.test("keep-alive pings after silence and closes after the idle limit (PROTO-13)", async () => {
  const started = performance.now();
  const { ws, peer } = await rawSession({ pingIntervalMs: 20, idleTimeoutMs: 300 });
  const ping = await peer.readFrame();
  // Golden agent_tunnel_control.txt: a>s 0x9 0 header:8980<mask>.
  assert.deepEqual([...(ping?.header.slice(0, 2) ?? [])], [0x89, 0x80]);
  let frame = ping;
  let pings = 0;
  while (frame?.opcode === 0x9) {
    pings++;
    frame = await peer.readFrame();
  }
  assert.ok(pings >= 2, `pings: ${pings}`);
  assert.equal(frame?.opcode, 0x8);
  assert.equal(frame?.payload.length, 0, "inactivity close: no status code (PROTO-14)");
  const info = await ws.closed;
  assert.equal(info.reason, "idle timeout");
  assert.ok(performance.now() - started >= 300);
  peer.close();
});

Deno.test("every received byte counts as activity (PROTO-13)", async () => {
  const { ws, peer } = await rawSession({ pingIntervalMs: 5000, idleTimeoutMs: 400 });
  const delivered = nextMessage(ws);
  // One 10-byte frame trickled a byte every 60 ms: 600 ms in all, longer than the idle limit.
  const frame = serverFrame(0x2, "trickled");
  for (const byte of frame) {
    await peer.write(new Uint8Array([byte]));
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  assert.equal(decoder.decode(await delivered), "trickled");
  ws.close();
  await ws.closed;
  peer.close();
});

Deno.test("bufferedAmount and drained() follow the socket writes (back-pressure)", async () => {
  await using session = await rawSession();
  const { ws, peer } = session;
  const total = 64 * 1024 * 1024;
  const message = pattern(1024 * 1024);
  for (let sent = 0; sent < total; sent += message.length) ws.send(message);
  assert.equal(ws.bufferedAmount, total);
  let drained = false;
  const allWritten = ws.drained(0).then(() => (drained = true));
  // The peer reads nothing: after a while most of it is still queued (with the socket's unsent
  // bound, UNSENT_LIMIT_BYTES, even the first 256 KiB write waits for the peer to read).
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.ok(ws.bufferedAmount > total / 2, `buffered ${ws.bufferedAmount}`);
  assert.equal(drained, false);
  let received = 0;
  while (received < total) {
    const frame = await peer.readFrame();
    received += frame?.payload.length ?? total;
  }
  assert.equal(received, total);
  await allWritten;
  assert.equal(ws.bufferedAmount, 0);
});

Deno.test("a write that misses its deadline closes the connection (PROTO-13)", async () => {
  const { ws, peer } = await rawSession({ writeTimeoutMs: 200 });
  const message = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 64; i++) ws.send(message);
  const info = await ws.closed;
  assert.equal(info.error?.message, "websocket: write timed out after 200 ms");
  assert.equal(ws.bufferedAmount, 0);
  await ws.drained(0);
  peer.close();
});

Deno.test("the insecure node:tls path also enforces the write deadline (PROTO-13)", async () => {
  using listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: CERT, key: KEY });
  const result = connectWebSocket(`wss://localhost:${listener.addr.port}/`, {
    protocols: ["groom"],
    insecure: true,
    writeTimeoutMs: 200,
  });
  const peer = new RawPeer(await listener.accept());
  await peer.write(upgradeAnswer(keyOf(await peer.readHead())));
  const ws = await result;
  for (let i = 0; i < 64; i++) ws.send(new Uint8Array(1024 * 1024));
  const info = await ws.closed;
  assert.equal(info.error?.message, "websocket: write timed out after 200 ms");
  peer.close();
});

Deno.test("a throwing onMessage closes with 1011 and reaches onClose, not the caller", async () => {
  const { ws, peer } = await rawSession();
  ws.onMessage = () => {
    throw new Error("handler bug");
  };
  await peer.write(serverFrame(0x2, "x"));
  const close = await peer.readFrame();
  assert.deepEqual([...(close?.payload ?? [])], [0x03, 0xf3]);
  const info = await ws.closed;
  assert.equal(info.code, 1011);
  assert.equal(info.error?.message, "handler bug");
  peer.close();
});

Deno.test("aborting the signal after connecting closes the connection", async () => {
  const controller = new AbortController();
  const { ws, peer } = await rawSession({ signal: controller.signal });
  controller.abort();
  const frame = await peer.readFrame();
  assert.equal(frame?.opcode, 0x8);
  assert.deepEqual(await ws.closed, { reason: "" });
  peer.close();
});

Deno.test("proxyFromEnvironment() follows the standard proxy variables (PROTO-4)", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const url = "wss://www.domain.com:443/.well-known/groom-agent";
  assert.equal(proxyFromEnvironment(url, env({})), undefined);
  assert.deepEqual(proxyFromEnvironment(url, env({ HTTPS_PROXY: "proxy.lan:3128" })), {
    hostname: "proxy.lan",
    port: 3128,
  });
  assert.deepEqual(
    proxyFromEnvironment(url, env({ https_proxy: "http://u%40x:p%3Aw@10.0.0.1" })),
    { hostname: "10.0.0.1", port: 80, authorization: `basic ${btoa("u@x:p:w")}` },
  );
  assert.equal(proxyFromEnvironment(url, env({ HTTP_PROXY: "proxy:1" })), undefined);
  assert.deepEqual(proxyFromEnvironment("ws://h/", env({ HTTP_PROXY: "proxy:1" })), {
    hostname: "proxy",
    port: 1,
  });
  const noProxy: [string, string, boolean][] = [
    ["wss://localhost:8443/", "", false],
    ["wss://127.0.0.1:8443/", "", false],
    ["wss://[::1]:8443/", "", false],
    ["wss://www.domain.com/", "*", false],
    ["wss://www.domain.com/", "domain.com", false],
    ["wss://domain.com/", "domain.com", false],
    ["wss://domain.com/", ".domain.com", true],
    ["wss://www.domain.com/", "*.domain.com", false],
    ["wss://notdomain.com/", "domain.com", true],
    ["wss://www.domain.com/", "other.com, www.domain.com:443", false],
    ["wss://www.domain.com/", "www.domain.com:8443", true],
    ["wss://10.1.2.3/", "10.0.0.0/8", false],
    ["wss://11.1.2.3/", "10.0.0.0/8", true],
    ["wss://[2001:db8::1]/", "2001:db8::/32", false],
  ];
  for (const [target, value, proxied] of noProxy) {
    const proxy = proxyFromEnvironment(target, env({ HTTPS_PROXY: "proxy:1", NO_PROXY: value }));
    assert.equal(proxy !== undefined, proxied, `${target} NO_PROXY=${value}`);
  }
  assert.equal(noProxy.length, 14);
  assert.throws(() => proxyFromEnvironment(url, env({ HTTPS_PROXY: "socks5://p:1" })), TypeError);
});
