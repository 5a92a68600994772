/**
 * An in-memory pair of {@linkcode MessageTransport}s for tests, after bore's `duplex(8)` idea:
 * no sockets, and the test controls the wire. Messages cross in a microtask (never synchronously,
 * as with a real socket); `pause()` stops one direction like a peer that stopped reading, so that
 * direction's `bufferedAmount` grows and `drained()` waits until `resume()`.
 * @module
 */

import type { CloseInfo, MessageTransport } from "./transport.ts";

/** Options of {@linkcode MemoryTransport.pair}. */
export interface MemoryTransportOptions {
  /** Sub-protocol both ends report; `groom` by default. */
  readonly protocol?: string;
}

interface DrainWaiter {
  readonly threshold: number;
  readonly resolve: () => void;
}

/** One end of an in-memory transport pair. */
export class MemoryTransport implements MessageTransport {
  /** Called with each received binary message. */
  onMessage: ((message: Uint8Array) => void) | null = null;
  /** Called once when the transport closed, before pending `drained()` promises resolve. */
  onClose: ((info: CloseInfo) => void) | null = null;
  /** The sub-protocol. */
  readonly protocol: string;
  #peer: MemoryTransport = this; // replaced by pair()
  #outbox: Uint8Array[] = [];
  #buffered = 0;
  #paused = false;
  #closing = false;
  #closed = false;
  #flush: Promise<void> | undefined;
  #waiters: DrainWaiter[] = [];
  #sentMessages = 0;

  private constructor(protocol: string) {
    this.protocol = protocol;
  }

  /** Creates two connected ends. */
  static pair(options: MemoryTransportOptions = {}): [MemoryTransport, MemoryTransport] {
    const protocol = options.protocol ?? "groom";
    const left = new MemoryTransport(protocol);
    const right = new MemoryTransport(protocol);
    left.#peer = right;
    right.#peer = left;
    return [left, right];
  }

  /** Bytes sent by this end and not yet delivered to the other. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  /** Whether this end has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Messages accepted by `send()` so far. */
  get sentMessages(): number {
    return this.#sentMessages;
  }

  /** Queues a copy of `message` for the other end; ignores empty messages and sends after close. */
  send(message: Uint8Array): void {
    if (this.#closing || message.length === 0) return;
    this.#outbox.push(message.slice());
    this.#buffered += message.length;
    this.#sentMessages++;
    this.#schedule();
  }

  /** Resolves when `bufferedAmount <= threshold`, or when the transport closed. */
  drained(threshold: number): Promise<void> {
    if (this.#closed || this.#buffered <= threshold) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ threshold, resolve });
    return promise;
  }

  /**
   * Closes both ends after delivering what this end already sent (unless paused), like a close
   * frame queued behind the data. Both `onClose` callbacks run in a later microtask.
   */
  close(code?: number, reason?: string): void {
    if (this.#closing) return;
    this.#closing = true;
    queueMicrotask(() => {
      this.#deliver();
      const info: CloseInfo = { ...(code === undefined ? {} : { code }), reason: reason ?? "" };
      this.#peer.#finish(info);
      this.#finish(info);
    });
  }

  /** Test control: stops delivering this end's messages, as if the other end stopped reading. */
  pause(): void {
    this.#paused = true;
  }

  /** Test control: delivers again, starting with what queued up while paused. */
  resume(): void {
    this.#paused = false;
    this.#schedule();
  }

  /** Test control: breaks the connection; both ends close with `error`, undelivered bytes lost. */
  fail(error: Error): void {
    if (this.#closed) return;
    const info: CloseInfo = { reason: error.message, error };
    this.#peer.#finish(info);
    this.#finish(info);
  }

  /** Test control: hands `message` to this end's `onMessage` now, as if the peer sent it. */
  inject(message: Uint8Array): void {
    if (!this.#closed) this.onMessage?.(message);
  }

  /**
   * Test control: resolves once neither end has a delivery scheduled, i.e. everything sent so far
   * (and everything sent by code that ran during those deliveries) has arrived or is held by
   * `pause()`.
   */
  async idle(): Promise<void> {
    while (true) {
      const pending = this.#flush ?? this.#peer.#flush;
      if (pending === undefined) return;
      await pending;
    }
  }

  #schedule(): void {
    if (this.#flush !== undefined || this.#paused) return;
    this.#flush = new Promise<void>((resolve) => {
      queueMicrotask(() => {
        this.#flush = undefined;
        this.#deliver();
        resolve();
      });
    });
  }

  #deliver(): void {
    const peer = this.#peer;
    while (!this.#paused && !this.#closed && this.#outbox.length > 0) {
      const message = this.#outbox.shift() as Uint8Array;
      this.#buffered -= message.length;
      if (!peer.#closed) peer.onMessage?.(message);
    }
    const waiting: DrainWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (this.#buffered <= waiter.threshold) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }

  #finish(info: CloseInfo): void {
    if (this.#closed) return;
    this.#closing = true;
    this.#closed = true;
    this.#outbox = [];
    const waiters = this.#waiters;
    this.#waiters = [];
    this.onClose?.(info);
    for (const waiter of waiters) waiter.resolve();
  }
}
