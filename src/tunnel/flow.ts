/**
 * Flow control of a tunnel, behind two small interfaces so that protocol v2 (issue 6: per-stream
 * credit windows, a connection budget and a fair scheduler, negotiated as sub-protocol `groom2`)
 * can be added here without touching `stream.ts`, `mux.ts` or their callers:
 * {@linkcode StreamFlow} answers "may this stream send n bytes?", "may n more received bytes be
 * queued?" and hears "the reader consumed n bytes"; {@linkcode SendScheduler} orders messages onto
 * the connection. Protocol v1 (`groom`) has no flow control on the wire (PROTO-19): its streams
 * may always send, a stream whose receive queue passes a bound is aborted instead of stalling the
 * tunnel (ODD-7, ODD-43), and the connection is paced by the transport's `bufferedAmount`.
 * @module
 */

import { encodeFrame, type Frame } from "../protocol/mod.ts";
import type { MessageTransport } from "./transport.ts";

/**
 * Senders pause once the socket holds more than this many unsent bytes. Deno's `send()` queues
 * without limit (a stuck peer grew a server by 300 MB, architecture note §7), so the tunnel must
 * stop somewhere; 16 KiB messages reached 0.85–1.05 GiB/s with an 8 MiB window against
 * 440 MiB/s with 1 MiB (§7), so the window is 8 MiB: the smallest size at full speed.
 */
export const HIGH_WATER = 8 * 1024 * 1024;

/**
 * Paused senders resume once the socket is down to this many unsent bytes: half the window, so
 * the socket never runs dry while a sender wakes up (4 MiB last about 4 ms at the measured
 * 1 GiB/s, longer than the transport's drain poll), and senders do not wake for every message.
 */
export const LOW_WATER = 4 * 1024 * 1024;

/**
 * Largest number of received bytes (plus {@linkcode QUEUE_ENTRY_OVERHEAD} per message) queued for
 * one stream whose reader lags. Protocol v1 has no flow control, so a lagging stream can only be
 * bounded or allowed to stall the whole tunnel (groom 1.3's choice, ODD-7); past this bound the
 * stream is aborted. 8 MiB is one peer send window ({@linkcode HIGH_WATER}: what a peer can have
 * in flight for a single stream) and twice the largest message (4 MiB, PROTO-12), so a reader
 * that pauses briefly (a client's TCP window, a GC pause) survives a full window of burst; with
 * groom's default concurrency of 20 it bounds a tunnel's worst case at 160 MiB, and
 * {@linkcode MAX_TUNNEL_QUEUE_BYTES} bounds it whatever the concurrency.
 */
export const MAX_STREAM_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Largest number of queued received bytes over all streams of one tunnel. `concurrency` may be
 * up to 1000 (DIR), which would allow 8 GB of stream queues; past 64 MiB (eight full stream
 * queues) the stream holding the most is aborted.
 */
export const MAX_TUNNEL_QUEUE_BYTES = 64 * 1024 * 1024;

/**
 * Bytes charged per queued message on top of its payload, an estimate of what the entry costs in
 * memory (the frame object and payload view, the 4-byte trailer the view keeps alive). Without it
 * a peer could queue millions of empty messages for free.
 */
export const QUEUE_ENTRY_OVERHEAD = 128;

/** The limits a tunnel applies; tests shrink them (the bore `duplex(8)` idea). */
export interface TunnelLimits {
  /** Pause senders above this many unsent bytes ({@linkcode HIGH_WATER}). */
  readonly highWater: number;
  /** Resume them at or below this many ({@linkcode LOW_WATER}). */
  readonly lowWater: number;
  /** Bound of one stream's receive queue ({@linkcode MAX_STREAM_QUEUE_BYTES}). */
  readonly maxStreamQueueBytes: number;
  /** Bound of all receive queues of the tunnel ({@linkcode MAX_TUNNEL_QUEUE_BYTES}). */
  readonly maxTunnelQueueBytes: number;
}

/** The production limits. */
export const DEFAULT_TUNNEL_LIMITS: TunnelLimits = {
  highWater: HIGH_WATER,
  lowWater: LOW_WATER,
  maxStreamQueueBytes: MAX_STREAM_QUEUE_BYTES,
  maxTunnelQueueBytes: MAX_TUNNEL_QUEUE_BYTES,
};

/** Per-stream flow-control state: the decisions a credit window (protocol v2) would make. */
export interface StreamFlow {
  /**
   * Waits until the stream may send `size` payload bytes, or rejects with `signal.reason` when
   * the stream dies first. Returns `undefined` when sending is allowed at once (always in v1),
   * which spares the caller a promise.
   */
  reserve(size: number, signal: AbortSignal): Promise<void> | undefined;
  /** Whether `cost` more received bytes may join the `queued` ones; `false` aborts the stream. */
  admit(cost: number, queued: number): boolean;
  /** The reader took `size` payload bytes off the queue (v2 grants the peer more credit). */
  consumed(size: number): void;
  /** The stream ended; its state can go (v2 forgets the stream's windows). */
  release(): void;
}

