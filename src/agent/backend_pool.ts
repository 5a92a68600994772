/**
 * Keep-alive pool of backend connections (issue 7; a deliberate change from AGT-9/AGT-14, where
 * groom 1.3 opened and closed one connection per request). The exchange gives a connection back
 * only after a response whose end it knew (Content-Length, chunked end, or a response without a
 * body) on an HTTP/1.1 connection neither side asked to close, never after a `101` or an
 * EOF-delimited body; the rules live in `backend.ts`. Here: idle connections are kept per dial
 * key (everything that identifies the dial: scheme, host, port, `insecure`, SNI), bounded per
 * key and in total, closed after {@linkcode POOL_IDLE_TIMEOUT_MS}, and watched while idle: the
 * pool keeps one read pending on each, so a backend that closes an idle connection (EOF, reset)
 * or sends bytes nobody asked for is dropped at once. That pending read becomes the first read of
 * the next exchange on the connection, so no byte is lost. A connection the backend closed just
 * as it was taken is the exchange's concern (it retries once when that is safe).
 * @module
 */

import type { ByteChannel } from "./channel.ts";

/**
 * Most idle connections kept per dial key: above a domain's default `concurrency` (20) with room
 * for bursts, so a busy target keeps its connections warm, while one target cannot hold more
 * descriptors than this idle.
 */
export const MAX_IDLE_PER_TARGET = 64;

/**
 * Most idle connections in one pool, all keys together: bounds the descriptors and memory idle
 * connections hold (each keeps a small read buffer and a socket) for a domain with many targets.
 */
export const MAX_IDLE_TOTAL = 256;

/**
 * Idle time after which a pooled connection is closed: shorter than common backend keep-alive
 * timeouts (Node's default is 5 s, Apache's 5 s, nginx's 75 s), so the agent normally closes
 * first and rarely sends a request on a connection the backend is closing.
 */
export const POOL_IDLE_TIMEOUT_MS = 4_000;

/** Everything that identifies a backend dial; connections are only reused for the same key. */
export interface DialKey {
  /** `http` or `https`. */
  readonly scheme: "http" | "https";
  /** Backend host (no brackets). */
  readonly host: string;
  /** Backend port. */
  readonly port: number;
  /** TLS without verification (the target's `insecure`, ODD-11). */
  readonly insecure: boolean;
  /** TLS server name (SNI and verified name); the backend host today. */
  readonly serverName: string;
}

/** The pool key of a dial: equal keys dial the same peer the same way. */
export function dialKey(key: DialKey): string {
  const tls = key.scheme === "http" ? "plain" : key.insecure ? "insecure" : "verified";
  return `${tls} ${key.host} ${key.port} ${key.serverName}`;
}

/** Limits of a {@linkcode BackendPool}. */
export interface BackendPoolOptions {
  /** Default {@linkcode MAX_IDLE_PER_TARGET}. */
  readonly maxIdlePerTarget?: number;
  /** Default {@linkcode MAX_IDLE_TOTAL}. */
  readonly maxIdleTotal?: number;
  /** Default {@linkcode POOL_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
}

/** What the watch read of an idle connection found. */
type WatchResult =
  | { readonly ok: true; readonly value: Uint8Array | null }
  | { readonly ok: false; readonly error: unknown };

/** One idle connection. */
interface IdleEntry {
  readonly key: string;
  readonly channel: ByteChannel;
  /** The pending read started when the connection went idle. */
  readonly watch: Promise<WatchResult>;
  /** `performance.now()` when it went idle. */
  readonly since: number;
  taken: boolean;
}

/**
 * A pooled connection handed out again: its first read is the read the pool kept pending while
 * it was idle, later reads go to the channel.
 */
class ReusedChannel implements ByteChannel {
  readonly #channel: ByteChannel;
  #watch: Promise<WatchResult> | undefined;

  constructor(channel: ByteChannel, watch: Promise<WatchResult>) {
    this.#channel = channel;
    this.#watch = watch;
  }

  async read(): Promise<Uint8Array | null> {
    const watch = this.#watch;
    if (watch === undefined) return await this.#channel.read();
    this.#watch = undefined;
    const result = await watch;
    if (result.ok) return result.value;
    throw result.error;
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.#channel.write(bytes);
  }

  close(): void {
    this.#channel.close();
  }

  relax(): void {
    this.#channel.relax();
  }

