/**
 * Tests of file loading and macro expansion (CFG-1…CFG-4, CLI-8, ODD-22, ODD-30) with real
 * temporary files, a real shell script for `{{|…}}` and a real loopback HTTP server for `{{@…}}`.
 * @module
 */

import assert from "node:assert/strict";
import {
  type ConfDocument,
  ConfFileError,
  type ConfIo,
  DENO_CONF_IO,
  fetchConfText,
  MAX_MACRO_DEPTH,
  readConfFile,
  type ReadConfOptions,
  runConfCommand,
} from "./macros.ts";
import { ConfSyntaxError, hashConf } from "./syntax.ts";

/** A temporary folder with helpers; removed on dispose. */
class TempTree implements AsyncDisposable {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  static async create(): Promise<TempTree> {
    return new TempTree(await Deno.realPath(await Deno.makeTempDir({ prefix: "groom_macros_" })));
  }

  path(name: string): string {
    return `${this.root}/${name}`;
  }

  async write(name: string, text: string, mode?: number): Promise<string> {
    const path = this.path(name);
    await Deno.mkdir(path.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(path, text, mode === undefined ? {} : { mode });
    if (mode !== undefined) await Deno.chmod(path, mode);
    return path;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.root, { recursive: true });
  }
}

/** Reads `name` in `tree` as a main file, cwd = the tree root. */
function read(
  tree: TempTree,
  name: string,
  options: Partial<ReadConfOptions> = {},
): Promise<ConfDocument> {
  return readConfFile(tree.path(name), { kind: "main", cwd: tree.root, ...options });
}

/** Asserts a ConfFileError at `file:line:column` whose reason includes `fragment`. */
async function assertFileError(
  promise: Promise<unknown>,
  expected: { file: string; line?: number; column?: number; fragment: string },
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConfFileError, `not a ConfFileError: ${error}`);
    assert.equal(error.file, expected.file);
    assert.equal(error.line, expected.line);
    assert.equal(error.column, expected.column);
    assert.ok(error.reason.includes(expected.fragment), `"${error.reason}"`);
    const where = expected.line === undefined
      ? expected.file
      : `${expected.file}:${expected.line}:${expected.column}`;
    assert.ok(error.message.startsWith(`${where}: `), error.message);
    return true;
  });
}

// ---- loading (CFG-1, CLI-8) ----

Deno.test("readConfFile() reads a file, hashes its tree and lists it (CFG-1, CFG-11)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "groom {\n  mode = server\n}\n");
  const document = await read(tree, "main.conf");
  assert.deepStrictEqual(document.tree, { groom: { mode: "server" } });
  assert.equal(document.hash, hashConf({ groom: { mode: "server" } }));
  assert.deepStrictEqual(document.files, [tree.path("main.conf")]);
  assert.deepStrictEqual(document.positions.get("groom.mode"), {
    file: tree.path("main.conf"),
    line: 2,
    column: 10,
  });
  // A relative path starts from cwd and is named as given.
  const relative = await readConfFile("main.conf", { kind: "main", cwd: tree.root });
  assert.equal(relative.positions.get("groom.mode")?.file, "main.conf");
  assert.equal(relative.hash, document.hash);
});

Deno.test("readConfFile() fails on a missing main file instead of reading it as empty (CLI-8, ODD-30)", async () => {
  await using tree = await TempTree.create();
  await assertFileError(readConfFile("nope.conf", { kind: "main", cwd: tree.root }), {
    file: "nope.conf",
    fragment: "cannot read the configuration file: no such file or directory",
  });
  const vanished = await readConfFile("nope.conf", {
    kind: "domain",
    cwd: tree.root,
    missingIsEmpty: true,
  });
  assert.deepStrictEqual(vanished.tree, {});
  assert.deepStrictEqual(vanished.files, []);
  assert.equal(vanished.hash, hashConf({}));
});

