/**
 * Per-connection deadlines for the `deno` listener (issue 8, slowloris; SRV-22, DIR-2): a
 * connection that has not delivered a request head `read_timeout` after it was accepted (silent
 * TCP, a stalled TLS handshake, a head trickled byte by byte) or that sits idle between keep-alive
 * requests for `idle_timeout` is shut down. Deno 2.9.6 accepts and serves the listener's
 * connections in Rust (hyper, with no header-read timeout) and gives JavaScript no handle on a
 * connection; serving each connection from JavaScript instead would break WebSocket upgrades.
 * So a watchdog looks at the sockets themselves, through the C library (libc.ts): every
 * {@linkcode WATCHDOG_INTERVAL_MS} it lists this process's connected TCP sockets of the listener's
 * address, keyed by peer address, and the listener tells it when a request starts and when its
 * response is finished or upgraded (the handler knows the peer address). A connection with a
 * request in flight or upgraded (WebSocket, raw upgrade) is never cut here: bodies have
 * `body_timeout`, tunnels their own idle limits. A cut is `shutdown(SHUT_RDWR)`, not `close()`,
 * since the descriptor belongs to Deno's runtime: the peer gets a FIN, hyper reads end-of-file and
 * closes it. HTTP/2 streams of one connection share its in-flight count. Linux only, and only with
 * the `ffi` permission for the C library: elsewhere {@linkcode ConnectionWatchdog.start} returns
 * `undefined` and these deadlines are not enforced. Cuts are counted, never logged (a slowloris
 * flood must not flood the log).
 * @module
 */

import { canonicalHostname, type SocketAddress, SocketCalls } from "../sys/mod.ts";

/**
 * How often connections are checked; a deadline is enforced at most this much late. Half a second
 * is fine-grained enough for the 5 s minimum of `read_timeout` and `idle_timeout`, and keeps a
 * byte-a-second slowloris from sending more than one byte past its deadline. One check costs
 * ~0.1 ms on an idle server and ~4 ms with 1 000 connections (measured, conn_watchdog_test.ts):
 * under 1 % of a core.
 */
export const WATCHDOG_INTERVAL_MS = 500;
/**
 * Timers fire late, never early, but two checks may still be a hair closer than their period;
 * without this allowance such a hair could push a cut a whole period later.
 */
const TIMER_SLACK_MS = 20;

/** Options of {@linkcode ConnectionWatchdog.start}. */
export interface WatchdogOptions {
  /** The listener's bound address: its port, and its IP unless it is `::` or `0.0.0.0`. */
  readonly local: Deno.NetAddr;
  /** Longest time from accept to the first request head. */
  readonly readTimeoutMs: number;
  /** Longest time without a request in flight after the first one. */
  readonly idleTimeoutMs: number;
  /** Check period, default {@linkcode WATCHDOG_INTERVAL_MS}. */
  readonly intervalMs?: number;
}

/** A request's hold on its connection, from {@linkcode ConnectionWatchdog.begin}. */
export interface RequestTicket {
  /** The response was sent (or failed): the connection idles once no other request runs. */
  finish(): void;
  /** The connection was upgraded (status 101): it is never cut from now on. */
  upgrade(): void;
}

/** What is known of one connection. */
interface Tracked {
  /** Its descriptor, once a check found it (a request may come first). */
  fd: number | undefined;
  /** When a check (or a request) first saw it. */
  readonly firstSeen: number;
  /** Requests (HTTP/2 streams) whose response is not finished. */
  inFlight: number;
  /** Requests seen so far. */
  requests: number;
  /** When the last request finished. */
  lastFinished: number;
  /** Upgraded: exempt from the deadlines. */
  upgraded: boolean;
}

/** Watches the connections of one listening address; see the module comment. */
export class ConnectionWatchdog implements Disposable {
  readonly #calls: SocketCalls;
  readonly #port: number;
  /** The local IP connections must have, or undefined for a wildcard listener. */
  readonly #localHost: string | undefined;
  readonly #readTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #connections = new Map<string, Tracked>();
  readonly #timer: ReturnType<typeof setInterval>;
  #highestFd = 0;
  #cuts = 0;
  #probed = 0;
  #closed = false;

  private constructor(calls: SocketCalls, options: WatchdogOptions) {
    this.#calls = calls;
    this.#port = options.local.port;
    const host = canonicalHostname(options.local.hostname);
    this.#localHost = host === "::" || host === "0.0.0.0" ? undefined : host;
    this.#readTimeoutMs = options.readTimeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#timer = setInterval(() => this.check(), options.intervalMs ?? WATCHDOG_INTERVAL_MS);
  }

