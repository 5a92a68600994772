/**
 * The few C library calls groom needs and Deno 2.9.6 does not offer, through FFI (Linux only):
 * finding this process's TCP sockets by probing descriptors, reading and setting socket options,
 * reading their addresses and shutting them down, and `malloc_trim`. Deno accepts the HTTPS
 * listener's connections in Rust and gives JavaScript no descriptor, so the server's
 * `socket_tuning.ts` (Nagle off, unsent data bounded) and `conn_watchdog.ts` (per-connection deadlines) find the sockets
 * here; the memory reducer trims the allocator. Descriptors are probed with
 * getsockopt (reading `/proc/self/fd` would need Deno's `--allow-all`); the C library is opened by
 * absolute path so the binaries are granted `--allow-ffi` for these files only
 * (scripts/permissions.ts). Without Linux, the `ffi` permission or a C library,
 * {@linkcode SocketCalls.open} returns `undefined` and the callers do without.
 * @module
 */

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

/** `SOL_SOCKET` (Linux). */
const SOL_SOCKET = 1;
/** `IPPROTO_TCP` (Linux). */
export const IPPROTO_TCP = 6;
/** `TCP_NODELAY` (Linux). */
export const TCP_NODELAY = 1;
/** `TCP_NOTSENT_LOWAT` (Linux): bound of the bytes a socket holds that were not sent yet. */
export const TCP_NOTSENT_LOWAT = 25;
/**
 * The `TCP_NOTSENT_LOWAT` groom sets on tunnel and client sockets. Bytes a socket holds go out in
 * order, so a small stream's message waits behind whatever the kernel has not sent yet, and Linux
 * lets that grow to megabytes on a fast link. Measured with the process test of issue 6 (50 small
 * requests beside 100 MiB downloads): p99 58-82 ms without the bound, 37-44 ms with it, same
 * MB/s. Data in flight (sent, not yet acknowledged) is not limited, so a long fat link keeps its
 * throughput; 128 KiB is two of groom's 64 KiB messages, enough to keep the socket busy between
 * two wake-ups of the writer.
 */
export const UNSENT_LIMIT_BYTES = 128 * 1024;
/** `SO_ACCEPTCONN` (Linux): 1 on a listening socket, 0 on a connected one. */
const SO_ACCEPTCONN = 30;
/** `SO_PROTOCOL` (Linux): the socket's protocol, `IPPROTO_TCP` for the listener's connections. */
const SO_PROTOCOL = 38;
/** `SHUT_RDWR`: both directions. */
const SHUT_RDWR = 2;
/** `F_GETFD`: fails with EBADF exactly when the descriptor is not open. */
const F_GETFD = 1;
/** `AF_INET` (Linux). */
const AF_INET = 2;
/** `AF_INET6` (Linux). */
const AF_INET6 = 10;
/** `sizeof(struct sockaddr_storage)`. */
const SOCKADDR_SIZE = 128;

/**
 * Descriptors always probed: the runtime's own files, the listeners and the first connections sit
 * below this; beyond it the probe follows the open descriptors (see {@linkcode PROBE_MARGIN}).
 */
export const PROBE_FLOOR = 64;
/**
 * Consecutive unused descriptors that end a probe beyond the floor. The kernel hands out the lowest
 * free descriptor, so open ones are packed; a gap this long means nothing newer lies above it.
 */
export const PROBE_MARGIN = 256;

const LIBC_SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** An IPv4 or IPv6 socket address; `hostname` as {@linkcode canonicalHostname} writes it. */
export interface SocketAddress {
  readonly hostname: string;
  readonly port: number;
}

/** One socket found by {@linkcode probeSockets}. */
export interface ProbedSocket {
  /** The descriptor. */
  readonly fd: number;
  /** Whether it is a listening socket (`SO_ACCEPTCONN`). */
  readonly listening: boolean;
  /** Its local address. */
  readonly local: SocketAddress;
}

/** What {@linkcode probeSockets} found. */
export interface ProbeResult {
  /** The TCP sockets of IPv4 and IPv6 addresses, by ascending descriptor. */
  readonly sockets: readonly ProbedSocket[];
  /** How many descriptors were probed. */
  readonly probed: number;
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  if (Deno.build.os !== "linux") return undefined;
  for (const path of LIBC_PATHS) {
    if (!granted({ name: "ffi", path })) continue;
    try {
      return Deno.dlopen(path, symbols);
    } catch {
      // Not this layout: try the next path.
    }
  }
  return undefined;
}

/** glibc's `malloc_trim`; optional, so a C library without it (musl) still opens. */
const TRIM_SYMBOLS = {
  malloc_trim: { parameters: ["usize"], result: "i32", optional: true },
} as const;

/**
 * Gives the C allocator's free memory back to the system (`malloc_trim(0)`, glibc). Opens and
 * closes the library each time: it runs once per quiet period, and nothing stays open. False where
 * it is not possible (not Linux, no `ffi` permission, no glibc).
 */
export function trimAllocator(): boolean {
  const libc = openLibc(TRIM_SYMBOLS);
  if (libc === undefined) return false;
  try {
    const trim = libc.symbols.malloc_trim;
    if (trim === null) return false;
    trim(0n);
    return true;
  } finally {
    libc.close();
  }
}

/**
 * The C library's socket calls, with their argument buffers allocated once (a probe makes
 * thousands of calls; fresh buffers each time made it five times slower, measured).
 */
