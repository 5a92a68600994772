/**
 * The command-line contract of groom, run as users run it (CLI-1…CLI-9): usage, password, check,
 * configuration errors and their exit statuses.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { logRecord, ROOT, runGroom } from "../_harness/groom_process.ts";

async function tempConf(text: string): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "groom-cli-" });
  const path = join(dir, "groom.conf");
  await Deno.writeTextFile(path, text);
  return { dir, path };
}

Deno.test("groom with no argument prints the usage line and exits 1 (CLI-2)", async () => {
  const result = await runGroom([]);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, "usage: groom <configuration> | password [<secret> [<salt>]]\n");
  assert.equal(result.stdout, "");
});

Deno.test("groom password prints the glibc SHA-512-crypt of secret and salt (CLI-6)", async () => {
  const vector = await runGroom(["password", "mysecret1", "saltsalt"]);
  assert.equal(vector.code, 0);
  assert.equal(
    vector.stdout,
    "$6$saltsalt$/bUAMPFBdWgbQeKFXw9U4x6W4hOholUcjdy1QcMc1aaFQIGcOQOpVcSH420YXqZEzrBeSKMwQvIeDLy2PMZUZ/\n",
  );
  // Issue #2: equals `mkpasswd -m sha-512 -S saltsalt s3cret`, with a warning about its length.
  const short = await runGroom(["password", "s3cret", "saltsalt"]);
  assert.equal(short.code, 0);
  assert.equal(
    short.stdout,
    "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1\n",
  );
  assert.match(short.stderr, /shorter than 8 bytes/);
});

Deno.test("groom password generates a secret and salt when none is given (CLI-3, CLI-4)", async () => {
  const result = await runGroom(["password"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^\$6\$[A-Za-z0-9+/]{8}\$[./0-9A-Za-z]{86} - [A-Za-z0-9_-]{43}\n$/);
});

Deno.test("groom password refuses a salt shorter than 8 bytes (CLI-5)", async () => {
  const result = await runGroom(["password", "mysecret1", "short"]);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, "provided secret and/or salt are too short\n");
});

Deno.test("groom --version prints the version from deno.json", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const result = await runGroom(["--version"]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout, `groom ${denoJson.version}\n`);
});

Deno.test("a missing configuration file is an error naming it, exit 2 (ODD-30 over CLI-8)", async () => {
  const result = await runGroom(["/nonexistent/groom.conf"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /\/nonexistent\/groom\.conf/);
});

Deno.test("a configuration syntax error names file:line:column, exit 2 (CLI-8)", async () => {
  const { dir, path } = await tempConf('groom {\n  mode = server\n  listen = [ "x"\n}\n');
  try {
    const result = await runGroom([path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^configuration syntax error: .*groom\.conf:\d+:\d+: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mode other than server or agent logs start, then exits 3 (CLI-9)", async () => {
  const { dir, path } = await tempConf(
    'groom {\n  mode = bogus\n  log { system = "console(output=stdout,time=no)" }\n}\n',
  );
  try {
    const result = await runGroom([path]);
    assert.equal(result.code, 3);
    assert.equal(result.stderr, "neither in server nor agent mode\n");
    const start = logRecord(result.stdout.split("\n")[0] ?? "");
    assert.equal(start?.event, "start");
    assert.equal(start?.mode, "bogus");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("groom check accepts the shipped sample configurations", async () => {
  for (const file of ["conf/server.conf", "conf/agent.conf"]) {
    const result = await runGroom(["check", file]);
    assert.equal(result.code, 0, `${file}:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^0 errors, \d+ warnings?$/m);
    assert.match(result.stdout, /www\.domain\.com/);
  }
});

Deno.test("groom check reports a broken file with file:line:column and exits 2", async () => {
  const { dir, path } = await tempConf('groom {\n  mode = server\n  service = [ "a" "b" ]\n}\n');
  try {
    const result = await runGroom(["check", path]);
    assert.equal(result.code, 2);
    assert.match(result.stdout, /groom\.conf:3:\d+: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("groom check masks secrets and reports bad values, networks, ranges and credentials with their line (issue #4)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "groom-check-" });
  try {
    await Deno.mkdir(join(dir, "domains"));
    await Deno.writeTextFile(
      join(dir, "groom.conf"),
      `groom {\n  mode = server\n  domains = "${join(dir, "domains")}"\n}\n`,
    );
    await Deno.writeTextFile(
      join(dir, "domains", "app.example.com"),
      'groom {\n  active = yes\n  secret = "hunter2-is-secret"\n  concurrency = 5000\n' +
        '  clients {\n    networks = [ "10.0.0.0/33" ]\n    ranges = [ "someday" ]\n' +
        '    credentials = [ "nologin" ]\n  }\n}\n',
    );
    const result = await runGroom(["check", join(dir, "groom.conf")]);
    assert.equal(result.code, 2, result.stdout);
    assert.ok(!result.stdout.includes("hunter2-is-secret"), result.stdout);
    assert.match(result.stdout, /app\.example\.com:4:\d+: warning: groom\.concurrency: /);
    assert.match(result.stdout, /app\.example\.com:6:\d+: error: groom\.clients\.networks\.0: /);
    assert.match(result.stdout, /app\.example\.com:7:\d+: error: groom\.clients\.ranges\.0: /);
    assert.match(result.stdout, /app\.example\.com:8:\d+: error: groom\.clients\.credentials\.0: /);
    assert.match(result.stdout, /^3 errors, \d+ warnings?$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
