/**
 * Adapts a standard `WebSocket` (what `Deno.upgradeWebSocket` gives the server) to the tunnel's
 * {@linkcode MessageTransport}: binary messages only (text is dropped, PROTO-10), a receive size
 * limit (PROTO-12), sends queued until the socket opens, and `drained()` by polling
 * `bufferedAmount` while someone waits, because Deno's WebSocket has no drain event. Every socket
 * handler is guarded: an uncaught throw in one ends the Deno process (architecture note §7).
 * @module
 */

import { MAX_MESSAGE_SIZE } from "../protocol/mod.ts";
import type { CloseInfo, MessageTransport } from "./transport.ts";

/**
 * How often `bufferedAmount` is polled while a `drained()` waits. Deno clamps repeating timers
 * to 4 ms anyway, and the tunnel resumes senders with 4 MiB still queued (`LOW_WATER`), which
 * lasts about 4 ms at the measured 1 GiB/s, so the socket does not run dry between polls.
 */
export const DRAIN_POLL_MS = 4;

/** Options of {@linkcode WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /**
   * The sub-protocol to report. Deno's server-side socket reports `""` even after
   * `Deno.upgradeWebSocket(req, { protocol: "groom" })` selected one (measured on 2.9.6), so the
   * server passes what it selected; the default is `socket.protocol`.
   */
  readonly protocol?: string;
  /**
   * Largest message accepted, in bytes; a larger one closes the transport. Default
   * `MAX_MESSAGE_SIZE` (4 MiB, PROTO-12).
   */
  readonly maxMessageSize?: number;
}

interface DrainWaiter {
  readonly threshold: number;
  readonly resolve: () => void;
}

/** A `WebSocket` as a {@linkcode MessageTransport}. */
export class WebSocketTransport implements MessageTransport {
  /** Called with each received binary message. */
  onMessage: ((message: Uint8Array) => void) | null = null;
  /** Called once when the transport closed, before pending `drained()` promises resolve. */
  onClose: ((info: CloseInfo) => void) | null = null;
  readonly #socket: WebSocket;
  readonly #protocol: string | undefined;
  readonly #maxMessageSize: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #waiters: DrainWaiter[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #error: Error | undefined;
  #closed = false;

  /** Wraps `socket`, open or still connecting, and takes over its events. */
  constructor(socket: WebSocket, options: WebSocketTransportOptions = {}) {
    this.#socket = socket;
    this.#protocol = options.protocol;
    this.#maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => this.#guard(() => this.#flushPending()));
    socket.addEventListener("message", (event) => this.#guard(() => this.#receive(event)));
    socket.addEventListener("error", (event) =>
      this.#guard(() => {
        const message = event instanceof ErrorEvent ? event.message : "";
        this.#error = new Error(message || "WebSocket error");
      }));
    socket.addEventListener("close", (event) =>
      this.#guard(() => {
        this.#finish({
          // 1005: the close frame had no status code (RFC 6455 §7.1.5).
          ...(event.code === 1005 ? {} : { code: event.code }),
          reason: event.reason,
          ...(this.#error === undefined ? {} : { error: this.#error }),
        });
      }));
    if (socket.readyState === WebSocket.CLOSED) {
      queueMicrotask(() => this.#finish({ reason: "closed before use" }));
    }
  }

  /** The negotiated sub-protocol. */
  get protocol(): string {
    return this.#protocol ?? this.#socket.protocol;
  }

  /** Bytes accepted by `send()` and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.#pendingBytes + this.#socket.bufferedAmount;
  }

  /** Queues one binary message; ignores empty messages and sends after close. */
  send(message: Uint8Array): void {
    if (this.#closed || message.length === 0) return;
    if (this.#socket.readyState === WebSocket.CONNECTING) {
      this.#pending.push(message);
      this.#pendingBytes += message.length;
      return;
    }
    try {
      this.#socket.send(message);
    } catch {
      // Closing: the close event follows.
    }
  }

  /** Resolves when `bufferedAmount <= threshold`, or when the transport closed. */
  drained(threshold: number): Promise<void> {
    if (this.#closed || this.bufferedAmount <= threshold) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ threshold, resolve });
    this.#timer ??= setInterval(() => this.#guard(() => this.#poll()), DRAIN_POLL_MS);
    return promise;
  }

  /**
   * Closes the socket; without a code (or with one the WebSocket API refuses, such as 1009) the
   * close frame carries no status (PROTO-14). `onClose` runs at once: a peer that stopped reading
   * may never complete the closing handshake.
   */
  close(code?: number, reason?: string): void {
    if (this.#closed) return;
    try {
      if (code === undefined) this.#socket.close();
      else this.#socket.close(code, reason);
    } catch {
      try {
        this.#socket.close();
      } catch {
        // Already closed.
      }
    }
    this.#finish({
      ...(code === undefined ? {} : { code }),
      reason: reason ?? "closed",
    });
  }

  #guard(handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.#abandon(error);
    }
  }

  #abandon(error: unknown): void {
    const cause = error instanceof Error ? error : new Error(String(error));
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
    this.#finish({ reason: cause.message, error: cause });
  }

  #flushPending(): void {
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#closed) return;
    for (const message of pending) this.#socket.send(message);
  }

  #receive(event: MessageEvent): void {
    if (this.#closed) return;
    const data: unknown = event.data;
    if (!(data instanceof ArrayBuffer)) return; // text carries no tunnel traffic (PROTO-10)
    if (data.byteLength > this.#maxMessageSize) {
      this.#abandon(
        new RangeError(
          `Received message of ${data.byteLength} bytes exceeds the limit of ${this.#maxMessageSize} bytes`,
        ),
      );
      return;
    }
    this.onMessage?.(new Uint8Array(data));
  }

  #poll(): void {
    const amount = this.bufferedAmount;
    const waiting: DrainWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (amount <= waiter.threshold) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
    if (waiting.length === 0) this.#stopPolling();
  }

  #stopPolling(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #finish(info: CloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#stopPolling();
    const waiters = this.#waiters;
    this.#waiters = [];
    try {
      this.onClose?.(info);
    } catch {
      // A throwing close callback must not keep waiting senders asleep.
    }
    for (const waiter of waiters) waiter.resolve();
  }
}