export class SocketCalls implements Disposable {
  readonly #libc: Libc;
  readonly #value = new Int32Array(1);
  readonly #valueBytes = new Uint8Array(this.#value.buffer);
  readonly #length = new Uint32Array(1);
  readonly #lengthBytes = new Uint8Array(this.#length.buffer);
  readonly #address = new Uint8Array(SOCKADDR_SIZE);

  private constructor(libc: Libc) {
    this.#libc = libc;
  }

  /**
   * Opens the C library, or returns `undefined` where that is not possible (not Linux, no `ffi`
   * permission for any of {@linkcode LIBC_PATHS}, none of them present). The caller closes it.
   */
  static open(): SocketCalls | undefined {
    const libc = openLibc(LIBC_SYMBOLS);
    return libc === undefined ? undefined : new SocketCalls(libc);
  }

  /** An `int` socket option of `fd`, or `undefined` when it cannot be read (not a socket). */
  intOption(fd: number, level: number, option: number): number | undefined {
    this.#length[0] = 4;
    const status = this.#libc.symbols.getsockopt(
      fd,
      level,
      option,
      this.#valueBytes,
      this.#lengthBytes,
    );
    return status === 0 ? this.#value[0] : undefined;
  }

  /** Sets an `int` socket option of `fd`; true when it was set. */
  setIntOption(fd: number, level: number, option: number, value: number): boolean {
    this.#value[0] = value;
    return this.#libc.symbols.setsockopt(fd, level, option, this.#valueBytes, 4) === 0;
  }

  /**
   * The local or peer address of socket `fd`, or `undefined` when it has none or is not an IPv4
   * or IPv6 socket.
   */
  address(fd: number, side: "local" | "peer"): SocketAddress | undefined {
    const port = this.#readAddress(fd, side);
    return port === undefined ? undefined : { hostname: this.#hostname(), port };
  }

  /** Reads the address into the buffer; returns its port, `undefined` if not IPv4 or IPv6. */
  #readAddress(fd: number, side: "local" | "peer"): number | undefined {
    const address = this.#address;
    this.#length[0] = SOCKADDR_SIZE;
    const symbols = this.#libc.symbols;
    const status = side === "local"
      ? symbols.getsockname(fd, address, this.#lengthBytes)
      : symbols.getpeername(fd, address, this.#lengthBytes);
    if (status !== 0) return undefined;
    const family = address[0] ?? 0; // sa_family_t, little-endian on Linux's architectures
    if (family !== AF_INET && family !== AF_INET6) return undefined;
    return ((address[2] ?? 0) << 8) | (address[3] ?? 0); // network byte order
  }

  /** The IP address of the address last read. */
  #hostname(): string {
    const address = this.#address;
    if (address[0] === AF_INET) return address.subarray(4, 8).join(".");
    const groups: string[] = [];
    for (let offset = 8; offset < 24; offset += 2) {
      groups.push((((address[offset] ?? 0) << 8) | (address[offset + 1] ?? 0)).toString(16));
    }
    return canonicalHostname(groups.join(":"));
  }

  /**
   * This process's TCP sockets of IPv4 and IPv6 addresses whose local port is `port` (any port
   * when omitted). Descriptors are probed from 0 through `through` (at least
   * {@linkcode PROBE_FLOOR}) and on until {@linkcode PROBE_MARGIN} consecutive ones are unused, so
   * the cost follows the number of open descriptors, not the limit on them. Pass the highest
   * descriptor of interest seen before as `through` so a long-lived one above a gap is not missed.
   */
  probe(port?: number, through = 0): ProbeResult {
    const sockets: ProbedSocket[] = [];
    const end = Math.max(through, PROBE_FLOOR);
    let lastOpen = -1;
    let fd = 0;
    for (; fd <= end || fd - lastOpen <= PROBE_MARGIN; fd++) {
      const accepting = this.intOption(fd, SOL_SOCKET, SO_ACCEPTCONN);
      if (accepting === undefined) {
        if (this.#libc.symbols.fcntl(fd, F_GETFD, 0) !== -1) lastOpen = fd;
        continue;
      }
      lastOpen = fd;
      const localPort = this.#readAddress(fd, "local");
      if (localPort === undefined || (port !== undefined && localPort !== port)) continue;
      const local = { hostname: this.#hostname(), port: localPort };
      if (this.intOption(fd, SOL_SOCKET, SO_PROTOCOL) !== IPPROTO_TCP) continue;
      sockets.push({ fd, listening: accepting === 1, local });
    }
    return { sockets, probed: fd };
  }

  /**
   * Shuts both directions of socket `fd` down: the peer gets a FIN and whoever owns the
   * descriptor reads end-of-file, then closes it. Not `close()`: the descriptor belongs to Deno's
   * runtime, and closing it under its feet could close an unrelated file that reuses the number.
   * True when done.
   */
  shutdown(fd: number): boolean {
    return this.#libc.symbols.shutdown(fd, SHUT_RDWR) === 0;
  }

  /** Releases the C library. */
  close(): void {
    this.#libc.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * An IP address in one spelling, so addresses from the kernel and from Deno compare equal: IPv4
 * as is, IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as IPv4, other IPv6 compressed and lower-case
 * (RFC 5952, as the URL standard writes it) without a zone. Anything else is returned unchanged.
 */
export function canonicalHostname(hostname: string): string {
  if (!hostname.includes(":")) return hostname;
  const zoneless = hostname.replace(/%.*$/, "").replace(/^\[|\]$/g, "");
  let canonical: string;
  try {
    canonical = new URL(`http://[${zoneless}]/`).hostname.slice(1, -1);
  } catch {
    return hostname;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const high = parseInt(mapped[1] ?? "0", 16);
  const low = parseInt(mapped[2] ?? "0", 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
}
