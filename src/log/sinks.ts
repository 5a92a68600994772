/**
 * The three kinds of log output (console, file, syslog) behind one small interface: `format()`
 * turns a line into the bytes the output will write (synchronously, at logging time), `write()`
 * writes a batch and never rejects, `close()` releases what the output holds. Failures are
 * reported once to stderr, then the output keeps retrying silently at every later line
 * (LOG-4, LOG-8: the original ignored them all); a success re-arms the report.
 *
 * @module
 */

import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { dirname } from "node:path";
import {
  formatLine,
  formatSyslogLocal,
  formatSyslogRemote,
  type LineStyle,
  type LogLevel,
  strftime,
  type SyslogHeader,
  type TimeZone,
} from "./format.ts";

/** A byte stream a console output or the failure reports write to (`Deno.stdout` fits). */
export interface WritableLike {
  /** Writes some of `p`, resolving to the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
  /** Whether the stream is a terminal (colours are used only then). */
  isTerminal?(): boolean;
}

/** One log line before formatting. */
export interface LogLine {
  /** Its level. */
  readonly level: LogLevel;
  /** When it was logged. */
  readonly time: Date;
  /** The encoded message (LOG-7), without newline. */
  readonly message: string;
}

/** A formatted line waiting in an output's queue. */
export interface SinkItem {
  /** Where it goes within the output (a file path); `""` when the output has one place. */
  readonly key: string;
  /** The exact text to write (a whole line or a whole datagram). */
  readonly text: string;
  /** Its time in milliseconds since the epoch. */
  readonly time: number;
}

/** One log output. */
export interface LogSink {
  /** Names the output in failure reports, e.g. `file "/var/log/groom/%Y%m%d.log"`. */
  readonly description: string;
  /** Formats a line for this output; synchronous and pure. */
  format(line: LogLine): SinkItem;
  /** Writes a batch in order; never rejects (failures are reported and swallowed). */
  write(items: readonly SinkItem[]): Promise<void>;
  /** Releases files and sockets; the output may not be used afterwards. */
  close(): Promise<void>;
}

/** Files not written for this long are closed (LOG-8, as the original). */
export const FILE_IDLE_CLOSE_MS = 5_000;
/** Idle files are looked for at most this often, on writes (LOG-8, as the original). */
export const FILE_SWEEP_INTERVAL_MS = 5_000;
/** Mode of a created log file (LOG-8). */
export const FILE_MODE = 0o644;
/** Mode of created parent folders (LOG-8). */
export const DIRECTORY_MODE = 0o755;
/** Where the local syslog daemon listens, tried in order (LOG-9, Go's `log/syslog`). */
export const SYSLOG_SOCKET_PATHS: readonly string[] = [
  "/dev/log",
  "/var/run/syslog",
  "/var/run/log",
];

const encoder = new TextEncoder();