/** Orders messages onto the connection and paces them by its budget. */
export interface SendScheduler {
  /**
   * Sends `frame` when the connection budget allows, in call order for each stream. Resolves once
   * the message was handed to the transport; rejects with `signal.reason` if the stream dies
   * first, or with the close reason once the scheduler is closed.
   */
  send(frame: Frame, signal: AbortSignal): Promise<void>;
  /** Sends a control message (ABRT) at once, ahead of queued messages. */
  sendNow(frame: Frame): void;
  /** Rejects every queued message with `reason`; later sends reject too. */
  close(reason: Error): void;
}

/** A tunnel's flow-control strategy, chosen by the negotiated sub-protocol. */
export interface FlowControl {
  /** Creates the state of a new stream. */
  openStream(streamId: number): StreamFlow;
  /**
   * Offers a received frame to the strategy before normal dispatch and returns `true` if it was
   * a flow-control message that it consumed (v2 window updates); v1 has none.
   */
  intercept(frame: Frame): boolean;
  /** The connection's scheduler. */
  readonly scheduler: SendScheduler;
}

/**
 * Creates the flow control for `transport` according to its sub-protocol. Only protocol v1
 * exists; every sub-protocol (including none) gets it until `groom2` is specified (issue 6).
 */
export function createFlowControl(transport: MessageTransport, limits: TunnelLimits): FlowControl {
  const scheduler = new WatermarkScheduler(transport, limits);
  const flow = new BoundedQueueFlow(limits.maxStreamQueueBytes);
  return {
    openStream: () => flow,
    intercept: () => false,
    scheduler,
  };
}

/**
 * Protocol v1 stream flow: sending is always allowed (the peer cannot tell us to stop), and a
 * receive queue is bounded. It holds no per-stream state, so one instance serves every stream.
 */
class BoundedQueueFlow implements StreamFlow {
  readonly #maxQueueBytes: number;

  constructor(maxQueueBytes: number) {
    this.#maxQueueBytes = maxQueueBytes;
  }

  reserve(): undefined {
    return undefined;
  }

  admit(cost: number, queued: number): boolean {
    return queued + cost <= this.#maxQueueBytes;
  }

  consumed(): void {}

  release(): void {}
}

interface PendingSend {
  readonly frame: Frame;
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly onAbort: () => void;
}

/**
 * Protocol v1 scheduler: one FIFO for the whole connection. A message goes out at once while the
 * transport holds at most `highWater` unsent bytes and nothing waits before it; otherwise it
 * queues until the transport drains to `lowWater`. FIFO keeps each stream's messages in order.
 */
class WatermarkScheduler implements SendScheduler {
  readonly #transport: MessageTransport;
  readonly #highWater: number;
  readonly #lowWater: number;
  readonly #queue: PendingSend[] = [];
  #pumping = false;
  #closed: Error | undefined;

  constructor(transport: MessageTransport, limits: TunnelLimits) {
    this.#transport = transport;
    this.#highWater = limits.highWater;
    this.#lowWater = limits.lowWater;
  }

  send(frame: Frame, signal: AbortSignal): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#queue.length === 0 && this.#transport.bufferedAmount <= this.#highWater) {
      try {
        this.#transmit(frame);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve();
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onAbort = (): void => {
      const at = this.#queue.indexOf(entry);
      if (at >= 0) this.#queue.splice(at, 1);
      reject(signal.reason);
    };
    const entry: PendingSend = { frame, signal, resolve, reject, onAbort };
    signal.addEventListener("abort", onAbort, { once: true });
    this.#queue.push(entry);
    if (!this.#pumping) void this.#pump();
    return promise;
  }

  sendNow(frame: Frame): void {
    if (this.#closed === undefined) this.#transmit(frame);
  }

  close(reason: Error): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    for (const entry of this.#queue.splice(0)) {
      entry.signal.removeEventListener("abort", entry.onAbort);
      entry.reject(reason);
    }
  }

  #transmit(frame: Frame): void {
    this.#transport.send(encodeFrame(frame));
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && this.#closed === undefined) {
        if (this.#transport.bufferedAmount > this.#highWater) {
          await this.#transport.drained(this.#lowWater);
          if (this.#closed !== undefined) return;
          // drained() promised at most lowWater; still above highWater means it resolved
          // because the transport closed (only ABRTs bypass this queue, 4 bytes each).
          if (this.#transport.bufferedAmount > this.#highWater) {
            this.close(new Error("Cannot send: the tunnel is closed"));
            return;
          }
        }
        while (this.#queue.length > 0 && this.#transport.bufferedAmount <= this.#highWater) {
          const entry = this.#queue.shift() as PendingSend;
          entry.signal.removeEventListener("abort", entry.onAbort);
          try {
            this.#transmit(entry.frame);
            entry.resolve();
          } catch (error) {
            entry.reject(error);
          }
        }
      }
    } finally {
      this.#pumping = false;
    }
  }
}
