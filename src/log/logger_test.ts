/**
 * Tests of the logger and its outputs: console lines, levels, the bounded queue, reload, files
 * with rotation in a temp folder, and syslog received by real UDP and Unix datagram sockets
 * (LOG-1…LOG-9). The clock and the zone are injected; nothing sleeps.
 *
 * @module
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { once } from "node:events";
import { join } from "node:path";
import { fixedZone, UTC_ZONE } from "./format.ts";
import { type LoggerDeps, MAX_QUEUED_BYTES, MAX_QUEUED_LINES, openLogger } from "./logger.ts";
import { FailureReport, FileSink, type WritableLike } from "./sinks.ts";

/** 2026-11-24 23:45:10.859 UTC; in CET it is already 2026-11-25. */
const OBSERVED_MS = 1795563910859;
const CET = fixedZone(60, "CET");

/** An in-memory stream; writes can be held back or made to fail. */
class MemoryStream implements WritableLike {
  readonly chunks: string[] = [];
  terminal = false;
  failure: Error | null = null;
  #held: PromiseWithResolvers<void> | null = null;
  #decoder = new TextDecoder();

  async write(p: Uint8Array): Promise<number> {
    if (this.#held !== null) await this.#held.promise;
    if (this.failure !== null) throw this.failure;
    this.chunks.push(this.#decoder.decode(p));
    return p.length;
  }

  isTerminal(): boolean {
    return this.terminal;
  }

  hold(): void {
    this.#held = Promise.withResolvers<void>();
  }

  release(): void {
    this.#held?.resolve();
    this.#held = null;
  }

  get text(): string {
    return this.chunks.join("");
  }

  get lines(): string[] {
    return this.text.split("\n").filter((line) => line !== "");
  }
}

/** A clock the test moves by hand. */
function manualClock(startMs = OBSERVED_MS): { now: () => Date; set(ms: number): void } {
  let current = startMs;
  return { now: () => new Date(current), set: (ms) => void (current = ms) };
}

function deps(overrides: Partial<LoggerDeps> = {}): LoggerDeps & {
  stdout: MemoryStream;
  stderr: MemoryStream;
} {
  return {
    clock: () => new Date(OBSERVED_MS),
    timeZone: UTC_ZONE,
    pid: 4242,
    hostname: "testhost",
    stdout: new MemoryStream(),
    stderr: new MemoryStream(),
    os: "linux",
    ...overrides,
  } as LoggerDeps & { stdout: MemoryStream; stderr: MemoryStream };
}

Deno.test("Logger writes the observed start line of LOG-6 to stdout", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout)", d);
  logger.info({
    version: "1.3.2",
    pid: 17933,
    mode: "server",
    event: "start",
    config: "server.conf",
  });
  await logger.flush();
  assert.equal(
    d.stdout.text,
    '2026-11-24 23:45:10 INFO {"config":"server.conf","event":"start","mode":"server","pid":17933,"version":"1.3.2"}\n',
  );
  assert.equal(d.stderr.text, "");
});

Deno.test("Logger uses local time by default and UTC with option(utc=yes) (LOG-5)", async () => {
  const local = deps({ timeZone: CET });
  await using a = openLogger("console(output=stdout,time=msdatetime,severity=no)", local);
  a.info({ a: 1 });
  await a.flush();
  assert.equal(local.stdout.text, '2026-11-25 00:45:10.859 {"a":1}\n');

  const utc = deps({ timeZone: CET });
  await using b = openLogger(
    "console(output=stdout,time=msdatetime,severity=no) option(utc=yes)",
    utc,
  );
  b.info({ a: 1 });
  await b.flush();
  assert.equal(utc.stdout.text, '2026-11-24 23:45:10.859 {"a":1}\n');
});

Deno.test("Logger writes to stderr unless output=stdout (LOG-3)", async () => {
  const d = deps();
  await using logger = openLogger("console(time=no)", d);
  logger.warn({ w: true });
  await logger.flush();
  assert.equal(d.stderr.text, 'WARN {"w":true}\n');
  assert.equal(d.stdout.text, "");
});

Deno.test("Logger colours labels only on a terminal and never on Windows (LOG-3)", async () => {
  const cases: [boolean, string, string, string][] = [
    [true, "linux", "colors=yes", '\x1b[31mERRO \x1b[0m{"e":1}\n'],
    [true, "linux", "", '\x1b[31mERRO \x1b[0m{"e":1}\n'],
    [false, "linux", "", 'ERRO {"e":1}\n'],
    [true, "windows", "", 'ERRO {"e":1}\n'],
    [true, "linux", "colors=no", 'ERRO {"e":1}\n'],
  ];
  for (const [terminal, os, option, expected] of cases) {
    const d = deps({ os });
    d.stdout.terminal = terminal;
    const logger = openLogger(`console(output=stdout,time=no,${option})`, d);
    logger.error({ e: 1 });
    await logger.close();
    assert.equal(d.stdout.text, expected, `${terminal} ${os} ${option}`);
  }
});

