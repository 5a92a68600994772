/**
 * One stream of a tunnel (PROTO-17…PROTO-19): a bounded queue of received frames read one at a
 * time with a per-read timeout or signal, a `send()` that waits while the connection is
 * congested or (protocol v2) the stream is out of credit, and three ways to end: `finish()` (normal end, no message, PROTO-18), `abort()` (ABRT
 * sent once) and the peer's ABRT (shut without an answer). The tunnel layer does not interpret END
 * bits: in an upgrade, RAW messages follow the request's BODY|END (PROTO-25), so only the caller
 * knows when a direction is over. Streams are created by a `Mux`, never directly.
 * @module
 */

import { classifyFlags, describeFlags, type Frame, MAX_PAYLOAD_SIZE } from "../protocol/mod.ts";
import {
  type FlowViolation,
  QUEUE_ENTRY_OVERHEAD,
  type StreamFlow,
  type WindowState,
} from "./flow.ts";

/**
 * How a stream ended: `finished` by `finish()`, `aborted` by `abort()`, `peer-aborted` by an ABRT
 * from the peer, `overflow` when its receive queue passed its bound (ABRT sent), `disconnected`
 * when the tunnel closed (DOM-11, no ABRT).
 */
export type StreamEnd = "finished" | "aborted" | "peer-aborted" | "overflow" | "disconnected";

/** A stream has ended; `send()` and `read()` reject with it, and the stream's signal carries it. */
export class StreamClosedError extends Error {
  /** The stream's id. */
  readonly streamId: number;
  /** How it ended. */
  readonly end: StreamEnd;

  /** Creates the error for stream `streamId` that ended as `end`. */
  constructor(message: string, streamId: number, end: StreamEnd) {
    super(message);
    this.name = "StreamClosedError";
    this.streamId = streamId;
    this.end = end;
  }
}

/** Options of {@linkcode Stream.read}. */
export interface ReadOptions {
  /** Abandons the read (not the stream) with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * Abandons the read (not the stream) with a `DOMException` named `TimeoutError` when no
   * message arrives within this many milliseconds: groom's `write_timeout` and `read_timeout`
   * are per message (SRV-14, AGT-3). A message arriving later stays queued.
   */
  readonly timeoutMs?: number;
}

/** What a stream needs of its mux. Internal to the tunnel folder. */
export interface StreamHost {
  /** Forgets the ended stream; sends ABRT first when `sendAbort`. */
  release(stream: Stream, sendAbort: boolean): void;
  /** The stream's queued cost changed by `delta` (tunnel-wide accounting). */
  queued(delta: number): void;
}

/** The mux's handle on a stream. Internal to the tunnel folder. */
export interface StreamControl {
  /** Queues or hands over a received frame; the violation when flow control refuses it. */
  deliver(frame: Frame): FlowViolation | undefined;
  /** The peer granted credit (v2 window update); the violation when that is not allowed. */
  granted(increment: number): FlowViolation | undefined;
  /** The peer sent ABRT: end without answering; frames already queued stay readable. */
  peerAborted(): void;
  /** Ends the stream from inside the tunnel (`overflow` sends ABRT, `disconnected` does not). */
  shut(end: "overflow" | "disconnected", detail: string): void;
}

interface PendingRead {
  settle(frame: Frame | null): void;
  fail(error: unknown): void;
}

/** A FIFO of frames with O(1) removal at the head. */
class FrameQueue {
  #items: (Frame | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(frame: Frame): void {
    this.#items.push(frame);
  }

  shift(): Frame | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const frame = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return frame;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** One stream of a tunnel. Obtain it from `Mux.open()` (server) or `onStream` (agent). */
export class Stream {
  /** The stream id (PROTO-17). */
  readonly id: number;
  readonly #host: StreamHost;
  readonly #flow: StreamFlow;
  readonly #controller = new AbortController();
  readonly #queue = new FrameQueue();
  #readers: PendingRead[] = [];
  #queuedBytes = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #end: StreamEnd | undefined;
  #error: StreamClosedError | undefined;

  private constructor(id: number, host: StreamHost, flow: StreamFlow) {
    this.id = id;
    this.#host = host;
    this.#flow = flow;
  }

