/**
 * RFC 6455 framing, for the two places groom speaks WebSocket at the byte level: the agent's own
 * client (the tunnel) and the server's relay of client WebSockets, which groom 1.3 agents expect
 * as raw WebSocket bytes inside RAW messages (PROTO-25). Encoder and incremental decoder with
 * hard limits; no I/O.
 * @module
 */

import { concatBytes } from "./bytes.ts";

/** Frame opcodes (RFC 6455 §5.2). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** Largest control frame payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Default largest reassembled message: groom's tunnel limit (PROTO-12, 4 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024;
/** Close code for a protocol error (RFC 6455 §7.4.1). */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** Close code for a message too big to process. */
export const CLOSE_TOO_BIG = 1009;
/** Close code for invalid UTF-8 in a text message. */
export const CLOSE_INVALID_DATA = 1007;

/** One decoded frame. */
export interface WebSocketFrame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** One reassembled data message, or a control frame. */
export type WebSocketMessage =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "binary"; readonly data: Uint8Array }
  | { readonly type: "ping" | "pong"; readonly data: Uint8Array }
  | { readonly type: "close"; readonly code?: number; readonly reason: string };

/** A peer broke the framing rules; `code` is the close code to answer with. */
export class WebSocketProtocolError extends Error {
  /** RFC 6455 close code. */
  readonly code: number;
  /** Creates the error. */
  constructor(message: string, code = CLOSE_PROTOCOL_ERROR) {
    super(message);
    this.name = "WebSocketProtocolError";
    this.code = code;
  }
}

/**
 * Encodes one frame. `mask` is `true` for a fresh random mask (client frames, RFC 6455 §5.3),
 * a 4-byte key to use, or absent for an unmasked (server) frame.
 */
export function encodeWebSocketFrame(
  frame: { fin?: boolean; opcode: number; payload: Uint8Array },
  mask?: boolean | Uint8Array,
): Uint8Array {
  const length = frame.payload.length;
  const extended = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const key = mask === true ? crypto.getRandomValues(new Uint8Array(4)) : mask || undefined;
  const headerSize = 2 + extended + (key ? 4 : 0);
  const out = new Uint8Array(headerSize + length);
  out[0] = (frame.fin === false ? 0 : 0x80) | (frame.opcode & 0x0f);
  const maskBit = key ? 0x80 : 0;
  if (extended === 0) out[1] = maskBit | length;
  else if (extended === 2) {
    out[1] = maskBit | 126;
    out[2] = length >>> 8;
    out[3] = length & 0xff;
  } else {
    out[1] = maskBit | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(length));
  }
  out.set(frame.payload, headerSize);
  if (key) {
    out.set(key, headerSize - 4);
    applyMask(out.subarray(headerSize), key);
  }
  return out;
}

/** Whether this machine stores integers little-endian (a 32-bit mask word is built to match). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Below this length masking byte by byte costs less than setting up the word view. */
const WORD_MASK_MIN = 64;

/**
 * XORs `data` in place with the 4-byte `key`. Long payloads go four bytes at a time through a
 * 32-bit view once the position is aligned (a 64 KiB message took 8x less time than bytewise).
 */
export function applyMask(data: Uint8Array, key: Uint8Array): void {
  const k0 = key[0] ?? 0, k1 = key[1] ?? 0, k2 = key[2] ?? 0, k3 = key[3] ?? 0;
  const length = data.length;
  let i = 0;
  if (length >= WORD_MASK_MIN) {
    // Bytewise until the view's position is 4-byte aligned in its buffer.
    for (; ((data.byteOffset + i) & 3) !== 0; i++) data[i] = (data[i] ?? 0) ^ (key[i & 3] ?? 0);
    const words = (length - i) >>> 2;
    const r = i & 3; // the key byte for position i
    const b0 = key[r] ?? 0, b1 = key[(r + 1) & 3] ?? 0;
    const b2 = key[(r + 2) & 3] ?? 0, b3 = key[(r + 3) & 3] ?? 0;
    const word = LITTLE_ENDIAN
      ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
      : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3);
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] = (view[w] ?? 0) ^ word;
    i += words * 4;
  } else {
    for (; i + 4 <= length; i += 4) {
      data[i] = (data[i] ?? 0) ^ k0;
      data[i + 1] = (data[i + 1] ?? 0) ^ k1;
      data[i + 2] = (data[i + 2] ?? 0) ^ k2;
      data[i + 3] = (data[i + 3] ?? 0) ^ k3;
    }
  }
  for (; i < length; i++) data[i] = (data[i] ?? 0) ^ (key[i & 3] ?? 0);
}

/**
 * Whether `code` may be sent in a close frame (RFC 6455 §7.4: 1004-1006 and 1015 are reserved for
 * local use, 1000-2999 are assigned by the RFC and IANA, 3000-4999 belong to libraries and apps).
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** Encodes a close frame payload: code (if any) and UTF-8 reason. */
export function closePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) return new Uint8Array(0);
  const text = new TextEncoder().encode(reason).subarray(0, MAX_CONTROL_PAYLOAD - 2);
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Options of a {@linkcode WebSocketDecoder}. */
export interface WebSocketDecoderOptions {
  /** Frames must be masked (a server reading a client) or unmasked (a client reading a server). */
  readonly masked: boolean;
  /** Largest reassembled message, default {@linkcode DEFAULT_MAX_MESSAGE_SIZE}. */
  readonly maxMessageSize?: number;
}

/**
 * Incremental decoder: feed bytes as they arrive, get whole messages (fragments reassembled,
 * control frames passed through in order). Throws {@linkcode WebSocketProtocolError} on any
 * violation; after that the decoder must not be used again.
 */
