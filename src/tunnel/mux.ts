/**
 * Multiplexes one tunnel transport into streams (PROTO-15…PROTO-19), the same code on both
 * sides: the server allocates stream ids from a counter its domain owns (PROTO-17) and caps them
 * at `concurrency` (SRV-11); the agent creates a stream for each START it does not know (AGT-2).
 * Dispatch never blocks: each received message is queued on its stream at once. The negotiated
 * sub-protocol picks the flow control (`flow.ts`): in protocol v2 window updates feed the streams'
 * credit and a peer that sends beyond its credit gets the stream aborted; in v1 a stream whose
 * reader lags past its bound is aborted instead of stalling the others (ODD-7, ODD-43). Peer input
 * never throws: malformed messages and messages for unknown streams are counted, reported through
 * a rate-limited hook and dropped (PROTO-10). Closing the tunnel shuts every stream without ABRT
 * (DOM-11).
 * @module
 */

import {
  decodeFrame,
  type Frame,
  FrameError,
  type FrameErrorReason,
  type FrameKind,
  MAX_STREAM_ID,
  MAX_WINDOW_INCREMENT,
  type ProtocolVersion,
  protocolVersion,
  type TunnelFrame,
} from "../protocol/mod.ts";
import {
  checkTunnelLimits,
  createFlowControl,
  DEFAULT_TUNNEL_LIMITS,
  type FlowControl,
  type FlowViolation,
  type TunnelLimits,
} from "./flow.ts";
import { Stream, type StreamControl, type StreamEnd, type StreamHost } from "./stream.ts";
import type { CloseInfo, MessageTransport } from "./transport.ts";

/**
 * At most this many reports of one kind of bad peer message (malformed, unknown stream) per
 * {@linkcode REPORT_INTERVAL_MS}: enough to diagnose, while a flood cannot flood the log too.
 */
export const REPORT_BURST = 10;

/** Length of a reporting window, see {@linkcode REPORT_BURST}. */
export const REPORT_INTERVAL_MS = 10_000;

/**
 * PROTO-17's stream id counter: the last id handed out. The domain owns it, so it survives
 * reconnections; a fresh counter is `{ last: 0 }` (first id 1).
 */
export interface StreamIdCounter {
  /** The last id handed out, 0 to `MAX_STREAM_ID`. */
  last: number;
}

/** Something worth a log line; the caller adds `mode` and `domain` (LOG-10). */
export type TunnelEvent =
  | {
    /** A stream was created (LOG-10 DEBUG `activate`). */
    readonly event: "stream";
    readonly action: "activate";
    readonly stream: number;
  }
  | {
    /** A stream ended (LOG-10 DEBUG `shutdown`). */
    readonly event: "stream";
    readonly action: "shutdown";
    readonly stream: number;
    /** How it ended. */
    readonly end: StreamEnd;
    /** Payload bytes received. */
    readonly bytesIn: number;
    /** Payload bytes sent. */
    readonly bytesOut: number;
  }
  | {
    /** A message for a stream this side does not know was dropped (PROTO-17). */
    readonly event: "dropped";
    readonly stream: number;
    readonly kind: FrameKind;
    /** Payload length. */
    readonly size: number;
    /** Messages dropped so far on this tunnel. */
    readonly total: number;
    /** Reports of this kind left out since the previous one (rate limit). */
    readonly suppressed: number;
  }
  | {
    /** A message that is not a tunnel frame was dropped (PROTO-10). */
    readonly event: "malformed";
    readonly reason: FrameErrorReason;
    /** The decoder's message. */
    readonly error: string;
    /** Message length. */
    readonly size: number;
    /** Malformed messages so far on this tunnel. */
    readonly total: number;
    /** Reports of this kind left out since the previous one (rate limit). */
    readonly suppressed: number;
  }
  | {
    /**
     * A stream was aborted because its peer broke the flow control: its receive queue passed
     * its bound (v1, ODD-7), the tunnel's queues passed theirs, or (v2) the peer sent beyond its
     * credit or was granted more than 2^31 − 1 bytes.
     */
    readonly event: "overflow";
    readonly stream: number;
    /** Bytes the stream had queued. */
    readonly queuedBytes: number;
    /**
     * The bound that was passed: the stream's queue (v1), the whole tunnel's queues, the
     * stream's receive window (v2) or the largest credit (v2).
     */
    readonly scope: "tunnel" | FlowViolation;
    readonly limit: number;
  }
  | {
    /** The `onStream` callback threw; the stream was aborted. */
    readonly event: "callback-error";
    readonly stream: number;
    readonly error: unknown;
  };

