/**
 * The server's WebSocket relay over an in-memory tunnel, with a real client WebSocket on loopback:
 * client messages reach the backend side as masked frames in RAW messages, a burst of them
 * batched into few RAW messages (issue 7), and the backend's frames reach the client (SRV-19,
 * PROTO-25).
 * @module
 */

import assert from "node:assert/strict";
import {
  encodeWebSocketFrame,
  Flag,
  type Frame,
  Opcode,
  WebSocketDecoder,
  type WebSocketMessage,
} from "../protocol/mod.ts";
import { MemoryTransport, Mux, type Stream } from "../tunnel/mod.ts";
import { relayWebSocket } from "./websocket_relay.ts";

/** A server on loopback whose upgrades are relayed over a memory tunnel; the agent side's stream. */
function relayServer() {
  const [serverSide, agentSide] = MemoryTransport.pair();
  const { promise: accepted, resolve: accept } = Promise.withResolvers<Stream>();
  const server = new Mux(serverSide, { role: "server" });
  const agent = new Mux(agentSide, { role: "agent", onStream: accept });
  const records: { status: number; reason?: string }[] = [];
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const stream = server.open();
    if (stream === undefined) return new Response(null, { status: 429 });
    // The agent side sees a stream once something is sent on it; the relay sends RAW only.
    void stream.send(Flag.Head | Flag.Start, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    return relayWebSocket(
      request,
      { version: "HTTP/1.1", status: 101, reason: "Switching Protocols", headers: [] },
      stream,
      (entry) => records.push(entry),
    );
  });
  return {
    port: http.addr.port,
    records,
    accepted,
    async close() {
      server.close();
      agent.close();
      await http.shutdown();
    },
  };
}

/** Reads RAW messages on `stream` until `count` WebSocket messages are decoded. */
async function readMessages(
  stream: Stream,
  count: number,
): Promise<{ messages: WebSocketMessage[]; raws: number[] }> {
  const decoder = new WebSocketDecoder({ masked: true }); // client frames are masked (RFC 6455)
  const messages: WebSocketMessage[] = [];
  const raws: number[] = [];
  while (messages.length < count) {
    const frame = await stream.read({ timeoutMs: 5_000 }) as Frame;
    if (frame.kind !== "raw") continue;
    raws.push(frame.payload.length);
    messages.push(...decoder.push(frame.payload));
  }
  return { messages, raws };
}

/** Waits for the client socket to open; returns the agent side's stream, its HEAD read. */
async function opened(socket: WebSocket, accepted: Promise<Stream>): Promise<Stream> {
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  const stream = await accepted;
  assert.equal((await stream.read({ timeoutMs: 5_000 }))?.kind, "head");
  return stream;
}

Deno.test("relayWebSocket() batches a burst of client messages into few RAW messages, in order (issue 7, PROTO-25)", async () => {
  const relay = relayServer();
  const socket = new WebSocket(`ws://127.0.0.1:${relay.port}/`);
  try {
    const stream = await opened(socket, relay.accepted);
    const count = 200;
    for (let index = 0; index < count; index++) socket.send(`message ${index}`);
    const { messages, raws } = await readMessages(stream, count);
    assert.deepEqual(
      messages,
      Array.from({ length: count }, (_, index) => ({ type: "text", text: `message ${index}` })),
    );
    for (const size of raws) assert.ok(size <= 65_532, `RAW of ${size} bytes`);
    assert.ok(raws.length < count / 2, `${raws.length} RAW messages for ${count} messages`);

    // The backend's answer reaches the client.
    const echoed = new Promise<string>((resolve) => {
      socket.onmessage = (event) => resolve(String(event.data));
    });
    await stream.send(
      Flag.Raw,
      encodeWebSocketFrame({ opcode: Opcode.Text, payload: new TextEncoder().encode("pong") }),
    );
    assert.equal(await echoed, "pong");
    assert.deepEqual(relay.records.map((record) => record.status), [101]); // SRV-19
  } finally {
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    await closed;
    await relay.close();
  }
});

Deno.test("relayWebSocket() sends a lone client message at once, whatever its size (issue 7, PROTO-25)", async () => {
  const relay = relayServer();
  const socket = new WebSocket(`ws://127.0.0.1:${relay.port}/`);
  socket.binaryType = "arraybuffer";
  try {
    const stream = await opened(socket, relay.accepted);
    let ran = 0;
    for (const size of [1, 1_000, 70_000]) {
      const data = new Uint8Array(size).map((_, index) => index % 251);
      socket.send(data);
      const { messages, raws } = await readMessages(stream, 1);
      assert.deepEqual(messages, [{ type: "binary", data }], `${size} bytes`);
      for (const length of raws) assert.ok(length <= 65_532, `${size} bytes: RAW of ${length}`);
      ran++;
    }
    assert.equal(ran, 3);
  } finally {
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    await closed;
    await relay.close();
  }
});
