/**
 * Turns Nagle's algorithm off for every connection a listener accepts, by setting `TCP_NODELAY` on
 * the listening socket (Linux copies it to each accepted socket). Deno 2.9.6 leaves Nagle on for
 * the connections of `Deno.listenTls` and has no API to change it (a `TlsConn` has no
 * `setNoDelay`, and `serveHttpOnListener` accepts in Rust). With Nagle on, a small write that
 * follows an unacknowledged one waits for the peer's delayed ACK, ~40 ms: every streamed response
 * head followed by its body, and every pair of small tunnel messages (HEAD|START then BODY|END),
 * measured 48 ms p50 and 180 requests/s at 10 connections instead of ~4 ms and ~2,200 (issue 7,
 * `deno task bench`). The socket is found among the process's descriptors (the listening socket
 * bound to the port; descriptors are probed with getsockopt, since reading `/proc/self/fd` needs
 * Deno's `--allow-all`) and the option is set with `setsockopt` through FFI. Best effort: on other
 * systems, without the `ffi` permission or when anything fails, nothing changes.
 * @module
 */

/** `IPPROTO_TCP` (Linux). */
const IPPROTO_TCP = 6;
/** `TCP_NODELAY` (Linux). */
const TCP_NODELAY = 1;
/** `SOL_SOCKET` (Linux). */
const SOL_SOCKET = 1;
/**
 * Descriptors probed for the listening socket: a new listener gets the lowest free descriptor, so
 * it is far below this in a proxy's life; each probe is one cheap getsockopt (ENOTSOCK or EBADF
 * for the others), done once per listener start.
 */
const MAX_PROBED_FD = 65_536;
/** `SO_ACCEPTCONN` (Linux): 1 on a listening socket. */
const SO_ACCEPTCONN = 30;
/** Address families of TCP sockets (`AF_INET`, `AF_INET6`). */
const INET_FAMILIES: ReadonlySet<number> = new Set([2, 10]);
/**
 * The C library, by absolute path, tried in turn: Debian/Ubuntu multiarch (x86_64, aarch64), then
 * RHEL-style and Arch-style layouts. Absolute so the binaries can be granted `--allow-ffi` for these
 * files only (scripts/permissions.ts), not FFI in general.
 */
export const LIBC_PATHS: readonly string[] = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib/libc.so.6",
];

/** What {@linkcode setListenerNoDelay} did. */
export type NoDelayOutcome =
  /** Set on this many listening sockets of the port. */
  | { readonly applied: number }
  /** Not possible here (not Linux, no `ffi` or `read` permission, no C library). */
  | { readonly skipped: string };

const LIBC_SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function openLibc(): Libc | undefined {
  if (Deno.build.os !== "linux") return undefined;
  for (const path of LIBC_PATHS) {
    if (!granted({ name: "ffi", path })) continue;
    try {
      return Deno.dlopen(path, LIBC_SYMBOLS);
    } catch {
      // Not this layout: try the next path.
    }
  }
  return undefined;
}

/** An `int` socket option of `fd`, or `undefined` when it cannot be read (not a socket). */
function intOption(libc: Libc, fd: number, level: number, option: number): number | undefined {
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  const status = libc.symbols.getsockopt(
    fd,
    level,
    option,
    new Uint8Array(value.buffer),
    new Uint8Array(length.buffer),
  );
  return status === 0 ? value[0] : undefined;
}

/**
 * This process's TCP sockets listening on `port`: each descriptor that is a listening socket
 * (`SO_ACCEPTCONN`) of an IPv4 or IPv6 address with that port.
 */
function listeningSockets(libc: Libc, port: number): number[] {
  const found: number[] = [];
  const address = new Uint8Array(128); // sockaddr_storage
  const length = new Uint32Array(1);
  for (let fd = 0; fd < MAX_PROBED_FD; fd++) {
    if (intOption(libc, fd, SOL_SOCKET, SO_ACCEPTCONN) !== 1) continue;
    length[0] = address.length;
    if (libc.symbols.getsockname(fd, address, new Uint8Array(length.buffer)) !== 0) continue;
    const family = address[0] ?? 0; // sa_family_t, little-endian on Linux's architectures
    const boundPort = ((address[2] ?? 0) << 8) | (address[3] ?? 0); // network byte order
    if (INET_FAMILIES.has(family) && boundPort === port) found.push(fd);
  }
  return found;
}

/**
 * Sets `TCP_NODELAY` on this process's sockets listening on `port`, so the connections they
 * accept from now on send small writes at once. Call it right after the listener is bound. Never
 * throws.
 */
export function setListenerNoDelay(port: number): NoDelayOutcome {
  let libc: Libc | undefined;
  try {
    libc = openLibc();
    if (libc === undefined) {
      return { skipped: "needs Linux, the ffi permission for the C library" };
    }
    const one = new Uint8Array(new Int32Array([1]).buffer);
    let applied = 0;
    for (const fd of listeningSockets(libc, port)) {
      if (libc.symbols.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, one.length) === 0) applied++;
    }
    return { applied };
  } catch (error) {
    return { skipped: error instanceof Error ? error.message : String(error) };
  } finally {
    libc?.close();
  }
}

/**
 * Reads `TCP_NODELAY` of descriptor `fd` (tests: an accepted connection inherits it), or
 * `undefined` where it cannot be read.
 */
export function descriptorNoDelay(fd: number): boolean | undefined {
  const libc = openLibc();
  if (libc === undefined) return undefined;
  try {
    const value = intOption(libc, fd, IPPROTO_TCP, TCP_NODELAY);
    return value === undefined ? undefined : value !== 0;
  } finally {
    libc.close();
  }
}

/**
 * Reads `TCP_NODELAY` of the sockets listening on `port` (tests and diagnostics): one boolean per
 * socket found, or `undefined` where {@linkcode setListenerNoDelay} would skip.
 */
export function listenerNoDelay(port: number): boolean[] | undefined {
  const libc = openLibc();
  if (libc === undefined) return undefined;
  try {
    return listeningSockets(libc, port).map((fd) =>
      intOption(libc, fd, IPPROTO_TCP, TCP_NODELAY) !== 0
    );
  } finally {
    libc.close();
  }
}
