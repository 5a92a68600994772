/**
 * The one list of Deno permissions and runtime flags groom runs with, shared by every way groom is
 * shipped: `deno compile` bakes them into the binaries (scripts/build.ts), the `--bundle` launcher
 * passes them to the Deno runtime (packaging/groom.sh, packaging/groom.cmd), and the Debian package
 * installs one of those two, so its systemd unit runs with the same list (scripts/deb.ts). Each
 * entry is derived from what src/ uses; nothing is granted "just in case" and there is no `-A`.
 * @module
 */

import { LIBC_PATHS } from "../src/sys/mod.ts";

/** One runtime flag and the reason groom needs it. */
export interface RuntimeFlag {
  /** The flag as Deno takes it. */
  readonly flag: string;
  /** What in groom uses it. */
  readonly why: string;
}

/** Permissions groom needs (granted to the whole program; scoping them would break user configs). */
export const GROOM_PERMISSIONS: readonly RuntimeFlag[] = [
  {
    flag: "--allow-net",
    why: "HTTPS listeners, agent connections to the server, backends, remote syslog over UDP",
  },
  {
    flag: "--allow-read",
    why: "configuration, certificates, domain folders, @file secrets, {{<}} includes, execPath",
  },
  { flag: "--allow-write", why: "file() log targets and their daily rotation" },
  {
    flag: "--allow-env",
    why: "{{&NAME}} macros, HTTPS_PROXY/HTTP_PROXY/NO_PROXY for the agent",
  },
  { flag: "--allow-sys=hostname", why: "the host name in syslog() headers (Deno.hostname)" },
  { flag: "--allow-run", why: "{{|command}} macros run a program named by the configuration" },
  {
    flag: `--allow-ffi=${LIBC_PATHS.join(",")}`,
    why:
      "TCP_NODELAY/TCP_NOTSENT_LOWAT on the listener and the agent's tunnel, the read_timeout/idle_timeout connection watchdog, malloc_trim (Linux), only these C library files",
  },
];

/** Unstable features groom needs. */
export const GROOM_UNSTABLE: readonly RuntimeFlag[] = [
  {
    flag: "--unstable-net",
    why: "per-SNI certificate resolver, reusePort listener reload, local /dev/log syslog socket",
  },
  {
    flag: "--unstable-no-legacy-abort",
    why: "request.signal aborts when the client goes away (client_proxy relies on it)",
  },
];

/** V8 options groom needs (one `--v8-flags`, comma-separated: a second one would replace it). */
export const GROOM_V8: readonly RuntimeFlag[] = [
  {
    flag: "--v8-flags=--expose-gc,--max-semi-space-size=4",
    why:
      "gc() for the memory reducer (src/sys/memory_reducer.ts); a 4 MB young generation semi-space: " +
      "peak RSS under the bench's 50-connection load 187/177 -> 134/132 MB (server/agent), " +
      "same requests/s and MB/s (issue 7)",
  },
];

/** Every flag, permissions first: what `deno compile` and the bundle launcher both receive. */
export const GROOM_FLAGS: readonly string[] = [...GROOM_PERMISSIONS, ...GROOM_UNSTABLE, ...GROOM_V8]
  .map((entry) => entry.flag);

/**
 * Extra `deno run` flags of the `--bundle` launcher, so it behaves as a compiled binary does:
 * no deno.json from the current directory is read and a missing permission throws instead of
 * prompting on a terminal.
 */
export const BUNDLE_RUN_FLAGS: readonly string[] = ["--no-config", "--no-prompt"];
