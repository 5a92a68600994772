/**
 * Flow control of a tunnel, chosen by the negotiated sub-protocol (issue 6, `docs/protocol.md`).
 * A {@linkcode StreamFlow} per stream decides when the stream may send, whether a received
 * message is admitted, and hears when the reader consumed one; one {@linkcode FairScheduler} per
 * tunnel puts the streams' messages onto the connection by deficit round robin, paced by the
 * transport's `bufferedAmount` (Deno's `WebSocket.send()` has no back-pressure, architecture note
 * §7), so a bulk transfer cannot starve small streams in either version.
 *
 * - Protocol v1 (`groom`, groom 1.3's) has no flow control on the wire (PROTO-19): a stream may
 *   always send, and a stream whose receive queue passes a bound is aborted instead of stalling
 *   the tunnel (ODD-7, ODD-43).
 * - Protocol v2 (`groom2`) adds per-stream credit windows in both directions: every stream starts
 *   with {@linkcode INITIAL_WINDOW} bytes of credit each way; a message costs its length on the
 *   wire (payload plus the 4-byte trailer; a stream's first HEAD is free), a sender never exceeds
 *   its credit, and the receiver grants credit back (window update frames) as its reader
 *   consumes, once half a window is due. A receiver whose reader keeps up doubles its window at
 *   each grant, up to {@linkcode MAX_WINDOW}, within the tunnel's {@linkcode MAX_TUNNEL_WINDOW}.
 * @module
 */

import {
  encodeFrame,
  type Frame,
  FRAME_TRAILER_SIZE,
  MAX_PAYLOAD_SIZE,
  MAX_READ_PAYLOAD,
  MAX_SENT_MESSAGE_SIZE,
  MAX_WINDOW_INCREMENT,
  type ProtocolVersion,
  type TunnelFrame,
  windowFrame,
} from "../protocol/mod.ts";
import type { MessageTransport } from "./transport.ts";

/**
 * Senders pause once the socket holds more than this many unsent bytes. Deno's `send()` queues
 * without limit (a stuck peer grew a server by 300 MB, architecture note §7), so the tunnel must
 * stop somewhere; and every byte queued here is a byte a small stream's message waits behind.
 * With groom's 64 KiB messages every budget from 512 KiB to 8 MiB carried the same ~250-300 MB/s
 * through server and agent processes on loopback (docs/protocol.md "Limits"), and 2 MiB drains
 * in about 7 ms at that rate.
 */
export const HIGH_WATER = 2 * 1024 * 1024;

/**
 * Paused senders resume once the socket is down to this many unsent bytes: half the budget, about
 * 3.5 ms of sending at 300 MB/s, so the socket does not run dry before the WebSocket transport's
 * next 4 ms poll wakes a sender, and senders do not wake for every message.
 */
export const LOW_WATER = 1024 * 1024;

/**
 * Protocol v1: largest number of received bytes (plus {@linkcode QUEUE_ENTRY_OVERHEAD} per
 * message) queued for one stream whose reader lags. v1 has no flow control, so a lagging stream
 * can only be bounded or allowed to stall the whole tunnel (groom 1.3's choice, ODD-7); past this
 * bound the stream is aborted. 8 MiB is four peer send budgets ({@linkcode HIGH_WATER}: what a
 * peer can have in flight at once) and twice the largest message (4 MiB, PROTO-12), so a reader
 * that pauses briefly (a client's TCP window, a GC pause) survives a burst; with groom's default
 * concurrency of 20 it bounds a tunnel's worst case at 160 MiB, and
 * {@linkcode MAX_TUNNEL_QUEUE_BYTES} bounds it whatever the concurrency.
 */
export const MAX_STREAM_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Largest number of queued received bytes over all streams of one tunnel, in both versions.
 * `concurrency` may be up to 1000 (DIR), which would allow 8 GB of v1 stream queues (and 256 MiB
 * of v2 initial windows); past 64 MiB (eight full v1 stream queues) the stream holding the most
 * is aborted.
 */
