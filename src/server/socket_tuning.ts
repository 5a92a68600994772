/**
 * Tunes every connection a listener accepts by setting options on the listening socket, which
 * Linux copies to each accepted one. Deno 2.9.6 has no API for either (a `TlsConn` has no
 * `setNoDelay`, and `serveHttpOnListener` accepts in Rust), so the socket is found among the
 * process's descriptors (the listening socket bound to the port, probed by src/sys/libc.ts) and
 * set with `setsockopt` through FFI:
 *
 * - `TCP_NODELAY`: with Nagle on, a small write that follows an unacknowledged one waits for the
 *   peer's delayed ACK, ~40 ms: every streamed response head followed by its body, and every pair
 *   of small tunnel messages (HEAD|START then BODY|END), measured 48 ms p50 and 180 requests/s at
 *   10 connections instead of ~4 ms and ~2,200 (issue 7, `deno task bench`).
 * - `TCP_NOTSENT_LOWAT` ({@linkcode UNSENT_LIMIT_BYTES}): bytes queued in a socket go out in
 *   order, so on an agent's tunnel a request waits behind the upload data the kernel holds; Linux
 *   lets that grow to megabytes. With the bound, the tunnel's scheduler decides the order (issue 6).
 *
 * Best effort: on other systems, without the `ffi` permission or when anything fails, nothing
 * changes.
 * @module
 */

import {
  IPPROTO_TCP,
  SocketCalls,
  TCP_NODELAY,
  TCP_NOTSENT_LOWAT,
  UNSENT_LIMIT_BYTES,
} from "../sys/mod.ts";

/** What {@linkcode tuneListener} did. */
export type TuneOutcome =
  /** Set on this many listening sockets of the port. */
  | { readonly applied: number }
  /** Not possible here (not Linux, no `ffi` permission, no C library). */
  | { readonly skipped: string };

/** The options a tuned listening socket passes to the connections it accepts. */
export interface SocketTuning {
  /** `TCP_NODELAY` is on. */
  readonly noDelay: boolean;
  /** `TCP_NOTSENT_LOWAT` in bytes (0: the system's default, no bound). */
  readonly unsentLimit: number;
}

/** This process's TCP sockets listening on `port` (IPv4 or IPv6). */
function listeningSockets(calls: SocketCalls, port: number): number[] {
  return calls.probe(port).sockets.filter((socket) => socket.listening).map((socket) => socket.fd);
}

/**
 * Sets `TCP_NODELAY` and `TCP_NOTSENT_LOWAT` on this process's sockets listening on `port`, so the
 * connections they accept from now on send small writes at once and hold little unsent data. Call
 * it right after the listener is bound. Never throws.
 */
export function tuneListener(port: number): TuneOutcome {
  let calls: SocketCalls | undefined;
  try {
    calls = SocketCalls.open();
    if (calls === undefined) {
      return { skipped: "needs Linux, the ffi permission for the C library" };
    }
    let applied = 0;
    for (const fd of listeningSockets(calls, port)) {
      const noDelay = calls.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
      const unsent = calls.setIntOption(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, UNSENT_LIMIT_BYTES);
      if (noDelay && unsent) applied++;
    }
    return { applied };
  } catch (error) {
    return { skipped: error instanceof Error ? error.message : String(error) };
  } finally {
    calls?.close();
  }
}

/**
 * Reads the tuning of descriptor `fd` (tests: an accepted connection inherits it), or `undefined`
 * where it cannot be read.
 */
export function descriptorTuning(fd: number): SocketTuning | undefined {
  using calls = SocketCalls.open();
  if (calls === undefined) return undefined;
  return readTuning(calls, fd);
}

/**
 * Reads the tuning of the sockets listening on `port` (tests and diagnostics): one entry per
 * socket found, or `undefined` where {@linkcode tuneListener} would skip.
 */
export function listenerTuning(port: number): SocketTuning[] | undefined {
  using calls = SocketCalls.open();
  if (calls === undefined) return undefined;
  return listeningSockets(calls, port).flatMap((fd) => readTuning(calls, fd) ?? []);
}

function readTuning(calls: SocketCalls, fd: number): SocketTuning | undefined {
  const noDelay = calls.intOption(fd, IPPROTO_TCP, TCP_NODELAY);
  const unsentLimit = calls.intOption(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT);
  if (noDelay === undefined || unsentLimit === undefined) return undefined;
  return { noDelay: noDelay !== 0, unsentLimit };
}
