/** Tests of the pure formatting: JSON (LOG-7), strftime (LOG-8), prefixes (LOG-6, LOG-9). @module */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compareCodePoints,
  encodeJson,
  encodeJsonString,
  fixedZone,
  formatLine,
  formatRfc3339,
  formatStamp,
  formatSyslogLocal,
  formatSyslogRemote,
  formatTimePrefix,
  localZone,
  strftime,
  type TimeFormat,
  UTC_ZONE,
} from "./format.ts";

/** 2026-11-24 23:45:10.859 UTC (a Tuesday), the arrival time of the SRV-20 example. */
const OBSERVED = new Date(1795563910859);
/** Central European Time, one hour east: the same instant is Wednesday 2026-11-25 00:45:10. */
const CET = fixedZone(60, "CET");

Deno.test("encodeJson() sorts keys by byte value at every depth (LOG-7)", () => {
  const record = { b: 1, a: { z: true, "Z": null, "é": "x", "e": [3, { y: 1, x: 2 }] }, A: "" };
  assert.equal(
    encodeJson(record),
    '{"A":"","a":{"Z":null,"e":[3,{"x":2,"y":1}],"z":true,"é":"x"},"b":1}',
  );
});

Deno.test("encodeJson() orders astral keys after U+FFFD like UTF-8 bytes do (LOG-7)", () => {
  // UTF-16 order would put U+1F600 (surrogates D83D…) before U+FFFD; UTF-8 order does not.
  assert.equal(encodeJson({ "😀": 1, "\ufffd": 2 }), '{"\ufffd":2,"😀":1}');
  assert.ok(compareCodePoints("\u{1F600}", "\uFFFD") > 0);
});

Deno.test("encodeJson() reproduces the observed start event of LOG-6 (LOG-7)", () => {
  const record = {
    version: "1.3.2",
    pid: 17933,
    mode: "server",
    event: "start",
    config: "server.conf",
  };
  assert.equal(
    encodeJson(record),
    '{"config":"server.conf","event":"start","mode":"server","pid":17933,"version":"1.3.2"}',
  );
});

Deno.test("encodeJsonString() escapes exactly as Go with HTML escaping off (LOG-7)", () => {
  const cases: [string, string][] = [
    ["plain", '"plain"'],
    ["<a href='x'>&amp;</a>", `"<a href='x'>&amp;</a>"`],
    ['quote " backslash \\', '"quote \\" backslash \\\\"'],
    ["\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'],
    ["\u0000\u0001\u001b\u001f", '"\\u0000\\u0001\\u001b\\u001f"'],
    ["\u007f", '"\u007f"'],
    ["line\u2028para\u2029", '"line\\u2028para\\u2029"'],
    ["lone \ud800 high", '"lone \\ufffd high"'],
    ["lone \udc00 low", '"lone \\ufffd low"'],
    ["reversed \udc00\ud800", '"reversed \\ufffd\\ufffd"'],
    ["end \ud83d", '"end \\ufffd"'],
    ["pair 😀 ok", '"pair 😀 ok"'],
    ["é ü 中", '"é ü 中"'],
  ];
  for (const [input, expected] of cases) assert.equal(encodeJsonString(input), expected, input);
  assert.equal(cases.length, 13);
});

Deno.test("encodeJsonString() output parses back to the input for well-formed text (LOG-7)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme" }), (text) => {
      assert.equal(JSON.parse(encodeJsonString(text)), text);
    }),
  );
});

Deno.test("encodeJson() writes integers plainly and JavaScript-only values sensibly (LOG-7)", () => {
  const cases: [unknown, string][] = [
    [{ n: 1795563910859 }, '{"n":1795563910859}'],
    [{ n: 0.5, m: -3, big: 12345678901234567890n }, '{"big":12345678901234567890,"m":-3,"n":0.5}'],
    [{ inf: Infinity, nan: NaN }, '{"inf":null,"nan":null}'],
    [{ skip: undefined, f: () => 1, keep: null }, '{"keep":null}'],
    [[undefined, 1], "[null,1]"],
    [{ error: new Error("boom") }, '{"error":"boom"}'],
    [{ bytes: new Uint8Array([104, 105]) }, '{"bytes":"aGk="}'],
    [{ at: new Date(0) }, '{"at":"1970-01-01T00:00:00.000Z"}'],
    [{}, "{}"],
    [undefined, "null"],
  ];
  for (const [input, expected] of cases) assert.equal(encodeJson(input), expected);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.equal(encodeJson(cyclic), '{"a":1,"self":null}');
});

