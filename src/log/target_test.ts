/** Tests of log target parsing (LOG-1…LOG-5, ODD-38). @module */

import assert from "node:assert/strict";
import { type ConsoleOutput, EMPTY_LOG_TARGET, type LogTarget, parseLogTarget } from "./target.ts";

const CONSOLE_DEFAULT: ConsoleOutput = {
  stream: "stderr",
  time: "datetime",
  severity: true,
  colors: true,
};

function target(overrides: Partial<LogTarget>): LogTarget {
  return { ...EMPTY_LOG_TARGET, ...overrides };
}

Deno.test("parseLogTarget() reads the README examples without problems (LOG-1)", () => {
  const cases: [string, LogTarget][] = [
    ["", EMPTY_LOG_TARGET],
    ["   ", EMPTY_LOG_TARGET],
    ["console(output=stdout)", target({ console: { ...CONSOLE_DEFAULT, stream: "stdout" } })],
    [
      "file(path=/var/log/groom/%Y%m%d.log,time=msdatetime) syslog(facility=local4,name=public1)",
      target({
        file: {
          path: "/var/log/groom/%Y%m%d.log",
          time: "msdatetime",
          severity: true,
          facility: 0,
        },
        syslog: { remote: null, name: "public1", facility: 160 },
      }),
    ],
    [
      "file(path=/var/log/groom/clients-%Y%m%d.log,time=no,severity=no)",
      target({
        file: {
          path: "/var/log/groom/clients-%Y%m%d.log",
          time: "none",
          severity: false,
          facility: 0,
        },
      }),
    ],
    [
      "console() option(level=debug,utc=yes)",
      target({ console: CONSOLE_DEFAULT, level: "debug", utc: true }),
    ],
  ];
  for (const [spec, expected] of cases) {
    const { target: parsed, problems } = parseLogTarget(spec);
    assert.deepEqual(parsed, expected, spec);
    assert.deepEqual(problems, [], spec);
  }
  assert.equal(cases.length, 6);
});

Deno.test("parseLogTarget() accepts key:value, any case of key, spaces and commas (LOG-1)", () => {
  const { target: parsed, problems } = parseLogTarget(
    "console ( OUTPUT : STDOUT  Time=MsStamp ,, Severity:off colors=0 )",
  );
  assert.deepEqual(parsed.console, {
    stream: "stdout",
    time: "msstamp",
    severity: false,
    colors: false,
  });
  assert.deepEqual(problems, []);
});

Deno.test("parseLogTarget() maps every time value of LOG-2", () => {
  const cases: [string, string][] = [
    ["datetime", "datetime"],
    ["msdatetime", "msdatetime"],
    ["stamp", "stamp"],
    ["timestamp", "stamp"],
    ["msstamp", "msstamp"],
    ["mstimestamp", "msstamp"],
    ["1", "datetime"],
    ["true", "datetime"],
    ["on", "datetime"],
    ["YES", "datetime"],
    ["no", "none"],
    ["off", "none"],
    ["whatever", "none"],
  ];
  for (const [value, expected] of cases) {
    assert.equal(parseLogTarget(`file(path=x,time=${value})`).target.file?.time, expected, value);
    assert.equal(parseLogTarget(`console(time=${value})`).target.console?.time, expected, value);
  }
  // A truthy value keeps the time chosen before it in the same group.
  assert.equal(parseLogTarget("console(time=stamp,time=yes)").target.console?.time, "stamp");
});

Deno.test("parseLogTarget() reads syslog remote, name and facility (LOG-4)", () => {
  const cases: [string, { host: string; port: number } | null][] = [
    ["syslog()", null],
    ["syslog(remote=logs.example.com)", { host: "logs.example.com", port: 514 }],
    ["syslog(remote=10.0.0.1:5514)", { host: "10.0.0.1", port: 5514 }],
    ["syslog(remote=[::1]:515)", { host: "::1", port: 515 }],
    ["syslog(remote=[::1])", { host: "::1", port: 514 }],
    ["syslog(remote=:516)", { host: "localhost", port: 516 }],
  ];
  for (const [spec, remote] of cases) {
    assert.deepEqual(parseLogTarget(spec).target.syslog?.remote, remote, spec);
  }
  const named = parseLogTarget("syslog(name=Public1,facility=USER)").target.syslog;
  assert.deepEqual(named, { remote: null, name: "Public1", facility: 8 });
  assert.equal(parseLogTarget("syslog()").target.syslog?.facility, 24, "daemon by default");
});

