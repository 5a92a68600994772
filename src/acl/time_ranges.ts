/**
 * Time windows of `clients.ranges` (ACL-3, SRV-7), evaluated in UTC exactly as the original does:
 * tokens are date ranges, weekday ranges or time-of-day ranges; bounds are inclusive to the
 * second; a `00:00` time bound means "no bound"; ranges never wrap. The one deliberate change:
 * tokens the original ignores silently (a lone date or day, typos) are still ignored but reported
 * in `problems`, since the README's own example relies on one (ODD-25).
 * @module
 */

/** A compiled `clients.ranges` list, from {@linkcode compileTimeRanges}. */
export interface TimeRangeList {
  /** Whether the instant falls in at least one entry (seconds precision, UTC). */
  matches(date: Date): boolean;
  /** Ignored tokens, one readable text each. */
  readonly problems: readonly string[];
  /** Whether the configured list had no entries, so the caller's default applies (SRV-7: allow). */
  readonly isEmpty: boolean;
}

/** The bounds one entry sets; an absent bound does not constrain. */
interface Window {
  /** First second of the first day (Unix seconds). */
  dateFrom?: number;
  /** Last second (23:59:59) of the last day (Unix seconds). */
  dateTo?: number;
  /** ISO weekday, mon = 1 … sun = 7. */
  dayFrom?: number;
  dayTo?: number;
  /** Seconds since midnight. */
  timeFrom?: number;
  timeTo?: number;
}

/** Seconds in a day. */
const DAY_SECONDS = 86_400;
/** ISO weekday numbers by three-letter name (ACL-3: mon = 1 … sun = 7). */
const WEEKDAYS: Readonly<Record<string, number>> = {
  mon: 1,
  tue: 2,
  wed: 3,
  thu: 4,
  fri: 5,
  sat: 6,
  sun: 7,
};
/** `[YYYY-MM-DD]-[YYYY-MM-DD]`, the dash mandatory. */
const DATE_RANGE_REGEXP = /^(\d{4}-\d{2}-\d{2})?-(\d{4}-\d{2}-\d{2})?$/;
/** `[ddd]-[ddd]`, the dash mandatory. */
const DAY_RANGE_REGEXP = /^([A-Za-z]{3})?-([A-Za-z]{3})?$/;
/** `[HH:MM[:SS]]-[HH:MM[:SS]]`, the dash mandatory. */
const TIME_RANGE_REGEXP = /^(\d{2}:\d{2}(?::\d{2})?)?-(\d{2}:\d{2}(?::\d{2})?)?$/;
/** A lone date, a frequent mistake (README example). */
const LONE_DATE_REGEXP = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Compiles `clients.ranges` (ACL-3). Each entry is split on single spaces into tokens: a date range
 * `[YYYY-MM-DD]-[YYYY-MM-DD]` (00:00:00 of the first day to 23:59:59 of the last), a weekday range
 * `[ddd]-[ddd]` (`mon`…`sun`, any case) or a time range `[HH:MM[:SS]]-[HH:MM[:SS]]`; either side
 * may be empty; a later token of a kind overrides an earlier one; anything else is ignored and
 * reported. An entry matches unless one of its bounds excludes the instant; the list matches if any
 * entry does.
 *
 * @example
 * ```ts
 * const ranges = compileTimeRanges(["2019-10-01-2019-10-31 tue-fri 08:00-19:00"]);
 * ranges.matches(new Date("2019-10-01T08:00:00Z")); // true (a Tuesday)
 * ```
 */
export function compileTimeRanges(entries: readonly string[]): TimeRangeList {
  const problems: string[] = [];
  const windows = entries.map((entry) => compileEntry(entry, problems));
  return {
    matches: (date: Date) => {
      const seconds = Math.floor(date.getTime() / 1000);
      return windows.some((window) => inWindow(window, seconds));
    },
    problems,
    isEmpty: entries.length === 0,
  };
}

/** Compiles one entry; ignored tokens are described in `problems`. */
function compileEntry(entry: string, problems: string[]): Window {
  const window: Window = {};
  for (const token of entry.split(" ")) {
    if (token === "") continue; // from doubled spaces: nothing to report
    const problem = applyToken(window, token);
    if (problem !== undefined) {
      problems.push(`Ignoring "${token}" in time range "${entry}": ${problem}`);
    }
  }
  return window;
}