Deno.test("formatTimePrefix() writes each time format of LOG-6", () => {
  const cases: [TimeFormat, string][] = [
    ["datetime", "2026-11-24 23:45:10 "],
    ["msdatetime", "2026-11-24 23:45:10.859 "],
    ["stamp", "1795563910 "],
    ["msstamp", "1795563910859 "],
    ["none", ""],
  ];
  for (const [format, expected] of cases) {
    assert.equal(formatTimePrefix(format, OBSERVED, UTC_ZONE), expected, format);
  }
  assert.equal(formatTimePrefix("datetime", OBSERVED, CET), "2026-11-25 00:45:10 ");
  assert.equal(formatTimePrefix("stamp", OBSERVED, CET), "1795563910 ");
});

Deno.test("formatLine() writes the observed start line of LOG-6", () => {
  const message =
    '{"config":"server.conf","event":"start","mode":"server","pid":17933,"version":"1.3.2"}';
  assert.equal(
    formatLine(
      { time: "datetime", severity: true, colors: false },
      { level: "info", time: OBSERVED, message },
      UTC_ZONE,
    ),
    `2026-11-24 23:45:10 INFO ${message}\n`,
  );
});

Deno.test("formatLine() writes the labels of LOG-6, coloured per LOG-3", () => {
  const cases = [
    ["error", "ERRO ", "\x1b[31m"],
    ["warning", "WARN ", "\x1b[33m"],
    ["info", "INFO ", "\x1b[36m"],
    ["debug", "DBUG ", "\x1b[32m"],
  ] as const;
  for (const [level, label, color] of cases) {
    const entry = { level, time: OBSERVED, message: "{}" };
    assert.equal(
      formatLine({ time: "none", severity: true, colors: false }, entry, UTC_ZONE),
      `${label}{}\n`,
    );
    assert.equal(
      formatLine({ time: "stamp", severity: true, colors: true }, entry, UTC_ZONE),
      `1795563910 ${color}${label}\x1b[0m{}\n`,
    );
    assert.equal(
      formatLine({ time: "none", severity: false, colors: true }, entry, UTC_ZONE),
      "{}\n",
    );
  }
});

Deno.test("formatLine() uses a syslog-style prefix for a file with a facility (LOG-6)", () => {
  const style = {
    time: "msdatetime",
    severity: true,
    colors: false,
    syslog: { facility: 160, name: "public1", pid: 42 },
  } as const;
  assert.equal(
    formatLine(style, { level: "warning", time: OBSERVED, message: "{}" }, UTC_ZONE),
    "<164>Nov 24 23:45:10 public1[42]: {}\n",
  );
  const early = new Date(Date.UTC(2027, 0, 1, 3, 4, 5));
  assert.equal(
    formatLine(style, { level: "debug", time: early, message: "{}" }, UTC_ZONE),
    "<167>Jan  1 03:04:05 public1[42]: {}\n",
  );
});

Deno.test("formatSyslogLocal() and formatSyslogRemote() write the LOG-9 wire formats", () => {
  const entry = { level: "info", time: OBSERVED, message: '{"a":1}' } as const;
  assert.equal(
    formatSyslogLocal({ facility: 24, tag: "groom", pid: 7 }, entry, CET),
    '<30>Nov 25 00:45:10 groom[7]: {"a":1}\n',
  );
  assert.equal(
    formatSyslogRemote({ facility: 184, tag: "groom", pid: 7, hostname: "h1" }, entry, CET),
    '<190>2026-11-25T00:45:10+01:00 h1 groom[7]: {"a":1}\n',
  );
  // Go's RFC 3339 layout writes Z for a zero offset, and a negative offset with its sign.
  assert.equal(formatRfc3339(OBSERVED, UTC_ZONE), "2026-11-24T23:45:10Z");
  assert.equal(formatRfc3339(OBSERVED, fixedZone(-330, "X")), "2026-11-24T18:15:10-05:30");
  // Unknown facility means kern (0): PRI is the bare severity (ODD-38).
  assert.equal(
    formatSyslogLocal({ facility: 0, tag: "t", pid: 1 }, { ...entry, level: "error" }, UTC_ZONE),
    '<3>Nov 24 23:45:10 t[1]: {"a":1}\n',
  );
  assert.equal(formatStamp(new Date(Date.UTC(2026, 1, 3, 4, 5, 6)), UTC_ZONE), "Feb  3 04:05:06");
});