Deno.test("parseLogTarget() knows every facility code of LOG-9", () => {
  const codes: Record<string, number> = { user: 8, daemon: 24 };
  for (let n = 0; n <= 7; n++) codes[`local${n}`] = 128 + 8 * n;
  for (const [name, code] of Object.entries(codes)) {
    assert.equal(parseLogTarget(`syslog(facility=${name})`).target.syslog?.facility, code);
    assert.equal(parseLogTarget(`file(path=p,facility=${name})`).target.file?.facility, code);
  }
  assert.equal(Object.keys(codes).length, 10);
});

Deno.test("parseLogTarget() combines groups and lets a repeated kind update options (LOG-1)", () => {
  const { target: parsed } = parseLogTarget(
    "console(output=stdout,time=stamp) file(path=a.log) console(severity=no) file(path=b.log)",
  );
  assert.deepEqual(parsed.console, {
    stream: "stdout",
    time: "stamp",
    severity: false,
    colors: true,
  });
  assert.equal(parsed.file?.path, "b.log");
});

Deno.test("parseLogTarget() keeps the original's meaning of bad input and reports it (ODD-38)", () => {
  const cases: [string, Partial<LogTarget>, string[]][] = [
    // An unknown level silences everything.
    ["console() option(level=verbose)", { console: CONSOLE_DEFAULT, level: null }, [
      "unknown-level",
    ]],
    // An unknown syslog facility is kern.
    ["syslog(facility=mail)", { syslog: { remote: null, name: null, facility: 0 } }, [
      "unknown-facility",
    ]],
    // An unknown file facility keeps plain lines.
    [
      "file(path=x,facility=kern)",
      { file: { path: "x", time: "datetime", severity: true, facility: 0 } },
      ["unknown-facility"],
    ],
    // A file without path is off.
    ["file(time=stamp)", {}, ["missing-path"]],
    // Kinds are lower case only; others are ignored.
    ["Console(output=stdout)", {}, ["unknown-kind"]],
    ["stdout()", {}, ["unknown-kind"]],
    // Unknown keys and unknown values are ignored.
    ["console(colour=no)", { console: CONSOLE_DEFAULT }, ["unknown-key"]],
    [
      "console(output=stdrr,severity=maybe)",
      { console: { ...CONSOLE_DEFAULT, severity: false } },
      ["unknown-value", "unknown-value"],
    ],
    ["console(time=msdatetme)", { console: { ...CONSOLE_DEFAULT, time: "none" } }, [
      "unknown-value",
    ]],
    // Text that is not key=value, and an unclosed group.
    ["console(stdout)", { console: CONSOLE_DEFAULT }, ["bad-syntax"]],
    ["console(output=stdout", {}, ["bad-syntax"]],
    ["syslog(remote=h:99999)", {
      syslog: { remote: { host: "h", port: 99999 }, name: null, facility: 24 },
    }, [
      "bad-remote",
    ]],
  ];
  for (const [spec, expected, codes] of cases) {
    const { target: parsed, problems } = parseLogTarget(spec);
    assert.deepEqual(parsed, target(expected), spec);
    assert.deepEqual(problems.map((problem) => problem.code), codes, spec);
    for (const problem of problems) assert.match(problem.message, /^(Cannot|Unknown) /);
  }
  assert.equal(cases.length, 12);
});

Deno.test("parseLogTarget() problem messages name the offending text (ODD-38)", () => {
  const { problems } = parseLogTarget("option(level=verbose) console(colour=no)");
  assert.equal(problems.length, 2);
  assert.match(problems[0]?.message ?? "", /option\(level=verbose\).*nothing is logged/);
  assert.match(problems[1]?.message ?? "", /"colour" in console\(\)/);
});

Deno.test("parseLogTarget() keeps the case of path, name and remote (LOG-2, LOG-4)", () => {
  const { target: parsed } = parseLogTarget(
    "file(path=/Var/Log/X.log) syslog(name=MyName,remote=Host.Example)",
  );
  assert.equal(parsed.file?.path, "/Var/Log/X.log");
  assert.equal(parsed.syslog?.name, "MyName");
  assert.equal(parsed.syslog?.remote?.host, "Host.Example");
});