export const MAX_TUNNEL_QUEUE_BYTES = 64 * 1024 * 1024;

/**
 * Bytes charged per queued message on top of its payload, an estimate of what the entry costs in
 * memory (the frame object and payload view, the 4-byte trailer the view keeps alive). Without it
 * a peer could queue millions of empty messages for free.
 */
export const QUEUE_ENTRY_OVERHEAD = 128;

/**
 * Protocol v2: the credit each direction of a new stream starts with, in bytes. A protocol
 * constant: both sides must use the same value. 256 KiB is four largest messages, so a small
 * answer (most web requests) never waits for a grant, and at least twice the largest data
 * message, which guarantees progress: a receiver grants once half its window is due, so a
 * sender short of credit for one message always has a grant coming once the reader caught up.
 */
export const INITIAL_WINDOW = 256 * 1024;

/**
 * Smallest initial window {@linkcode checkTunnelLimits} accepts (tests use tiny ones): room for
 * two messages of a few payload bytes.
 */
export const MIN_WINDOW = 64;

/**
 * The largest BODY or RAW payload a v2 sender puts in one message with `initialWindow`: at most
 * half the initial window including the trailer (the progress guarantee of
 * {@linkcode INITIAL_WINDOW}), and never above `MAX_READ_PAYLOAD`, groom's message size.
 */
export function maxDataPayload(initialWindow: number): number {
  return Math.min(MAX_READ_PAYLOAD, Math.floor(initialWindow / 2) - FRAME_TRAILER_SIZE);
}

/**
 * Protocol v2: the largest receive window a stream grows to. On loopback the window hardly
 * matters (a fixed 256 KiB window carried the same ~290 MB/s as 8 MiB, docs/protocol.md
 * "Limits": the CPU is the limit), but a stream carries at most one window per round trip: 8 MiB
 * keeps 1 Gbit/s up to a 64 ms round trip. It is also the most a stalled reader holds queued.
 */
export const MAX_WINDOW = 8 * 1024 * 1024;

/**
 * Protocol v2: a receive window grows only when the sender was waiting for credit: the first
 * message after a grant came at least this long after it (about one round trip when the sender
 * had run dry). A window is only worth its bytes on a long round trip; on a short one a bigger
 * window just parks more bulk data in socket buffers ahead of other streams' messages. Measured
 * on loopback (the bench's probe: one small request at a time during 100 MiB downloads): with
 * windows growing whenever the reader kept up, the probe's median went from 0.5 to 8.5 ms, the
 * windows at 8 MiB though a fixed 256 KiB window carried the same MB/s (docs/protocol.md). 2 ms is
 * the round trip at which the initial 256 KiB window still carries 1 Gbit/s.
 */
export const GROWTH_STALL_MS = 2;

/**
 * Protocol v2: the most the receive windows of one tunnel may grow beyond their initial size, in
 * total: four streams at {@linkcode MAX_WINDOW}, so a handful of stalled readers cannot hold
 * more than 32 MiB (plus 256 KiB per open stream); further streams keep smaller windows until
 * others end. Half of {@linkcode MAX_TUNNEL_QUEUE_BYTES}, so compliant v2 streams reach that bound
 * only with over a hundred streams open and stalled at once (the default concurrency is 20).
 */
export const MAX_TUNNEL_WINDOW = 32 * 1024 * 1024;

/**
 * Share of the connection a stream gets per round of the scheduler: one largest message, so
 * backlogged streams alternate message by message (plain round robin for groom's sizes, deficit
 * round robin when messages differ in size).
 */
export const SCHEDULER_QUANTUM = MAX_SENT_MESSAGE_SIZE;