/** Counters of a tunnel's peer trouble. */
export interface MuxStats {
  /** Messages dropped because their stream is unknown. */
  readonly dropped: number;
  /** Messages dropped because they are not tunnel frames. */
  readonly malformed: number;
  /** Streams aborted because their receive queue passed a bound. */
  readonly overflows: number;
}

/** Options of {@linkcode Mux}. */
export interface MuxOptions {
  /** `server` allocates ids and opens streams; `agent` accepts them. */
  readonly role: "server" | "agent";
  /** Server: the domain's id counter (PROTO-17); a fresh one when omitted. */
  readonly counter?: StreamIdCounter;
  /** Server: most streams open at once (SRV-11); unlimited when omitted. */
  readonly concurrency?: number;
  /** Agent (required there): receives each stream the server starts, its HEAD already queued. */
  readonly onStream?: (stream: Stream) => void;
  /** Receives events worth logging; must not throw (a throw is ignored). */
  readonly onEvent?: (event: TunnelEvent) => void;
  /** Overrides of the production limits (tests use tiny ones). */
  readonly limits?: Partial<TunnelLimits>;
  /** Clock for the report rate limit; `Date.now` by default. */
  readonly now?: () => number;
}

/** The tunnel has closed; `Mux.open()` throws it and the mux's signal carries it. */
export class TunnelClosedError extends Error {
  /** Why the transport ended. */
  readonly info: CloseInfo;

  /** Creates the error from the transport's close information. */
  constructor(info: CloseInfo) {
    super(`Tunnel closed: ${info.reason}`, info.error === undefined ? {} : { cause: info.error });
    this.name = "TunnelClosedError";
    this.info = info;
  }
}

