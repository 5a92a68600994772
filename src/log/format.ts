/**
 * Pure formatting for groom's logs: the JSON message encoding of the original (Go's
 * `encoding/json` with HTML escaping off, LOG-7), time zones, the line prefixes of console and
 * file outputs (LOG-6), the strftime expansion of file paths (LOG-8) and the two syslog wire
 * formats (LOG-9). Nothing here does I/O; every function takes the time and zone it needs, so
 * tests are deterministic.
 *
 * @module
 */

/** A log level, from the most to the least severe (LOG-5). */
export type LogLevel = "error" | "warning" | "info" | "debug";

/** Every level, most severe first. */
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warning", "info", "debug"];

/** Syslog severity code of each level (LOG-9); a smaller code is more severe. */
export const SEVERITY_CODES = { error: 3, warning: 4, info: 6, debug: 7 } as const;

/** Syslog facility codes accepted in targets (LOG-4, LOG-9); anything else means kern (0). */
export const FACILITY_CODES = {
  user: 8,
  daemon: 24,
  local0: 128,
  local1: 136,
  local2: 144,
  local3: 152,
  local4: 160,
  local5: 168,
  local6: 176,
  local7: 184,
} as const;

/** The severity label of each level: four letters and a space (LOG-6). */
export const LEVEL_LABELS = {
  error: "ERRO ",
  warning: "WARN ",
  info: "INFO ",
  debug: "DBUG ",
} as const;

/** The ANSI colour that wraps each label on a terminal (LOG-3, LOG-6). */
export const LEVEL_COLORS = {
  error: "\x1b[31m",
  warning: "\x1b[33m",
  info: "\x1b[36m",
  debug: "\x1b[32m",
} as const;

/** Resets the colour after a label. */
export const COLOR_RESET = "\x1b[0m";

/** How a line's time is written (LOG-2, LOG-6). */
export type TimeFormat = "datetime" | "msdatetime" | "stamp" | "msstamp" | "none";

/** A time zone: its offset from UTC and its abbreviation at a given instant. */
export interface TimeZone {
  /** Minutes east of UTC at `date` (e.g. 60 for CET). */
  offsetMinutes(date: Date): number;
  /** Abbreviation at `date` as strftime's `%Z` prints it (e.g. `CET`, `UTC`). */
  abbreviation(date: Date): string;
}

/** Coordinated Universal Time, used with `option(utc=yes)` (LOG-5). */
export const UTC_ZONE: TimeZone = {
  offsetMinutes: () => 0,
  abbreviation: () => "UTC",
};

/** A zone with a constant offset and abbreviation; meant for tests and fixed-offset hosts. */
export function fixedZone(offsetMinutes: number, abbreviation: string): TimeZone {
  return { offsetMinutes: () => offsetMinutes, abbreviation: () => abbreviation };
}

/** Matches an ICU zone name of the form `GMT+5:30` that has no real abbreviation. */
const GMT_OFFSET_NAME_REGEXP = /^GMT([+-])(\d{1,2})(?::(\d{2}))?$/;

/**
 * The process's local zone (the `TZ` environment variable, else the system's). The abbreviation
 * is ICU's short name (`CET`, `EST`); zones without one are written like tzdata does (`+0530`).
 */
export function localZone(): TimeZone {
  const formatters = ["en-US", "en-GB"].map((locale) =>
    new Intl.DateTimeFormat(locale, { timeZoneName: "short" })
  );
  return {
    offsetMinutes: (date) => -date.getTimezoneOffset(),
    abbreviation(date) {
      let name = "";
      for (const formatter of formatters) {
        name = formatter.formatToParts(date).find((part) => part.type === "timeZoneName")?.value ??
          "";
        if (name !== "" && !GMT_OFFSET_NAME_REGEXP.test(name)) return name;
      }
      const match = GMT_OFFSET_NAME_REGEXP.exec(name);
      if (match === null) return name === "GMT" ? "GMT" : "UTC";
      return `${match[1]}${pad(Number(match[2]), 2)}${match[3] ?? ""}`;
    },
  };
}

