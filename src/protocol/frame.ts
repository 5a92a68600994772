/**
 * The tunnel message layout, and the only code that knows it (PROTO-15/16): every websocket
 * binary message is `payload ‖ flags (1 byte) ‖ stream id (3 bytes, big-endian)`. Decoding
 * classifies the flags byte into a typed {@linkcode Frame} whose `kind` discriminant (head, body,
 * raw, abort, and in protocol v2 window) is what callers switch on; they never test bits. Two
 * protocol versions share the layout, chosen by the websocket sub-protocol: v1 (`groom`, groom
 * 1.3's) and v2 (`groom2`), which adds one control frame, the window update (flag 0x10, a 4-byte
 * big-endian credit increment, issue 6). Decoding takes the version, and v1 stays exactly as
 * strict as groom 1.3's set: a 0x10 flag is refused there. `docs/protocol.md` describes both.
 * @module
 */

/** The websocket sub-protocols naming the two protocol versions (PROTO-8, issue 6). */
export const Subprotocol = {
  /** Protocol v1, groom 1.3's: no flow control (PROTO-19). */
  V1: "groom",
  /** Protocol v2: v1 plus per-stream credit windows (window update frames). */
  V2: "groom2",
} as const;

/** A protocol version: 1 (`groom`) or 2 (`groom2`). */
export type ProtocolVersion = 1 | 2;

/**
 * The protocol version a negotiated sub-protocol stands for: 2 for `groom2`, 1 for anything
 * else (`groom`, or none: a groom 1.3 server may not echo the sub-protocol, PROTO-5).
 */
export function protocolVersion(subprotocol: string): ProtocolVersion {
  return subprotocol === Subprotocol.V2 ? 2 : 1;
}

/** Flag bits of the trailer's flags byte (PROTO-16). Bit 0x10 is unused in v1. */
export const Flag = {
  /** Payload is an HTTP/1.x head (request head server→agent, response head agent→server). */
  Head: 0x01,
  /** Payload is body bytes (may be empty). */
  Body: 0x02,
  /** Payload is raw bytes of an upgraded (101) connection. */
  Raw: 0x04,
  /** Abort the stream; the payload is empty. */
  Abort: 0x08,
  /** Protocol v2 only, alone: window update, the payload is a 4-byte credit increment. */
  Window: 0x10,
  /** With Head from the agent: the response is `101 Switching Protocols`, raw mode follows. */
  Upgrade: 0x20,
  /** First message of a stream; always together with Head. */
  Start: 0x40,
  /** Last message of the body (with Body or Head) or last raw read (with Raw). */
  End: 0x80,
} as const;

/** Size of the trailer that follows the payload: 1 flags byte and a 3-byte stream id. */
export const FRAME_TRAILER_SIZE = 4;

/** Largest stream id: the id travels in 3 bytes of the trailer (PROTO-17). */
export const MAX_STREAM_ID = 2 ** 24 - 1;

/**
 * Largest message a receiver accepts, trailer included: groom 1.3 closes the tunnel with 1009
 * above 4 MiB (PROTO-12), so a larger message could never reach a groom 1.3 peer either.
 */
export const MAX_MESSAGE_SIZE = 4 * 1024 * 1024;

/** Largest payload of a message we may send: {@linkcode MAX_MESSAGE_SIZE} minus the trailer. */
export const MAX_PAYLOAD_SIZE = MAX_MESSAGE_SIZE - FRAME_TRAILER_SIZE;

/**
 * Size of the largest message groom 1.3 sends: 65 536 bytes is its websocket fragment size
 * (PROTO-11), so keeping messages at or below it means no message is ever fragmented.
 */
export const MAX_SENT_MESSAGE_SIZE = 65_536;

/**
 * Largest payload of one read relayed as a BODY (response) or RAW message: 65 532 bytes, so that
 * with the trailer the message is exactly {@linkcode MAX_SENT_MESSAGE_SIZE} (PROTO-23, PROTO-25).
 */
export const MAX_READ_PAYLOAD = MAX_SENT_MESSAGE_SIZE - FRAME_TRAILER_SIZE;

/**
 * Largest number of request body data bytes per BODY message (PROTO-21): 65 524, so that the
 * chunk framing of a re-chunked read (`fff4\r\n` + data + `\r\n`, 8 bytes) still fits in
 * {@linkcode MAX_READ_PAYLOAD}.
 */
