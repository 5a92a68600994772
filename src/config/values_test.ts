/** Tests of typed configuration values against the observed values of CFG-17…CFG-20. @module */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compilePattern,
  durationValue,
  formatDuration,
  formatSize,
  parseBoolean,
  parseDuration,
  parseInteger,
  parseSize,
  sizeValue,
} from "./values.ts";

Deno.test("parseBoolean() reads 1/on/yes/true as true, anything else as false (CFG-17)", () => {
  const table: [string, boolean, boolean][] = [
    // text, default, expected
    ["1", false, true],
    ["on", false, true],
    ["yes", false, true],
    ["true", false, true],
    [" TRUE ", false, true],
    ["Yes", false, true],
    ["0", true, false],
    ["off", true, false],
    ["no", true, false],
    ["false", true, false],
    ["y", true, false], // observed: transaction = y → false although the default is true
    ["", true, false],
    ["enabled", true, false],
  ];
  for (const [text, fallback, expected] of table) {
    assert.equal(parseBoolean(text, fallback).value, expected, JSON.stringify(text));
  }
  assert.equal(table.length, 13);
});

Deno.test("parseBoolean() warns about words it reads as false by accident (ODD-31)", () => {
  assert.equal(parseBoolean("no", true).warning, undefined);
  assert.equal(parseBoolean("yes", false).warning, undefined);
  const warning = parseBoolean("y", true).warning ?? "";
  assert.match(warning, /^Cannot parse boolean "y": read as false, not the default true/);
  assert.match(parseBoolean("enabled", false).warning ?? "", /read as false \(write yes\/no/);
});

Deno.test("parseInteger() accepts a trimmed signed decimal and clamps it (CFG-18)", () => {
  const bounds = { default: 20, min: 3, max: 1000 };
  const table: [string, number][] = [
    ["50", 50],
    [" 50 ", 50],
    ["+7", 7],
    ["1", 3], // observed: concurrency = 1 is clamped to 3 (SRV-11)
    ["-5", 3],
    ["5000", 1000],
    ["4.2", 20],
    ["0x10", 20],
    ["1e3", 20],
    ["", 20],
    ["99999999999999999999", 20], // beyond 64 bits: unparsable in Go, so the default
  ];
  for (const [text, expected] of table) {
    assert.equal(parseInteger(text, bounds).value, expected, JSON.stringify(text));
  }
});

Deno.test("parseInteger() warns when it uses the default or clamps (ODD-31)", () => {
  const bounds = { default: 20, min: 3, max: 1000 };
  assert.equal(parseInteger("50", bounds).warning, undefined);
  assert.equal(
    parseInteger("4.2", bounds).warning,
    'Cannot parse integer "4.2": using the default 20',
  );
  assert.equal(parseInteger("1", bounds).warning, "1 is below the minimum 3: clamped to it");
  assert.equal(
    parseInteger("5000", bounds).warning,
    "5000 is above the maximum 1000: clamped to it",
  );
});

Deno.test("sizeValue() uses base 1024 with a trailing B and 1000 without (CFG-19)", () => {
  const table: [string, number | undefined][] = [
    ["64kB", 65536],
    ["64KB", 65536],
    ["64k", 64000],
    ["8MB", 8388608],
    ["1GB", 1073741824],
    ["1.5MB", 1572864],
    ["64 kB", 65536],
    ["100", 100],
    ["1b", 1],
    ["1m", 1000000],
    ["1.", 1],
    [" 2TB ", 2 * 1024 ** 4],
    ["1PB", 1024 ** 5],
    ["64KiB", undefined],
    ["-1", undefined],
    ["", undefined],
    ["kB", undefined],
    [".5MB", undefined],
  ];
  for (const [text, expected] of table) {
    assert.equal(sizeValue(text), expected, JSON.stringify(text));
  }
});

Deno.test("parseSize() clamps, falls back to the default and warns (CFG-19, ODD-31)", () => {
  const bounds = { default: 8388608, min: 65536, max: 1073741824 };
  assert.deepEqual(parseSize("8MB", bounds), { value: 8388608 });
  assert.deepEqual(parseSize("1kB", bounds), {
    value: 65536,
    warning: "1kB is below the minimum 64kB: clamped to it",
  });
  assert.deepEqual(parseSize("2GB", bounds), {
    value: 1073741824,
    warning: "2GB is above the maximum 1GB: clamped to it",
  });
  assert.deepEqual(parseSize("64KiB", bounds), {
    value: 8388608,
    warning: 'Cannot parse size "64KiB": using the default 8MB',
  });
  const decimal = parseSize("64k", bounds);
  assert.equal(decimal.value, 65536); // 64 000 is below the minimum
  assert.match(
    decimal.warning ?? "",
    /^Size "64k" is decimal \(64000 bytes\); write "64KB" for 65536 bytes; /,
  );
  assert.deepEqual(parseSize("100000", bounds), { value: 100000 });
});

Deno.test("durationValue() sums digits+unit terms and reads timecodes (CFG-20)", () => {
  const table: [string, number][] = [
    // observed values of the spec
    ["15s", 15],
    ["30", 30],
    ["1mn", 60],
    ["1h30mn", 5400],
    ["500ms", 0.5],
    ["1d", 86400],
    ["2 s", 2],
    ["00:30", 30],
    ["01:00:00", 3600],
    ["abc", 0],
    ["1.5s", 6], // decimal points are not understood: 1 + 5
    ["1m", 1], // M alone is not a unit
    ["00:10.5", 10.005], // the fraction is divided by 1000 whatever its digit count
    // units
    ["1y", 86400 * 365.256],
    ["1mo", (86400 * 365.256) / 12],
    ["2US", 0.000002],
    ["1H", 3600],
    ["10:99", 10 * 60 + 59], // minutes and seconds are capped at 59
    ["100:00:00", 360000], // hours are not capped
    ["", 0],
  ];
  for (const [text, expected] of table) {
    assert.ok(
      Math.abs(durationValue(text) - expected) < 1e-9,
      `${JSON.stringify(text)}: ${durationValue(text)} ≠ ${expected}`,
    );
  }
});

Deno.test("parseDuration() turns an invalid duration into the minimum, not the default (CFG-20)", () => {
  const bounds = { min: 5, max: 60 };
  assert.deepEqual(parseDuration("15s", bounds), { value: 15 });
  assert.equal(parseDuration("fast", bounds).value, 5); // read_timeout = fast → 5 s
  assert.equal(parseDuration("2h", bounds).value, 60);
  assert.equal(parseDuration("1s", bounds).value, 5);
  assert.equal(parseDuration("00:30", bounds).value, 30);
});

Deno.test("parseDuration() warns about unparsable, surprising and clamped values (ODD-31)", () => {
  const bounds = { min: 5, max: 3600 };
  const table: [string, string | undefined][] = [
    ["15s", undefined],
    ["1mn30s", undefined],
    ["01:00:00", undefined],
    ["00:10.500", undefined],
    ["fast", 'Duration "fast" reads as 0s: no digits; 0s is below the minimum 5s: clamped to it'],
    [
      "1.5s",
      'Duration "1.5s" reads as 6s: decimal points are not understood, each run of digits ' +
      "counts on its own",
    ],
    [
      "10m",
      'Duration "10m" reads as 10s: "m" is not a unit (minutes are "mn")',
    ],
    ["10 minutes", 'Duration "10 minutes" reads as 10s: "m" is not a unit (minutes are "mn")'],
    ["10x", 'Duration "10x" reads as 10s: ignored "x" (units: y mo d h mn s ms us)'],
    [
      "00:10.5",
      'Duration "00:10.5" reads as 10005ms: the fraction ".5" counts milliseconds (5 ms)',
    ],
    ["2h", "2h is above the maximum 1h: clamped to it"],
  ];
  for (const [text, expected] of table) {
    assert.equal(parseDuration(text, bounds).warning, expected, JSON.stringify(text));
  }
});

Deno.test("formatSize() and formatDuration() write values sizeValue()/durationValue() read back", () => {
  assert.equal(formatSize(65536), "64kB");
  assert.equal(formatSize(8388608), "8MB");
  assert.equal(formatSize(1073741824), "1GB");
  assert.equal(formatSize(64000), "64000");
  assert.equal(formatSize(0), "0");
  assert.equal(formatDuration(15), "15s");
  assert.equal(formatDuration(60), "60s");
  assert.equal(formatDuration(300), "5mn");
  assert.equal(formatDuration(3600), "1h");
  assert.equal(formatDuration(0.5), "500ms");
  assert.equal(formatDuration(10.005), "10005ms");
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (bytes) => {
      assert.equal(sizeValue(formatSize(bytes)), bytes);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 ** 7 }), (milliseconds) => {
      const seconds = milliseconds / 1000;
      assert.ok(Math.abs(durationValue(formatDuration(seconds)) - seconds) < 1e-9);
    }),
  );
});