Deno.test("Logger filters by option(level=…), info by default (LOG-5)", async () => {
  const cases: [string, string[]][] = [
    ["", ["ERRO", "WARN", "INFO"]],
    ["option(level=error)", ["ERRO"]],
    ["option(level=warning)", ["ERRO", "WARN"]],
    ["option(level=info)", ["ERRO", "WARN", "INFO"]],
    ["option(level=DEBUG)", ["ERRO", "WARN", "INFO", "DBUG"]],
    ["option(level=verbose)", []], // ODD-38: an unknown level silences everything
  ];
  for (const [option, labels] of cases) {
    const d = deps();
    const logger = openLogger(`console(output=stdout,time=no) ${option}`, d);
    logger.debug({ n: 4 });
    logger.info({ n: 3 });
    logger.warn({ n: 2 });
    logger.error({ n: 1 });
    assert.equal(logger.enabled("debug"), labels.includes("DBUG"), option);
    await logger.close();
    assert.deepEqual(d.stdout.lines.map((line) => line.slice(0, 4)).sort(), [...labels].sort());
  }
});

Deno.test("Logger with an empty target logs nothing (LOG-1)", async () => {
  const d = deps();
  await using logger = openLogger("", d);
  assert.equal(logger.enabled("error"), false);
  logger.error({ lost: true });
  await logger.flush();
  assert.equal(d.stdout.text + d.stderr.text, "");
});

Deno.test("Logger encodes the record at the call, so callers may reuse it (LOG-7)", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout,time=no,severity=no)", d);
  const record: Record<string, unknown> = { n: 1 };
  d.stdout.hold();
  logger.info(record);
  record.n = 2;
  logger.info(record);
  d.stdout.release();
  await logger.flush();
  assert.deepEqual(d.stdout.lines, ['{"n":1}', '{"n":2}']);
});

Deno.test("Logger drops lines beyond MAX_QUEUED_LINES and then says how many", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout,time=no)", d);
  d.stdout.hold();
  const total = MAX_QUEUED_LINES + 25;
  for (let n = 0; n < total; n++) logger.info({ n });
  d.stdout.release();
  await logger.flush();
  const lines = d.stdout.lines;
  assert.equal(lines.length, MAX_QUEUED_LINES + 1);
  assert.equal(lines[MAX_QUEUED_LINES - 1], `INFO {"n":${MAX_QUEUED_LINES - 1}}`);
  assert.equal(lines.at(-1), 'WARN {"dropped":25,"error":"25 log lines dropped","event":"log"}');
});

Deno.test("Logger bounds the queued bytes by MAX_QUEUED_BYTES", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout,time=no,severity=no)", d);
  d.stdout.hold();
  const filler = "x".repeat(1000);
  const fits = Math.floor(MAX_QUEUED_BYTES / `{"f":"${filler}"}\n`.length);
  for (let n = 0; n < fits + 3; n++) logger.info({ f: filler });
  d.stdout.release();
  await logger.flush();
  const lines = d.stdout.lines;
  assert.equal(lines.length, fits + 1);
  assert.equal(lines.at(-1), '{"dropped":3,"error":"3 log lines dropped","event":"log"}');
  // The queue is usable again once drained: no more drop notices, nothing lost.
  logger.info({ after: true });
  await logger.flush();
  assert.equal(d.stdout.lines.at(-1), '{"after":true}');
});

Deno.test("Logger never throws; a failing stdout is reported once on stderr", async () => {
  const d = deps();
  d.stdout.failure = new Error("Broken pipe (os error 32)");
  await using logger = openLogger("console(output=stdout)", d);
  logger.info({ a: 1 });
  await logger.flush();
  logger.info({ a: 2 });
  await logger.flush();
  assert.equal(
    d.stderr.text,
    "groom: cannot write log to console (stdout): Broken pipe (os error 32) (will keep retrying silently)\n",
  );
  d.stdout.failure = null;
  logger.info({ a: 3 });
  await logger.flush();
  assert.match(d.stdout.text, /INFO \{"a":3\}\n$/);
});

Deno.test("Logger.close() writes what is queued and ignores later lines", async () => {
  const d = deps();
  const logger = openLogger("console(output=stdout,time=no)", d);
  d.stdout.hold();
  logger.info({ before: true });
  const closing = logger.close();
  logger.info({ after: true });
  d.stdout.release();
  await closing;
  await logger.close();
  assert.deepEqual(d.stdout.lines, ['INFO {"before":true}']);
});

