/**
 * Tests of `clients.ranges` time windows (ACL-3, SRV-7, ODD-25 reporting).
 * @module
 */

import assert from "node:assert/strict";
import { compileTimeRanges } from "./time_ranges.ts";

/** Each row: entries, instant (UTC), expected match. */
const MATCH_TABLE: [string[], string, boolean][] = [
  // ACL-3's example: October 2019, Tuesday–Friday, 08:00:00–19:00:00 UTC.
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-01T08:00:00Z", true], // Tue
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-01T07:59:59.999Z", false],
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-04T19:00:00.999Z", true], // Fri
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-04T19:00:01Z", false],
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-05T12:00:00Z", false], // Sat
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-10-31T12:00:00Z", true], // Thu
  [["2019-10-01-2019-10-31 tue-fri 08:00-19:00"], "2019-11-01T12:00:00Z", false], // Fri
  // The README's example: the lone date is ignored, so weekends 13:00–17:00 on any date.
  [["2020-01-01 sat- 13:00-17:00"], "2021-06-05T13:00:00Z", true], // Sat
  [["2020-01-01 sat- 13:00-17:00"], "2021-06-06T17:00:59Z", false], // Sun, minute after
  [["2020-01-01 sat- 13:00-17:00"], "2021-06-06T17:00:00Z", true], // Sun
  [["2020-01-01 sat- 13:00-17:00"], "2021-06-07T14:00:00Z", false], // Mon
  [["2020-01-01 sat- 13:00-17:00"], "2020-01-01T14:00:00Z", false], // Wed: the date is unused
  // Date bounds: 00:00:00 of the first day to 23:59:59 of the last; either side optional.
  [["2020-02-29-2020-02-29"], "2020-02-29T00:00:00Z", true], // leap day
  [["2020-02-29-2020-02-29"], "2020-02-29T23:59:59.999Z", true],
  [["2020-02-29-2020-02-29"], "2020-03-01T00:00:00Z", false],
  [["2020-02-29-2020-02-29"], "2020-02-28T23:59:59Z", false],
  [["2000-02-29-"], "2000-02-29T00:00:00Z", true], // century leap year
  [["2000-02-29-"], "2000-02-28T23:59:59Z", false],
  [["-1999-12-31"], "1999-12-31T23:59:59Z", true],
  [["-1999-12-31"], "2000-01-01T00:00:00Z", false],
  [["-1999-12-31"], "1969-07-20T20:17:00Z", true], // before the Unix epoch
  // Weekdays: case-insensitive, inclusive, no wrap.
  [["MON-Wed"], "2021-06-07T00:00:00Z", true], // Mon
  [["mon-wed"], "2021-06-06T23:59:59Z", false], // Sun
  [["sun-sun"], "2021-06-06T12:00:00Z", true],
  [["-mon"], "2021-06-07T12:00:00Z", true],
  [["-mon"], "2021-06-06T12:00:00Z", false], // sun = 7
  [["fri-mon"], "2021-06-05T12:00:00Z", false], // no wrap: never matches
  [["fri-mon"], "2021-06-07T12:00:00Z", false],
  // Times: 00:00 means no bound, seconds allowed, no wrap.
  [["00:00-06:00"], "2021-06-07T00:00:00Z", true],
  [["00:00-06:00"], "2021-06-07T06:00:00Z", true],
  [["00:00-06:00"], "2021-06-07T06:00:01Z", false],
  [["22:00-00:00"], "2021-06-07T23:59:59Z", true],
  [["22:00-00:00"], "2021-06-07T00:00:00Z", false],
  [["22:00-06:00"], "2021-06-07T23:00:00Z", false], // no wrap: never matches
  [["22:00-06:00"], "2021-06-07T03:00:00Z", false],
  [["08:30:15-08:30:20"], "2021-06-07T08:30:15Z", true],
  [["08:30:15-08:30:20"], "2021-06-07T08:30:21Z", false],
  [["00:00:00-00:00"], "2021-06-07T12:00:00Z", true],
  // A later token of the same kind overrides the earlier one.
  [["08:00-09:00 10:00-11:00"], "2021-06-07T08:30:00Z", false],
  [["08:00-09:00 10:00-11:00"], "2021-06-07T10:30:00Z", true],
  [["mon-mon 2020-01-01- sat-sun"], "2021-06-05T10:30:00Z", true],
  // Entries without a recognised token always match; the list matches if any entry does.
  [[""], "2021-06-07T12:00:00Z", true],
  [["whenever"], "2021-06-07T12:00:00Z", true],
  [["2019-02-29-2019-03-01"], "2021-06-07T12:00:00Z", true], // impossible date: ignored
  [["sat-sun", "mon-mon 08:00-09:00"], "2021-06-07T08:15:00Z", true],
  [["sat-sun", "mon-mon 08:00-09:00"], "2021-06-07T09:15:00Z", false],
  [["  mon-mon   08:00-09:00 "], "2021-06-07T08:15:00Z", true], // empty tokens skipped
];

Deno.test("compileTimeRanges().matches() applies UTC bounds inclusive to the second (ACL-3)", () => {
  assert.equal(MATCH_TABLE.length, 47);
  for (const [entries, instant, expected] of MATCH_TABLE) {
    const ranges = compileTimeRanges(entries);
    assert.equal(
      ranges.matches(new Date(instant)),
      expected,
      `${entries.join(" | ")} @ ${instant}`,
    );
  }
});

Deno.test("compileTimeRanges() reports the tokens it ignores (ACL-3, ODD-25)", () => {
  const cases: [string, string[]][] = [
    ["2019-10-01-2019-10-31 tue-fri 08:00-19:00", []],
    ["- sat- -sun 08:00- -19:00:00", []],
    [
      "2020-01-01 sat- 13:00-17:00",
      [
        'Ignoring "2020-01-01" in time range "2020-01-01 sat- 13:00-17:00": ' +
        "a lone date is not a range (write 2020-01-01-2020-01-01)",
      ],
    ],
    ["Sat", ['Ignoring "Sat" in time range "Sat": a lone day is not a range (write Sat-Sat)']],
    [
      "2019-02-29-",
      ['Ignoring "2019-02-29-" in time range "2019-02-29-": not a valid calendar date'],
    ],
    [
      "2019-13-01-",
      ['Ignoring "2019-13-01-" in time range "2019-13-01-": not a valid calendar date'],
    ],
    [
      "sat-sno",
      [
        'Ignoring "sat-sno" in time range "sat-sno": not a day name (mon, tue, wed, thu, fri, sat, sun)',
      ],
    ],
    ["24:00-", ['Ignoring "24:00-" in time range "24:00-": not a valid time of day']],
    ["08:60-", ['Ignoring "08:60-" in time range "08:60-": not a valid time of day']],
    [
      "8:00-9:00 weekends",
      [
        'Ignoring "8:00-9:00" in time range "8:00-9:00 weekends": not a date, weekday or time range',
        'Ignoring "weekends" in time range "8:00-9:00 weekends": not a date, weekday or time range',
      ],
    ],
  ];
  for (const [entry, problems] of cases) {
    assert.deepEqual(compileTimeRanges([entry]).problems, problems, entry);
  }
});

Deno.test("compileTimeRanges() leaves the empty-list default to the caller (SRV-7)", () => {
  const empty = compileTimeRanges([]);
  assert.equal(empty.isEmpty, true);
  assert.equal(empty.matches(new Date("2021-06-07T12:00:00Z")), false);
  assert.equal(compileTimeRanges([""]).isEmpty, false);
});
