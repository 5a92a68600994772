/**
 * Parses a log target such as `file(path=/var/log/groom/%Y%m%d.log,time=msdatetime) syslog()`
 * into a typed {@linkcode LogTarget} with the original's exact meaning (LOG-1…LOG-5, ODD-38),
 * and lists what looks wrong in it so that `groom check` can say so: the original accepts every
 * string silently, which turns typos into missing logs.
 *
 * @module
 */

import { FACILITY_CODES, type LogLevel, type TimeFormat } from "./format.ts";

/** The console output (LOG-3). */
export interface ConsoleOutput {
  /** Which standard stream receives the lines. */
  readonly stream: "stdout" | "stderr";
  /** Time prefix format. */
  readonly time: TimeFormat;
  /** Whether lines carry the severity label. */
  readonly severity: boolean;
  /** Whether labels are coloured; honoured only on a terminal and never on Windows. */
  readonly colors: boolean;
}

/** The file output (LOG-2, LOG-8). */
export interface FileOutput {
  /** strftime pattern of the path (LOG-8). */
  readonly path: string;
  /** Time prefix format. */
  readonly time: TimeFormat;
  /** Whether lines carry the severity label. */
  readonly severity: boolean;
  /** Facility code; non-zero switches to syslog-style prefixes (LOG-6), 0 keeps plain lines. */
  readonly facility: number;
}

/** The syslog output (LOG-4, LOG-9). */
export interface SyslogOutput {
  /** UDP destination, or `null` for the local syslog socket. */
  readonly remote: { readonly host: string; readonly port: number } | null;
  /** The tag (`name`), or `null` for the program name. Also used by a file `facility`. */
  readonly name: string | null;
  /** Facility code (0 = kern for an unknown facility, ODD-38). */
  readonly facility: number;
}

/** A parsed log target: which outputs are on and how lines look. */
export interface LogTarget {
  /** Console output, or `null` when off. */
  readonly console: ConsoleOutput | null;
  /** File output, or `null` when off (also when `path` is missing). */
  readonly file: FileOutput | null;
  /** Syslog output, or `null` when off. */
  readonly syslog: SyslogOutput | null;
  /** Most verbose level written; `null` when an unknown level silenced everything (ODD-38). */
  readonly level: LogLevel | null;
  /** Times (prefixes and file names) in UTC rather than local time (LOG-5). */
  readonly utc: boolean;
}

/** What a problem in a target is about. */
export type LogTargetProblemCode =
  | "unknown-kind"
  | "unknown-key"
  | "unknown-value"
  | "unknown-level"
  | "unknown-facility"
  | "missing-path"
  | "bad-remote"
  | "bad-syntax";

/** Something in a target that is probably a mistake; the meaning stays the original's. */
export interface LogTargetProblem {
  /** Machine-readable kind of problem. */
  readonly code: LogTargetProblemCode;
  /** One std-style sentence for humans. */
  readonly message: string;
}

/** The result of {@linkcode parseLogTarget}. */
export interface ParsedLogTarget {
  /** The target with the original's meaning. */
  readonly target: LogTarget;
  /** Problems found, in order of appearance; empty when the target looks right. */
  readonly problems: readonly LogTargetProblem[];
}

/** The target that logs nothing (an empty string, LOG-1). */
export const EMPTY_LOG_TARGET: LogTarget = {
  console: null,
  file: null,
  syslog: null,
  level: "info",
  utc: false,
};

/** The default syslog UDP port (LOG-4). */
export const DEFAULT_SYSLOG_PORT = 514;