Deno.test("strftime() expands every conversion of LOG-8 in UTC", () => {
  const expected: Record<string, string> = {
    a: "Tue",
    A: "Tuesday",
    b: "Nov",
    B: "November",
    c: "Tue Nov 24 23:45:10 2026",
    C: "20",
    d: "24",
    D: "11/24/26",
    e: "24",
    f: "859000",
    F: "2026-11-24",
    g: "26",
    G: "2026",
    h: "Nov",
    H: "23",
    I: "11",
    j: "328",
    k: "23",
    l: "11",
    m: "11",
    M: "45",
    n: "\n",
    p: "PM",
    P: "pm",
    r: "11:45:10 PM",
    R: "23:45",
    s: "1795563910",
    S: "10",
    t: "\t",
    T: "23:45:10",
    u: "2",
    U: "47",
    V: "48",
    w: "2",
    W: "47",
    x: "11/24/26",
    X: "23:45:10",
    y: "26",
    Y: "2026",
    z: "+0000",
    Z: "UTC",
    "%": "%",
  };
  for (const [letter, value] of Object.entries(expected)) {
    assert.equal(strftime(`[%${letter}]`, OBSERVED, UTC_ZONE), `[${value}]`, `%${letter}`);
  }
  assert.equal(Object.keys(expected).length, 42);
});

Deno.test("strftime() expands in an injected local zone, crossing midnight (LOG-8)", () => {
  const expected: Record<string, string> = {
    a: "Wed",
    d: "25",
    D: "11/25/26",
    F: "2026-11-25",
    H: "00",
    I: "12",
    j: "329",
    k: " 0",
    l: "12",
    p: "AM",
    r: "12:45:10 AM",
    s: "1795563910",
    u: "3",
    w: "3",
    z: "+0100",
    Z: "CET",
  };
  for (const [letter, value] of Object.entries(expected)) {
    assert.equal(strftime(`%${letter}`, OBSERVED, CET), value, `%${letter}`);
  }
  assert.equal(
    strftime("/var/log/groom/%Y%m%d.log", OBSERVED, CET),
    "/var/log/groom/20261125.log",
  );
  assert.equal(strftime("%z", OBSERVED, fixedZone(-570, "X")), "-0930");
});

Deno.test("strftime() follows the original's padding at a year boundary (LOG-8)", () => {
  const newYear = new Date(Date.UTC(2027, 0, 1, 3, 4, 5)); // a Friday in ISO week 2026-W53
  assert.equal(
    strftime("%c|%e|%U|%W|%V|%G|%g|%j|%k|%l|%I", newYear, UTC_ZONE),
    "Fri Jan 1 03:04:05 2027| 1|0|0|53|2026|26|001| 3| 3|03",
  );
  const monday = new Date(Date.UTC(2026, 11, 28, 12)); // ISO week 53 of 2026, noon
  assert.equal(
    strftime("%V %G %U %W %u %w %I %l %p", monday, UTC_ZONE),
    "53 2026 52 52 1 1 12 12 PM",
  );
});

Deno.test("strftime() drops unknown conversions and a trailing % (LOG-8)", () => {
  assert.equal(strftime("a%qb%Ec%", OBSERVED, UTC_ZONE), "abc");
  assert.equal(strftime("no conversions", OBSERVED, UTC_ZONE), "no conversions");
  assert.equal(strftime("100%%", OBSERVED, UTC_ZONE), "100%");
});

Deno.test("localZone() follows the process clock's offset", () => {
  const zone = localZone();
  assert.equal(zone.offsetMinutes(OBSERVED), -OBSERVED.getTimezoneOffset());
  assert.ok(zone.abbreviation(OBSERVED).length > 0);
});