/** A date broken down in a zone, as strftime and the prefixes need it. */
interface Civil {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  weekday: number; // 0 = Sunday
  yearDay: number; // 1-366
  offset: number; // minutes east of UTC
  epochMs: number;
}

function civil(date: Date, zone: TimeZone): Civil {
  const epochMs = date.getTime();
  const offset = zone.offsetMinutes(date);
  const shifted = new Date(epochMs + offset * 60_000);
  const year = shifted.getUTCFullYear();
  const startOfYear = Date.UTC(year, 0, 1);
  const dayStart = Date.UTC(year, shifted.getUTCMonth(), shifted.getUTCDate());
  return {
    year,
    month: shifted.getUTCMonth() + 1,
    day: shifted.getUTCDate(),
    hour: shifted.getUTCHours(),
    minute: shifted.getUTCMinutes(),
    second: shifted.getUTCSeconds(),
    millisecond: shifted.getUTCMilliseconds(),
    weekday: shifted.getUTCDay(),
    yearDay: Math.round((dayStart - startOfYear) / 86_400_000) + 1,
    offset,
    epochMs,
  };
}

function pad(value: number, width: number, fill = "0"): string {
  return String(value).padStart(width, fill);
}

const SHORT_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const SHORT_MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];
const LONG_MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** ISO 8601 week-numbering year and week (Go's `Time.ISOWeek`). */
function isoWeek(c: Civil): [number, number] {
  // The Thursday of this week decides the year; its day-of-year gives the week.
  const isoWeekday = c.weekday === 0 ? 7 : c.weekday;
  const thursday = new Date(Date.UTC(c.year, c.month - 1, c.day + 4 - isoWeekday));
  const year = thursday.getUTCFullYear();
  const dayOfYear = Math.round((thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000);
  return [year, Math.floor(dayOfYear / 7) + 1];
}

function hour12(hour: number): number {
  return hour === 0 || hour === 12 ? 12 : hour % 12;
}

function numericOffset(offset: number, colon: boolean): string {
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return `${sign}${pad(Math.floor(abs / 60), 2)}${colon ? ":" : ""}${pad(abs % 60, 2)}`;
}

/**
 * Expands a strftime pattern the way the original's file paths are expanded (LOG-8): the
 * conversions `%a %A %b %B %c %C %d %D %e %f %F %g %G %h %H %I %j %k %l %m %M %n %p %P %r %R %s
 * %S %t %T %u %U %V %w %W %x %X %y %Y %z %Z %%`; an unknown conversion, and a `%` ending the
 * pattern, expand to nothing. As in the original, `%U` and `%W` are not zero-padded, `%c` does not
 * pad the day and `%f` is the microseconds (JavaScript dates carry milliseconds, so the last three
 * digits are 0).
 */
export function strftime(pattern: string, date: Date, zone: TimeZone): string {
  if (!pattern.includes("%")) return pattern;
  const c = civil(date, zone);
  let out = "";
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index];
    if (char !== "%") {
      out += char;
      continue;
    }
    if (index === pattern.length - 1) break;
    index++;
    out += conversion(pattern[index] ?? "", c, date, zone);
  }
  return out;
}

