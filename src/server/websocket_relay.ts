/**
 * WebSocket passthrough on the server (SRV-19, PROTO-25/26). Deno 2.9.6 cannot hand over the raw
 * client socket after a 101, so the server terminates the client's WebSocket itself and speaks
 * WebSocket *as a client* inside the tunnel: client messages become masked frames in RAW messages,
 * and the backend's frames, carried back in RAW messages, are decoded and sent to the client.
 * A groom 1.3 agent relays those bytes verbatim, so both agent generations work. No idle limit:
 * the session lives as long as both ends keep it (ODD-8); the tunnel's keep-alive and each side's
 * close end it.
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";
import {
  closePayload,
  encodeWebSocketFrame,
  Flag,
  getHeader,
  MAX_READ_PAYLOAD,
  Opcode,
  type ResponseHead,
  WebSocketDecoder,
  WebSocketProtocolError,
} from "../protocol/mod.ts";
import type { AccessEntry, ProxyStream } from "./client_proxy.ts";

/** How long a closing side waits for the other's close frame before aborting the stream. */
export const CLOSE_HANDSHAKE_TIMEOUT_MS = 5_000;

/** Close codes a server may send to a client (RFC 6455 §7.4: 1005/1006/1015 are reserved). */
function sendableCode(code: number | undefined): number | undefined {
  if (code === undefined || code === 1005 || code === 1006 || code === 1015) return undefined;
  return code >= 1000 && code < 5000 ? code : undefined;
}

/**
 * Completes the client's upgrade with the backend's chosen sub-protocol and relays messages until
 * either side closes. Returns the 101 response to send to the client.
 */
export function relayWebSocket(
  request: Request,
  head: ResponseHead,
  stream: ProxyStream,
  finish: (entry: Omit<AccessEntry, "id">) => void,
  options: { transactionId?: string } = {},
): Response {
  const protocol = getHeader(head.headers, "sec-websocket-protocol");
  const { socket, response } = Deno.upgradeWebSocket(
    request,
    protocol ? { protocol } : {},
  );
  socket.binaryType = "arraybuffer";
  if (options.transactionId) {
    try {
      response.headers.set("x-transaction-id", options.transactionId);
    } catch {
      // The upgrade response's headers may be immutable; the id is in the access log anyway.
    }
  }
  const counters = { in: 0, out: 0 };
  finish({ status: 101, in: 0, out: 0, reason: "raw session startup" });

  const decoder = new WebSocketDecoder({ masked: false });
  const encoder = new TextEncoder();
  let ended = false;
  let closeTimer: ReturnType<typeof setTimeout> | undefined;
  const pending: (string | Uint8Array)[] = [];

  const sendFailed = (): void => end("tunnel send failed");
  /**
   * Sends RAW bytes in order: a stream queues its messages in call order, so no promise chain is
   * needed (issue 7: one per message was a measurable share of the relay). Payloads stay within
   * 65 532 bytes, what groom 1.3 peers send (PROTO-25); RAW is a byte stream, so any cut will do.
   */
  const sendRaw = (bytes: Uint8Array): void => {
    for (let offset = 0; offset < bytes.length; offset += MAX_READ_PAYLOAD) {
      stream.send(Flag.Raw, bytes.subarray(offset, offset + MAX_READ_PAYLOAD)).catch(sendFailed);
    }
  };
  // Issue 7: the first frame of an event-loop turn goes at once; frames the client sent in a
  // burst (Deno delivers them in the same turn) wait for the end of the turn and travel together
  // in one RAW message, which spares the tunnel and the agent's backend writes a message each.
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let turn: ReturnType<typeof setImmediate> | undefined;
  const flushBatch = (): void => {
    if (batch.length === 0) return;
    const frames = batch;
    const bytes = frames.length === 1 ? frames[0] as Uint8Array : new Uint8Array(batchBytes);
    if (frames.length > 1) {
      let offset = 0;
      for (const frame of frames) {
        bytes.set(frame, offset);
        offset += frame.length;
      }
    }
    batch = [];
    batchBytes = 0;
    sendRaw(bytes);
  };
  const endOfTurn = (): void => {
    turn = undefined;
    flushBatch();
  };
  /** Sends one encoded frame to the backend through the tunnel, in order. */
  const toBackend = (bytes: Uint8Array): void => {
    if (ended) return;
    counters.in += bytes.length;
    if (turn === undefined) {
      sendRaw(bytes);
      turn = setImmediate(endOfTurn);
      return;
    }
    batch.push(bytes);
    batchBytes += bytes.length;
    if (batchBytes >= MAX_READ_PAYLOAD) flushBatch();
  };
  const toClient = (data: string | Uint8Array): void => {
    if (socket.readyState === WebSocket.CONNECTING) pending.push(data);
    else if (socket.readyState === WebSocket.OPEN) socket.send(data);
  };
  let closeCode: number | undefined;
  const closeSocket = (): void => {
    try {
      if (closeCode === undefined) socket.close();
      else socket.close(closeCode);
    } catch {
      // Already closed.
    }
  };
  const end = (reason: string, code?: number): void => {
    if (ended) return;
    ended = true;
    clearTimeout(closeTimer);
    if (turn !== undefined) clearImmediate(turn);
    batch = [];
    stream.abort(reason);
    closeCode = sendableCode(code);
    // A socket still opening ignores close(): it is closed once open (below), else the client
    // would keep a session nobody serves.
    if (socket.readyState !== WebSocket.CONNECTING) closeSocket();
    finish({ status: 0, in: counters.in, out: counters.out, reason: "raw session teardown" });
  };

  socket.onopen = () => {
    if (ended) {
      closeSocket();
      return;
    }
    for (const data of pending.splice(0)) socket.send(data);
  };
  socket.onmessage = (event) => {
    const data = event.data;
    const payload = typeof data === "string"
      ? encoder.encode(data)
      : new Uint8Array(data as ArrayBuffer);
    const opcode = typeof data === "string" ? Opcode.Text : Opcode.Binary;
    toBackend(encodeWebSocketFrame({ opcode, payload }, true));
  };
  socket.onclose = (event) => {
    if (ended) return;
    toBackend(
      encodeWebSocketFrame({
        opcode: Opcode.Close,
        payload: closePayload(sendableCode(event.code), event.reason),
      }, true),
    );
    closeTimer = setTimeout(() => end("close handshake timed out"), CLOSE_HANDSHAKE_TIMEOUT_MS);
  };
  socket.onerror = () => {};

  (async () => {
    while (!ended) {
      let frame;
      try {
        frame = await stream.read();
      } catch {
        end("tunnel stream failed");
        return;
      }
      if (frame === null || frame.kind === "abort") {
        end("agent ended the session");
        return;
      }
      if (frame.kind === "body") continue; // the empty BODY|END after the UPGD head (PROTO-25)
      if (frame.kind !== "raw") continue;
      counters.out += frame.payload.length;
      let messages;
      try {
        messages = decoder.push(frame.payload);
      } catch (error) {
        const code = error instanceof WebSocketProtocolError ? error.code : 1002;
        end(`backend broke the WebSocket framing: ${(error as Error).message}`, code);
        return;
      }
      for (const message of messages) {
        if (message.type === "text") toClient(message.text);
        else if (message.type === "binary") toClient(message.data);
        else if (message.type === "ping") {
          toBackend(encodeWebSocketFrame({ opcode: Opcode.Pong, payload: message.data }, true));
        } else if (message.type === "close") {
          end("backend closed the WebSocket", message.code);
          return;
        }
      }
      if (frame.end) {
        end("backend connection ended");
        return;
      }
    }
  })();
  return response;
}