/** Lets at most `REPORT_BURST` reports through per window and counts the rest. */
class ReportLimiter {
  readonly #now: () => number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #inWindow = 0;
  #suppressed = 0;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** The number of reports left out since the last one when one may go out now, else undefined. */
  take(): number | undefined {
    const now = this.#now();
    if (now - this.#windowStart >= REPORT_INTERVAL_MS) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= REPORT_BURST) {
      this.#suppressed++;
      return undefined;
    }
    this.#inWindow++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}

interface Entry {
  readonly stream: Stream;
  readonly control: StreamControl;
}

const EMPTY = new Uint8Array(0);

/** One tunnel: a transport multiplexed into streams. */
export class Mux {
  /** Which side of the tunnel this is. */
  readonly role: "server" | "agent";
  /** The transport's negotiated sub-protocol. */
  readonly protocol: string;
  /** The protocol version in force: 2 for `groom2`, else 1. */
  readonly version: ProtocolVersion;
  /** Server: most streams open at once (SRV-11); may change on domain reload (DOM-10). */
  concurrency: number;
  readonly #transport: MessageTransport;
  readonly #flow: FlowControl;
  readonly #limits: TunnelLimits;
  readonly #counter: StreamIdCounter;
  readonly #onStream: ((stream: Stream) => void) | undefined;
  readonly #onEvent: ((event: TunnelEvent) => void) | undefined;
  readonly #streams = new Map<number, Entry>();
  readonly #host: StreamHost;
  readonly #controller = new AbortController();
  readonly #closed = Promise.withResolvers<CloseInfo>();
  readonly #droppedReports: ReportLimiter;
  readonly #malformedReports: ReportLimiter;
  #closeError: TunnelClosedError | undefined;
  #queuedBytes = 0;
  #dropped = 0;
  #malformed = 0;
  #overflows = 0;

  /**
   * Takes over `transport` (its `onMessage` and `onClose`); the protocol version follows its
   * sub-protocol. Throws `TypeError` for an agent without `onStream` and `RangeError` for
   * inconsistent limits (lowWater above highWater, a queue bound not positive, windows out of
   * order).
   */
  constructor(transport: MessageTransport, options: MuxOptions) {
    this.role = options.role;
    this.protocol = transport.protocol;
    this.version = protocolVersion(transport.protocol);
    this.concurrency = options.concurrency ?? Number.POSITIVE_INFINITY;
    this.#transport = transport;
    this.#limits = { ...DEFAULT_TUNNEL_LIMITS, ...options.limits };
    checkTunnelLimits(this.#limits);
    if (this.role === "agent" && options.onStream === undefined) {
      throw new TypeError("Cannot create agent tunnel: onStream is required");
    }
    this.#counter = options.counter ?? { last: 0 };
    this.#onStream = options.onStream;
    this.#onEvent = options.onEvent;
    const now = options.now ?? Date.now;
    this.#droppedReports = new ReportLimiter(now);
    this.#malformedReports = new ReportLimiter(now);
    this.#flow = createFlowControl(transport, this.#limits, this.version);
    this.#host = {
      release: (stream, sendAbort) => this.#release(stream, sendAbort),
      queued: (delta) => {
        this.#queuedBytes += delta;
      },
    };
    transport.onMessage = (message) => this.#receive(message);
    transport.onClose = (info) => this.#shutdown(info, false);
  }

  /** Aborted with a {@linkcode TunnelClosedError} when the tunnel closes. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Resolves (never rejects) when the tunnel has closed, locally or not. */
  get closed(): Promise<CloseInfo> {
    return this.#closed.promise;
  }

  /** Number of open streams. */
  get size(): number {
    return this.#streams.size;
  }

  /** Counters of peer trouble so far. */
  get stats(): MuxStats {
    return { dropped: this.#dropped, malformed: this.#malformed, overflows: this.#overflows };
  }

  /** The open stream with this id. */
  get(id: number): Stream | undefined {
    return this.#streams.get(id)?.stream;
  }

  /** The open streams, oldest first (diagnostics and tests: their windows and queues). */
  streams(): Stream[] {
    return [...this.#streams.values()].map((entry) => entry.stream);
  }

  /**
   * Server: opens a stream with the next free id of the domain's counter (PROTO-17: pre-incremented
   * modulo 2^24, skipping ids in use), or returns `undefined` when `concurrency` streams are
   * already open (the caller answers 429, SRV-11). The caller then sends HEAD|START. Throws
   * `TypeError` on the agent and {@linkcode TunnelClosedError} once the tunnel has closed.
   */
  open(): Stream | undefined {
    if (this.role !== "server") {
      throw new TypeError("Cannot open a stream: only the server allocates stream ids (PROTO-17)");
    }
    if (this.#closeError !== undefined) throw this.#closeError;
    if (this.#streams.size >= this.concurrency) return undefined;
    const id = this.#allocate();
    return id === undefined ? undefined : this.#add(id).stream;
  }

  /**
   * Closes the tunnel deliberately (PROTO-14: the transport's close without status code) and
   * shuts every stream without ABRT (DOM-11): their pending reads and sends reject at once with
   * a `StreamClosedError` whose `end` is `disconnected`. Idempotent.
   */
  close(reason = "shut"): void {
    this.#shutdown({ reason }, true);
  }

  /** Closes the tunnel (`using mux = new Mux(...)`). */
  [Symbol.dispose](): void {
    this.close("disposed");
  }

  #allocate(): number | undefined {
    const counter = this.#counter;
    for (let tries = 0; tries <= MAX_STREAM_ID; tries++) {
      // MAX_STREAM_ID is 2^24 - 1, so the mask is "modulo 2^24" (and maps garbage to 0).
      counter.last = (counter.last + 1) & MAX_STREAM_ID;
      if (!this.#streams.has(counter.last)) return counter.last;
    }
    return undefined;
  }

  #add(id: number): Entry {
    const entry = Stream.create(id, this.#host, this.#flow.openStream(id));
    this.#streams.set(id, entry);
    this.#emit({ event: "stream", action: "activate", stream: id });
    return entry;
  }

  #release(stream: Stream, sendAbort: boolean): void {
    if (this.#streams.get(stream.id)?.stream === stream) this.#streams.delete(stream.id);
    if (sendAbort && this.#closeError === undefined) {
      this.#flow.sendNow({ kind: "abort", streamId: stream.id, payload: EMPTY });
    }
    this.#emit({
      event: "stream",
      action: "shutdown",
      stream: stream.id,
      end: stream.ended ?? "finished",
      bytesIn: stream.bytesIn,
      bytesOut: stream.bytesOut,
    });
  }

  #receive(message: Uint8Array): void {
    if (this.#closeError !== undefined) return;
    let frame: TunnelFrame;
    try {
      frame = decodeFrame(message, this.version);
    } catch (error) {
      this.#reportMalformed(error, message.length);
      return;
    }
    const entry = this.#streams.get(frame.streamId);
    if (frame.kind === "window") {
      // A grant for a stream that ended here is the normal race with its end: ignored.
      const violation = entry?.control.granted(frame.increment);
      if (entry !== undefined && violation !== undefined) this.#overflow(entry, violation);
      return;
    }
    if (entry === undefined) {
      if (frame.kind === "head" && this.role === "agent") this.#accept(frame);
      else this.#reportDropped(frame);
      return;
    }
    if (frame.kind === "abort") {
      entry.control.peerAborted();
      return;
    }
    this.#deliver(entry, frame);
  }

  #deliver(entry: Entry, frame: Frame): void {
    const violation = entry.control.deliver(frame);
    if (violation !== undefined) {
      this.#overflow(entry, violation);
      return;
    }
    while (this.#queuedBytes > this.#limits.maxTunnelQueueBytes) {
      let largest: Entry | undefined;
      for (const candidate of this.#streams.values()) {
        if (largest === undefined || candidate.stream.queuedBytes > largest.stream.queuedBytes) {
          largest = candidate;
        }
      }
      if (largest === undefined) break;
      this.#overflow(largest, "tunnel");
    }
  }

  #accept(frame: Frame): void {
    const entry = this.#add(frame.streamId);
    this.#deliver(entry, frame);
    if (entry.stream.ended !== undefined) return;
    try {
      this.#onStream?.(entry.stream);
    } catch (error) {
      this.#emit({ event: "callback-error", stream: entry.stream.id, error });
      entry.stream.abort("stream handler failed");
    }
  }

  #overflow(entry: Entry, scope: "tunnel" | FlowViolation): void {
    const limit = scope === "tunnel"
      ? this.#limits.maxTunnelQueueBytes
      : scope === "stream"
      ? this.#limits.maxStreamQueueBytes
      : scope === "window"
      ? entry.stream.window.receiveWindow
      : MAX_WINDOW_INCREMENT;
    this.#overflows++;
    this.#emit({
      event: "overflow",
      stream: entry.stream.id,
      queuedBytes: entry.stream.queuedBytes,
      scope,
      limit,
    });
    const detail = scope === "window"
      ? `the peer sent beyond its credit (window of ${limit} bytes)`
      : scope === "credit"
      ? `the peer granted more than ${limit} bytes of credit`
      : `more than ${limit} bytes queued (${scope})`;
    entry.control.shut("overflow", detail);
  }

  #reportDropped(frame: Frame): void {
    this.#dropped++;
    const suppressed = this.#droppedReports.take();
    if (suppressed === undefined) return;
    this.#emit({
      event: "dropped",
      stream: frame.streamId,
      kind: frame.kind,
      size: frame.payload.length,
      total: this.#dropped,
      suppressed,
    });
  }

  #reportMalformed(error: unknown, size: number): void {
    this.#malformed++;
    const suppressed = this.#malformedReports.take();
    if (suppressed === undefined) return;
    // decodeFrame throws only FrameError; anything else is reported as a short message.
    const frameError = error instanceof FrameError ? error : undefined;
    this.#emit({
      event: "malformed",
      reason: frameError?.reason ?? "short",
      error: frameError?.message ?? String(error),
      size,
      total: this.#malformed,
      suppressed,
    });
  }

  #emit(event: TunnelEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A logging hook must not break the tunnel.
    }
  }

  #shutdown(info: CloseInfo, closeTransport: boolean): void {
    if (this.#closeError !== undefined) return;
    const error = new TunnelClosedError(info);
    this.#closeError = error;
    this.#transport.onMessage = null;
    this.#transport.onClose = null;
    const detail = info.reason === "" ? "tunnel closed" : `tunnel closed (${info.reason})`;
    for (const { control } of [...this.#streams.values()]) control.shut("disconnected", detail);
    this.#flow.close(error);
    this.#streams.clear();
    this.#queuedBytes = 0;
    if (closeTransport) {
      try {
        this.#transport.close();
      } catch {
        // Already closed.
      }
    }
    this.#controller.abort(error);
    this.#closed.resolve(info);
  }
}