function conversion(letter: string, c: Civil, date: Date, zone: TimeZone): string {
  switch (letter) {
    case "a":
      return SHORT_DAYS[c.weekday] ?? "";
    case "A":
      return LONG_DAYS[c.weekday] ?? "";
    case "b":
    case "h":
      return SHORT_MONTHS[c.month - 1] ?? "";
    case "B":
      return LONG_MONTHS[c.month - 1] ?? "";
    case "c": // Go layout "Mon Jan 2 15:04:05 2006"
      return `${SHORT_DAYS[c.weekday]} ${SHORT_MONTHS[c.month - 1]} ${c.day} ${pad(c.hour, 2)}:${
        pad(c.minute, 2)
      }:${pad(c.second, 2)} ${c.year}`;
    case "C":
      return pad(Math.floor(c.year / 100), 2);
    case "d":
      return pad(c.day, 2);
    case "D":
    case "x":
      return `${pad(c.month, 2)}/${pad(c.day, 2)}/${pad(c.year % 100, 2)}`;
    case "e":
      return pad(c.day, 2, " ");
    case "f":
      return pad(c.millisecond * 1000, 6);
    case "F":
      return `${pad(c.year, 4)}-${pad(c.month, 2)}-${pad(c.day, 2)}`;
    case "g":
      return pad(isoWeek(c)[0] % 100, 2);
    case "G":
      return pad(isoWeek(c)[0], 4);
    case "H":
      return pad(c.hour, 2);
    case "I":
      return pad(hour12(c.hour), 2);
    case "j":
      return pad(c.yearDay, 3);
    case "k":
      return pad(c.hour, 2, " ");
    case "l":
      return pad(hour12(c.hour), 2, " ");
    case "m":
      return pad(c.month, 2);
    case "M":
      return pad(c.minute, 2);
    case "n":
      return "\n";
    case "p":
      return c.hour < 12 ? "AM" : "PM";
    case "P":
      return c.hour < 12 ? "am" : "pm";
    case "r":
      return `${pad(hour12(c.hour), 2)}:${pad(c.minute, 2)}:${pad(c.second, 2)} ${
        c.hour < 12 ? "AM" : "PM"
      }`;
    case "R":
      return `${pad(c.hour, 2)}:${pad(c.minute, 2)}`;
    case "s":
      return String(Math.floor(c.epochMs / 1000));
    case "S":
      return pad(c.second, 2);
    case "t":
      return "\t";
    case "T":
    case "X":
      return `${pad(c.hour, 2)}:${pad(c.minute, 2)}:${pad(c.second, 2)}`;
    case "u":
      return String(c.weekday === 0 ? 7 : c.weekday);
    case "U":
      return String(Math.floor((c.yearDay + 6 - c.weekday) / 7));
    case "V":
      return pad(isoWeek(c)[1], 2);
    case "w":
      return String(c.weekday);
    case "W":
      return String(Math.floor((c.yearDay + 6 - (c.weekday + 6) % 7) / 7));
    case "y":
      return pad(c.year % 100, 2);
    case "Y":
      return pad(c.year, 4);
    case "z":
      return numericOffset(c.offset, false);
    case "Z":
      return zone.abbreviation(date);
    case "%":
      return "%";
    default:
      return "";
  }
}

/** `YYYY-MM-DD HH:MM:SS` in the zone (Go's `time.DateTime`). */
function dateTime(c: Civil): string {
  return `${pad(c.year, 4)}-${pad(c.month, 2)}-${pad(c.day, 2)} ${pad(c.hour, 2)}:${
    pad(c.minute, 2)
  }:${pad(c.second, 2)}`;
}

/**
 * The time prefix of a console or file line, trailing space included, or `""` for `none`
 * (LOG-6): `2026-11-24 23:45:10 `, `2026-11-24 23:45:10.123 `, `1795563910 `,
 * `1795563910123 `.
 */
export function formatTimePrefix(format: TimeFormat, date: Date, zone: TimeZone): string {
  switch (format) {
    case "datetime":
      return `${dateTime(civil(date, zone))} `;
    case "msdatetime": {
      const c = civil(date, zone);
      return `${dateTime(c)}.${pad(c.millisecond, 3)} `;
    }
    case "stamp":
      return `${Math.floor(date.getTime() / 1000)} `;
    case "msstamp":
      return `${date.getTime()} `;
    case "none":
      return "";
  }
}

/** Go's `time.Stamp` (`Jan _2 15:04:05`), the time of syslog-style lines (LOG-6, LOG-9). */
export function formatStamp(date: Date, zone: TimeZone): string {
  const c = civil(date, zone);
  return `${SHORT_MONTHS[c.month - 1]} ${pad(c.day, 2, " ")} ${pad(c.hour, 2)}:${
    pad(c.minute, 2)
  }:${pad(c.second, 2)}`;
}