/** The limits a tunnel applies; tests shrink them (the bore `duplex(8)` idea). */
export interface TunnelLimits {
  /** Pause senders above this many unsent bytes ({@linkcode HIGH_WATER}). */
  readonly highWater: number;
  /** Resume them at or below this many ({@linkcode LOW_WATER}). */
  readonly lowWater: number;
  /** v1: bound of one stream's receive queue ({@linkcode MAX_STREAM_QUEUE_BYTES}). */
  readonly maxStreamQueueBytes: number;
  /** Bound of all receive queues of the tunnel ({@linkcode MAX_TUNNEL_QUEUE_BYTES}). */
  readonly maxTunnelQueueBytes: number;
  /**
   * v2: initial credit of each direction of a stream ({@linkcode INITIAL_WINDOW}). Part of the
   * protocol: both ends must agree, so only tests change it, on both ends.
   */
  readonly initialWindow: number;
  /** v2: largest receive window of a stream ({@linkcode MAX_WINDOW}). */
  readonly maxWindow: number;
  /** v2: most growth of all receive windows of the tunnel ({@linkcode MAX_TUNNEL_WINDOW}). */
  readonly maxTunnelWindow: number;
  /**
   * v2: a window grows only after a message came this long after a grant
   * ({@linkcode GROWTH_STALL_MS}); 0 grows whenever the reader keeps up.
   */
  readonly growthStallMs: number;
}

/** The production limits. */
export const DEFAULT_TUNNEL_LIMITS: TunnelLimits = {
  highWater: HIGH_WATER,
  lowWater: LOW_WATER,
  maxStreamQueueBytes: MAX_STREAM_QUEUE_BYTES,
  maxTunnelQueueBytes: MAX_TUNNEL_QUEUE_BYTES,
  initialWindow: INITIAL_WINDOW,
  maxWindow: MAX_WINDOW,
  maxTunnelWindow: MAX_TUNNEL_WINDOW,
  growthStallMs: GROWTH_STALL_MS,
};

/**
 * Checks a tunnel's limits; throws `RangeError` naming the first inconsistency: watermarks out of
 * order, a queue bound not positive, windows out of order or an initial window below
 * {@linkcode MIN_WINDOW}.
 */
export function checkTunnelLimits(limits: TunnelLimits): void {
  const { highWater, lowWater, maxStreamQueueBytes, maxTunnelQueueBytes } = limits;
  const { initialWindow, maxWindow, maxTunnelWindow } = limits;
  if (!(lowWater >= 0 && lowWater <= highWater)) {
    throw new RangeError(
      `Cannot create tunnel: lowWater ${lowWater} must be between 0 and highWater ${highWater}`,
    );
  }
  if (!(maxStreamQueueBytes > 0 && maxTunnelQueueBytes > 0)) {
    throw new RangeError(
      `Cannot create tunnel: queue bounds ${maxStreamQueueBytes} (stream) and ${maxTunnelQueueBytes} (tunnel) must be positive`,
    );
  }
  if (!(limits.growthStallMs >= 0 && Number.isFinite(limits.growthStallMs))) {
    throw new RangeError(
      `Cannot create tunnel: growthStallMs ${limits.growthStallMs} must be a finite number >= 0`,
    );
  }
  const smallest = MIN_WINDOW;
  if (
    !(Number.isInteger(initialWindow) && initialWindow >= smallest &&
      initialWindow <= maxWindow && maxWindow <= MAX_WINDOW_INCREMENT && maxTunnelWindow >= 0)
  ) {
    throw new RangeError(
      `Cannot create tunnel: windows must satisfy ${smallest} <= initialWindow (${initialWindow}) <= maxWindow (${maxWindow}) <= ${MAX_WINDOW_INCREMENT}, maxTunnelWindow (${maxTunnelWindow}) >= 0`,
    );
  }
}

/** Credit counters of one stream, for tests and diagnostics (v1 reports no credit limit). */
export interface WindowState {
  /** Bytes this side may still send (`Infinity` in v1). */
  readonly sendCredit: number;
  /** Credit spent so far (the cost of every message sent). */
  readonly sent: number;
  /** Current receive window (0 in v1). */
  readonly receiveWindow: number;
  /** Credit granted to the peer so far, the initial window included (0 in v1). */
  readonly granted: number;
  /** Cost of the messages received so far. */
  readonly received: number;
  /** Cost of the messages the reader took so far. */
  readonly consumed: number;
}