/** Writes all of `bytes`, looping over partial writes. */
export async function writeAll(stream: WritableLike, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const written = await stream.write(bytes.subarray(offset));
    if (written <= 0) throw new Error("Cannot write: the stream accepted no bytes");
    offset += written;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reports an output's failures on stderr once per failure streak: the first failure prints one
 * line, later ones are silent until a success re-arms it. Reporting never throws.
 */
export class FailureReport {
  #stderr: WritableLike;
  #prefix: string;
  #failing = false;

  /** Creates a report for the output described by `description`. */
  constructor(stderr: WritableLike, programName: string, description: string) {
    this.#stderr = stderr;
    this.#prefix = `${programName}: cannot write log to ${description}`;
  }

  /** Whether the last attempt failed. */
  get failing(): boolean {
    return this.#failing;
  }

  /** Records a failure; prints it if it starts a streak. */
  async failed(error: unknown): Promise<void> {
    if (this.#failing) return;
    this.#failing = true;
    const line = `${this.#prefix}: ${messageOf(error)} (will keep retrying silently)\n`;
    try {
      await writeAll(this.#stderr, encoder.encode(line));
    } catch {
      // stderr itself is gone: nothing sensible is left to do.
    }
  }

  /** Records a success, so that the next failure is printed again. */
  succeeded(): void {
    this.#failing = false;
  }
}

function joinTexts(items: readonly SinkItem[]): Uint8Array {
  let text = "";
  for (const item of items) text += item.text;
  return encoder.encode(text);
}

/** The console output (LOG-3): lines to stdout or stderr. */
export class ConsoleSink implements LogSink {
  readonly description: string;
  #stream: WritableLike;
  #style: LineStyle;
  #zone: TimeZone;
  #report: FailureReport | null;

  /**
   * Writes lines of `style` to `stream`; failures go to `report` (null when the stream is
   * stderr itself).
   */
  constructor(
    stream: WritableLike,
    options: { style: LineStyle; zone: TimeZone; report: FailureReport | null; name: string },
  ) {
    this.description = options.name;
    this.#stream = stream;
    this.#style = options.style;
    this.#zone = options.zone;
    this.#report = options.report;
  }

  format(line: LogLine): SinkItem {
    return { key: "", text: formatLine(this.#style, line, this.#zone), time: line.time.getTime() };
  }

  async write(items: readonly SinkItem[]): Promise<void> {
    try {
      await writeAll(this.#stream, joinTexts(items));
      this.#report?.succeeded();
    } catch (error) {
      await this.#report?.failed(error);
    }
  }

  close(): Promise<void> {
    return Promise.resolve(); // the standard streams belong to the process
  }
}

interface OpenFile {
  file: Deno.FsFile;
  last: number;
}

/**
 * The file output (LOG-8): the path pattern is expanded per line, each distinct path is opened
 * on first use (append, created 0644, parents 0755) and kept open, and files not written for
 * {@linkcode FILE_IDLE_CLOSE_MS} are closed; rotation is simply a change of expanded path.
 */
export class FileSink implements LogSink {
  readonly description: string;
  #pattern: string;
  #style: LineStyle;
  #zone: TimeZone;
  #report: FailureReport;
  #open = new Map<string, OpenFile>();
  #lastSweep = Number.NEGATIVE_INFINITY;

  /** Writes lines of `style` to the files named by `pattern` expanded in `zone`. */
  constructor(
    pattern: string,
    options: { style: LineStyle; zone: TimeZone; report: FailureReport; description: string },
  ) {
    this.description = options.description;
    this.#pattern = pattern;
    this.#style = options.style;
    this.#zone = options.zone;
    this.#report = options.report;
  }

  /** Paths currently held open (for tests and diagnostics). */
  get openPaths(): string[] {
    return [...this.#open.keys()];
  }

  format(line: LogLine): SinkItem {
    return {
      key: strftime(this.#pattern, line.time, this.#zone),
      text: formatLine(this.#style, line, this.#zone),
      time: line.time.getTime(),
    };
  }

  async write(items: readonly SinkItem[]): Promise<void> {
    let start = 0;
    while (start < items.length) {
      const path = items[start]?.key ?? "";
      let end = start + 1;
      while (end < items.length && items[end]?.key === path) end++;
      const group = items.slice(start, end);
      const time = group[group.length - 1]?.time ?? 0;
      await this.#writeGroup(path, group, time);
      this.#sweep(time);
      start = end;
    }
  }

  async #writeGroup(path: string, group: readonly SinkItem[], time: number): Promise<void> {
    let entry = this.#open.get(path);
    try {
      if (entry === undefined) {
        await Deno.mkdir(dirname(path), { recursive: true, mode: DIRECTORY_MODE });
        const file = await Deno.open(path, {
          write: true,
          append: true,
          create: true,
          mode: FILE_MODE,
        });
        entry = { file, last: time };
        this.#open.set(path, entry);
      }
      await writeAll(entry.file, joinTexts(group));
      entry.last = time;
      this.#report.succeeded();
    } catch (error) {
      if (entry !== undefined) {
        // Reopen at the next line: the file may have been replaced or its disk remounted.
        this.#open.delete(path);
        closeQuietly(entry.file);
      }
      await this.#report.failed(
        new Error(`${JSON.stringify(path)}: ${messageOf(error)}`),
      );
    }
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < FILE_SWEEP_INTERVAL_MS) return;
    this.#lastSweep = now;
    for (const [path, entry] of this.#open) {
      if (now - entry.last >= FILE_IDLE_CLOSE_MS) {
        this.#open.delete(path);
        closeQuietly(entry.file);
      }
    }
  }

  close(): Promise<void> {
    for (const entry of this.#open.values()) closeQuietly(entry.file);
    this.#open.clear();
    return Promise.resolve();
  }
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // already closed
  }
}

/** Sends datagrams to a syslog daemon; opened lazily, reopened after a failure. */
export interface DatagramTransport {
  /** Sends one datagram; rejects on failure (the next call starts afresh). */
  send(data: Uint8Array): Promise<void>;
  /** Releases the socket. */
  close(): Promise<void>;
}

/** UDP to a remote syslog server through `node:dgram` (works without unstable flags). */
export class UdpTransport implements DatagramTransport {
  #host: string;
  #port: number;
  #socket: dgram.Socket | null = null;

  /** Targets `host:port`; nothing is opened before the first send. */
  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  async send(data: Uint8Array): Promise<void> {
    const socket = this.#socket ?? await this.#connect();
    try {
      await new Promise<void>((resolve, reject) => {
        socket.send(data, (error) => error ? reject(error) : resolve());
      });
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async #connect(): Promise<dgram.Socket> {
    const socket = dgram.createSocket(isIPv6(this.#host) ? "udp6" : "udp4");
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        socket.once("error", onError);
        socket.connect(this.#port, this.#host, (error?: Error) => {
          socket.off("error", onError);
          if (error) reject(error);
          else resolve();
        });
      });
    } catch (error) {
      await closeSocket(socket);
      throw error;
    }
    // Late asynchronous errors (ICMP unreachable) surface at the next send; keep them quiet.
    socket.on("error", () => {});
    socket.unref();
    this.#socket = socket;
    return socket;
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = null;
    if (socket !== null) await closeSocket(socket);
  }
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

/**
 * The local syslog socket (a Unix datagram socket at `/dev/log`, `/var/run/syslog` or
 * `/var/run/log`), through `Deno.listenDatagram`, which needs `--unstable-net`.
 */
export class UnixTransport implements DatagramTransport {
  #paths: readonly string[];
  #conn: Deno.DatagramConn | null = null;
  #path: string | null = null;

  /** Sends to the first of `paths` that accepts. */
  constructor(paths: readonly string[]) {
    this.#paths = paths;
  }

  async send(data: Uint8Array): Promise<void> {
    const conn = this.#conn ?? this.#open();
    const candidates = this.#path === null
      ? this.#paths
      : [this.#path, ...this.#paths.filter((path) => path !== this.#path)];
    let lastError: unknown = new Error("Cannot find a syslog socket: no path to try");
    for (const path of candidates) {
      try {
        await conn.send(data, { transport: "unixpacket", path });
        this.#path = path;
        return;
      } catch (error) {
        lastError = new Error(`${path}: ${messageOf(error)}`);
      }
    }
    this.#path = null;
    throw lastError;
  }

  #open(): Deno.DatagramConn {
    if (typeof Deno.listenDatagram !== "function") {
      throw new Error("the local syslog socket needs Deno's --unstable-net flag");
    }
    // An unbound datagram socket: the daemon needs no reply address.
    this.#conn = Deno.listenDatagram(
      { transport: "unixpacket" } as Deno.UnixListenOptions & { transport: "unixpacket" },
    );
    return this.#conn;
  }

  close(): Promise<void> {
    if (this.#conn !== null) closeQuietly(this.#conn);
    this.#conn = null;
    this.#path = null;
    return Promise.resolve();
  }
}

/** The syslog output (LOG-4, LOG-9): one datagram per line. */
export class SyslogSink implements LogSink {
  readonly description: string;
  #transport: DatagramTransport;
  #format: (line: LogLine) => string;
  #report: FailureReport;

  /**
   * Sends lines over `transport`, formatted for a remote server when `header.hostname` is set,
   * else for the local socket.
   */
  constructor(
    transport: DatagramTransport,
    options: {
      header: SyslogHeader & { readonly hostname?: string };
      zone: TimeZone;
      report: FailureReport;
      description: string;
    },
  ) {
    const { header, zone } = options;
    this.description = options.description;
    this.#transport = transport;
    this.#report = options.report;
    const hostname = header.hostname;
    this.#format = hostname === undefined
      ? (line) => formatSyslogLocal(header, line, zone)
      : (line) => formatSyslogRemote({ ...header, hostname }, line, zone);
  }

  format(line: LogLine): SinkItem {
    return { key: "", text: this.#format(line), time: line.time.getTime() };
  }

  async write(items: readonly SinkItem[]): Promise<void> {
    for (const item of items) {
      const data = encoder.encode(item.text);
      try {
        try {
          await this.#transport.send(data);
        } catch {
          await this.#transport.send(data); // reconnect once, as Go's log/syslog does
        }
        this.#report.succeeded();
      } catch (error) {
        await this.#report.failed(error);
      }
    }
  }

  close(): Promise<void> {
    return this.#transport.close();
  }
}