export class WebSocketDecoder {
  readonly #masked: boolean;
  readonly #maxMessageSize: number;
  readonly #queue = new ByteQueue();
  #fragments: Uint8Array[] = [];
  #fragmentsSize = 0;
  #fragmentOpcode = -1;

  /** Creates a decoder. */
  constructor(options: WebSocketDecoderOptions) {
    this.#masked = options.masked;
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  }

  /** Bytes received but not yet part of a whole frame. */
  get pending(): number {
    return this.#queue.size;
  }

  /** Feeds bytes; returns the messages they complete. */
  push(bytes: Uint8Array): WebSocketMessage[] {
    this.#queue.push(bytes.slice());
    const messages: WebSocketMessage[] = [];
    while (true) {
      const frame = this.#nextFrame();
      if (frame === undefined) break;
      const message = this.#assemble(frame);
      if (message) messages.push(message);
    }
    return messages;
  }

  #nextFrame(): WebSocketFrame | undefined {
    const queue = this.#queue;
    if (queue.size < 2) return undefined;
    const header = queue.peek(Math.min(queue.size, 14));
    const first = header[0] ?? 0;
    const second = header[1] ?? 0;
    if ((first & 0x70) !== 0) throw new WebSocketProtocolError("reserved bits set (no extension)");
    const masked = (second & 0x80) !== 0;
    if (masked !== this.#masked) {
      throw new WebSocketProtocolError(masked ? "unexpected masked frame" : "unmasked frame");
    }
    let length = second & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (header.length < 4) return undefined;
      length = ((header[2] ?? 0) << 8) | (header[3] ?? 0);
      offset = 4;
    } else if (length === 127) {
      if (header.length < 10) return undefined;
      const big = new DataView(header.buffer, header.byteOffset + 2, 8).getBigUint64(0);
      if (big > BigInt(this.#maxMessageSize)) {
        throw new WebSocketProtocolError("frame too large", CLOSE_TOO_BIG);
      }
      length = Number(big);
      offset = 10;
    }
    if (length > this.#maxMessageSize) {
      throw new WebSocketProtocolError("frame too large", CLOSE_TOO_BIG);
    }
    const keyOffset = offset;
    if (masked) {
      offset += 4;
      if (header.length < offset) return undefined;
    }
    if (queue.size < offset + length) return undefined;
    const key = masked ? header.slice(keyOffset, keyOffset + 4) : undefined;
    queue.take(offset);
    const payload = queue.take(length);
    if (key) applyMask(payload, key);
    return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, payload };
  }

  #assemble(frame: WebSocketFrame): WebSocketMessage | undefined {
    const { opcode, payload, fin } = frame;
    if (opcode >= 0x8) {
      if (!fin || payload.length > MAX_CONTROL_PAYLOAD) {
        throw new WebSocketProtocolError("invalid control frame");
      }
      if (opcode === Opcode.Ping) return { type: "ping", data: payload };
      if (opcode === Opcode.Pong) return { type: "pong", data: payload };
      if (opcode === Opcode.Close) {
        if (payload.length === 1) throw new WebSocketProtocolError("invalid close payload");
        if (payload.length === 0) return { type: "close", reason: "" };
        const code = ((payload[0] ?? 0) << 8) | (payload[1] ?? 0);
        return { type: "close", code, reason: decodeUtf8(payload.subarray(2)) };
      }
      throw new WebSocketProtocolError(`unknown opcode ${opcode}`);
    }
    if (opcode === Opcode.Continuation) {
      if (this.#fragmentOpcode < 0) throw new WebSocketProtocolError("unexpected continuation");
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      if (this.#fragmentOpcode >= 0) throw new WebSocketProtocolError("interleaved message");
      this.#fragmentOpcode = opcode;
    } else {
      throw new WebSocketProtocolError(`unknown opcode ${opcode}`);
    }
    this.#fragmentsSize += payload.length;
    if (this.#fragmentsSize > this.#maxMessageSize) {
      throw new WebSocketProtocolError("message too large", CLOSE_TOO_BIG);
    }
    this.#fragments.push(payload);
    if (!fin) return undefined;
    const data = concatBytes(this.#fragments, this.#fragmentsSize);
    const type = this.#fragmentOpcode;
    this.#fragments = [];
    this.#fragmentsSize = 0;
    this.#fragmentOpcode = -1;
    if (type === Opcode.Text) return { type: "text", text: decodeUtf8(data) };
    return { type: "binary", data };
  }
}

function decodeUtf8(data: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new WebSocketProtocolError("invalid UTF-8", CLOSE_INVALID_DATA);
  }
}

/**
 * A FIFO of byte chunks that copies each byte once: a large frame arriving in many reads is
 * assembled in O(n), not by re-concatenating a growing buffer at every read.
 */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** The first `n` bytes (n ≤ size), without removing them. */
  peek(n: number): Uint8Array {
    const head = this.#chunks[0];
    if (head !== undefined && head.length >= n) return head.subarray(0, n);
    return this.#copy(n, false);
  }

  /**
   * Removes and returns the first `n` bytes (n ≤ size). The chunks are the queue's own copies, so
   * bytes within one chunk are returned as a view of it (no copy); bytes spanning chunks are
   * copied into a fresh array.
   */
  take(n: number): Uint8Array {
    const head = this.#chunks[0];
    if (head !== undefined && head.length >= n) {
      if (head.length === n) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(n);
      this.#size -= n;
      return head.subarray(0, n);
    }
    return this.#copy(n, true);
  }

  #copy(n: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let index = 0;
    while (filled < n) {
      const chunk = this.#chunks[index] as Uint8Array;
      const part = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (remove) {
        if (part === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(part);
      } else index++;
    }
    if (remove) this.#size -= n;
    return out;
  }
}
