/**
 * groom's command line: argv in, exit status out. `main.ts` calls {@linkcode main}; tests call it
 * too, with their own output and signal plumbing.
 * @module
 */

import { basename } from "node:path";
import { makePassword } from "../acl/mod.ts";
import { type Command, parseArgs, USAGE, USAGE_LINE } from "./args.ts";
import { checkConfiguration } from "./check.ts";
import { type ModeStarters, runConfiguration, type RunIo } from "./run.ts";
import { VERSION } from "./version.ts";

export { type Command, parseArgs, USAGE, USAGE_LINE } from "./args.ts";
export { CHECK_FAILED, checkConfiguration } from "./check.ts";
export {
  EXIT_CONFIG,
  EXIT_MODE,
  type ModeDeps,
  type ModeStarters,
  runConfiguration,
  type RunIo,
  type RunningMode,
  STOP_GRACE_MS,
} from "./run.ts";
export { VERSION } from "./version.ts";

/** Exit status of a usage error (CLI-2). */
export const EXIT_USAGE = 1;

/** Output and process plumbing of {@linkcode main}. */
export interface MainIo extends RunIo {
  stdout(line: string): void;
  /** The full argv after the program name, for the `{{!…}}` macro. */
  readonly argv: readonly string[];
  env(name: string): string | undefined;
}

/** The name `{{-}}` and syslog tags see: the binary's name, or `groom` under `deno run`. */
export function programName(execPath: string): string {
  const name = basename(execPath).replace(/\.exe$/i, "");
  return name === "deno" || name === "denort" ? "groom" : name;
}

/** Runs the command line and returns the exit status. */
export async function main(io: MainIo, starters: ModeStarters): Promise<number> {
  const command: Command = parseArgs(io.argv);
  switch (command.kind) {
    case "usage":
      if (command.message) io.stderr(`groom: ${command.message}`);
      io.stderr(command.message ? USAGE.trimEnd() : USAGE_LINE);
      return EXIT_USAGE;
    case "help":
      io.stdout(USAGE.trimEnd());
      return 0;
    case "version":
      io.stdout(`groom ${VERSION}`);
      return 0;
    case "password": {
      const result = makePassword(command.secret, command.salt);
      if (!result.ok) {
        io.stderr(result.error);
        return EXIT_USAGE; // CLI-5
      }
      if (result.warning) io.stderr(result.warning);
      io.stdout(result.line);
      return 0;
    }
    case "check":
    case "run": {
      const options = {
        allowExec: command.allowExec,
        allowFetch: command.allowFetch,
        argv: [io.programName, ...io.argv],
        programName: io.programName,
        env: io.env,
      };
      if (command.kind === "check") {
        return await checkConfiguration(command.path, options, { out: io.stdout });
      }
      return await runConfiguration(command.path, options, io, starters);
    }
  }
}
