/**
 * The logger: `info(record)` and friends are synchronous, filter by level, encode the record
 * (LOG-7), format it for every output and queue it; each output drains its own bounded queue
 * asynchronously, so request handling never waits for a disk, a pipe or a syslog daemon. When a
 * queue is full, lines are dropped and counted, and one WARN line says how many once the queue
 * has drained. `reload()` swaps the outputs in place (SIGHUP, CLI-10) without losing or
 * reordering lines; `flush()` and `close()` let callers and tests wait.
 *
 * @module
 */

import type { LogEvent } from "./events.ts";
import {
  encodeJson,
  type LineStyle,
  localZone,
  type LogLevel,
  SEVERITY_CODES,
  type TimeZone,
  UTC_ZONE,
} from "./format.ts";
import {
  ConsoleSink,
  FailureReport,
  FileSink,
  type LogLine,
  type LogSink,
  type SinkItem,
  SYSLOG_SOCKET_PATHS,
  SyslogSink,
  UdpTransport,
  UnixTransport,
  type WritableLike,
} from "./sinks.ts";
import { type LogTarget, parseLogTarget } from "./target.ts";

/**
 * Most text one output may hold queued (UTF-16 code units, i.e. bytes for ASCII lines): about
 * 10 000 access lines, enough to ride out a slow disk or a stalled pipe for a few seconds at
 * full speed while bounding memory.
 */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Most lines one output may hold queued, whatever their size (bounds per-line overhead). */
export const MAX_QUEUED_LINES = 20_000;
/** Most text handed to an output in one write, so a long queue is written in a few calls. */
export const MAX_BATCH_BYTES = 256 * 1024;

/** What a logger needs from its surroundings; every field has a sensible default. */
export interface LoggerDeps {
  /** The clock; default `() => new Date()`. */
  readonly clock?: () => Date;
  /** The local time zone; default the process's (`TZ`). `option(utc=yes)` overrides it. */
  readonly timeZone?: TimeZone;
  /** Syslog tag and file-facility name when no `name` option is given; default `groom`. */
  readonly programName?: string;
  /** Process id in syslog-style lines; default `Deno.pid`. */
  readonly pid?: number;
  /** Host name in remote syslog datagrams; default `Deno.hostname()`. */
  readonly hostname?: string;
  /** Stream for `console(output=stdout)`; default `Deno.stdout`. */
  readonly stdout?: WritableLike;
  /** Stream for the console otherwise and for failure reports; default `Deno.stderr`. */
  readonly stderr?: WritableLike;
  /** Local syslog sockets to try in order; default {@linkcode SYSLOG_SOCKET_PATHS}. */
  readonly syslogSocketPaths?: readonly string[];
  /** Operating system as `Deno.build.os` names it (no colours and no syslog on Windows). */
  readonly os?: string;
}

/** Builds the message of the line that reports dropped lines. */
function droppedRecord(count: number): Record<string, unknown> {
  return {
    dropped: count,
    error: `${count} log line${count === 1 ? "" : "s"} dropped`,
    event: "log",
  };
}

/** One output with its bounded queue and drain loop. */
class OutputQueue {
  #sink: LogSink;
  #clock: () => Date;
  #gate: Promise<void>;
  #items: SinkItem[] = [];
  #bytes = 0;
  #dropped = 0;
  #enqueued = 0;
  #written = 0;
  #running: Promise<void> | null = null;
  #waiters: { target: number; resolve: () => void }[] = [];

  /** Drains into `sink`, but not before `gate` settles (the outputs it replaces are closed). */
  constructor(sink: LogSink, clock: () => Date, gate: Promise<void>) {
    this.#sink = sink;
    this.#clock = clock;
    this.#gate = gate;
  }

  get sink(): LogSink {
    return this.#sink;
  }

