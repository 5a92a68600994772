/**
 * Typed configuration values: booleans, integers, sizes and durations exactly as groom 1.3 reads
 * them (CFG-17…CFG-20), including its surprises (`y` is false, `1.5s` is 6 s, `1m` is 1 s, an
 * invalid duration becomes the minimum). The results are kept for compatibility, but every parse
 * also returns a warning text when the value was unparsable, clamped or read in a surprising way
 * (ODD-31), so nothing is silent any more (CFG-21 is the defect we fix). Pure functions only.
 * @module
 */

/** The value groom uses for a setting, plus a warning when the text was not read as written. */
export interface ParsedValue<T> {
  /** The value in effect (compatible with groom 1.3). */
  readonly value: T;
  /** Why the value may not be what the author meant; absent when the text was read plainly. */
  readonly warning?: string;
}

/** Bounds and fallback of an integer or size setting (inclusive bounds, CFG-18/CFG-19). */
export interface NumberBounds {
  /** Value used when the text cannot be parsed. */
  readonly default: number;
  /** Smallest accepted value; smaller values are clamped to it. */
  readonly min: number;
  /** Largest accepted value; larger values are clamped to it. */
  readonly max: number;
}

/** Bounds of a duration setting, in seconds (CFG-20: an unparsable duration has no fallback). */
export interface DurationBounds {
  /** Smallest accepted duration in seconds; smaller or unparsable values are clamped to it. */
  readonly min: number;
  /** Largest accepted duration in seconds. */
  readonly max: number;
}

