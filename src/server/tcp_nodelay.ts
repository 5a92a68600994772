/**
 * Turns Nagle's algorithm off for every connection a listener accepts, by setting `TCP_NODELAY` on
 * the listening socket (Linux copies it to each accepted socket). Deno 2.9.6 leaves Nagle on for
 * the connections of `Deno.listenTls` and has no API to change it (a `TlsConn` has no
 * `setNoDelay`, and `serveHttpOnListener` accepts in Rust). With Nagle on, a small write that
 * follows an unacknowledged one waits for the peer's delayed ACK, ~40 ms: every streamed response
 * head followed by its body, and every pair of small tunnel messages (HEAD|START then BODY|END),
 * measured 48 ms p50 and 180 requests/s at 10 connections instead of ~4 ms and ~2,200 (issue 7,
 * `deno task bench`). The socket is found among the process's descriptors (the listening socket
 * bound to the port, probed by libc.ts) and the option is set with `setsockopt` through FFI. Best effort: on other
 * systems, without the `ffi` permission or when anything fails, nothing changes.
 * @module
 */

import { IPPROTO_TCP, SocketCalls, TCP_NODELAY } from "../sys/mod.ts";

/** What {@linkcode setListenerNoDelay} did. */
export type NoDelayOutcome =
  /** Set on this many listening sockets of the port. */
  | { readonly applied: number }
  /** Not possible here (not Linux, no `ffi` or `read` permission, no C library). */
  | { readonly skipped: string };

/** This process's TCP sockets listening on `port` (IPv4 or IPv6). */
function listeningSockets(calls: SocketCalls, port: number): number[] {
  return calls.probe(port).sockets.filter((socket) => socket.listening).map((socket) => socket.fd);
}

/**
 * Sets `TCP_NODELAY` on this process's sockets listening on `port`, so the connections they
 * accept from now on send small writes at once. Call it right after the listener is bound. Never
 * throws.
 */
export function setListenerNoDelay(port: number): NoDelayOutcome {
  let calls: SocketCalls | undefined;
  try {
    calls = SocketCalls.open();
    if (calls === undefined) {
      return { skipped: "needs Linux, the ffi permission for the C library" };
    }
    let applied = 0;
    for (const fd of listeningSockets(calls, port)) {
      if (calls.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1)) applied++;
    }
    return { applied };
  } catch (error) {
    return { skipped: error instanceof Error ? error.message : String(error) };
  } finally {
    calls?.close();
  }
}

/**
 * Reads `TCP_NODELAY` of descriptor `fd` (tests: an accepted connection inherits it), or
 * `undefined` where it cannot be read.
 */
export function descriptorNoDelay(fd: number): boolean | undefined {
  using calls = SocketCalls.open();
  if (calls === undefined) return undefined;
  const value = calls.intOption(fd, IPPROTO_TCP, TCP_NODELAY);
  return value === undefined ? undefined : value !== 0;
}

/**
 * Reads `TCP_NODELAY` of the sockets listening on `port` (tests and diagnostics): one boolean per
 * socket found, or `undefined` where {@linkcode setListenerNoDelay} would skip.
 */
export function listenerNoDelay(port: number): boolean[] | undefined {
  using calls = SocketCalls.open();
  if (calls === undefined) return undefined;
  return listeningSockets(calls, port).map((fd) =>
    calls.intOption(fd, IPPROTO_TCP, TCP_NODELAY) !== 0
  );
}
