/**
 * Tests of `WebSocketTransport` over real WebSockets on 127.0.0.1:0 (`Deno.serve` plus
 * `Deno.upgradeWebSocket` on one side, `new WebSocket` or a raw TCP peer on the other): a Mux pair
 * carrying streams both ways, text dropped, the receive limit, guarded handlers, and back-pressure
 * against a peer that stops reading.
 * @module
 */

import { concatBytes } from "../protocol/mod.ts";
import assert from "node:assert/strict";
import { Flag } from "../protocol/mod.ts";
import { Mux } from "./mux.ts";
import type { Stream } from "./stream.ts";
import type { CloseInfo, MessageTransport } from "./transport.ts";
import { WebSocketTransport } from "./websocket_transport.ts";

interface ServedSocket {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;
  /** The server side's socket, once a client connected. */
  readonly accepted: Promise<WebSocket>;
}

/** Serves one WebSocket upgrade with sub-protocol `groom`; `onSocket` runs inside the handler. */
function serveWebSocket(onSocket: (socket: WebSocket) => void = () => {}): ServedSocket {
  const { promise, resolve } = Promise.withResolvers<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "groom" });
    onSocket(socket);
    resolve(socket);
    return response;
  });
  return { server, url: `ws://127.0.0.1:${server.addr.port}/`, accepted: promise };
}

function closeEvent(socket: WebSocket): Promise<CloseEvent> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve(new CloseEvent("close"));
  return new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }));
}

function openEvent(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => socket.addEventListener("open", () => resolve(), { once: true }));
}