Deno.test("parsers never throw and always return a number within bounds (CFG-18…CFG-20)", () => {
  const bounds = { default: 20, min: 3, max: 1000 };
  fc.assert(
    fc.property(fc.string(), (text) => {
      for (const parsed of [parseInteger(text, bounds), parseSize(text, bounds)]) {
        assert.ok(parsed.value >= bounds.min && parsed.value <= bounds.max);
      }
      const duration = parseDuration(text, { min: 5, max: 60 }).value;
      assert.ok(duration >= 5 && duration <= 60);
      assert.equal(typeof parseBoolean(text, true).value, "boolean");
    }),
  );
});

Deno.test("compilePattern() translates RE2-only syntax and reports bad patterns (AGT-4, TLS-6)", () => {
  assert.ok(compilePattern("(?i)^/API").test("/api/x"));
  assert.ok(compilePattern("^get$", { ignoreCase: true }).test("GET"));
  assert.ok(!compilePattern("^get$").test("GET"));
  assert.equal(compilePattern("^/(?P<rest>.+)$").exec("/a/b")?.groups?.rest, "a/b");
  assert.ok(compilePattern("^[[:digit:]]+$").test("123"));
  assert.ok(!compilePattern("^[[:digit:]]+$").test("12a"));
  assert.ok(compilePattern("\\Aab\\z").test("ab"));
  assert.ok(!compilePattern("\\Aab\\z").test("abc"));
  assert.ok(compilePattern("^api\\.domain\\.com$").test("api.domain.com"));
  assert.throws(() => compilePattern("("), {
    name: "SyntaxError",
    message: /^Cannot compile pattern "\(": /,
  });
  assert.throws(() => compilePattern("(?U)a+"), /the U flag is not supported/);
});