Deno.test("readConfFile() fails on a directory and on an unreadable file (CLI-8)", async () => {
  await using tree = await TempTree.create();
  await Deno.mkdir(tree.path("folder.conf"));
  await assertFileError(read(tree, "folder.conf", { missingIsEmpty: true }), {
    file: tree.path("folder.conf"),
    fragment: "is a directory",
  });
  const denied: ConfIo = {
    ...DENO_CONF_IO,
    readFile: () => Promise.reject(new Deno.errors.PermissionDenied("denied")),
  };
  await tree.write("secret.conf", "a = 1");
  await assertFileError(read(tree, "secret.conf", { io: denied, missingIsEmpty: true }), {
    file: tree.path("secret.conf"),
    fragment: "permission denied",
  });
});

Deno.test("readConfFile() reads an empty file as an empty configuration", async () => {
  await using tree = await TempTree.create();
  await tree.write("empty.conf", "");
  await tree.write("comments.conf", "# nothing\n/* at all */\n");
  assert.deepStrictEqual((await read(tree, "empty.conf")).tree, {});
  assert.deepStrictEqual((await read(tree, "comments.conf")).tree, {});
});

// ---- includes (CFG-3, CFG-4) ----

Deno.test("{{<glob}} includes files relative to the including file (CFG-3, CFG-4)", async () => {
  await using tree = await TempTree.create();
  await tree.write("etc/main.conf", "groom {\n  {{<parts/*.conf}}\n  {{<nothing/*.conf}}\n}\n");
  await tree.write("etc/parts/a.conf", "mode = server\n{{<deeper/inner.conf}}\n");
  await tree.write("etc/parts/b.conf", "log = x\n");
  await tree.write("etc/parts/deeper/inner.conf", "inner = yes\n");
  await tree.write("etc/parts/skipped.txt", "not = included\n");
  const document = await read(tree, "etc/main.conf");
  assert.deepStrictEqual(document.tree, { groom: { mode: "server", inner: "yes", log: "x" } });
  assert.deepStrictEqual(document.files, [
    tree.path("etc/main.conf"),
    tree.path("etc/parts/a.conf"),
    tree.path("etc/parts/b.conf"),
    tree.path("etc/parts/deeper/inner.conf"),
  ]);
  assert.deepStrictEqual(document.positions.get("groom.inner"), {
    file: tree.path("etc/parts/deeper/inner.conf"),
    line: 1,
    column: 9,
  });
  assert.equal(document.positions.get("groom.log")?.file, tree.path("etc/parts/b.conf"));
});

Deno.test("{{<file}} pastes a value file, trailing newline or not (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "secret = {{<secret.txt}}\nother = {{<bare.txt}}\n");
  await tree.write("secret.txt", "s3cr3t\n");
  await tree.write("bare.txt", "plain");
  assert.deepStrictEqual((await read(tree, "main.conf")).tree, {
    secret: "s3cr3t",
    other: "plain",
  });
});

Deno.test("a syntax error in an included file names that file, line and column", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "groom {\n  mode = server\n  {{<inc/broken.conf}}\n}\n");
  await tree.write("inc/broken.conf", "ok = 1\n\n  bad = [ x y ]\n");
  await assert.rejects(read(tree, "main.conf"), (error: unknown) => {
    assert.ok(error instanceof ConfSyntaxError);
    assert.equal(error.file, tree.path("inc/broken.conf"));
    assert.equal(`${error.line}:${error.column}`, "3:13");
    assert.equal(error.message, `${tree.path("inc/broken.conf")}:3:13: ${error.reason}`);
    return true;
  });
  // An unclosed section in the main file is still reported in the main file.
  await tree.write("open.conf", "groom {\n  {{<inc/ok.conf}}\n");
  await tree.write("inc/ok.conf", "a = 1\n");
  await assert.rejects(read(tree, "open.conf"), /open\.conf:3:1: expected '}'/);
});