/** Why a stream's flow control refused a peer's message: the stream is then aborted. */
export type FlowViolation =
  /** v1: the receive queue passed its bound. */
  | "stream"
  /** v2: the peer sent beyond the credit it was granted. */
  | "window"
  /** v2: the peer's grants took the credit above 2^31 − 1. */
  | "credit";

/** Per-stream flow control, as a stream sees it. Internal to the tunnel folder. */
export interface StreamFlow {
  /** Largest payload of one BODY or RAW message: `Stream.send()` splits larger ones (v2). */
  readonly maxDataPayload: number;
  /**
   * Sends `frame` once the stream has the credit and the connection the budget, in call order.
   * Resolves when the message was handed to the transport; rejects with `signal.reason` if the
   * signal aborts first, or with the tunnel's close reason.
   */
  send(frame: Frame, signal: AbortSignal): Promise<void>;
  /**
   * A frame arrived for the stream; `queuedAfter` is what the stream's receive queue will cost if
   * it is admitted (0 when a waiting reader takes it at once). Returns the violation when the
   * frame must not be admitted (the stream is then aborted), else `undefined`.
   */
  admit(frame: Frame, queuedAfter: number): FlowViolation | undefined;
  /** The reader took `frame` (v2 grants the peer more credit when enough is due). */
  consumed(frame: Frame): void;
  /** The peer granted `increment` bytes of credit (v2); a violation aborts the stream. */
  granted(increment: number): FlowViolation | undefined;
  /** The stream ended: no more grants; its window growth returns to the tunnel. */
  release(): void;
  /** The credit counters. */
  readonly state: WindowState;
}

/** A tunnel's flow-control strategy, chosen by the negotiated sub-protocol. */
export interface FlowControl {
  /** The protocol version in force. */
  readonly version: ProtocolVersion;
  /** Creates the state of a new stream. */
  openStream(streamId: number): StreamFlow;
  /** Sends a control message (ABRT, window update) at once, ahead of queued messages. */
  sendNow(frame: TunnelFrame): void;
  /** Rejects every queued message with `reason`; later sends reject too. */
  close(reason: Error): void;
}

/** The credit a message costs in protocol v2: its length on the wire. */
export function messageCost(frame: Frame): number {
  return frame.payload.length + FRAME_TRAILER_SIZE;
}

/** Creates the flow control of `transport` for protocol `version`. */
export function createFlowControl(
  transport: MessageTransport,
  limits: TunnelLimits,
  version: ProtocolVersion,
): FlowControl {
  const scheduler = new FairScheduler(transport, limits);
  const budget = { grown: 0 };
  return {
    version,
    openStream(streamId) {
      return version === 2
        ? new CreditFlow(streamId, scheduler, limits, budget)
        : new BoundedQueueFlow(scheduler, limits.maxStreamQueueBytes);
    },
    sendNow: (frame) => scheduler.sendNow(frame),
    close: (reason) => scheduler.close(reason),
  };
}

/** What the scheduler asks of a stream's flow control about sending. */
interface SendCredit {
  /** Whether `frame` may go now. */
  canSend(frame: Frame): boolean;
  /** `frame` went out: spend its credit. */
  spent(frame: Frame): void;
}

const UNLIMITED: SendCredit = { canSend: () => true, spent: () => {} };

/**
 * Protocol v1 stream flow: sending is always allowed (the peer cannot tell us to stop), and the
 * receive queue is bounded.
 */
class BoundedQueueFlow implements StreamFlow {
  readonly maxDataPayload = MAX_PAYLOAD_SIZE;
  readonly #lane: SendLane;
  readonly #maxQueueBytes: number;
  #sent = 0;
  #received = 0;
  #consumed = 0;