  /** Creates a stream and the mux's handle on it. Internal to the tunnel folder. */
  static create(
    id: number,
    host: StreamHost,
    flow: StreamFlow,
  ): { stream: Stream; control: StreamControl } {
    const stream = new Stream(id, host, flow);
    const control: StreamControl = {
      deliver: (frame) => stream.#deliver(frame),
      granted: (increment) =>
        stream.#end === undefined ? stream.#flow.granted(increment) : undefined,
      peerAborted: () => stream.#peerAborted(),
      shut: (end, detail) => stream.#shut(end, detail, end === "overflow"),
    };
    return { stream, control };
  }

  /** Aborted with a {@linkcode StreamClosedError} when the stream ends, for any reason. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** How the stream ended, or `undefined` while it is open. */
  get ended(): StreamEnd | undefined {
    return this.#end;
  }

  /** Payload bytes received on this stream (for access logs). */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Payload bytes sent on this stream (handed to the transport; for access logs). */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Cost of the frames received and not yet read (payload plus per-message overhead). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The stream's credit counters (protocol v2 windows), for tests and diagnostics. */
  get window(): WindowState {
    return this.#flow.state;
  }

  /**
   * The next frame received on this stream, in order. Resolves `null` once the stream is
   * finished, or once the peer aborted it and the frames that came before the ABRT were read
   * (PROTO-26: a raw session's last RAW|END precedes its ABRT). Rejects with
   * {@linkcode StreamClosedError} when it was aborted here, overflowed or its tunnel closed
   * (queued frames are then dropped), and per {@linkcode ReadOptions} on timeout or signal.
   * Never returns ABRT frames.
   */
  read(options: ReadOptions = {}): Promise<Frame | null> {
    const frame = this.#take();
    if (frame !== undefined) return Promise.resolve(frame);
    if (this.#end !== undefined) return this.#endResult();
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<Frame | null>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const reader: PendingRead = {
      settle: (frame) => {
        cleanup();
        resolve(frame);
      },
      fail: (error) => {
        cleanup();
        reject(error);
      },
    };
    const drop = (error: unknown): void => {
      this.#readers = this.#readers.filter((other) => other !== reader);
      reader.fail(error);
    };
    const onAbort = (): void => drop(signal?.reason);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        drop(
          new DOMException(
            `Stream ${this.id} received no message within ${timeoutMs} ms`,
            "TimeoutError",
          ),
        );
      }, Math.max(0, timeoutMs));
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#readers.push(reader);
    return promise;
  }

  /**
   * Sends one message on this stream. `flags` is a legal combination of PROTO-16 other than
   * ABRT (use {@linkcode abort}); `payload` at most `MAX_PAYLOAD_SIZE` bytes. In protocol v2 a
   * BODY or RAW payload above `MAX_READ_PAYLOAD` is split into several messages (END on the last
   * only), which keeps every message within a window; v1 sends it as one. Waits while the
   * connection is congested or the stream lacks credit (back-pressure); the payload must not
   * change until the promise settles. Rejects with {@linkcode StreamClosedError} when the stream ends first,
   * and with `RangeError` for illegal flags or an oversized payload.
   */
  async send(flags: number, payload: Uint8Array): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    const kind = classifyFlags(flags);
    if (kind === undefined || kind.kind === "abort") {
      throw new RangeError(
        `Cannot send on stream ${this.id}: flags ${describeFlags(flags)} are not a legal ${
          kind === undefined ? "combination" : "message here; use abort()"
        }`,
      );
    }
    if (payload.length > MAX_PAYLOAD_SIZE) {
      throw new RangeError(
        `Cannot send on stream ${this.id}: payload of ${payload.length} bytes exceeds the limit of ${MAX_PAYLOAD_SIZE} bytes`,
      );
    }
    const signal = this.#controller.signal;
    const limit = this.#flow.maxDataPayload;
    if ((kind.kind === "body" || kind.kind === "raw") && payload.length > limit) {
      // Every piece is queued now, so the pieces stay together and in order.
      const pieces: Promise<void>[] = [];
      for (let offset = 0; offset < payload.length; offset += limit) {
        const last = offset + limit >= payload.length;
        pieces.push(this.#flow.send({
          kind: kind.kind,
          end: last && kind.end,
          streamId: this.id,
          payload: payload.subarray(offset, offset + limit),
        }, signal));
      }
      await Promise.all(pieces);
    } else {
      await this.#flow.send({ ...kind, streamId: this.id, payload } as Frame, signal);
    }
    this.#bytesOut += payload.length;
  }

  /**
   * Ends the stream abnormally: sends ABRT once (PROTO-27), forgets the stream, drops queued
   * frames, rejects pending reads and sends. Does nothing once the stream has ended.
   */
  abort(reason = "aborted"): void {
    this.#shut("aborted", reason, true);
  }

  /**
   * Ends the stream normally, without any message (PROTO-18): forgets it, drops queued frames,
   * resolves pending reads with `null` and rejects sends still waiting, so await your sends
   * first. Does nothing once the stream has ended.
   */
  finish(): void {
    this.#shut("finished", "", false);
  }

  /** Aborts the stream unless it has ended (`using stream = mux.open()`). */
  [Symbol.dispose](): void {
    this.abort("disposed");
  }

  #take(): Frame | undefined {
    const frame = this.#queue.shift();
    if (frame === undefined) return undefined;
    const cost = frame.payload.length + QUEUE_ENTRY_OVERHEAD;
    this.#queuedBytes -= cost;
    // After a peer abort the tunnel and the flow control have let go of the stream.
    if (this.#end === undefined) {
      this.#host.queued(-cost);
      this.#flow.consumed(frame);
    }
    return frame;
  }

  #endResult(): Promise<Frame | null> {
    return this.#end === "finished" || this.#end === "peer-aborted"
      ? Promise.resolve(null)
      : Promise.reject(this.#error);
  }

  #deliver(frame: Frame): FlowViolation | undefined {
    const reader = this.#readers[0];
    const cost = frame.payload.length + QUEUE_ENTRY_OVERHEAD;
    const violation = this.#flow.admit(
      frame,
      reader === undefined ? this.#queuedBytes + cost : 0,
    );
    if (violation !== undefined) return violation;
    this.#bytesIn += frame.payload.length;
    if (reader !== undefined) {
      this.#readers.shift();
      this.#flow.consumed(frame);
      reader.settle(frame);
      return undefined;
    }
    this.#queue.push(frame);
    this.#queuedBytes += cost;
    this.#host.queued(cost);
    return undefined;
  }

  #peerAborted(): void {
    if (this.#end !== undefined) return;
    this.#end = "peer-aborted";
    this.#error = new StreamClosedError(
      `Stream ${this.id} was aborted by the peer`,
      this.id,
      "peer-aborted",
    );
    this.#host.queued(-this.#queuedBytes);
    this.#flow.release();
    this.#host.release(this, false);
    // Readers only wait on an empty queue, so nothing is left to read for them.
    for (const reader of this.#readers.splice(0)) reader.settle(null);
    this.#controller.abort(this.#error);
  }

  #shut(end: Exclude<StreamEnd, "peer-aborted">, detail: string, sendAbort: boolean): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    this.#error = closedError(this.id, end, detail);
    this.#queue.clear();
    this.#host.queued(-this.#queuedBytes);
    this.#queuedBytes = 0;
    this.#flow.release();
    this.#host.release(this, sendAbort);
    for (const reader of this.#readers.splice(0)) {
      if (end === "finished") reader.settle(null);
      else reader.fail(this.#error);
    }
    this.#controller.abort(this.#error);
  }
}

/**
 * The error a stream that ended as `end` rejects with. A normal finish is built for every request
 * and its stack says nothing, so it skips Error's constructor (stack capture, ~3 % of the busy CPU
 * of both server and agent in the bench's profiles, issue 7); it is still a StreamClosedError.
 */
function closedError(id: number, end: StreamEnd, detail: string): StreamClosedError {
  if (end !== "finished") return new StreamClosedError(describeEnd(id, end, detail), id, end);
  const error = Object.create(StreamClosedError.prototype) as StreamClosedError;
  return Object.assign(error, {
    name: "StreamClosedError",
    message: describeEnd(id, end, detail),
    streamId: id,
    end,
  });
}

function describeEnd(id: number, end: StreamEnd, detail: string): string {
  const because = detail === "" ? "" : `: ${detail}`;
  switch (end) {
    case "finished":
      return `Stream ${id} is finished`;
    case "aborted":
      return `Stream ${id} was aborted${because}`;
    case "peer-aborted":
      return `Stream ${id} was aborted by the peer`;
    case "overflow":
      return `Stream ${id} was aborted${because}`;
    case "disconnected":
      return `Stream ${id} was shut${because}`;
  }
}