function pattern(length: number, seed: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

/** Reads a stream until a message with END, returning the body payloads joined. */
async function readBody(stream: Stream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  while (true) {
    const frame = await stream.read({ timeoutMs: 30_000 });
    if (frame === null) throw new Error(`stream ${stream.id} aborted`);
    if (frame.kind === "body") {
      parts.push(frame.payload.slice());
      if (frame.end) return concatBytes(parts);
    }
  }
}

Deno.test("WebSocketTransport carries a Mux pair over a real WebSocket both ways; text is dropped (PROTO-10, PROTO-15)", async () => {
  const upload = pattern(3 * 65_532 + 17, 1);
  let serverMux: Mux | undefined;
  let serverTransport: WebSocketTransport | undefined;
  let sent: Promise<void> | undefined;
  const served = serveWebSocket((socket) => {
    // The socket is still connecting: the transport queues these until it opens.
    serverTransport = new WebSocketTransport(socket, { protocol: "groom" });
    serverMux = new Mux(serverTransport, { role: "server" });
    const stream = serverMux.open() as Stream;
    sent = (async () => {
      await stream.send(
        Flag.Head | Flag.Start,
        new TextEncoder().encode("POST / HTTP/1.1\r\n\r\n"),
      );
      for (let at = 0; at < upload.length; at += 65_532) {
        await stream.send(Flag.Body, upload.subarray(at, at + 65_532));
      }
      await stream.send(Flag.Body | Flag.End, new Uint8Array(0));
    })();
  });
  const clientSocket = new WebSocket(served.url, ["groom"]);
  const clientTransport = new WebSocketTransport(clientSocket);
  const agentMux = new Mux(clientTransport, {
    role: "agent",
    onStream: (stream) => {
      (async () => {
        const head = await stream.read();
        assert.equal(head?.kind, "head");
        const body = await readBody(stream);
        await stream.send(
          Flag.Head | Flag.Start,
          new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"),
        );
        for (let at = 0; at < body.length; at += 65_532) {
          await stream.send(Flag.Body, body.subarray(at, at + 65_532));
        }
        await stream.send(Flag.Body | Flag.End, new Uint8Array(0));
        stream.finish();
      })().catch((error) => stream.abort(String(error)));
    },
  });
  await openEvent(clientSocket);
  assert.equal(clientTransport.protocol, "groom");
  clientSocket.send("text carries no tunnel traffic");

  const serverSocket = await served.accepted;
  await sent;
  const stream = serverMux?.get(1) as Stream;
  const head = await stream.read({ timeoutMs: 30_000 });
  assert.equal(new TextDecoder().decode(head?.payload), "HTTP/1.1 200 OK\r\n\r\n");
  assert.deepEqual(await readBody(stream), upload);
  stream.finish();
  assert.equal(serverTransport?.protocol, "groom");
  assert.deepEqual(serverMux?.stats, { dropped: 0, malformed: 0, overflows: 0 });
  await serverTransport?.drained(0);
  assert.equal(serverTransport?.bufferedAmount, 0);

  const clientClosed = closeEvent(clientSocket);
  const serverClosed = closeEvent(serverSocket);
  serverMux?.close("test over");
  const info = await agentMux.closed;
  assert.equal(info.code, undefined, "PROTO-14: a deliberate close carries no status code");
  assert.equal(agentMux.size, 0);
  await Promise.all([clientClosed, serverClosed]);
  await served.server.shutdown();
});

Deno.test("WebSocketTransport closes with an error on a message above maxMessageSize (PROTO-12)", async () => {
  let transport: WebSocketTransport | undefined;
  const closed = Promise.withResolvers<CloseInfo>();
  const received: Uint8Array[] = [];
  const served = serveWebSocket((socket) => {
    transport = new WebSocketTransport(socket, { maxMessageSize: 1024 });
    transport.onMessage = (message) => received.push(message);
    transport.onClose = closed.resolve;
  });
  const client = new WebSocket(served.url, ["groom"]);
  const clientClosed = closeEvent(client);
  await openEvent(client);
  const serverSocket = await served.accepted;
  const serverClosed = closeEvent(serverSocket);
  client.send(new Uint8Array(1024));
  client.send(new Uint8Array(1025));
  const info = await closed.promise;
  assert.ok(info.error instanceof RangeError);
  assert.match(info.reason, /1025 bytes exceeds the limit of 1024 bytes/);
  assert.deepEqual(received.map((message) => message.length), [1024]);
  transport?.send(new Uint8Array(8)); // ignored after close, no throw
  await Promise.all([clientClosed, serverClosed]);
  await served.server.shutdown();
});

Deno.test("WebSocketTransport turns a throwing onMessage into a close instead of ending the process", async () => {
  const closed = Promise.withResolvers<CloseInfo>();
  const served = serveWebSocket((socket) => {
    const transport = new WebSocketTransport(socket);
    transport.onMessage = () => {
      throw new Error("handler bug");
    };
    transport.onClose = closed.resolve;
  });
  const client = new WebSocket(served.url, ["groom"]);
  const clientClosed = closeEvent(client);
  await openEvent(client);
  const serverClosed = closeEvent(await served.accepted);
  client.send(new Uint8Array(4));
  const info = await closed.promise;
  assert.equal(info.error?.message, "handler bug");
  await Promise.all([clientClosed, serverClosed]);
  await served.server.shutdown();
});

/** Delegates to a transport and tells when a sender first has to wait for the drain. */
class WaitSpy implements MessageTransport {
  readonly firstWait = Promise.withResolvers<number>();
  maxBuffered = 0;
  readonly #inner: MessageTransport;

  constructor(inner: MessageTransport) {
    this.#inner = inner;
  }

  get onMessage() {
    return this.#inner.onMessage;
  }
  set onMessage(handler) {
    this.#inner.onMessage = handler;
  }
  get onClose() {
    return this.#inner.onClose;
  }
  set onClose(handler) {
    this.#inner.onClose = handler;
  }
  get protocol(): string {
    return this.#inner.protocol;
  }
  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }
  send(message: Uint8Array): void {
    this.#inner.send(message);
    this.maxBuffered = Math.max(this.maxBuffered, this.#inner.bufferedAmount);
  }
  drained(threshold: number): Promise<void> {
    this.firstWait.resolve(this.#inner.bufferedAmount);
    return this.#inner.drained(threshold);
  }
  close(code?: number, reason?: string): void {
    this.#inner.close(code, reason);
  }
}

Deno.test("a sender on a real WebSocket waits while the peer does not read and resumes when it does (architecture §7)", async () => {
  const highWater = 1024 * 1024;
  const messageSize = 65_532;
  const count = 320; // ~20 MiB: more than the socket and kernel buffers hold
  const served = serveWebSocket();
  const { port } = served.server.addr;
  // A raw TCP peer: completes the handshake, then reads nothing until told to.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(
    new TextEncoder().encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Protocol: groom\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ),
  );
  const socket = await served.accepted;
  const spy = new WaitSpy(new WebSocketTransport(socket, { protocol: "groom" }));
  const mux = new Mux(spy, { role: "server", limits: { highWater, lowWater: highWater / 2 } });
  await openEvent(socket);
  const stream = mux.open() as Stream;
  const payload = pattern(messageSize, 3);
  const sending = (async () => {
    await stream.send(Flag.Head | Flag.Start, new Uint8Array(16));
    for (let i = 0; i < count; i++) await stream.send(Flag.Body, payload);
  })();

  // Either the sender had to wait (expected) or the kernel swallowed everything (no hang).
  const bufferedAtWait = await Promise.race([spy.firstWait.promise, sending.then(() => -1)]);
  assert.ok(bufferedAtWait > highWater, "the sender waited, and only above highWater");
  const handedOver = stream.bytesOut;
  assert.ok(handedOver < count * messageSize, "the stall happened before everything was sent");

  // Now the peer reads everything; the sender must finish.
  const expected = 16 + count * messageSize;
  let received = 0;
  const buffer = new Uint8Array(256 * 1024);
  while (received < expected) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += n;
  }
  await sending;
  assert.equal(stream.bytesOut, count * messageSize + 16);
  assert.ok(
    spy.maxBuffered <= highWater + messageSize + 4,
    `bufferedAmount stayed within one message of highWater (max ${spy.maxBuffered})`,
  );
  assert.ok(received >= expected);

  const serverClosed = closeEvent(socket);
  conn.close();
  await mux.closed;
  await serverClosed;
  await served.server.shutdown();
});
