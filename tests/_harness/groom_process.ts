/**
 * Runs groom as users start it (frp's e2e idea): `$GROOM_BIN` when set (a compiled binary or the
 * unzipped launcher), else `deno run main.ts` with the permissions the binaries get. Output lines
 * are collected; tests wait for a line that matches, never for time. On failure the caller prints
 * `output()` to see what the process said.
 * @module
 */

import { fileURLToPath } from "node:url";
import { collectLines } from "../../scripts/bench/procs.ts";
import { GROOM_FLAGS } from "../../scripts/permissions.ts";

export { isEvent, logRecord } from "../../scripts/bench/procs.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Exactly the flags the compiled binaries are built with (scripts/permissions.ts), so every
 * process test also checks that groom needs no permission beyond them.
 */
export const RUN_FLAGS: readonly string[] = GROOM_FLAGS;

/** The command line that starts groom with `args`. */
export function groomCommand(args: readonly string[]): { cmd: string; args: string[] } {
  const bin = Deno.env.get("GROOM_BIN");
  if (bin) return { cmd: bin, args: [...args] };
  return { cmd: Deno.execPath(), args: ["run", ...RUN_FLAGS, `${ROOT}main.ts`, ...args] };
}

/** Result of a groom run that ended by itself. */
export interface GroomResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs groom to completion (for commands that exit: usage, password, check, bad configs). */
export async function runGroom(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<GroomResult> {
  const { cmd, args: full } = groomCommand(args);
  const output = await new Deno.Command(cmd, {
    args: full,
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A long-running groom process (server or agent). */
export class GroomProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  readonly #done: Promise<void>;
  #status: Deno.CommandStatus | undefined;

  /** Starts groom with `args`. */
  constructor(
    args: readonly string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    const { cmd, args: full } = groomCommand(args);
    this.#child = new Deno.Command(cmd, {
      args: full,
      cwd: options.cwd ?? ROOT,
      env: { NO_COLOR: "1", ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#done = Promise.all([
      this.#collect(this.#child.stdout),
      this.#collect(this.#child.stderr),
    ]).then(async () => {
      this.#status = await this.#child.status;
    });
  }

  /** Process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything printed so far (stdout and stderr interleaved by line). */
  output(): string {
    return this.#lines.join("\n");
  }

  /** Lines printed so far. */
  lines(): readonly string[] {
    return this.#lines;
  }

  /**
   * Resolves with the first line (already printed or to come) that passes `test`; rejects when the
   * process exits first, with its output in the message.
   */
  waitFor(test: (line: string) => boolean): Promise<string> {
    const seen = this.#lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ test, resolve });
      this.#done.then(() =>
        reject(new Error(`groom exited (${this.#status?.code}) before the line:\n${this.output()}`))
      );
    });
  }

  /** Sends a signal. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Waits for the process to exit and returns its status. */
  async status(): Promise<Deno.CommandStatus> {
    await this.#done;
    return this.#status as Deno.CommandStatus;
  }

  /** Stops the process (SIGTERM) and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) this.kill("SIGTERM");
    await this.#done;
  }

  #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    return collectLines(stream, (line) => this.#push(line));
  }

  #push(line: string): void {
    this.#lines.push(line);
    for (const waiter of [...this.#waiters]) {
      if (waiter.test(line)) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  }
}