Deno.test("an include cycle is an error at the including macro, not a hang (ODD-30)", async () => {
  await using tree = await TempTree.create();
  await tree.write("a.conf", "a = 1\n{{<b.conf}}\n");
  await tree.write("b.conf", "b = 2\n  {{< a.conf }}\n");
  await assertFileError(read(tree, "a.conf"), {
    file: tree.path("b.conf"),
    line: 2,
    column: 3,
    fragment: `include cycle: ${tree.path("a.conf")} includes ${tree.path("b.conf")} includes`,
  });
  // Including the same file twice side by side is not a cycle.
  await tree.write("twice.conf", "x {\n{{<leaf.conf}}\n}\ny {\n{{<leaf.conf}}\n}\n");
  await tree.write("leaf.conf", "v = 1\n");
  assert.deepStrictEqual((await read(tree, "twice.conf")).tree, { x: { v: "1" }, y: { v: "1" } });
});

Deno.test("{{<…}} needs an argument and a well-formed pattern", async () => {
  await using tree = await TempTree.create();
  await tree.write("empty.conf", "a = 1\nb = {{<}}\n");
  await assertFileError(read(tree, "empty.conf"), {
    file: tree.path("empty.conf"),
    line: 2,
    column: 5,
    fragment: "needs a file name",
  });
  await tree.write("bad.conf", "{{<conf.d/[x}}\n");
  await assertFileError(read(tree, "bad.conf"), {
    file: tree.path("bad.conf"),
    line: 1,
    column: 1,
    fragment: "Cannot use glob pattern",
  });
});

Deno.test("{{=glob}} turns lines into quoted items, relative to cwd (CFG-4, ODD-30)", async () => {
  await using tree = await TempTree.create();
  await tree.write("conf/main.conf", "networks = [\n{{=lists/*.txt}}\n]\n");
  await tree.write(
    "lists/a.txt",
    '  10.0.0.0/8  \n\n# a comment\n// another\nsay "hi" \\o/\n',
  );
  await tree.write("lists/b.txt", "192.168.0.0/16");
  const document = await read(tree, "conf/main.conf");
  assert.deepStrictEqual(document.tree, {
    networks: ["10.0.0.0/8", 'say "hi" \\o/', "192.168.0.0/16"],
  });
  assert.ok(document.files.includes(tree.path("lists/a.txt")));
});