  constructor(scheduler: FairScheduler, maxQueueBytes: number) {
    this.#maxQueueBytes = maxQueueBytes;
    this.#lane = scheduler.lane({
      canSend: () => true,
      spent: (frame) => {
        this.#sent += messageCost(frame);
      },
    });
  }

  get state(): WindowState {
    return {
      sendCredit: Number.POSITIVE_INFINITY,
      sent: this.#sent,
      receiveWindow: 0,
      granted: 0,
      received: this.#received,
      consumed: this.#consumed,
    };
  }

  send(frame: Frame, signal: AbortSignal): Promise<void> {
    return this.#lane.send(frame, signal);
  }

  admit(frame: Frame, queuedAfter: number): FlowViolation | undefined {
    if (queuedAfter > this.#maxQueueBytes) return "stream";
    this.#received += messageCost(frame);
    return undefined;
  }

  consumed(frame: Frame): void {
    this.#consumed += messageCost(frame);
  }

  granted(): FlowViolation | undefined {
    return undefined; // v1 decoding never yields window updates
  }

  release(): void {}
}

/** Window growth of one tunnel's streams beyond their initial windows, in bytes. */
interface WindowBudget {
  grown: number;
}

/**
 * Protocol v2 stream flow: credit windows both ways. Send side: `credit` starts at the initial
 * window, each message spends its cost, each window update adds its increment. Receive side:
 * the peer may send `granted - received` more bytes; when the reader has consumed enough that
 * `consumed + window - granted` reaches half a window, that much is granted back (grown first
 * when the reader had caught up with everything received).
 */
class CreditFlow implements StreamFlow {
  readonly maxDataPayload: number;
  readonly #streamId: number;
  readonly #scheduler: FairScheduler;
  readonly #lane: SendLane;
  readonly #limits: TunnelLimits;
  readonly #budget: WindowBudget;
  #credit: number;
  #sent = 0;
  #headSent = false;
  #window: number;
  #granted: number;
  #received = 0;
  #consumed = 0;
  #headReceived = false;
  #headConsumed = false;
  #released = false;
  /** When the last grant went out, until the next message arrives. */
  #grantedAt: number | undefined;
  /** The sender waited for credit since the last growth (see GROWTH_STALL_MS). */
  #starved = false;