/** A group `kind(options)`, exactly as the original finds them (lower-case kinds only). */
const GROUP_REGEXP = /(file|console|syslog|option)\s*\(([^)]*)\)/g;
/** Any word followed by `(`, to report kinds the original ignores. */
const ANY_GROUP_REGEXP = /([A-Za-z_][\w-]*)\s*\(/g;
/** One `key=value` or `key:value` option, exactly as the original finds them. */
const OPTION_REGEXP = /([^:=,\s]+)\s*[:=]\s*([^,\s]+)/g;
/** A remote that already names its port. */
const PORT_SUFFIX_REGEXP = /:\d+$/;

const KINDS = ["file", "console", "syslog", "option"] as const;
type Kind = typeof KINDS[number];
const KEYS: Record<Kind, readonly string[]> = {
  file: ["path", "time", "severity", "facility"],
  console: ["output", "time", "severity", "colors"],
  syslog: ["remote", "name", "facility"],
  option: ["utc", "level"],
};
const TRUE_WORDS = ["1", "true", "on", "yes"];
const FALSE_WORDS = ["0", "false", "off", "no", "none"];
const TIME_WORDS: Record<string, TimeFormat> = {
  datetime: "datetime",
  msdatetime: "msdatetime",
  stamp: "stamp",
  timestamp: "stamp",
  msstamp: "msstamp",
  mstimestamp: "msstamp",
};
const LEVEL_WORDS: readonly string[] = ["error", "warning", "info", "debug"];

function isTrue(value: string): boolean {
  return TRUE_WORDS.includes(value);
}

/**
 * Parses a log target (LOG-1…LOG-5). Kinds are `file`, `console`, `syslog` and `option`, in
 * lower case; keys are case-insensitive; values are lower-cased except `path`, `name` and
 * `remote`. A repeated kind updates the options it names. The meaning is the original's, odd
 * parts included (ODD-38: an unknown `level` silences everything, an unknown facility is kern);
 * each such oddity is also listed in `problems`.
 */
export function parseLogTarget(spec: string): ParsedLogTarget {
  const problems: LogTargetProblem[] = [];
  const report = (code: LogTargetProblemCode, message: string) => problems.push({ code, message });

  let console: { -readonly [K in keyof ConsoleOutput]: ConsoleOutput[K] } | null = null;
  let fileOn = false;
  const file = { path: "", time: "datetime" as TimeFormat, severity: true, facility: 0 };
  let syslog: { -readonly [K in keyof SyslogOutput]: SyslogOutput[K] } | null = null;
  let name: string | null = null;
  let level: LogLevel | null = "info";
  let utc = false;

  for (const match of spec.matchAll(ANY_GROUP_REGEXP)) {
    const word = match[1] ?? "";
    if (!(KINDS as readonly string[]).includes(word) && !KINDS.some((k) => word.endsWith(k))) {
      report(
        "unknown-kind",
        `Cannot use log output "${word}": kinds are file, console, syslog and option, in lower case`,
      );
    }
  }
  const unclosed = spec.replace(GROUP_REGEXP, "").replace(/[^()]*\([^)]*\)/g, "");
  if (unclosed.includes("(")) {
    report("bad-syntax", `Cannot parse log target "${spec}": unclosed "("`);
  }

  for (const group of spec.matchAll(GROUP_REGEXP)) {
    const kind = group[1] as Kind;
    const body = group[2] ?? "";
    const leftover = body.replace(OPTION_REGEXP, "").replace(/[,\s]+/g, "");
    if (leftover !== "") {
      report(
        "bad-syntax",
        `Cannot parse options of ${kind}(${body}): "${leftover}" is not key=value`,
      );
    }
    if (kind === "console") console ??= defaultConsole();
    if (kind === "syslog") syslog ??= { remote: null, name: null, facility: FACILITY_CODES.daemon };

    for (const option of body.matchAll(OPTION_REGEXP)) {
      const key = (option[1] ?? "").toLowerCase();
      const raw = option[2] ?? "";
      const value = raw.toLowerCase();
      const where = `${kind}(${key}=${raw})`;
      if (!KEYS[kind].includes(key)) {
        report(
          "unknown-key",
          `Cannot use option "${option[1]}" in ${kind}(): known options are ${
            KEYS[kind].join(", ")
          }`,
        );
        continue;
      }
      const timeOf = (current: TimeFormat): TimeFormat => {
        const known = TIME_WORDS[value];
        if (known !== undefined) return known;
        if (isTrue(value)) return current;
        if (!FALSE_WORDS.includes(value)) {
          report(
            "unknown-value",
            `Unknown time format in ${where}: lines get no time (use datetime, msdatetime, stamp, msstamp or no)`,
          );
        }
        return "none";
      };
      const flagOf = (): boolean => {
        if (!isTrue(value) && !FALSE_WORDS.includes(value)) {
          report("unknown-value", `Unknown yes/no value in ${where}: taken as no`);
        }
        return isTrue(value);
      };
      const facilityOf = (): number => {
        if (Object.hasOwn(FACILITY_CODES, value)) {
          return FACILITY_CODES[value as keyof typeof FACILITY_CODES];
        }
        report(
          "unknown-facility",
          `Unknown syslog facility in ${where}: taken as kern (known: user, daemon, local0 to local7)`,
        );
        return 0;
      };

      if (kind === "file") {
        if (key === "path") file.path = raw;
        else if (key === "time") file.time = timeOf(file.time);
        else if (key === "severity") file.severity = flagOf();
        else file.facility = facilityOf();
      } else if (kind === "console" && console !== null) {
        if (key === "output") {
          if (value !== "stdout" && value !== "stderr") {
            report("unknown-value", `Unknown stream in ${where}: taken as stderr`);
          }
          console.stream = value === "stdout" ? "stdout" : "stderr";
        } else if (key === "time") console.time = timeOf(console.time);
        else if (key === "severity") console.severity = flagOf();
        else console.colors = flagOf();
      } else if (kind === "syslog" && syslog !== null) {
        if (key === "remote") syslog.remote = parseRemote(raw, where, report);
        else if (key === "name") name = raw;
        else syslog.facility = facilityOf();
      } else if (kind === "option") {
        if (key === "utc") utc = flagOf();
        else if (LEVEL_WORDS.includes(value)) level = value as LogLevel;
        else {
          level = null;
          report(
            "unknown-level",
            `Unknown log level in ${where}: nothing is logged (levels are error, warning, info, debug)`,
          );
        }
      }
    }
    if (kind === "file") fileOn = true;
  }

  if (fileOn && file.path === "") {
    report("missing-path", "Cannot use file() without path=…: the file output is off");
  }
  if (syslog !== null) syslog.name = name;
  return {
    target: {
      console,
      file: fileOn && file.path !== "" ? { ...file } : null,
      syslog,
      level,
      utc,
    },
    problems,
  };
}

function defaultConsole(): { -readonly [K in keyof ConsoleOutput]: ConsoleOutput[K] } {
  return { stream: "stderr", time: "datetime", severity: true, colors: true };
}

function parseRemote(
  raw: string,
  where: string,
  report: (code: LogTargetProblemCode, message: string) => void,
): { host: string; port: number } {
  const address = PORT_SUFFIX_REGEXP.test(raw) ? raw : `${raw}:${DEFAULT_SYSLOG_PORT}`;
  const colon = address.lastIndexOf(":");
  let host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (port < 1 || port > 65535) {
    report("bad-remote", `Cannot use syslog remote in ${where}: port must be 1 to 65535`);
  }
  // An empty host means this machine, as in Go's net.Dial(":514").
  return { host: host === "" ? "localhost" : host, port };
}