/** Applies one token to `window`, or returns why it is ignored. */
function applyToken(window: Window, token: string): string | undefined {
  const dates = DATE_RANGE_REGEXP.exec(token);
  if (dates !== null) {
    const from = dates[1] === undefined ? undefined : parseDate(dates[1]);
    const to = dates[2] === undefined ? undefined : parseDate(dates[2]);
    if (from === null || to === null) return "not a valid calendar date";
    setBounds(
      window,
      "dateFrom",
      from,
      "dateTo",
      to === undefined ? undefined : to + DAY_SECONDS - 1,
    );
    return undefined;
  }
  const days = DAY_RANGE_REGEXP.exec(token);
  if (days !== null) {
    const from = days[1] === undefined ? undefined : parseDay(days[1]);
    const to = days[2] === undefined ? undefined : parseDay(days[2]);
    if (from === null || to === null) return "not a day name (mon, tue, wed, thu, fri, sat, sun)";
    setBounds(window, "dayFrom", from, "dayTo", to);
    return undefined;
  }
  const times = TIME_RANGE_REGEXP.exec(token);
  if (times !== null) {
    const from = times[1] === undefined ? undefined : parseTime(times[1]);
    const to = times[2] === undefined ? undefined : parseTime(times[2]);
    if (from === null || to === null) return "not a valid time of day";
    // ACL-3: a bound of 00:00[:00] counts as no bound.
    setBounds(window, "timeFrom", from || undefined, "timeTo", to || undefined);
    return undefined;
  }
  if (LONE_DATE_REGEXP.test(token)) return `a lone date is not a range (write ${token}-${token})`;
  if (parseDay(token) !== null) return `a lone day is not a range (write ${token}-${token})`;
  return "not a date, weekday or time range";
}

/** Sets both bounds of one kind, replacing what an earlier token of that kind set (ACL-3). */
function setBounds<K extends keyof Window>(
  window: Window,
  fromKey: K,
  from: number | undefined,
  toKey: K,
  to: number | undefined,
): void {
  delete window[fromKey];
  delete window[toKey];
  if (from !== undefined) window[fromKey] = from;
  if (to !== undefined) window[toKey] = to;
}

/** Whether the instant (Unix seconds) satisfies every bound of the window. */
function inWindow(window: Window, seconds: number): boolean {
  if (window.dateFrom !== undefined && seconds < window.dateFrom) return false;
  if (window.dateTo !== undefined && seconds > window.dateTo) return false;
  const weekday = ((Math.floor(seconds / DAY_SECONDS) + 3) % 7 + 7) % 7 + 1; // 1970-01-01: thu
  if (window.dayFrom !== undefined && weekday < window.dayFrom) return false;
  if (window.dayTo !== undefined && weekday > window.dayTo) return false;
  const timeOfDay = ((seconds % DAY_SECONDS) + DAY_SECONDS) % DAY_SECONDS;
  if (window.timeFrom !== undefined && timeOfDay < window.timeFrom) return false;
  if (window.timeTo !== undefined && timeOfDay > window.timeTo) return false;
  return true;
}

/** `YYYY-MM-DD` → Unix seconds at 00:00:00 UTC, or `null` for an impossible date (2019-02-29). */
function parseDate(text: string): number | null {
  const [year = 0, month = 0, day = 0] = text.split("-").map(Number);
  const check = new Date(0);
  check.setUTCFullYear(year, month - 1, day); // unlike Date.UTC, keeps years 0-99 as written
  if (
    check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day
  ) {
    return null;
  }
  return check.getTime() / 1000;
}

/** Three-letter day name (any case) → ISO weekday, or `null`. */
function parseDay(text: string): number | null {
  const name = text.toLowerCase();
  return Object.hasOwn(WEEKDAYS, name) ? WEEKDAYS[name] ?? null : null;
}

/** `HH:MM[:SS]` → seconds since midnight, or `null` when out of range. */
function parseTime(text: string): number | null {
  const [hours = 0, minutes = 0, seconds = 0] = text.split(":").map(Number);
  if (hours > 23 || minutes > 59 || seconds > 59) return null;
  return hours * 3600 + minutes * 60 + seconds;
}