export const MAX_BODY_PAYLOAD = MAX_READ_PAYLOAD - 8;

/**
 * Size of a window update's payload: a 32-bit big-endian unsigned increment, as in HTTP/2's
 * WINDOW_UPDATE (RFC 9113 §6.9).
 */
export const WINDOW_PAYLOAD_SIZE = 4;

/**
 * Largest credit increment, and largest credit a sender may hold: 2^31 − 1 as in HTTP/2
 * (RFC 9113 §6.9.1), so credit arithmetic never leaves the exact integer range and a peer cannot
 * grant absurd amounts unnoticed.
 */
export const MAX_WINDOW_INCREMENT = 2 ** 31 - 1;

/** Kinds of frame: the data kinds of both versions, and `window` (protocol v2 only). */
export type FrameKind = "head" | "body" | "raw" | "abort" | "window";

/**
 * An HTTP/1.x head; always the first message of a stream (HEAD|START). From the agent, `upgrade`
 * marks a `101` response (UPGD, raw mode follows) and `end` a head without body (the synthetic
 * statuses of PROTO-24); the two never come together.
 */
export interface HeadFrame {
  /** Discriminant. */
  readonly kind: "head";
  /** Stream id, 0 to {@linkcode MAX_STREAM_ID}. */
  readonly streamId: number;
  /** The serialised head. */
  readonly payload: Uint8Array;
  /** UPGD: the response is a `101`, raw mode follows. */
  readonly upgrade: boolean;
  /** END: no body message follows. */
  readonly end: boolean;
}

/** Body bytes of a request or response (BODY); `end` marks the last one (BODY|END). */
export interface BodyFrame {
  /** Discriminant. */
  readonly kind: "body";
  /** Stream id, 0 to {@linkcode MAX_STREAM_ID}. */
  readonly streamId: number;
  /** Body bytes, possibly none. */
  readonly payload: Uint8Array;
  /** END: last message of the body. */
  readonly end: boolean;
}

/** Bytes of an upgraded connection (RAW); `end` marks the last read (RAW|END). */
export interface RawFrame {
  /** Discriminant. */
  readonly kind: "raw";
  /** Stream id, 0 to {@linkcode MAX_STREAM_ID}. */
  readonly streamId: number;
  /** Raw bytes, possibly none. */
  readonly payload: Uint8Array;
  /** END: the sender's socket read ended. */
  readonly end: boolean;
}

/** Abort the stream (ABRT); the payload is always empty. */
export interface AbortFrame {
  /** Discriminant. */
  readonly kind: "abort";
  /** Stream id, 0 to {@linkcode MAX_STREAM_ID}. */
  readonly streamId: number;
  /** Always empty. */
  readonly payload: Uint8Array;
}

/**
 * Protocol v2 window update (flags `0x10` alone): the receiver of the stream grants its sender
 * `increment` more bytes of credit. The payload is the increment, 4 bytes big-endian.
 */
export interface WindowFrame {
  /** Discriminant. */
  readonly kind: "window";
  /** Stream id, 0 to {@linkcode MAX_STREAM_ID}. */
  readonly streamId: number;
  /** Credit granted, 1 to {@linkcode MAX_WINDOW_INCREMENT} bytes. */
  readonly increment: number;
  /** The increment's 4 bytes; {@linkcode encodeFrame} writes them from `increment`. */
  readonly payload: Uint8Array;
}

/** One tunnel message of a stream, as both versions carry it: what a stream's reader sees. */
export type Frame = HeadFrame | BodyFrame | RawFrame | AbortFrame;

/** Any decoded tunnel message: a {@linkcode Frame}, or a v2 control frame. */
export type TunnelFrame = Frame | WindowFrame;

/** A frame without its payload: what {@linkcode encodeFrameInto} needs besides the bytes. */
export type FrameHeader =
  | Omit<HeadFrame, "payload">
  | Omit<BodyFrame, "payload">
  | Omit<RawFrame, "payload">
  | Omit<AbortFrame, "payload">
  | Omit<WindowFrame, "payload">;

/** Why {@linkcode decodeFrame} refused a message. */
export type FrameErrorReason =
  | "short"
  | "oversize"
  | "unknown-flags"
  | "illegal-flags"
  | "abort-payload"
  | "window-payload";

/** A received message that is not a valid tunnel frame; the tunnel should close (PROTO-10/12). */
export class FrameError extends Error {
  /** Which rule the message broke. */
  readonly reason: FrameErrorReason;