/** Words read as true (CFG-17); anything else present is false. */
const TRUE_WORDS: ReadonlySet<string> = new Set(["1", "on", "yes", "true"]);
/** Words that are false on purpose; other words are false too, but deserve a warning. */
const FALSE_WORDS: ReadonlySet<string> = new Set(["0", "off", "no", "false"]);
/** Go's `strconv.ParseInt(s, 10, 64)` range: values outside it are unparsable, not clamped. */
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Integer syntax of CFG-18: optional sign, decimal digits. */
const INTEGER_REGEXP = /^[+-]?\d+$/;
/** Size syntax of CFG-19 on upper-cased text; `[\t\n\f\r ]` is RE2's `\s`, not JS's wider one. */
const SIZE_REGEXP = /^(\d+(?:\.\d*)?)[\t\n\f\r ]*([KMGTP]?)(B?)$/;
/** Unit letters of sizes, by power: index 1 = K, 2 = M, … */
const SIZE_UNITS = "_KMGTP";
/** One `digits[unit]` term of a free-form duration (CFG-20), matched on upper-cased text. */
const DURATION_TERM_REGEXP = /(\d+)(Y|MO|D|H|MN|S|MS|US)?/g;
/** The timecode form `[H:]MM:SS[.fff]` of CFG-20, matched on the trimmed text. */
const TIMECODE_REGEXP = /^(?:(\d+):)?(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/;
/** Seconds per duration unit (CFG-20); `Y` is 365.256 days and `MO` a twelfth of it. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  Y: 86400 * 365.256,
  MO: (86400 * 365.256) / 12,
  D: 86400,
  H: 3600,
  MN: 60,
  S: 1,
  "": 1,
  MS: 1 / 1000,
  US: 1 / 1_000_000,
};

/** Go's `strings.TrimSpace` is close enough to `String.prototype.trim` for configuration text. */
function trimmed(text: string): string {
  return text.trim();
}

/**
 * Reads a boolean (CFG-17): the trimmed, lower-cased text `1`, `on`, `yes` or `true` is true and
 * any other text is false, even when the default is true (`y` → false). Words other than those
 * and `0`, `off`, `no`, `false` give a warning.
 */
export function parseBoolean(text: string, defaultValue: boolean): ParsedValue<boolean> {
  const word = trimmed(text).toLowerCase();
  if (TRUE_WORDS.has(word)) return { value: true };
  if (FALSE_WORDS.has(word)) return { value: false };
  const note = defaultValue ? ", not the default true" : "";
  return {
    value: false,
    warning: `Cannot parse boolean "${text}": read as false${note} (write yes/no, true/false, ` +
      `on/off or 1/0)`,
  };
}

/** Clamps `value` into the bounds and words the warning when it had to. */
function clamp(
  value: number,
  bounds: { readonly min: number; readonly max: number },
  show: (value: number) => string,
): ParsedValue<number> {
  if (value < bounds.min) {
    return {
      value: bounds.min,
      warning: `${show(value)} is below the minimum ${show(bounds.min)}: clamped to it`,
    };
  }
  if (value > bounds.max) {
    return {
      value: bounds.max,
      warning: `${show(value)} is above the maximum ${show(bounds.max)}: clamped to it`,
    };
  }
  return { value };
}

/**
 * Reads an integer (CFG-18): trimmed decimal with an optional sign (`+7` → 7). Unparsable text
 * (`4.2`, `0x10`, `1e3`, beyond 64 bits) gives the default; out-of-range values are clamped.
 */
export function parseInteger(text: string, bounds: NumberBounds): ParsedValue<number> {
  const digits = trimmed(text);
  if (!INTEGER_REGEXP.test(digits)) {
    return {
      value: bounds.default,
      warning: `Cannot parse integer "${text}": using the default ${bounds.default}`,
    };
  }
  const big = BigInt(digits);
  if (big < INT64_MIN || big > INT64_MAX) {
    return {
      value: bounds.default,
      warning: `Cannot parse integer "${text}": out of 64-bit range, using the default ` +
        `${bounds.default}`,
    };
  }
  return clamp(Number(big), bounds, String);
}

/**
 * Size in bytes of a size text without bounds (CFG-19), or `undefined` when it does not match
 * `number [K|M|G|T|P] [B]`. The base is 1024 with the trailing `B` and 1000 without it; the
 * product is truncated to an integer.
 */
export function sizeValue(text: string): number | undefined {
  const match = SIZE_REGEXP.exec(trimmed(text.toUpperCase()));
  if (!match) return undefined;
  const [, number = "", unit = "", binary = ""] = match;
  const scale = binary === "B" ? 1024 : 1000;
  return Math.trunc(Number(number) * scale ** SIZE_UNITS.indexOf(unit || "_"));
}

/**
 * Reads a size (CFG-19): `64kB` = 65 536, `64k` = 64 000, `1.5MB` = 1 572 864. Unparsable text
 * (`64KiB`, `-1`) gives the default; out-of-range values are clamped. A unit without the
 * trailing `B` is decimal, which surprises most readers: that gives a warning too (ODD-31).
 */
export function parseSize(text: string, bounds: NumberBounds): ParsedValue<number> {
  const size = sizeValue(text);
  if (size === undefined) {
    return {
      value: bounds.default,
      warning: `Cannot parse size "${text}": using the default ${formatSize(bounds.default)}`,
    };
  }
  const result = clamp(size, bounds, formatSize);
  const upper = trimmed(text.toUpperCase());
  if (/[KMGTP]$/.test(upper)) {
    const binary = `${upper.replace(/[\t\n\f\r ]+/g, "")}B`;
    const note = `Size "${text}" is decimal (${size} bytes); write "${binary}" for ` +
      `${sizeValue(binary)} bytes`;
    return withWarning(result.value, joinWarnings(note, result.warning));
  }
  return result;
}

/** A parsed value with its warning, if any (no `warning: undefined` property). */
function withWarning<T>(value: T, warning: string | undefined): ParsedValue<T> {
  return warning === undefined ? { value } : { value, warning };
}

/** Joins the warnings that are present with "; ". */
function joinWarnings(...warnings: readonly (string | undefined)[]): string | undefined {
  const present = warnings.filter((warning): warning is string => warning !== undefined);
  return present.length === 0 ? undefined : present.join("; ");
}

/** The outcome of reading a duration text before clamping: seconds and what looked odd. */
interface DurationReading {
  readonly seconds: number;
  readonly notes: readonly string[];
}

/** Reads a duration text as groom 1.3 does (CFG-20), noting every surprising part. */
function readDuration(text: string): DurationReading {
  const timecode = TIMECODE_REGEXP.exec(trimmed(text));
  if (timecode) {
    const [, hours = "0", minutes = "0", seconds = "0", fraction] = timecode;
    const notes: string[] = [];
    if (Number(minutes) > 59 || Number(seconds) > 59) {
      notes.push("minutes and seconds above 59 are read as 59");
    }
    if (fraction !== undefined && fraction.length < 3) {
      notes.push(`the fraction ".${fraction}" counts milliseconds (${Number(fraction)} ms)`);
    }
    return {
      seconds: Number(hours) * 3600 + Math.min(Number(minutes), 59) * 60 +
        Math.min(Number(seconds), 59) + Number(fraction ?? "0") / 1000,
      notes,
    };
  }
  const upper = trimmed(text.toUpperCase());
  let seconds = 0;
  let leftover = "";
  let last = 0;
  for (const match of upper.matchAll(DURATION_TERM_REGEXP)) {
    leftover += upper.slice(last, match.index);
    last = match.index + match[0].length;
    const amount = Number(match[1]);
    // Go's ParseFloat refuses numbers beyond float64 range, so such a term adds nothing.
    if (Number.isFinite(amount)) seconds += amount * (DURATION_UNITS[match[2] ?? ""] ?? 1);
  }
  leftover = (leftover + upper.slice(last)).replace(/[\t\n\f\r ]+/g, "");
  const notes: string[] = [];
  const ignored = leftover.replace(/\./g, "");
  if (!/\d/.test(upper)) {
    notes.push("no digits");
  } else {
    if (leftover.includes(".")) {
      notes.push("decimal points are not understood, each run of digits counts on its own");
    }
    if (ignored.includes("M")) {
      notes.push(`"m" is not a unit (minutes are "mn")`);
    } else if (ignored !== "") {
      notes.push(`ignored "${ignored.toLowerCase()}" (units: y mo d h mn s ms us)`);
    }
  }
  return { seconds, notes };
}

/**
 * Seconds of a duration text without bounds (CFG-20): the sum of every `digits[unit]` term
 * (units y, mo, d, h, mn, s or none, ms, us; `m` alone is not a unit and decimal points are not
 * understood), or the value of the whole text in the timecode form `[H:]MM:SS[.fff]`. Text
 * without digits is 0.
 */
export function durationValue(text: string): number {
  return readDuration(text).seconds;
}

/**
 * Reads a duration in seconds (CFG-20) and clamps it; an unparsable duration is 0 and therefore
 * becomes the minimum bound, not the default (`fast` → minimum). Warns about unparsable text,
 * surprising forms (`1.5s` = 6 s, `1m` = 1 s, `00:10.5` = 10.005 s) and clamping (ODD-31).
 */
export function parseDuration(text: string, bounds: DurationBounds): ParsedValue<number> {
  const reading = readDuration(text);
  const result = clamp(reading.seconds, bounds, formatDuration);
  const note = reading.notes.length === 0
    ? undefined
    : `Duration "${text}" reads as ${formatDuration(reading.seconds)}: ${reading.notes.join(", ")}`;
  return withWarning(result.value, joinWarnings(note, result.warning));
}

/**
 * Writes a byte count the way configuration files do: `64kB`, `8MB`, `1GB` for exact binary
 * multiples (re-readable by {@link sizeValue}), plain digits otherwise.
 */
export function formatSize(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes === 0) return String(bytes);
  const units = ["", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let power = 0;
  while (power < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    power++;
  }
  return `${value}${units[power]}`;
}

/**
 * Writes a duration in seconds the way configuration files do: `1h`, `5mn`, `60s`, `15s`, `500ms`
 * (re-readable by {@link durationValue}).
 */
export function formatDuration(seconds: number): string {
  if (Number.isInteger(seconds)) {
    if (seconds !== 0 && seconds % 3600 === 0) return `${seconds / 3600}h`;
    // 60s reads better than 1mn next to bounds written "5s-60s".
    if (seconds > 60 && seconds % 60 === 0) return `${seconds / 60}mn`;
    return `${seconds}s`;
  }
  const milliseconds = Math.round(seconds * 1e6) / 1e3;
  if (Number.isInteger(milliseconds)) return `${milliseconds}ms`;
  return `${Math.round(seconds * 1e6)}us`;
}

/** POSIX classes RE2 accepts inside brackets (`[[:alpha:]]`) and their JS spelling. */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};
/** A leading RE2 flag group such as `(?i)` or `(?is)`. */
const LEADING_FLAGS_REGEXP = /^\(\?([imsU]+)\)/;

