import assert from "node:assert/strict";
import { parseArgs } from "./args.ts";

Deno.test("parseArgs() follows CLI-1: password selects the hash command, anything else is a path", () => {
  const table: [string[], unknown][] = [
    [[], { kind: "usage" }],
    [["password"], { kind: "password" }],
    [["password", "s"], { kind: "password", secret: "s" }],
    [["password", "s", "t", "extra"], { kind: "password", secret: "s", salt: "t" }],
    [["server.conf"], { kind: "run", path: "server.conf", allowExec: false, allowFetch: false }],
    [["server.conf", "--name", "x"], {
      kind: "run",
      path: "server.conf",
      allowExec: false,
      allowFetch: false,
    }],
    [["passwd"], { kind: "run", path: "passwd", allowExec: false, allowFetch: false }], // CLI-7
    [["--allow-exec", "--allow-fetch", "a.conf"], {
      kind: "run",
      path: "a.conf",
      allowExec: true,
      allowFetch: true,
    }],
    [["check", "a.conf"], { kind: "check", path: "a.conf", allowExec: false, allowFetch: false }],
    [["check", "--allow-exec", "a.conf"], {
      kind: "check",
      path: "a.conf",
      allowExec: true,
      allowFetch: false,
    }],
    [["--", "-odd.conf"], { kind: "run", path: "-odd.conf", allowExec: false, allowFetch: false }],
    [["--version"], { kind: "version" }],
    [["-h"], { kind: "help" }],
    [["--bogus", "a.conf"], { kind: "usage", message: "unknown option --bogus" }],
    [["check"], { kind: "usage", message: "missing <configuration>" }],
  ];
  for (const [argv, expected] of table) assert.deepEqual(parseArgs(argv), expected, argv.join(" "));
});