  /** The channel to keep when this one goes idle again (its watch read was consumed). */
  unwrap(): ByteChannel | undefined {
    return this.#watch === undefined ? this.#channel : undefined;
  }
}

/** A connection taken from the pool. */
export interface PooledChannel {
  /** The connection; its first read may already be under way. */
  readonly channel: ByteChannel;
  /** Always `true`: the connection served a request before (a stale one may be retried). */
  readonly reused: true;
}

/**
 * Idle keep-alive connections to backends, per {@linkcode dialKey}. One pool serves the sessions
 * of one tunnel (`SessionGroup`), whose extra trusted roots never change, so the roots are not
 * part of the key. Not safe to share between agents with different roots.
 */
export class BackendPool {
  readonly #idle = new Map<string, IdleEntry[]>();
  readonly #maxIdlePerTarget: number;
  readonly #maxIdleTotal: number;
  readonly #idleTimeoutMs: number;
  #total = 0;
  #closed = false;
  /**
   * One timer for the whole pool, due when the oldest idle connection expires (a timer per
   * connection cost a setTimeout and a clearTimeout per request).
   */
  #sweep: ReturnType<typeof setTimeout> | undefined;

  /** Creates an empty pool. */
  constructor(options: BackendPoolOptions = {}) {
    this.#maxIdlePerTarget = options.maxIdlePerTarget ?? MAX_IDLE_PER_TARGET;
    this.#maxIdleTotal = options.maxIdleTotal ?? MAX_IDLE_TOTAL;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? POOL_IDLE_TIMEOUT_MS;
  }

  /** Idle connections kept, all keys together. */
  get idle(): number {
    return this.#total;
  }

  /** Idle connections kept for `key`. */
  idleFor(key: string): number {
    return this.#idle.get(key)?.length ?? 0;
  }

  /** Whether {@linkcode close} was called: nothing is kept any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The most recently released idle connection for `key` (the warmest; older ones time out), or
   * `undefined` when there is none.
   */
  acquire(key: string): PooledChannel | undefined {
    const list = this.#idle.get(key);
    const entry = list?.pop();
    if (entry === undefined) return undefined;
    if (list?.length === 0) this.#idle.delete(key);
    this.#total--;
    entry.taken = true;
    return { channel: new ReusedChannel(entry.channel, entry.watch), reused: true };
  }

  /**
   * Keeps `channel` idle for `key`. The caller must have read the whole response and written
   * the whole request, and nothing else may use the channel afterwards. When the pool is closed
   * or full, the connection is closed instead.
   */
  release(key: string, channel: ByteChannel): void {
    const plain = channel instanceof ReusedChannel ? channel.unwrap() : channel;
    const list = this.#idle.get(key);
    if (
      plain === undefined || this.#closed || this.#total >= this.#maxIdleTotal ||
      (list?.length ?? 0) >= this.#maxIdlePerTarget
    ) {
      channel.close();
      return;
    }
    plain.relax();
    const watch: Promise<WatchResult> = plain.read().then(
      (value) => ({ ok: true, value }),
      (error) => ({ ok: false, error }),
    );
    const entry: IdleEntry = { key, channel: plain, watch, since: performance.now(), taken: false };
    // Anything arriving while idle (EOF, reset, stray bytes) ends the connection.
    watch.then(() => this.#drop(entry));
    if (list === undefined) this.#idle.set(key, [entry]);
    else list.push(entry);
    this.#total++;
    if (this.#sweep === undefined) this.#armSweep(this.#idleTimeoutMs);
  }

  /** Closes every idle connection; later releases close their connection. Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
    for (const list of [...this.#idle.values()]) {
      for (const entry of [...list]) this.#drop(entry);
    }
  }

  #armSweep(delayMs: number): void {
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      const now = performance.now();
      let next = Number.POSITIVE_INFINITY;
      for (const list of [...this.#idle.values()]) {
        // Oldest first: a list is in release order.
        for (const entry of [...list]) {
          const due = entry.since + this.#idleTimeoutMs;
          if (due <= now) this.#drop(entry);
          else next = Math.min(next, due);
        }
      }
      if (next !== Number.POSITIVE_INFINITY) this.#armSweep(Math.max(0, next - now));
    }, delayMs);
  }

  #drop(entry: IdleEntry): void {
    if (entry.taken) return;
    entry.taken = true;
    const list = this.#idle.get(entry.key);
    if (list !== undefined) {
      const at = list.indexOf(entry);
      if (at >= 0) {
        list.splice(at, 1);
        this.#total--;
      }
      if (list.length === 0) this.#idle.delete(entry.key);
    }
    entry.channel.close();
  }
}