Deno.test("{{+glob}} inserts base names without extension (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "names = {{+targets/*.conf}}\nnone = [{{+nothing/*}}]\n");
  await tree.write("targets/api.conf", "");
  await tree.write("targets/www.example.com.conf", "");
  assert.deepStrictEqual((await read(tree, "main.conf")).tree, {
    names: "api www.example.com",
    none: [],
  });
});

// ---- environment and command line (CFG-4) ----

Deno.test("{{&NAME}} inserts the environment variable raw, empty when unset (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", 'a = {{&GROOM_A}}\nb = "{{& GROOM_B }}/x"\nc = [{{&UNSET}}]\n');
  const env = (name: string) =>
    ({ GROOM_A: "one", GROOM_B: "two words" } as Record<string, string>)[name];
  assert.deepStrictEqual((await read(tree, "main.conf", { env })).tree, {
    a: "one",
    b: "two words/x",
    c: [],
  });
});

Deno.test("{{&NAME}} uses the process environment by default", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "home = {{&GROOM_TEST_VALUE}}\n");
  Deno.env.set("GROOM_TEST_VALUE", "from-env");
  try {
    assert.deepStrictEqual((await read(tree, "main.conf")).tree, { home: "from-env" });
  } finally {
    Deno.env.delete("GROOM_TEST_VALUE");
  }
});

Deno.test("{{!name}} reads command-line options as CFG-4 describes", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", 'v = "{{!port|p}}"\n');
  const cases: [string[], string][] = [
    [["--port=8443"], "8443"],
    [["-p", "9000"], "9000"],
    [["--PORT", "1"], "1"],
    [["--port"], "true"],
    [["--port", "--other"], "true"],
    [["--no-port"], "false"],
    [["--noport", "-x"], "false"],
    [["--", "--port=1"], ""],
    [["--portable=1"], ""],
    [[], ""],
    [["--port=a=b"], "a=b"],
    [["-p=1", "--port=2"], "1"],
  ];
  for (const [argv, expected] of cases) {
    const document = await read(tree, "main.conf", { argv });
    assert.deepStrictEqual(document.tree, { v: expected }, argv.join(" "));
  }
  await tree.write("bad.conf", 'v = "{{!(}}"\n');
  assert.deepStrictEqual((await read(tree, "bad.conf", { argv: ["-("] })).tree, { v: "" });
});

Deno.test("{{-}} and {{_}} give the binary suffix and the main file name (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", 'platform = "{{-}}"\nme = "{{_}}"\n');
  assert.deepStrictEqual(
    (await read(tree, "main.conf", { programName: "/usr/bin/groom-Linux-x86_64" })).tree,
    { platform: "linux-x86_64", me: "main.conf" },
  );
  assert.deepStrictEqual((await read(tree, "main.conf", { programName: "groom" })).tree, {
    platform: "",
    me: "main.conf",
  });
});

Deno.test("macro output is expanded again, with a depth limit (CFG-2, ODD-30)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "a = {{&FIRST}}\n");
  await tree.write("value.txt", "included");
  const env = (name: string) =>
    ({ FIRST: "{{&SECOND}}", SECOND: "{{<value.txt}}", LOOP: "x{{&LOOP}}" } as Record<
      string,
      string
    >)[name];
  assert.deepStrictEqual((await read(tree, "main.conf", { env })).tree, { a: "included" });
  await tree.write("loop.conf", "\n  a = {{&LOOP}}\n");
  await assertFileError(read(tree, "loop.conf", { env }), {
    file: tree.path("loop.conf"),
    line: 2,
    column: 7,
    fragment: `nested more than ${MAX_MACRO_DEPTH} levels`,
  });
});

// ---- where macros apply (ODD-22) ----

Deno.test("no macro is expanded inside a comment (ODD-22)", async () => {
  await using tree = await TempTree.create();
  await tree.write(
    "main.conf",
    "# {{<missing.conf}} {{|/bin/false}}\n" +
      "a = 1 // {{@http://127.0.0.1:1/}}\n" +
      "/* {{|/bin/false}}\n {{&X}} */ b = {{&X}}\n",
  );
  const document = await read(tree, "main.conf", { env: () => "2" });
  assert.deepStrictEqual(document.tree, { a: "1", b: "2" });
  assert.deepStrictEqual(document.warnings, []);
});