/**
 * Compiles a regular expression written for groom 1.3 (Go RE2 syntax) into a JS `RegExp`:
 * a leading flag group `(?i)`/`(?s)`/`(?m)`, `(?P<name>…)`, `\A`, `\z` and POSIX bracket classes
 * are translated; everything else is passed to `RegExp` as is. Used for target `method`/`path`
 * patterns and certificate predicates (AGT-4, TLS-6) so that validation and use agree.
 * Throws `SyntaxError` (`Cannot compile pattern "(": …`) when the pattern does not compile.
 */
export function compilePattern(source: string, options: { ignoreCase?: boolean } = {}): RegExp {
  let flags = options.ignoreCase ? "i" : "";
  let body = source;
  const leading = LEADING_FLAGS_REGEXP.exec(body);
  if (leading) {
    const wanted = leading[1] ?? "";
    if (wanted.includes("U")) {
      throw new SyntaxError(`Cannot compile pattern "${source}": the U flag is not supported`);
    }
    for (const flag of wanted) if (!flags.includes(flag)) flags += flag;
    body = body.slice(leading[0].length);
  }
  const multiline = flags.includes("m");
  body = body
    .replace(/\(\?P</g, "(?<")
    .replace(/\[:(\^?)([a-z]+):\]/g, (whole, negated: string, name: string) => {
      const members = POSIX_CLASSES[name];
      if (members === undefined || negated !== "") return whole;
      return members;
    })
    .replace(/(^|[^\\])((?:\\\\)*)\\A/g, `$1$2${multiline ? "(?<![\\s\\S])" : "^"}`)
    .replace(/(^|[^\\])((?:\\\\)*)\\z/g, `$1$2${multiline ? "(?![\\s\\S])" : "$"}`);
  try {
    return new RegExp(body, flags);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SyntaxError(`Cannot compile pattern "${source}": ${reason}`);
  }
}
