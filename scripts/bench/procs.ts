/**
 * Processes for `deno task bench`: a child process whose output lines are collected (readiness is
 * read from log lines, never guessed from time), and the per-process figures Linux exposes in
 * `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/stat` (utime + stime). Elsewhere the figures are
 * `undefined` and the report says "n/a".
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS = 100;
/** How often an {@linkcode RssSampler} looks at the processes. */
const SAMPLE_EVERY_MS = 100;

/**
 * Splits a process's output `stream` into lines and hands each to `push` (the last one even
 * without a final newline); resolves when the stream ends.
 */
export async function collectLines(
  stream: ReadableStream<Uint8Array>,
  push: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) push(line);
  }
  if (rest !== "") push(rest);
}

/** Parses the JSON message of a groom log line (`2026-… INFO {...}`), or undefined. */
export function logRecord(line: string): Record<string, unknown> | undefined {
  const start = line.indexOf("{");
  if (start < 0) return undefined;
  try {
    return JSON.parse(line.slice(start));
  } catch {
    return undefined;
  }
}

/** A line test: the line is a groom log record of `event` with every field of `extra`. */
export function isEvent(
  event: string,
  extra: Record<string, unknown> = {},
): (line: string) => boolean {
  return (line) => {
    const record = logRecord(line);
    return record?.event === event &&
      Object.entries(extra).every(([key, value]) => record[key] === value);
  };
}

/** A child process with its output lines collected. */
export class Child implements AsyncDisposable {
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;

  /** Starts `cmd args` with `env` added to the environment; stdin stays open until `close`. */
  constructor(
    name: string,
    cmd: string,
    args: readonly string[],
    env: Record<string, string> = {},
  ) {
    this.name = name;
    this.#child = new Deno.Command(cmd, {
      args: [...args],
      env: { NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#done = Promise.all([
      this.#collect(this.#child.stdout),
      this.#collect(this.#child.stderr),
    ]).then(() => this.#child.status).then((status) => {
      this.#exited = true;
      return status;
    });
  }

  /** Process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Lines printed so far (stdout and stderr). */
  lines(): readonly string[] {
    return this.#lines;
  }

  /** Everything printed so far. */
  output(): string {
    return this.#lines.join("\n");
  }

  /** The first line (printed or to come) that passes `test`; rejects if the process exits first. */
  waitFor(test: (line: string) => boolean, timeoutMs = 60_000): Promise<string> {
    const seen = this.#lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no expected line within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      this.#waiters.push({
        test,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      this.#done.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before the expected line:\n${this.tail()}`));
      });
    });
  }

  /** The last lines of output, for error messages. */
  tail(count = 30): string {
    return this.#lines.slice(-count).join("\n");
  }

  /** Closes the child's stdin (clients and the backend take it as "stop"). */
  async closeInput(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for the exit status. */
  status(): Promise<Deno.CommandStatus> {
    return this.#done;
  }

  /** Sends a signal unless the process has exited. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Stops the process: stdin closed, SIGTERM, SIGKILL after 10 s. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeInput();
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), 10_000);
    await this.#done;
    clearTimeout(timer);
  }

  #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    return collectLines(stream, (line) => this.#push(line));
  }

  #push(line: string): void {
    this.#lines.push(line);
    // Bounded: a chatty process must not grow the bench.
    if (this.#lines.length > 20_000) this.#lines.splice(0, 10_000);
    for (const waiter of [...this.#waiters]) {
      if (waiter.test(line)) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  }
}

/** Runs `deno run -A <script> <args>` to completion and parses its last stdout line as JSON. */
export async function runScript<T>(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<T> {
  await using child = new Child(script, Deno.execPath(), ["run", "-A", script, ...args], env);
  const status = await child.status();
  const last = [...child.lines()].reverse().find((line) => line.startsWith("{"));
  if (last === undefined) {
    throw new Error(
      `${script} ${args.join(" ")} exited ${status.code} without a result:\n${child.tail()}`,
    );
  }
  return JSON.parse(last) as T;
}

/** Whether this system exposes `/proc/<pid>` figures. */
export function procAvailable(): boolean {
  try {
    return Deno.build.os === "linux" && Deno.statSync("/proc/self/stat").isFile;
  } catch {
    return false;
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or `undefined` where /proc is missing. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) of `pid` in seconds, or `undefined` where /proc is missing. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime)
      ? (utime + stime) / CLOCK_TICKS
      : undefined;
  } catch {
    return undefined;
  }
}

/** Sum of the CPU seconds of `pids`, `undefined` when any is unknown. */
export function totalCpu(pids: readonly number[]): number | undefined {
  let total = 0;
  for (const pid of pids) {
    const cpu = cpuSeconds(pid);
    if (cpu === undefined) return undefined;
    total += cpu;
  }
  return total;
}

/** Polls the RSS of some processes while a measurement runs and keeps the peak of each. */
export class RssSampler {
  readonly #pids: readonly number[];
  readonly #peak: (number | undefined)[];
  readonly #timer: ReturnType<typeof setInterval>;

  /** Starts sampling `pids`. */
  constructor(pids: readonly number[]) {
    this.#pids = pids;
    this.#peak = pids.map((pid) => rssBytes(pid));
    this.#timer = setInterval(() => this.#sample(), SAMPLE_EVERY_MS);
  }

  /** Stops and returns the peak RSS of each process, in `pids` order. */
  stop(): (number | undefined)[] {
    clearInterval(this.#timer);
    this.#sample();
    return this.#peak;
  }

  #sample(): void {
    this.#pids.forEach((pid, i) => {
      const rss = rssBytes(pid);
      const peak = this.#peak[i];
      if (rss !== undefined && (peak === undefined || rss > peak)) this.#peak[i] = rss;
    });
  }
}