Deno.test("{{|…}} and {{@…}} stay literal inside quoted strings (ODD-22)", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", 'a = "{{|/bin/echo x}} {{@http://h/}}"\nb = "{{&X}}"\n');
  assert.deepStrictEqual((await read(tree, "main.conf", { env: () => "env" })).tree, {
    a: "{{|/bin/echo x}} {{@http://h/}}",
    b: "env",
  });
});

/** Writes an executable shell script that prints `value = <its argument>`. */
function writeScript(tree: TempTree, name: string, body: string): Promise<string> {
  return tree.write(name, `#!/bin/sh\n${body}\n`, 0o755);
}

Deno.test("{{|cmd}} is refused without --allow-exec and runs with it (CFG-4, ODD-22)", async () => {
  await using tree = await TempTree.create();
  await writeScript(tree, "bin/emit.sh", 'echo "value = \\"$1\\""\necho "extra = {{<extra.conf}}"');
  await tree.write("bin/extra.conf", "from-script-folder");
  await tree.write("main.conf", "groom {\n  {{| bin/emit.sh  two words }}\n}\n");
  await assertFileError(read(tree, "main.conf"), {
    file: tree.path("main.conf"),
    line: 2,
    column: 3,
    fragment: "start groom with --allow-exec",
  });
  const document = await read(tree, "main.conf", { allowExec: true });
  // One argument: the rest of the macro; multi-line output resolves against the script folder.
  assert.deepStrictEqual(document.tree, {
    groom: { value: " two words", extra: "from-script-folder" },
  });
  assert.equal(document.positions.get("groom.value")?.line, 2);
});

Deno.test("a failing {{|cmd}} inserts nothing and warns (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await writeScript(tree, "fail.sh", "echo 'a = partial'\nexit 3");
  await tree.write("main.conf", "b = 1\n{{|fail.sh}}\n{{|nothing*.sh}}\n");
  const document = await read(tree, "main.conf", { allowExec: true });
  assert.deepStrictEqual(document.tree, { b: "1" });
  assert.deepStrictEqual(
    document.warnings.map((warning) => [warning.position.line, warning.message]),
    [
      [2, `command ${tree.path("fail.sh")} failed (exit code 3); it inserts nothing`],
      [3, "macro {{|nothing*.sh}} matches no file"],
    ],
  );
});

Deno.test("domain files refuse {{|…}} and {{@…}} even when allowed (ODD-22)", async () => {
  await using tree = await TempTree.create();
  await writeScript(tree, "domains/run.sh", "echo 'a = 1'");
  await tree.write("domains/www.example.com", "groom {\n  active = true\n {{|run.sh}}\n}\n");
  await tree.write("domains/api.example.com", "x = {{@http://127.0.0.1:1/}}\n");
  const options = { kind: "domain", allowExec: true, allowFetch: true } as const;
  await assertFileError(read(tree, "domains/www.example.com", options), {
    file: tree.path("domains/www.example.com"),
    line: 3,
    column: 2,
    fragment: "is not allowed in domain files",
  });
  await assertFileError(read(tree, "domains/api.example.com", options), {
    file: tree.path("domains/api.example.com"),
    line: 1,
    column: 5,
    fragment: "is not allowed in domain files",
  });
});

Deno.test("domain-file includes must stay inside the roots (ODD-22)", async () => {
  await using tree = await TempTree.create();
  await tree.write("secret.conf", "stolen = yes\n");
  await tree.write("domains/shared/common.conf", "shared = yes\n");
  await tree.write("domains/ok.example.com", "{{<shared/common.conf}}\n");
  await tree.write("domains/up.example.com", "{{<../secret.conf}}\n");
  await tree.write("domains/abs.example.com", `{{<${tree.path("secret.conf")}}}\n`);
  await tree.write("domains/wild.example.com", "{{<sha*/../../secret.conf}}\n");
  await tree.write("domains/list.example.com", "a = [ {{=secret.conf}} ]\n");
  await Deno.symlink(tree.path("secret.conf"), tree.path("domains/link.conf"));
  await tree.write("domains/link.example.com", "{{<link.conf}}\n");
  const options = { kind: "domain", roots: [tree.path("domains")] } as const;
  assert.deepStrictEqual((await read(tree, "domains/ok.example.com", options)).tree, {
    shared: "yes",
  });
  for (
    const [name, fragment] of [
      ["up.example.com", "reaches outside the allowed folder"],
      ["abs.example.com", "reaches outside the allowed folder"],
      ["wild.example.com", "'..' after a wildcard"],
      ["list.example.com", "reaches outside the allowed folder"],
      ["link.example.com", `reaches ${tree.path("secret.conf")}, outside the allowed folder`],
    ]
  ) {
    await assertFileError(read(tree, `domains/${name}`, options), {
      file: tree.path(`domains/${name}`),
      line: 1,
      column: name === "list.example.com" ? 7 : 1,
      fragment: fragment as string,
    });
  }
  // Without roots, the main file may include anything.
  assert.deepStrictEqual((await read(tree, "domains/up.example.com")).tree, { stolen: "yes" });
});