  /** Creates the error; `reason` says which rule the message broke. */
  constructor(message: string, reason: FrameErrorReason) {
    super(message);
    this.name = "FrameError";
    this.reason = reason;
  }
}

/** Mask of every flag bit protocol v1 defines; anything else (0x10) is unknown there. */
const KNOWN_FLAGS_V1 = Flag.Head | Flag.Body | Flag.Raw | Flag.Abort | Flag.Upgrade | Flag.Start |
  Flag.End;

/** Protocol v2 knows every bit. */
const KNOWN_FLAGS_V2 = KNOWN_FLAGS_V1 | Flag.Window;

/** The part of a frame the flags byte determines. */
export type FrameClass =
  | { readonly kind: "head"; readonly upgrade: boolean; readonly end: boolean }
  | { readonly kind: "body"; readonly end: boolean }
  | { readonly kind: "raw"; readonly end: boolean }
  | { readonly kind: "abort" }
  | { readonly kind: "window" };

/**
 * Classifies a flags byte, or returns `undefined` when the combination is not legal in protocol
 * `version` (default 1). The v1 set is what groom 1.3 emits (PROTO-16, observed): `0x41`
 * HEAD|START, `0x61` HEAD|START|UPGD, `0xC1` HEAD|START|END, `0x02` BODY, `0x82` BODY|END, `0x04`
 * RAW, `0x84` RAW|END, `0x08` ABRT; v2 adds `0x10` WNDW. Direction rules (UPGD and END heads
 * only from the agent) belong to the stream state machine.
 */
export function classifyFlags(flags: number, version: ProtocolVersion = 1): FrameClass | undefined {
  switch (flags) {
    case Flag.Head | Flag.Start:
      return { kind: "head", upgrade: false, end: false };
    case Flag.Head | Flag.Start | Flag.Upgrade:
      return { kind: "head", upgrade: true, end: false };
    case Flag.Head | Flag.Start | Flag.End:
      return { kind: "head", upgrade: false, end: true };
    case Flag.Body:
      return { kind: "body", end: false };
    case Flag.Body | Flag.End:
      return { kind: "body", end: true };
    case Flag.Raw:
      return { kind: "raw", end: false };
    case Flag.Raw | Flag.End:
      return { kind: "raw", end: true };
    case Flag.Abort:
      return { kind: "abort" };
    case Flag.Window:
      return version === 2 ? { kind: "window" } : undefined;
    default:
      return undefined;
  }
}

/** The flags byte of a frame (the inverse of {@linkcode classifyFlags}). */
export function frameFlags(frame: FrameHeader): number {
  switch (frame.kind) {
    case "head":
      return Flag.Head | Flag.Start | (frame.upgrade ? Flag.Upgrade : 0) |
        (frame.end ? Flag.End : 0);
    case "body":
      return Flag.Body | (frame.end ? Flag.End : 0);
    case "raw":
      return Flag.Raw | (frame.end ? Flag.End : 0);
    case "abort":
      return Flag.Abort;
    case "window":
      return Flag.Window;
  }
}

/** Names of the flag bits, in bit order, as the spec and the logs spell them. */
const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [Flag.Head, "HEAD"],
  [Flag.Body, "BODY"],
  [Flag.Raw, "RAW"],
  [Flag.Abort, "ABRT"],
  [Flag.Window, "WNDW"],
  [Flag.Upgrade, "UPGD"],
  [Flag.Start, "START"],
  [Flag.End, "END"],
];

/** Names the bits of a flags byte, e.g. `HEAD|START|END`; `0` reads `none`. */
export function describeFlags(flags: number): string {
  const names = FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
  return names.length === 0 ? "none" : names.join("|");
}

/**
 * One line for logs: flags by name, stream id and payload length; never payload content, which
 * can hold credentials or cookies. Example: `HEAD|START|END id=11 len=65`.
 */