  /**
   * Starts watching the connections of `options.local`, or returns `undefined` where it cannot
   * (not Linux, no `ffi` permission for the C library).
   */
  static start(options: WatchdogOptions): ConnectionWatchdog | undefined {
    const calls = SocketCalls.open();
    return calls === undefined ? undefined : new ConnectionWatchdog(calls, options);
  }

  /** Connections cut so far. */
  get cuts(): number {
    return this.#cuts;
  }

  /** Connections currently known. */
  get tracked(): number {
    return this.#connections.size;
  }

  /** Descriptors probed by the last check. */
  get probed(): number {
    return this.#probed;
  }

  /** A request from `peer` started; the ticket says when it ends. */
  begin(peer: Deno.NetAddr): RequestTicket {
    const key = peerKey(peer);
    let tracked = this.#connections.get(key);
    if (tracked === undefined) {
      tracked = fresh(undefined, performance.now());
      this.#connections.set(key, tracked);
    }
    const connection = tracked;
    connection.inFlight++;
    connection.requests++;
    let finished = false;
    return {
      finish: () => {
        if (finished) return;
        finished = true;
        connection.inFlight--;
        connection.lastFinished = performance.now();
      },
      upgrade: () => {
        connection.upgraded = true;
      },
    };
  }

  /**
   * Lists the connections and cuts those past their deadline; runs every interval, callable by
   * tests. Never throws.
   */
  check(now: number = performance.now()): void {
    if (this.#closed) return;
    try {
      this.#check(now);
    } catch {
      // A failed probe leaves the connections alone until the next check.
    }
  }

  #check(now: number): void {
    const probe = this.#calls.probe(this.#port, this.#highestFd);
    this.#probed = probe.probed;
    const seen = new Set<Tracked>();
    let highest = 0;
    for (const socket of probe.sockets) {
      if (socket.listening || !this.#isLocal(socket.local)) continue;
      const peer = this.#calls.address(socket.fd, "peer");
      if (peer === undefined) continue;
      highest = socket.fd;
      const key = peerKey(peer);
      let tracked = this.#connections.get(key);
      if (tracked === undefined || (tracked.fd !== undefined && tracked.fd !== socket.fd)) {
        tracked = fresh(socket.fd, now); // new, or the peer port now names another connection
        this.#connections.set(key, tracked);
      }
      tracked.fd = socket.fd;
      seen.add(tracked);
      if (this.#expired(tracked, now) && this.#cut(socket.fd, key)) {
        this.#cuts++;
        this.#connections.delete(key);
      }
    }
    this.#highestFd = highest;
    // Gone: a connection whose socket was not found has been closed (one that a request
    // announced is found by the next check: the check and the handlers share one thread).
    for (const [key, tracked] of this.#connections) {
      if (!seen.has(tracked)) this.#connections.delete(key);
    }
  }

  #isLocal(local: SocketAddress): boolean {
    return local.port === this.#port &&
      (this.#localHost === undefined || local.hostname === this.#localHost);
  }

  #expired(tracked: Tracked, now: number): boolean {
    if (tracked.upgraded || tracked.inFlight > 0) return false;
    // firstSeen is the first check after the accept: the real age is at least this.
    return tracked.requests === 0
      ? now - tracked.firstSeen >= this.#readTimeoutMs - TIMER_SLACK_MS
      : now - tracked.lastFinished >= this.#idleTimeoutMs - TIMER_SLACK_MS;
  }

  /** Shuts `fd` down after checking it still is the connection of `key` (the number may be reused). */
  #cut(fd: number, key: string): boolean {
    const local = this.#calls.address(fd, "local");
    const peer = this.#calls.address(fd, "peer");
    if (local === undefined || peer === undefined || !this.#isLocal(local)) return false;
    if (peerKey(peer) !== key) return false;
    return this.#calls.shutdown(fd);
  }

  /** Stops checking and releases the C library. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#connections.clear();
    this.#calls.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function fresh(fd: number | undefined, now: number): Tracked {
  return { fd, firstSeen: now, inFlight: 0, requests: 0, lastFinished: now, upgraded: false };
}

/** One spelling of a peer address, the same from the kernel and from Deno. */
function peerKey(peer: SocketAddress): string {
  return `${canonicalHostname(peer.hostname)} ${peer.port}`;
}