  push(line: LogLine): void {
    let item: SinkItem;
    try {
      item = this.#sink.format(line);
    } catch {
      return; // formatting is pure; a throw would be a bug, and must not reach the caller
    }
    const size = item.text.length;
    const full = this.#items.length >= MAX_QUEUED_LINES ||
      (this.#items.length > 0 && this.#bytes + size > MAX_QUEUED_BYTES);
    if (full) {
      this.#dropped++;
      return;
    }
    this.#items.push(item);
    this.#bytes += size;
    this.#enqueued++;
    this.#running ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      await this.#gate;
      while (this.#items.length > 0 || this.#dropped > 0) {
        if (this.#items.length === 0) {
          const count = this.#dropped;
          this.#dropped = 0;
          const line = {
            level: "warning" as const,
            time: this.#clock(),
            message: encodeJson(droppedRecord(count)),
          };
          await this.#writeSafely([this.#sink.format(line)]);
          this.#wake();
          continue;
        }
        let take = 0;
        let bytes = 0;
        for (const item of this.#items) {
          if (take > 0 && bytes + item.text.length > MAX_BATCH_BYTES) break;
          bytes += item.text.length;
          take++;
        }
        const batch = this.#items.splice(0, take);
        this.#bytes -= bytes;
        await this.#writeSafely(batch);
        this.#written += batch.length;
        this.#wake();
      }
    } catch {
      // Unreachable in practice (writes are guarded); never let a rejection escape.
    } finally {
      this.#running = null;
      this.#wake();
    }
  }

  async #writeSafely(items: readonly SinkItem[]): Promise<void> {
    try {
      await this.#sink.write(items);
    } catch {
      // Outputs report their own failures; a throw here must not stop the drain loop.
    }
  }

  #wake(): void {
    const idle = this.#running === null;
    this.#waiters = this.#waiters.filter((waiter) => {
      const done = idle || (this.#written >= waiter.target && this.#dropped === 0);
      if (done) waiter.resolve();
      return !done;
    });
  }

  /** Resolves once every line queued so far (and any owed drop notice) is written. */
  flush(): Promise<void> {
    if (this.#running === null) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ target: this.#enqueued, resolve });
    return promise;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#sink.close();
  }
}

/** Creates the outputs a target asks for. */
function createSinks(target: LogTarget, deps: LoggerDeps): LogSink[] {
  const os = deps.os ?? Deno.build.os;
  const programName = deps.programName ?? "groom";
  const pid = deps.pid ?? Deno.pid;
  const stderr = deps.stderr ?? Deno.stderr;
  const local = deps.timeZone ?? localZone();
  const zone = target.utc ? UTC_ZONE : local;
  const sinks: LogSink[] = [];

  if (target.console !== null) {
    const { stream: which, time, severity, colors } = target.console;
    const stream = which === "stdout" ? deps.stdout ?? Deno.stdout : stderr;
    const style: LineStyle = {
      time,
      severity,
      colors: colors && os !== "windows" && stream.isTerminal?.() === true,
    };
    const name = `console (${which})`;
    const report = which === "stdout" ? new FailureReport(stderr, programName, name) : null;
    sinks.push(new ConsoleSink(stream, { style, zone, report, name }));
  }

  if (target.file !== null) {
    const { path, time, severity, facility } = target.file;
    const style: LineStyle = facility === 0 ? { time, severity, colors: false } : {
      time,
      severity,
      colors: false,
      syslog: { facility, name: target.syslog?.name ?? programName, pid },
    };
    const description = `file ${JSON.stringify(path)}`;
    sinks.push(
      new FileSink(path, {
        style,
        zone,
        report: new FailureReport(stderr, programName, description),
        description,
      }),
    );
  }

  if (target.syslog !== null && os !== "windows") {
    const { remote, name, facility } = target.syslog;
    const tag = name ?? programName;
    // Go's log/syslog stamps datagrams with the local time, whatever option(utc) says.
    if (remote !== null) {
      const description = `syslog ${remote.host}:${remote.port}`;
      sinks.push(
        new SyslogSink(new UdpTransport(remote.host, remote.port), {
          header: { facility, tag, pid, hostname: deps.hostname ?? hostnameOrLocalhost() },
          zone: local,
          report: new FailureReport(stderr, programName, description),
          description,
        }),
      );
    } else {
      const paths = deps.syslogSocketPaths ?? SYSLOG_SOCKET_PATHS;
      const description = paths.length === 0 ? "syslog" : `syslog ${paths.join(" or ")}`;
      sinks.push(
        new SyslogSink(new UnixTransport(paths), {
          header: { facility, tag, pid },
          zone: local,
          report: new FailureReport(stderr, programName, description),
          description,
        }),
      );
    }
  }
  return sinks;
}

function hostnameOrLocalhost(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost"; // what Go's log/syslog falls back to
  }
}

