/**
 * The tunnel message layout, and the only code that knows it (PROTO-15/16): every websocket
 * binary message is `payload ‖ flags (1 byte) ‖ stream id (3 bytes, big-endian)`. Decoding
 * classifies the flags byte into a typed {@linkcode Frame} whose `kind` discriminant (head, body,
 * raw, abort) is what callers switch on; they never test bits. A future protocol version (v2,
 * negotiated through a second websocket sub-protocol) adds its control frames as new kinds in
 * {@linkcode classifyFlags} and {@linkcode frameFlags} here, without touching callers.
 * @module
 */

/** Flag bits of the trailer's flags byte (PROTO-16). Bit 0x10 is unused. */
export const Flag = {
  /** Payload is an HTTP/1.x head (request head server→agent, response head agent→server). */
  Head: 0x01,
  /** Payload is body bytes (may be empty). */
  Body: 0x02,
  /** Payload is raw bytes of an upgraded (101) connection. */
  Raw: 0x04,
  /** Abort the stream; the payload is empty. */
  Abort: 0x08,
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

/** Kinds of frame; a protocol v2 adds its control frames here. */
export type FrameKind = "head" | "body" | "raw" | "abort";

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

/** One tunnel message, decoded. */
export type Frame = HeadFrame | BodyFrame | RawFrame | AbortFrame;

/** A frame without its payload: what {@linkcode encodeFrameInto} needs besides the bytes. */
export type FrameHeader =
  | Omit<HeadFrame, "payload">
  | Omit<BodyFrame, "payload">
  | Omit<RawFrame, "payload">
  | Omit<AbortFrame, "payload">;

/** Why {@linkcode decodeFrame} refused a message. */
export type FrameErrorReason =
  | "short"
  | "oversize"
  | "unknown-flags"
  | "illegal-flags"
  | "abort-payload";

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

/** Mask of every defined flag bit; anything else (0x10) is unknown. */
const KNOWN_FLAGS = Flag.Head | Flag.Body | Flag.Raw | Flag.Abort | Flag.Upgrade | Flag.Start |
  Flag.End;

/** The part of a frame the flags byte determines. */
export type FrameClass =
  | { readonly kind: "head"; readonly upgrade: boolean; readonly end: boolean }
  | { readonly kind: "body"; readonly end: boolean }
  | { readonly kind: "raw"; readonly end: boolean }
  | { readonly kind: "abort" };

/**
 * Classifies a flags byte, or returns `undefined` when the combination is not legal. The legal
 * set is what groom 1.3 emits (PROTO-16, observed): `0x41` HEAD|START, `0x61` HEAD|START|UPGD,
 * `0xC1` HEAD|START|END, `0x02` BODY, `0x82` BODY|END, `0x04` RAW, `0x84` RAW|END, `0x08` ABRT.
 * Direction rules (UPGD and END heads only from the agent) belong to the stream state machine.
 */
export function classifyFlags(flags: number): FrameClass | undefined {
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
  }
}

/** Names of the flag bits, in bit order, as the spec and the logs spell them. */
const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [Flag.Head, "HEAD"],
  [Flag.Body, "BODY"],
  [Flag.Raw, "RAW"],
  [Flag.Abort, "ABRT"],
  [0x10, "0x10"],
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
export function describeFrame(frame: Frame): string {
  return `${describeFlags(frameFlags(frame))} id=${frame.streamId} len=${frame.payload.length}`;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/**
 * Decodes one websocket binary message. The returned payload is a zero-copy view into
 * `message`. Throws {@linkcode FrameError} for a message shorter than the trailer (PROTO-15),
 * larger than {@linkcode MAX_MESSAGE_SIZE} (PROTO-12), with unknown flag bits, with a flag
 * combination outside the legal set of {@linkcode classifyFlags}, or an ABRT with a payload.
 */
export function decodeFrame(message: Uint8Array): Frame {
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
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new FrameError(
      `Cannot decode frame: unknown flag bits ${hex(flags & ~KNOWN_FLAGS)} in flags ${
        hex(flags)
      } (stream ${streamId})`,
      "unknown-flags",
    );
  }
  const kind = classifyFlags(flags);
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
  return { ...kind, streamId, payload: message.subarray(0, at) };
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
  if (classifyFlags(flags) === undefined) {
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
 * Encodes a frame into a new message with a single allocation. Throws `RangeError` for a stream
 * id outside 0..{@linkcode MAX_STREAM_ID}, an oversized payload, an upgrade head with END, or an
 * ABRT with a payload (these are bugs of the caller, not peer input).
 */
export function encodeFrame(frame: Frame): Uint8Array {
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
 * Throws `RangeError` like {@linkcode encodeFrame}, or when the trailer does not fit.
 */
export function encodeFrameInto(
  buffer: Uint8Array,
  frame: FrameHeader & { readonly payloadLength: number },
): Uint8Array {
  const { payloadLength } = frame;
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