/** Go's `time.RFC3339` (`2006-01-02T15:04:05Z07:00`): `Z` for a zero offset, else `±hh:mm`. */
export function formatRfc3339(date: Date, zone: TimeZone): string {
  const c = civil(date, zone);
  const offset = c.offset === 0 ? "Z" : numericOffset(c.offset, true);
  return `${pad(c.year, 4)}-${pad(c.month, 2)}-${pad(c.day, 2)}T${pad(c.hour, 2)}:${
    pad(c.minute, 2)
  }:${pad(c.second, 2)}${offset}`;
}

/** How one console or file output writes its lines (LOG-2, LOG-3, LOG-6). */
export interface LineStyle {
  /** Time prefix format. */
  readonly time: TimeFormat;
  /** Whether the severity label is written. */
  readonly severity: boolean;
  /** Whether the label is wrapped in ANSI colours (console on a terminal only). */
  readonly colors: boolean;
  /** Syslog-style prefix instead of time and label when set (file `facility`, LOG-6). */
  readonly syslog?: { readonly facility: number; readonly name: string; readonly pid: number };
}

/**
 * One console or file line, newline included (LOG-6): `<time><label><message>\n`, or
 * `<PRI>Mmm dd hh:mm:ss NAME[PID]: <message>\n` for a file with a facility.
 */
export function formatLine(
  style: LineStyle,
  entry: { readonly level: LogLevel; readonly time: Date; readonly message: string },
  zone: TimeZone,
): string {
  const { level, time, message } = entry;
  if (style.syslog !== undefined) {
    const { facility, name, pid } = style.syslog;
    return `<${facility | SEVERITY_CODES[level]}>${
      formatStamp(time, zone)
    } ${name}[${pid}]: ${message}\n`;
  }
  let label = "";
  if (style.severity) {
    label = style.colors
      ? `${LEVEL_COLORS[level]}${LEVEL_LABELS[level]}${COLOR_RESET}`
      : LEVEL_LABELS[level];
  }
  return `${formatTimePrefix(style.time, time, zone)}${label}${message}\n`;
}

/** What a syslog datagram carries besides the message (LOG-9). */
export interface SyslogHeader {
  /** Facility code (0 = kern, 24 = daemon, …). */
  readonly facility: number;
  /** The tag (`name` option, else the program name). */
  readonly tag: string;
  /** Process id. */
  readonly pid: number;
}

/**
 * A datagram for the local syslog socket, as Go's `log/syslog` writes it (LOG-9):
 * `<PRI>Mmm dd hh:mm:ss TAG[PID]: <message>\n`.
 */
export function formatSyslogLocal(
  header: SyslogHeader,
  entry: { readonly level: LogLevel; readonly time: Date; readonly message: string },
  zone: TimeZone,
): string {
  const pri = header.facility | SEVERITY_CODES[entry.level];
  return `<${pri}>${formatStamp(entry.time, zone)} ${header.tag}[${header.pid}]: ${
    withNewline(entry.message)
  }`;
}

/**
 * A datagram for a remote syslog server over UDP, as Go's `log/syslog` writes it (LOG-9):
 * `<PRI>YYYY-MM-DDTHH:MM:SS±hh:mm HOSTNAME TAG[PID]: <message>\n` (`Z` for a zero offset).
 */
export function formatSyslogRemote(
  header: SyslogHeader & { readonly hostname: string },
  entry: { readonly level: LogLevel; readonly time: Date; readonly message: string },
  zone: TimeZone,
): string {
  const pri = header.facility | SEVERITY_CODES[entry.level];
  return `<${pri}>${
    formatRfc3339(entry.time, zone)
  } ${header.hostname} ${header.tag}[${header.pid}]: ${withNewline(entry.message)}`;
}

function withNewline(message: string): string {
  return message.endsWith("\n") ? message : `${message}\n`;
}

// ---------------------------------------------------------------------------------------------
// JSON (LOG-7)

/** Objects nested deeper than this are written as `null`: bounds the work for odd inputs. */
export const MAX_JSON_DEPTH = 64;

