/**
 * groom: a self-hosted HTTPS reverse proxy with tunnels. One program, two modes: `server`
 * (public side, terminates TLS) and `agent` (private side, dials the server). This file only
 * wires argv, output and signals to the CLI; everything else lives in `src/`.
 * @module
 */

import { main, programName } from "./src/cli/mod.ts";
import { startAgent } from "./src/agent/mod.ts";
import { startServer } from "./src/server/mod.ts";

const encoder = new TextEncoder();

/** Writes one line synchronously, so exit codes never overtake output. */
function writeLine(stream: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = encoder.encode(line + "\n");
  let offset = 0;
  while (offset < bytes.length) offset += stream.writeSync(bytes.subarray(offset));
}

if (import.meta.main) {
  const status = await main({
    argv: Deno.args,
    stdout: (line) => writeLine(Deno.stdout, line),
    stderr: (line) => writeLine(Deno.stderr, line),
    env: (name) => Deno.env.get(name),
    programName: programName(Deno.execPath()),
    pid: Deno.pid,
    onSignal(signal, handler) {
      try {
        Deno.addSignalListener(signal, handler);
        return () => Deno.removeSignalListener(signal, handler);
      } catch {
        return () => {}; // Not available on this platform (SIGHUP on Windows).
      }
    },
  }, { server: startServer, agent: startAgent });
  Deno.exit(status);
}
