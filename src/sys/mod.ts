/**
 * Operating-system services Deno does not offer: the quiet-period memory reducer and, through FFI,
 * the few C library calls groom needs (socket options and probing, `malloc_trim`). A leaf: it
 * imports no other groom folder.
 * @module
 */

export { MemoryReducer, type MemoryReducerOptions, QUIET_TICK_MS } from "./memory_reducer.ts";
export {
  canonicalHostname,
  IPPROTO_TCP,
  LIBC_PATHS,
  PROBE_FLOOR,
  PROBE_MARGIN,
  type ProbedSocket,
  type ProbeResult,
  type SocketAddress,
  SocketCalls,
  TCP_NODELAY,
  TCP_NOTSENT_LOWAT,
  trimAllocator,
  UNSENT_LIMIT_BYTES,
} from "./libc.ts";