// ---- commands and fetches: the bounded I/O ----

Deno.test("runConfCommand() kills a command that outlives its time limit", async () => {
  await using tree = await TempTree.create();
  const script = await writeScript(tree, "slow.sh", "echo started\nexec sleep 30");
  const started = performance.now();
  const result = await runConfCommand(script, "", { timeoutMs: 200, maxBytes: 1024 });
  assert.deepStrictEqual(result, { status: "timeout" });
  assert.ok(performance.now() - started < 5_000);
});

Deno.test("runConfCommand() stops a command that writes too much", async () => {
  await using tree = await TempTree.create();
  const script = await writeScript(tree, "loud.sh", "exec yes groom");
  assert.deepStrictEqual(await runConfCommand(script, "", { timeoutMs: 5_000, maxBytes: 4096 }), {
    status: "too-large",
  });
  assert.equal(
    (await runConfCommand(tree.path("missing.sh"), "", { timeoutMs: 1_000, maxBytes: 10 })).status,
    "failed",
  );
});

Deno.test("a command timeout or oversized output is an error at the macro", async () => {
  await using tree = await TempTree.create();
  await tree.write("main.conf", "a = 1\n{{|x.sh}}\n");
  await writeScript(tree, "x.sh", "true");
  for (const status of ["timeout", "too-large"] as const) {
    const io: ConfIo = { ...DENO_CONF_IO, runCommand: () => Promise.resolve({ status }) };
    await assertFileError(read(tree, "main.conf", { allowExec: true, io }), {
      file: tree.path("main.conf"),
      line: 2,
      column: 1,
      fragment: status === "timeout" ? "did not finish within 10 s" : "wrote more than",
    });
  }
});

/** A loopback HTTP server for `{{@…}}`; `hold` delays answers until released. */
async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  body: (base: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("{{@url}} is refused without --allow-fetch and inserts a 2xx body with it (CFG-4)", async () => {
  await using tree = await TempTree.create();
  await withServer((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/conf") return new Response("mode = server\n");
    return new Response("mode = broken", { status: 404 });
  }, async (base) => {
    await tree.write("main.conf", `groom {\n  {{@${base}/conf}}\n}\n`);
    await assertFileError(read(tree, "main.conf"), {
      file: tree.path("main.conf"),
      line: 2,
      column: 3,
      fragment: "start groom with --allow-fetch",
    });
    assert.deepStrictEqual((await read(tree, "main.conf", { allowFetch: true })).tree, {
      groom: { mode: "server" },
    });
    await tree.write("missing.conf", `a = 1\n{{@${base}/missing}}\n`);
    const document = await read(tree, "missing.conf", { allowFetch: true });
    assert.deepStrictEqual(document.tree, { a: "1" });
    assert.match(
      document.warnings[0]?.message ?? "",
      /failed \(HTTP status 404\); it inserts nothing/,
    );
  });
});

Deno.test("fetchConfText() bounds time and size and accepts only http(s)", async () => {
  const { promise: release, resolve } = Promise.withResolvers<void>();
  await withServer(async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/slow") {
      await release;
      return new Response("late");
    }
    return new Response("x".repeat(5000));
  }, async (base) => {
    assert.deepStrictEqual(
      await fetchConfText(`${base}/big`, { timeoutMs: 5_000, maxBytes: 1000 }),
      { status: "too-large" },
    );
    assert.deepStrictEqual(
      await fetchConfText(`${base}/slow`, { timeoutMs: 100, maxBytes: 1000 }),
      { status: "timeout" },
    );
    resolve();
  });
  assert.deepStrictEqual(await fetchConfText("file:///etc/passwd", { timeoutMs: 1, maxBytes: 1 }), {
    status: "failed",
    reason: "unsupported scheme file:",
  });
});