export function describeFrame(frame: TunnelFrame): string {
  return `${describeFlags(frameFlags(frame))} id=${frame.streamId} len=${frame.payload.length}`;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/**
 * Decodes one websocket binary message of protocol `version` (default 1). The returned payload
 * is a zero-copy view into `message`. Throws {@linkcode FrameError} for a message shorter than
 * the trailer (PROTO-15), larger than {@linkcode MAX_MESSAGE_SIZE} (PROTO-12), with flag bits
 * the version does not define (0x10 in v1), with a flag combination outside the legal set of
 * {@linkcode classifyFlags}, an ABRT with a payload, or (v2) a window update whose payload is not
 * 4 bytes or whose increment is 0 or above {@linkcode MAX_WINDOW_INCREMENT}.
 */
export function decodeFrame(message: Uint8Array, version?: 1): Frame;
/** Decodes a message of either version; only v2 yields window updates. */
export function decodeFrame(message: Uint8Array, version: ProtocolVersion): TunnelFrame;
export function decodeFrame(message: Uint8Array, version: ProtocolVersion = 1): TunnelFrame {
  const length = message.length;
  if (length < FRAME_TRAILER_SIZE) {
    throw new FrameError(
      `Cannot decode frame: ${length} bytes is shorter than the ${FRAME_TRAILER_SIZE}-byte trailer`,
      "short",
    );
  }
  if (length > MAX_MESSAGE_SIZE) {
    throw new FrameError(
      `Cannot decode frame: ${length} bytes exceeds the limit of ${MAX_MESSAGE_SIZE} bytes`,
      "oversize",
    );
  }
  const at = length - FRAME_TRAILER_SIZE;
  // noUncheckedIndexedAccess: the length check above guarantees these four bytes exist.
  const flags = message[at] ?? 0;
  const streamId = ((message[at + 1] ?? 0) << 16) | ((message[at + 2] ?? 0) << 8) |
    (message[at + 3] ?? 0);
  const known = version === 2 ? KNOWN_FLAGS_V2 : KNOWN_FLAGS_V1;
  if ((flags & ~known) !== 0) {
    throw new FrameError(
      `Cannot decode frame: unknown flag bits ${hex(flags & ~known)} in flags ${
        hex(flags)
      } (stream ${streamId})`,
      "unknown-flags",
    );
  }
  const kind = classifyFlags(flags, version);
  if (kind === undefined) {
    throw new FrameError(
      `Cannot decode frame: illegal flag combination ${describeFlags(flags)} (${
        hex(flags)
      }, stream ${streamId})`,
      "illegal-flags",
    );
  }
  if (kind.kind === "abort" && at !== 0) {
    throw new FrameError(
      `Cannot decode frame: ABRT carries ${at} payload bytes (stream ${streamId})`,
      "abort-payload",
    );
  }
  const payload = message.subarray(0, at);
  if (kind.kind === "window") {
    const increment = at === WINDOW_PAYLOAD_SIZE ? readUint32(payload) : 0;
    if (increment < 1 || increment > MAX_WINDOW_INCREMENT) {
      throw new FrameError(
        at === WINDOW_PAYLOAD_SIZE
          ? `Cannot decode frame: window increment ${increment} is outside 1..${MAX_WINDOW_INCREMENT} (stream ${streamId})`
          : `Cannot decode frame: WNDW carries ${at} payload bytes instead of ${WINDOW_PAYLOAD_SIZE} (stream ${streamId})`,
        "window-payload",
      );
    }
    return { kind: "window", streamId, increment, payload };
  }
  return { ...kind, streamId, payload };
}

function readUint32(bytes: Uint8Array): number {
  return (((bytes[0] ?? 0) << 24) >>> 0) + ((bytes[1] ?? 0) << 16) + ((bytes[2] ?? 0) << 8) +
    (bytes[3] ?? 0);
}

/**
 * A window update granting `increment` bytes of credit on stream `streamId` (protocol v2). Throws
 * `RangeError` when the increment is not an integer in 1..{@linkcode MAX_WINDOW_INCREMENT}.
 */
export function windowFrame(streamId: number, increment: number): WindowFrame {
  checkIncrement(increment);
  const payload = new Uint8Array(WINDOW_PAYLOAD_SIZE);
  writeUint32(payload, 0, increment);
  return { kind: "window", streamId, increment, payload };
}

function checkIncrement(increment: number): void {
  if (!Number.isInteger(increment) || increment < 1 || increment > MAX_WINDOW_INCREMENT) {
    throw new RangeError(
      `Cannot encode frame: window increment ${increment} is outside 1..${MAX_WINDOW_INCREMENT}`,
    );
  }
}

function writeUint32(target: Uint8Array, at: number, value: number): void {
  target[at] = (value >>> 24) & 0xff;
  target[at + 1] = (value >>> 16) & 0xff;
  target[at + 2] = (value >>> 8) & 0xff;
  target[at + 3] = value & 0xff;
}

function checkHeader(frame: FrameHeader, payloadLength: number): number {
  const { streamId } = frame;
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) {
    throw new RangeError(
      `Cannot encode frame: stream id ${streamId} is outside 0..${MAX_STREAM_ID}`,
    );
  }
  if (payloadLength > MAX_PAYLOAD_SIZE) {
    throw new RangeError(
      `Cannot encode frame: payload of ${payloadLength} bytes exceeds the limit of ${MAX_PAYLOAD_SIZE} bytes`,
    );
  }
  const flags = frameFlags(frame);
  if (classifyFlags(flags, 2) === undefined) {
    throw new RangeError(
      `Cannot encode frame: illegal flag combination ${describeFlags(flags)}`,
    );
  }
  if (frame.kind === "abort" && payloadLength !== 0) {
    throw new RangeError(`Cannot encode frame: ABRT must not carry a payload`);
  }
  return flags;
}