function toTarget(target: string | LogTarget): LogTarget {
  return typeof target === "string" ? parseLogTarget(target).target : target;
}

/**
 * A structured logger writing JSON records to the outputs of a target (section 10). Logging
 * calls never block and never throw.
 */
export class Logger implements AsyncDisposable {
  #deps: LoggerDeps;
  #clock: () => Date;
  #target: LogTarget;
  #queues: OutputQueue[];
  #retiring: Promise<void> = Promise.resolve();
  #closed = false;

  /** Opens the outputs of `target` (they connect and open files lazily, at the first line). */
  constructor(target: string | LogTarget, deps: LoggerDeps = {}) {
    this.#deps = deps;
    this.#clock = deps.clock ?? (() => new Date());
    this.#target = toTarget(target);
    this.#queues = this.#openQueues(this.#target, Promise.resolve());
  }

  #openQueues(target: LogTarget, gate: Promise<void>): OutputQueue[] {
    return createSinks(target, this.#deps).map((sink) => new OutputQueue(sink, this.#clock, gate));
  }

  /** The target in use. */
  get target(): LogTarget {
    return this.#target;
  }

  /** Whether a line of `level` would be written anywhere (use it to skip building records). */
  enabled(level: LogLevel): boolean {
    const limit = this.#target.level;
    return !this.#closed && this.#queues.length > 0 && limit !== null &&
      SEVERITY_CODES[level] <= SEVERITY_CODES[limit];
  }

  /** Logs `record` at `level`; the record is encoded now, so the caller may reuse it. */
  log(level: LogLevel, record: Readonly<Record<string, unknown>>): void {
    if (!this.enabled(level)) return;
    let message: string;
    try {
      message = encodeJson(record);
    } catch (error) {
      // A throwing getter or toJSON() must not reach the caller; say what was lost instead.
      message = encodeJson({
        error: `Cannot encode log record: ${error instanceof Error ? error.message : error}`,
        event: "log",
      });
    }
    const line: LogLine = { level, time: this.#clock(), message };
    for (const queue of this.#queues) queue.push(line);
  }

  /** Logs at ERROR level. */
  error(record: Readonly<Record<string, unknown>>): void {
    this.log("error", record);
  }

  /** Logs at WARN level. */
  warn(record: Readonly<Record<string, unknown>>): void {
    this.log("warning", record);
  }

  /** Logs at INFO level. */
  info(record: Readonly<Record<string, unknown>>): void {
    this.log("info", record);
  }

  /** Logs at DEBUG level. */
  debug(record: Readonly<Record<string, unknown>>): void {
    this.log("debug", record);
  }

  /** Logs a system event built by one of the helpers of `events.ts` (LOG-10). */
  emit(event: LogEvent): void {
    this.log(event.level, event.record);
  }

  /**
   * Switches to the outputs of a new target in place (SIGHUP, CLI-10). Lines logged before are
   * written by the old outputs, which then close; the new outputs start writing only after
   * that, so no line is lost or reordered and a file is never open twice.
   */
  reload(target: string | LogTarget): void {
    if (this.#closed) return;
    const old = this.#queues;
    const retired = Promise.all([this.#retiring, ...old.map((queue) => queue.close())]).then(
      () => {},
      () => {},
    );
    this.#retiring = retired;
    this.#target = toTarget(target);
    this.#queues = this.#openQueues(this.#target, retired);
  }

  /** Resolves once every line logged so far has been handed to its outputs. */
  async flush(): Promise<void> {
    await this.#retiring;
    await Promise.all(this.#queues.map((queue) => queue.flush()));
  }

  /** Writes what is queued, then closes files and sockets; later lines are ignored. */
  async close(): Promise<void> {
    if (this.#closed) {
      await this.#retiring;
      return;
    }
    this.#closed = true;
    const queues = this.#queues;
    this.#queues = [];
    this.#retiring = Promise.all([this.#retiring, ...queues.map((queue) => queue.close())]).then(
      () => {},
      () => {},
    );
    await this.#retiring;
  }

  /** Same as {@linkcode Logger.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Opens a logger on a target string (parsed per LOG-1; use `parseLogTarget` first to see its
 * problems) or an already parsed target.
 */
export function openLogger(target: string | LogTarget, deps: LoggerDeps = {}): Logger {
  return new Logger(target, deps);
}