  constructor(
    streamId: number,
    scheduler: FairScheduler,
    limits: TunnelLimits,
    budget: WindowBudget,
  ) {
    this.#streamId = streamId;
    this.#scheduler = scheduler;
    this.#limits = limits;
    this.#budget = budget;
    this.maxDataPayload = maxDataPayload(limits.initialWindow);
    this.#credit = limits.initialWindow;
    this.#window = limits.initialWindow;
    this.#granted = limits.initialWindow;
    this.#lane = scheduler.lane({
      canSend: (frame) => this.#sendCost(frame) <= this.#credit,
      spent: (frame) => {
        const cost = this.#sendCost(frame);
        if (frame.kind === "head") this.#headSent = true;
        this.#credit -= cost;
        this.#sent += cost;
      },
    });
  }

  get state(): WindowState {
    return {
      sendCredit: this.#credit,
      sent: this.#sent,
      receiveWindow: this.#window,
      granted: this.#granted,
      received: this.#received,
      consumed: this.#consumed,
    };
  }

  send(frame: Frame, signal: AbortSignal): Promise<void> {
    return this.#lane.send(frame, signal);
  }

  admit(frame: Frame): FlowViolation | undefined {
    const cost = frame.kind === "head" && !this.#headReceived ? 0 : messageCost(frame);
    if (this.#received + cost > this.#granted) return "window";
    if (frame.kind === "head") this.#headReceived = true;
    this.#received += cost;
    if (this.#grantedAt !== undefined) {
      if (performance.now() - this.#grantedAt >= this.#limits.growthStallMs) this.#starved = true;
      this.#grantedAt = undefined;
    }
    return undefined;
  }

  consumed(frame: Frame): void {
    const cost = frame.kind === "head" && !this.#headConsumed ? 0 : messageCost(frame);
    if (frame.kind === "head") this.#headConsumed = true;
    this.#consumed += cost;
    this.#grant();
  }

  granted(increment: number): FlowViolation | undefined {
    if (this.#credit + increment > MAX_WINDOW_INCREMENT) return "credit";
    this.#credit += increment;
    this.#lane.wake();
    return undefined;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#budget.grown -= this.#window - this.#limits.initialWindow;
  }

  #sendCost(frame: Frame): number {
    return frame.kind === "head" && !this.#headSent ? 0 : messageCost(frame);
  }

  #grant(): void {
    if (this.#released) return;
    let due = this.#consumed + this.#window - this.#granted;
    if (due * 2 < this.#window) return;
    // The reader has taken everything that arrived and the sender had to wait for this
    // side's credit: the window, not the reader, limits the stream, so it grows (as far as the
    // tunnel's budget allows).
    const starved = this.#starved || this.#limits.growthStallMs === 0;
    if (starved && this.#consumed === this.#received && this.#window < this.#limits.maxWindow) {
      this.#starved = false;
      const room = this.#limits.maxTunnelWindow - this.#budget.grown;
      const growth = Math.min(this.#window, this.#limits.maxWindow - this.#window, room);
      if (growth > 0) {
        this.#window += growth;
        this.#budget.grown += growth;
        due += growth;
      }
    }
    this.#granted += due;
    this.#grantedAt = performance.now();
    this.#scheduler.sendNow(windowFrame(this.#streamId, due));
  }
}

interface PendingSend {
  readonly frame: Frame;
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly onAbort: () => void;
}

/** One stream's queue in the scheduler. */
class SendLane {
  readonly credit: SendCredit;
  readonly queue: PendingSend[] = [];
  /** Bytes the lane may still send in its turn (deficit round robin). */
  deficit = 0;
  /** In the scheduler's ring. */
  inRing = false;
  /** Its turn began (quantum added) and was cut short by the transport budget. */
  inTurn = false;
  readonly #scheduler: FairScheduler;

  constructor(scheduler: FairScheduler, credit: SendCredit) {
    this.#scheduler = scheduler;
    this.credit = credit;
  }

  /** Whether the lane has a message it may send as far as credit goes. */
  get ready(): boolean {
    const head = this.queue[0];
    return head !== undefined && this.credit.canSend(head.frame);
  }

  send(frame: Frame, signal: AbortSignal): Promise<void> {
    return this.#scheduler.submit(this, frame, signal);
  }

  /** Credit arrived: the lane may be ready again. */
  wake(): void {
    this.#scheduler.wake(this);
  }
}

/**
 * The connection's scheduler, shared by both versions: a message goes out at once when nothing
 * waits, its stream has the credit and the transport holds at most `highWater` unsent bytes.
 * Otherwise it joins its stream's lane; lanes with a sendable message take turns by deficit round
 * robin (each turn adds {@linkcode SCHEDULER_QUANTUM} bytes of allowance, so streams share
 * bytes, not messages), and the pump waits for the transport to drain to `lowWater` when the
 * budget is spent, then continues the interrupted turn. Lanes keep each stream's messages in
 * order. Control messages (ABRT, window updates) bypass the lanes.
 */
export class FairScheduler {
  readonly #transport: MessageTransport;
  readonly #highWater: number;
  readonly #lowWater: number;
  readonly #ring: SendLane[] = [];
  #pumping = false;
  #closed: Error | undefined;

  /** Creates the scheduler of `transport`. */
  constructor(transport: MessageTransport, limits: Pick<TunnelLimits, "highWater" | "lowWater">) {
    this.#transport = transport;
    this.#highWater = limits.highWater;
    this.#lowWater = limits.lowWater;
  }

  /** A lane for a new stream whose sending `credit` decides. */
  lane(credit: SendCredit = UNLIMITED): SendLane {
    return new SendLane(this, credit);
  }

  /** Queues `frame` on `lane` (see {@linkcode SendLane.send}). */
  submit(lane: SendLane, frame: Frame, signal: AbortSignal): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal.aborted) return Promise.reject(signal.reason);
    if (
      this.#ring.length === 0 && lane.queue.length === 0 && lane.credit.canSend(frame) &&
      this.#transport.bufferedAmount <= this.#highWater
    ) {
      try {
        this.#transmit(lane, frame);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve();
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onAbort = (): void => {
      const at = lane.queue.indexOf(entry);
      if (at >= 0) lane.queue.splice(at, 1);
      reject(signal.reason);
    };
    const entry: PendingSend = { frame, signal, resolve, reject, onAbort };
    signal.addEventListener("abort", onAbort, { once: true });
    lane.queue.push(entry);
    this.wake(lane);
    return promise;
  }

  /** Puts `lane` in the ring if it has a sendable message, and starts the pump. */
  wake(lane: SendLane): void {
    if (this.#closed !== undefined || lane.inRing || !lane.ready) return;
    lane.inRing = true;
    this.#ring.push(lane);
    if (!this.#pumping) void this.#pump();
  }

  /** Sends a control message at once (dropped once closed). */
  sendNow(frame: TunnelFrame): void {
    if (this.#closed === undefined) this.#transport.send(encodeFrame(frame));
  }

  /** Rejects every queued message with `reason`; later sends reject too. */
  close(reason: Error): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    for (const lane of this.#ring.splice(0)) {
      lane.inRing = false;
      for (const entry of lane.queue.splice(0)) {
        entry.signal.removeEventListener("abort", entry.onAbort);
        entry.reject(reason);
      }
    }
  }

  #transmit(lane: SendLane, frame: Frame): void {
    const message = encodeFrame(frame);
    lane.credit.spent(frame);
    this.#transport.send(message);
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#ring.length > 0 && this.#closed === undefined) {
        if (this.#transport.bufferedAmount > this.#highWater) {
          await this.#transport.drained(this.#lowWater);
          if (this.#closed !== undefined) return;
          // drained() promised at most lowWater; still above highWater means it resolved
          // because the transport closed (only control messages bypass the lanes, 8 bytes each).
          if (this.#transport.bufferedAmount > this.#highWater) {
            this.close(new Error("Cannot send: the tunnel is closed"));
            return;
          }
          continue;
        }
        this.#serve(this.#ring[0] as SendLane);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Serves `lane`, the ring's first: starts its turn (adds the quantum) unless an interrupted
   * one goes on, sends while its allowance, its credit and the transport budget allow, then
   * leaves it first when the budget cut the turn short, else moves it to the back (or out of
   * the ring when it has nothing sendable: an idle or credit-blocked lane keeps no allowance).
   */
  #serve(lane: SendLane): void {
    if (!lane.inTurn) {
      lane.deficit += SCHEDULER_QUANTUM;
      lane.inTurn = true;
    }
    let entry = lane.queue[0];
    while (
      entry !== undefined && lane.credit.canSend(entry.frame) &&
      messageCost(entry.frame) <= lane.deficit &&
      this.#transport.bufferedAmount <= this.#highWater
    ) {
      lane.queue.shift();
      entry.signal.removeEventListener("abort", entry.onAbort);
      lane.deficit -= messageCost(entry.frame);
      try {
        this.#transmit(lane, entry.frame);
        entry.resolve();
      } catch (error) {
        entry.reject(error);
      }
      entry = lane.queue[0];
    }
    if (lane.ready && messageCost((lane.queue[0] as PendingSend).frame) <= lane.deficit) {
      return; // Cut short by the budget: the turn goes on once the transport drained.
    }
    this.#ring.shift();
    lane.inTurn = false;
    if (lane.ready) {
      this.#ring.push(lane);
    } else {
      lane.inRing = false;
      lane.deficit = 0;
    }
  }
}