/** Characters that need the slow path of {@linkcode encodeJsonString}. */
// deno-lint-ignore no-control-regex -- control characters are exactly what must be escaped
const NEEDS_ESCAPE_REGEXP = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/;

const HEX_DIGITS = "0123456789abcdef";

/**
 * A JSON string literal exactly as Go's encoder writes it with HTML escaping off (LOG-7): `"`
 * and `\` escaped, `\n \r \t \b \f` short escapes, other control characters as `\u00xx`
 * (lower-case hex), U+2028 and U+2029 escaped, lone surrogates (JavaScript's counterpart of
 * invalid UTF-8) as `\ufffd`; `<`, `>`, `&` and everything else written as is.
 */
export function encodeJsonString(text: string): string {
  if (!NEEDS_ESCAPE_REGEXP.test(text)) return `"${text}"`;
  let out = '"';
  let start = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    let escape: string;
    if (code >= 0x20 && code !== 0x22 && code !== 0x5c && code !== 0x2028 && code !== 0x2029) {
      if (code < 0xd800 || code > 0xdfff) continue;
      const next = text.charCodeAt(index + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        index++; // a valid pair: written as is
        continue;
      }
      escape = "\\ufffd";
    } else {
      switch (code) {
        case 0x22:
          escape = '\\"';
          break;
        case 0x5c:
          escape = "\\\\";
          break;
        case 0x0a:
          escape = "\\n";
          break;
        case 0x0d:
          escape = "\\r";
          break;
        case 0x09:
          escape = "\\t";
          break;
        case 0x08:
          escape = "\\b";
          break;
        case 0x0c:
          escape = "\\f";
          break;
        case 0x2028:
          escape = "\\u2028";
          break;
        case 0x2029:
          escape = "\\u2029";
          break;
        default:
          escape = `\\u00${HEX_DIGITS[code >> 4]}${HEX_DIGITS[code & 0xf]}`;
      }
    }
    out += text.slice(start, index) + escape;
    start = index + 1;
  }
  return `${out}${text.slice(start)}"`;
}

/** Orders strings by code point, which is the byte order of their UTF-8 form (Go's sort). */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    if (a.charCodeAt(index) !== b.charCodeAt(index)) {
      return (a.codePointAt(index) ?? 0) - (b.codePointAt(index) ?? 0);
    }
  }
  return a.length - b.length;
}

/**
 * Encodes a log record as compact JSON like the original (LOG-7): object keys sorted by byte
 * value at every depth, no spaces, strings per {@linkcode encodeJsonString}, integers as plain
 * numbers. JavaScript-only values: `undefined`, functions and symbols are left out of objects
 * (`null` in arrays), non-finite numbers and cycles are `null`, bigints are plain integers, an
 * `Error` is its message, byte arrays are base64 (Go's `[]byte`), `toJSON()` is honoured (dates).
 */
export function encodeJson(value: unknown): string {
  return encodeValue(value, 0, new Set()) ?? "null";
}

function encodeValue(value: unknown, depth: number, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case "string":
      return encodeJsonString(value);
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return value.toString();
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) return "null";
  const object = value as object;
  if (depth >= MAX_JSON_DEPTH || seen.has(object)) return "null";
  if (object instanceof Error) return encodeJsonString(object.message);
  if (object instanceof Uint8Array) return encodeJsonString(toBase64(object));
  if (typeof (object as { toJSON?: unknown }).toJSON === "function") {
    return encodeValue((object as { toJSON(): unknown }).toJSON(), depth + 1, seen);
  }
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      const items = object.map((item) => encodeValue(item, depth + 1, seen) ?? "null");
      return `[${items.join(",")}]`;
    }
    const record = object as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort(compareCodePoints)) {
      const encoded = encodeValue(record[key], depth + 1, seen);
      if (encoded !== undefined) parts.push(`${encodeJsonString(key)}:${encoded}`);
    }
    return `{${parts.join(",")}}`;
  } finally {
    seen.delete(object);
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