function writeTrailer(target: Uint8Array, at: number, flags: number, streamId: number): void {
  target[at] = flags;
  target[at + 1] = (streamId >>> 16) & 0xff;
  target[at + 2] = (streamId >>> 8) & 0xff;
  target[at + 3] = streamId & 0xff;
}

/**
 * A message's bytes exactly as given, `payload ‖ flags ‖ stream id` with nothing checked: any
 * flags and sizes, legal or not. For tests and rogue peers that must send what {@linkcode
 * encodeFrame} refuses; the stream id is taken modulo 2^24.
 */
export function encodeRawMessage(
  flags: number,
  streamId: number,
  payload: Uint8Array | string = "",
): Uint8Array {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const message = new Uint8Array(bytes.length + FRAME_TRAILER_SIZE);
  message.set(bytes);
  writeTrailer(message, bytes.length, flags & 0xff, streamId);
  return message;
}

/**
 * Encodes a frame into a new message with a single allocation. Throws `RangeError` for a stream
 * id outside 0..{@linkcode MAX_STREAM_ID}, an oversized payload, an upgrade head with END, an
 * ABRT with a payload, or a window update with an increment outside 1..2^31−1 (these are bugs of
 * the caller, not peer input). A window update's payload is written from its `increment`.
 */
export function encodeFrame(frame: TunnelFrame): Uint8Array {
  if (frame.kind === "window") {
    checkIncrement(frame.increment);
    const flags = checkHeader(frame, WINDOW_PAYLOAD_SIZE);
    const message = new Uint8Array(WINDOW_PAYLOAD_SIZE + FRAME_TRAILER_SIZE);
    writeUint32(message, 0, frame.increment);
    writeTrailer(message, WINDOW_PAYLOAD_SIZE, flags, frame.streamId);
    return message;
  }
  const length = frame.payload.length;
  const flags = checkHeader(frame, length);
  const message = new Uint8Array(length + FRAME_TRAILER_SIZE);
  message.set(frame.payload, 0);
  writeTrailer(message, length, flags, frame.streamId);
  return message;
}

/**
 * Turns a payload already written at the start of `buffer` into a message without copying it:
 * writes the trailer after `payloadLength` bytes and returns the view of the whole message. Use
 * it to read a socket straight into a buffer of `MAX_READ_PAYLOAD + FRAME_TRAILER_SIZE` bytes.
 * Throws `RangeError` like {@linkcode encodeFrame}, when the trailer does not fit, or for a
 * window update.
 */
export function encodeFrameInto(
  buffer: Uint8Array,
  frame: FrameHeader & { readonly payloadLength: number },
): Uint8Array {
  const { payloadLength } = frame;
  if (frame.kind === "window") {
    throw new RangeError("Cannot encode frame: use encodeFrame() for a window update");
  }
  if (!Number.isInteger(payloadLength) || payloadLength < 0) {
    throw new RangeError(`Cannot encode frame: invalid payload length ${payloadLength}`);
  }
  if (payloadLength + FRAME_TRAILER_SIZE > buffer.length) {
    throw new RangeError(
      `Cannot encode frame: buffer of ${buffer.length} bytes cannot hold ${payloadLength} payload bytes and the trailer`,
    );
  }
  const flags = checkHeader(frame, payloadLength);
  writeTrailer(buffer, payloadLength, flags, frame.streamId);
  return buffer.subarray(0, payloadLength + FRAME_TRAILER_SIZE);
}