Deno.test("Logger.reload() keeps every line and their order across outputs (CLI-10)", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout,time=no)", d);
  d.stdout.hold();
  logger.info({ n: 1 });
  logger.reload("console(output=stdout,time=no,severity=no) option(level=debug)");
  logger.debug({ n: 2 });
  logger.reload("console(output=stderr,time=no)");
  logger.info({ n: 3 });
  d.stdout.release();
  await logger.flush();
  assert.deepEqual(d.stdout.lines, ['INFO {"n":1}', '{"n":2}']);
  assert.deepEqual(d.stderr.lines, ['INFO {"n":3}']);
});

Deno.test("Logger writes files named by strftime and rotates when the name changes (LOG-8)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clock = manualClock(Date.UTC(2026, 10, 24, 23, 59, 59));
    const d = deps({ clock: clock.now });
    const path = join(dir, "logs", "%Y", "groom-%Y%m%d.log");
    await using logger = openLogger(`file(path=${path},time=datetime)`, d);
    logger.info({ day: 1 });
    clock.set(Date.UTC(2026, 10, 25, 0, 0, 1));
    logger.warn({ day: 2 });
    await logger.flush();
    clock.set(Date.UTC(2026, 10, 25, 0, 0, 2));
    logger.error({ day: 2, again: true });
    await logger.flush();

    const first = await Deno.readTextFile(join(dir, "logs", "2026", "groom-20261124.log"));
    const second = await Deno.readTextFile(join(dir, "logs", "2026", "groom-20261125.log"));
    assert.equal(first, '2026-11-24 23:59:59 INFO {"day":1}\n');
    assert.equal(
      second,
      '2026-11-25 00:00:01 WARN {"day":2}\n2026-11-25 00:00:02 ERRO {"again":true,"day":2}\n',
    );
    const file = await Deno.stat(join(dir, "logs", "2026", "groom-20261124.log"));
    const folder = await Deno.stat(join(dir, "logs", "2026"));
    assert.equal((file.mode ?? 0) & 0o777 & ~0o022, 0o644);
    assert.equal((folder.mode ?? 0) & 0o777 & ~0o022, 0o755);
    assert.equal(d.stderr.text, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger appends to an existing file and writes syslog-style lines with a facility (LOG-6, LOG-8)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "a.log");
    await Deno.writeTextFile(path, "old\n");
    const d = deps({ timeZone: CET, programName: "groomd" });
    await using logger = openLogger(`file(path=${path},facility=local4)`, d);
    logger.info({ a: 1 });
    await logger.flush();
    assert.equal(
      await Deno.readTextFile(path),
      'old\n<166>Nov 25 00:45:10 groomd[4242]: {"a":1}\n',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger reports a file error once, keeps trying, and re-arms after success (LOG-8)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A regular file where the parent folder should be: fails even for root.
    const blocker = join(dir, "blocker");
    await Deno.writeTextFile(blocker, "");
    const d = deps();
    await using logger = openLogger(`file(path=${join(blocker, "x.log")},time=no)`, d);
    logger.info({ n: 1 });
    logger.info({ n: 2 });
    await logger.flush();
    logger.info({ n: 3 });
    await logger.flush();
    const reports = d.stderr.lines;
    assert.equal(reports.length, 1);
    assert.match(
      reports[0] ?? "",
      /^groom: cannot write log to file ".*blocker\/x\.log": .+ \(will keep retrying silently\)$/,
    );

    await Deno.remove(blocker);
    logger.info({ n: 4 });
    await logger.flush();
    assert.equal(await Deno.readTextFile(join(blocker, "x.log")), 'INFO {"n":4}\n');

    await Deno.remove(blocker, { recursive: true });
    await Deno.writeTextFile(blocker, "");
    logger.reload(`file(path=${join(blocker, "y.log")},time=no)`);
    logger.info({ n: 5 });
    await logger.flush();
    assert.equal(d.stderr.lines.length, 2, "a new failure after a success is reported again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileSink closes files unused for 5 s, checked on writes (LOG-8)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const stderr = new MemoryStream();
    const sink = new FileSink(join(dir, "%H%M%S.log"), {
      style: { time: "none", severity: false, colors: false },
      zone: UTC_ZONE,
      report: new FailureReport(stderr, "groom", "file"),
      description: "file",
    });
    const at = (ms: number) => sink.format({ level: "info", time: new Date(ms), message: "{}" });
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 0);
    await sink.write([at(t0)]);
    await sink.write([at(t0 + 1000)]);
    assert.deepEqual(sink.openPaths.length, 2);
    await sink.write([at(t0 + 5500)]); // 5.5 s after the first sweep: 120000 is idle
    assert.deepEqual(sink.openPaths.map((p) => p.slice(-10)), ["120001.log", "120005.log"]);
    await sink.write([at(t0 + 7000)]); // too soon for another sweep
    assert.equal(sink.openPaths.length, 3);
    await sink.write([at(t0 + 10_600)]); // sweep: 120005 is idle for 5.1 s, 120007 for 3.6 s
    assert.deepEqual(sink.openPaths.map((p) => p.slice(-10)), ["120007.log", "120010.log"]);
    await sink.close();
    assert.equal(sink.openPaths.length, 0);
    assert.equal(stderr.text, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger sends LOG-9 datagrams to a remote syslog over UDP", async () => {
  const receiver = dgram.createSocket("udp4");
  receiver.bind(0, "127.0.0.1");
  await once(receiver, "listening");
  try {
    const { port } = receiver.address();
    const d = deps({ timeZone: CET });
    await using logger = openLogger(
      `syslog(remote=127.0.0.1:${port},name=edge1,facility=local3)`,
      d,
    );
    const received = once(receiver, "message");
    logger.warn({ event: "error", domain: "a.example" });
    const [message] = await received;
    assert.equal(
      new TextDecoder().decode(message as Uint8Array),
      '<156>2026-11-25T00:45:10+01:00 testhost edge1[4242]: {"domain":"a.example","event":"error"}\n',
    );
    await logger.flush();
    assert.equal(d.stderr.text, "");
  } finally {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  }
});

Deno.test("Logger sends LOG-9 datagrams to the first local syslog socket that exists", async () => {
  const dir = await Deno.makeTempDir();
  const socketPath = join(dir, "log.sock");
  const receiver = Deno.listenDatagram({ transport: "unixpacket", path: socketPath });
  try {
    const d = deps({ timeZone: CET, syslogSocketPaths: [join(dir, "missing"), socketPath] });
    await using logger = openLogger("syslog() option(level=debug)", d);
    logger.debug({ action: "activate", stream: 7 });
    logger.error({ e: 1 });
    const decoder = new TextDecoder();
    const [first] = await receiver.receive();
    const [second] = await receiver.receive();
    assert.equal(
      decoder.decode(first),
      '<31>Nov 25 00:45:10 groom[4242]: {"action":"activate","stream":7}\n',
    );
    assert.equal(decoder.decode(second), '<27>Nov 25 00:45:10 groom[4242]: {"e":1}\n');
    await logger.flush();
    assert.equal(d.stderr.text, "");
  } finally {
    receiver.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger reports an unreachable syslog once and retries at the next line (LOG-4)", async () => {
  const dir = await Deno.makeTempDir();
  const socketPath = join(dir, "log.sock");
  try {
    const d = deps({ syslogSocketPaths: [socketPath] });
    await using logger = openLogger("syslog(name=t)", d);
    logger.info({ n: 1 });
    logger.info({ n: 2 });
    await logger.flush();
    assert.equal(d.stderr.lines.length, 1);
    assert.match(
      d.stderr.lines[0] ?? "",
      /^groom: cannot write log to syslog .*log\.sock: .*log\.sock: /,
    );

    const receiver = Deno.listenDatagram({ transport: "unixpacket", path: socketPath });
    try {
      logger.info({ n: 3 });
      const [data] = await receiver.receive();
      assert.equal(new TextDecoder().decode(data), '<30>Nov 24 23:45:10 t[4242]: {"n":3}\n');
      await logger.flush();
    } finally {
      receiver.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger writes every line to every output of the target (LOG-1)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const d = deps();
    const path = join(dir, "all.log");
    await using logger = openLogger(
      `console(output=stdout,time=stamp) file(path=${path},time=msstamp)`,
      d,
    );
    logger.info({ x: "<&>" });
    await logger.flush();
    assert.equal(d.stdout.text, '1795563910 INFO {"x":"<&>"}\n');
    assert.equal(await Deno.readTextFile(path), '1795563910859 INFO {"x":"<&>"}\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Logger turns a record that cannot be encoded into an error line, never a throw (LOG-7)", async () => {
  const d = deps();
  await using logger = openLogger("console(output=stdout,time=no)", d);
  const record = {
    get bad(): never {
      throw new Error("getter failed");
    },
  };
  logger.info(record);
  await logger.flush();
  assert.equal(
    d.stdout.text,
    'INFO {"error":"Cannot encode log record: getter failed","event":"log"}\n',
  );
});

Deno.test("Logger reports a local syslog with no socket to try once (LOG-4)", async () => {
  const d = deps({ syslogSocketPaths: [] });
  await using logger = openLogger("syslog()", d);
  logger.info({ n: 1 });
  logger.info({ n: 2 });
  await logger.flush();
  assert.equal(d.stderr.lines.length, 1);
  assert.match(
    d.stderr.lines[0] ?? "",
    /^groom: cannot write log to syslog: Cannot find a syslog socket/,
  );
});
