/**
 * The portable archive as users get it (issue #5; PKG-2, PKG-3, PKG-7, ODD-28): the launcher's
 * choice of build under faked `uname` values, the one permission list, the message of a
 * `deno compile` that cannot reach Deno's download host, and the `deno task build --bundle` zip
 * for this computer, unzipped, with a server and an agent started from it proxying a request.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startBackend } from "../../scripts/sample_backend.ts";
import {
  compileArgs,
  CONF_FILES,
  hostTarget,
  parseBuildArgs,
  renderLauncher,
  TARGETS,
} from "../../scripts/build.ts";
import { BUNDLE_RUN_FLAGS, GROOM_FLAGS } from "../../scripts/permissions.ts";
import { GroomProcess, logRecord, ROOT } from "../_harness/groom_process.ts";

const POSIX = Deno.build.os !== "windows";
const VERSION: string = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).version;
const decoder = new TextDecoder();

async function has(tool: string): Promise<boolean> {
  try {
    return (await new Deno.Command(tool, { args: ["-v"], stdout: "null", stderr: "null" })
      .output()).code !== 127;
  } catch {
    return false;
  }
}

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(cmd, { args, stdin: "null", ...options }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function writeExecutable(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o755);
}

/** A folder with the real launcher, fake builds that report how they were started, fake uname. */
async function launcherFixture(variant: "compile" | "bundle"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "groom-launcher-" });
  await Deno.mkdir(join(dir, "bin"));
  await writeExecutable(
    join(dir, "bin", "uname"),
    `#!/bin/sh\ncase "$1" in -s) echo "$FAKE_S" ;; -m) echo "$FAKE_M" ;; esac\n`,
  );
  await Deno.mkdir(join(dir, "groom"));
  await writeExecutable(join(dir, "groom", "groom"), await renderLauncher());
  const report = (name: string) =>
    `#!/bin/sh\necho "${name}"\necho "update-check=$DENO_NO_UPDATE_CHECK"\n` +
    `for arg in "$@"; do echo "arg=$arg"; done\n`;
  for (const target of TARGETS.filter((t) => !t.key.startsWith("windows-"))) {
    if (variant === "compile") {
      await writeExecutable(join(dir, "groom", target.binary), report(target.binary));
    } else {
      await Deno.mkdir(join(dir, "groom", `groom-${target.key}`));
      await writeExecutable(join(dir, "groom", `groom-${target.key}`, "deno"), report(target.key));
    }
  }
  if (variant === "bundle") await Deno.writeTextFile(join(dir, "groom", "groom.js"), "");
  return dir;
}

function launch(dir: string, s: string, m: string, args: string[], via = "groom/groom") {
  return run(join(dir, via), args, {
    env: { FAKE_S: s, FAKE_M: m, PATH: `${join(dir, "bin")}:/usr/bin:/bin` },
  });
}

const ARGS = ["a b", "", "*", "$HOME", "--version"];

Deno.test({
  name: "the launcher runs groom-<os>-<arch> for each uname pair, arguments intact (PKG-3, ODD-28)",
  ignore: !POSIX,
  async fn() {
    const dir = await launcherFixture("compile");
    try {
      const cases: [string, string, string][] = [
        ["Linux", "x86_64", "groom-linux-x86_64"],
        ["Linux", "amd64", "groom-linux-x86_64"],
        ["Linux", "aarch64", "groom-linux-aarch64"],
        ["Linux", "arm64", "groom-linux-aarch64"],
        ["Darwin", "x86_64", "groom-darwin-x86_64"], // ODD-28: the original looked for …-amd64
        ["Darwin", "arm64", "groom-darwin-aarch64"],
        ["Darwin", "aarch64", "groom-darwin-aarch64"],
      ];
      for (const [s, m, expected] of cases) {
        const result = await launch(dir, s, m, ARGS);
        assert.equal(result.code, 0, `${s} ${m}: ${result.stderr}`);
        const lines = result.stdout.trimEnd().split("\n");
        assert.equal(lines[0], expected, `${s} ${m}`);
        assert.deepEqual(lines.slice(2), ARGS.map((arg) => `arg=${arg}`), `${s} ${m}`);
      }
      assert.equal(cases.length, 7);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the launcher names the system it has no build for and the builds it found (PKG-3)",
  ignore: !POSIX,
  async fn() {
    const dir = await launcherFixture("compile");
    try {
      for (
        const [s, m, looked] of [["FreeBSD", "amd64", "groom-freebsd-x86_64"], [
          "Linux",
          "riscv64",
          "groom-linux-riscv64",
        ]]
      ) {
        const result = await launch(dir, s as string, m as string, []);
        assert.equal(result.code, 127);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, new RegExp(`no build for ${(s as string).toLowerCase()} ${m}`));
        assert.match(result.stderr, new RegExp(`looked for ${looked}`));
        assert.match(result.stderr, /found: groom-darwin-aarch64 groom-darwin-x86_64 groom-linux/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the launcher follows a symbolic link back to its folder (PKG-3)",
  ignore: !POSIX,
  async fn() {
    const dir = await launcherFixture("compile");
    try {
      await Deno.mkdir(join(dir, "elsewhere"));
      await Deno.symlink("../groom/groom", join(dir, "elsewhere", "groom"));
      const result = await launch(dir, "Linux", "x86_64", ["x"], "elsewhere/groom");
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.split("\n")[0], "groom-linux-x86_64");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the bundle launcher runs groom.js with the runtime of the host and groom's permissions",
  ignore: !POSIX,
  async fn() {
    const dir = await launcherFixture("bundle");
    try {
      const result = await launch(dir, "Darwin", "x86_64", ARGS);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trimEnd().split("\n");
      assert.equal(lines[0], "darwin-x86_64");
      assert.equal(lines[1], "update-check=1");
      const real = await Deno.realPath(join(dir, "groom"));
      assert.deepEqual(
        lines.slice(2),
        ["run", ...BUNDLE_RUN_FLAGS, ...GROOM_FLAGS, join(real, "groom.js"), ...ARGS].map((arg) =>
          `arg=${arg}`
        ),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("compile and the bundle launcher get one permission list, none blanket (issue #5)", async () => {
  assert.deepEqual(GROOM_FLAGS, [
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=hostname",
    "--allow-run",
    "--allow-ffi=/lib/x86_64-linux-gnu/libc.so.6,/lib/aarch64-linux-gnu/libc.so.6,/lib64/libc.so.6,/usr/lib/libc.so.6",
    "--unstable-net",
    "--unstable-no-legacy-abort",
    "--v8-flags=--expose-gc,--max-semi-space-size=4",
  ]);
  for (const target of TARGETS) {
    const args = compileArgs(target, `/out/${target.binary}`);
    assert.equal(args[0], "compile");
    for (const flag of GROOM_FLAGS) assert.ok(args.includes(flag), `${target.key}: ${flag}`);
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"), target.key);
    assert.deepEqual(args.slice(-5), [
      "--target",
      target.triple,
      "--output",
      `/out/${target.binary}`,
      "main.ts",
    ]);
  }
  const launcher = await renderLauncher();
  assert.ok(
    launcher.includes(
      `run ${[...BUNDLE_RUN_FLAGS, ...GROOM_FLAGS].join(" ")} "$here/groom.js" "$@"`,
    ),
  );
  assert.doesNotMatch(launcher, /--allow-all|\s-A\s|@RUN_FLAGS@/);
});

Deno.test("deno task build takes targets by name, triple, host or all (issue #5)", () => {
  assert.deepEqual(parseBuildArgs([]).targets.map((t) => t.key), TARGETS.map((t) => t.key));
  assert.equal(TARGETS.length, 6);
  const some = parseBuildArgs(["--bundle", "--target", "linux-x86_64,aarch64-apple-darwin"]);
  assert.equal(some.variant, "bundle");
  assert.deepEqual(some.targets.map((t) => t.key), ["linux-x86_64", "darwin-aarch64"]);
  assert.deepEqual(
    parseBuildArgs(["--target=windows-aarch64", "--no-zip"]).targets.map((t) => t.binary),
    ["groom-windows-aarch64.exe"],
  );
  assert.equal(parseBuildArgs(["--target", "all"]).targets.length, 6);
  assert.deepEqual(TARGETS.map((t) => t.binary), [
    "groom-linux-x86_64",
    "groom-linux-aarch64",
    "groom-darwin-x86_64",
    "groom-darwin-aarch64",
    "groom.exe",
    "groom-windows-aarch64.exe",
  ]);
  assert.throws(() => parseBuildArgs(["--target", "linux-mips"]), /unknown target/);
  assert.throws(() => parseBuildArgs(["--frobnicate"]), /unknown argument/);
});

Deno.test({
  name:
    "deno task build says where to get denort when Deno's download host is out of reach, exits 1",
  ignore: !POSIX, // symbolic links
  async fn() {
    // A DENO_DIR without a cached denort, sharing the npm packages the lock file names.
    const denoDir = await Deno.makeTempDir({ prefix: "groom-denodir-" });
    const info = JSON.parse((await run(Deno.execPath(), ["info", "--json"], { cwd: ROOT })).stdout);
    await Deno.symlink(join(info.denoDir, "npm"), join(denoDir, "npm"));
    const out = await Deno.makeTempDir({ prefix: "groom-build-" });
    // A proxy address nothing listens on makes the download fail at once, with or without network.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    try {
      const result = await run(
        Deno.execPath(),
        ["task", "build", "--target", "linux-x86_64", "--no-zip", "--out", out],
        {
          cwd: ROOT,
          clearEnv: true,
          env: {
            PATH: Deno.env.get("PATH") ?? "",
            ...(Deno.env.get("SYSTEMROOT")
              ? { SYSTEMROOT: Deno.env.get("SYSTEMROOT") as string }
              : {}),
            HOME: denoDir,
            DENO_DIR: denoDir,
            HTTPS_PROXY: `http://127.0.0.1:${port}`,
            NO_COLOR: "1",
          },
        },
      );
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /could not get its base runtime, denort \S+ for x86_64-unknown-linux-gnu/,
      );
      assert.match(result.stderr, /dl\.deno\.land/);
      assert.match(
        result.stderr,
        /DENORT_BIN=\/path\/to\/denort deno task build --target linux-x86_64/,
      );
      assert.ok(result.stderr.includes(join(denoDir, "dl", "release")), result.stderr);
      assert.match(result.stderr, /deno task build --bundle/);
    } finally {
      await Deno.remove(denoDir, { recursive: true });
      await Deno.remove(out, { recursive: true });
    }
  },
});

/** The zip's entries for one target of the bundle variant, as `zipinfo` shows them. */
function expectedBundleEntries(key: string, runtime: string): Map<string, string> {
  const dirs = [
    "groom/",
    "groom/conf/",
    "groom/conf/agent/",
    "groom/conf/server/",
    `groom/groom-${key}/`,
  ];
  const entries = new Map<string, string>(dirs.map((name) => [name, "drwxr-xr-x"]));
  for (const file of CONF_FILES) entries.set(`groom/conf/${file}`, "-rw-r--r--");
  entries.set("groom/groom", "-rwxr-xr-x");
  entries.set("groom/groom.js", "-rw-r--r--");
  entries.set(`groom/groom-${key}/${runtime}`, "-rwxr-xr-x");
  return entries;
}

const host = hostTarget();

Deno.test({
  name:
    "deno task build --bundle: the zip layout; unzipped, its server and agent proxy a request (PKG-2, PKG-7)",
  ignore: !POSIX || host === undefined || !(await has("unzip")) || !(await has("npm")),
  async fn() {
    const target = host as NonNullable<typeof host>;
    const out = await Deno.makeTempDir({ prefix: "groom-bundle-" });
    try {
      const built = await run(
        Deno.execPath(),
        ["task", "build", "--bundle", "--target", "host", "--out", out],
        { cwd: ROOT },
      );
      assert.equal(built.code, 0, built.stderr);
      const zip = join(out, `groom_${VERSION}_bundle.zip`);
      assert.match(built.stdout, new RegExp(`bundle for ${target.key} -> ${zip}`));

      const info = await run("zipinfo", [zip]);
      assert.equal(info.code, 0, info.stderr);
      const listed = new Map(
        info.stdout.split("\n").filter((line) => /^[-d]r/.test(line)).map((line) => {
          const fields = line.trim().split(/\s+/);
          return [fields[fields.length - 1] as string, fields[0] as string];
        }),
      );
      assert.deepEqual(listed, expectedBundleEntries(target.key, target.runtime));

      const unzipped = join(out, "unzipped");
      assert.equal((await run("unzip", ["-q", zip, "-d", unzipped])).code, 0);
      const launcher = join(unzipped, "groom", "groom");
      const version = await run(launcher, ["--version"]);
      assert.equal(version.stdout, `groom ${VERSION}\n`, version.stderr);
      for (const conf of ["conf/server.conf", "conf/agent.conf"]) {
        const check = await run(launcher, ["check", conf], { cwd: join(unzipped, "groom") });
        assert.equal(check.code, 0, `${conf}: ${check.stdout}${check.stderr}`);
        assert.match(check.stdout, /0 errors/);
      }
      await proxyThrough(launcher, out);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

/** Starts server and agent with `launcher` (via the harness's GROOM_BIN) and proxies one request. */
async function proxyThrough(launcher: string, dir: string): Promise<void> {
  const tls = join(ROOT, "tests", "testdata", "tls");
  const secret = "bundle-e2e-secret-0123456789";
  for (const side of ["server", "agent"]) await Deno.mkdir(join(dir, side));
  const serverConf = join(dir, "server.conf");
  await Deno.writeTextFile(
    serverConf,
    `groom\n{\n    mode = server\n    log\n    {\n        system = "console(output=stdout,time=no)"\n` +
      `        access = "console(output=stdout,time=no,severity=no)"\n    }\n` +
      `    listen = [ "127.0.0.1:0,${join(tls, "localhost.pem")},${
        join(tls, "localhost.key")
      }" ]\n` +
      `    domains = "${join(dir, "server")}"\n}\n`,
  );
  await Deno.writeTextFile(
    join(dir, "server", "localhost"),
    `groom\n{\n    active = yes\n    secret = "${secret}"\n}\n`,
  );
  const agentConf = join(dir, "agent.conf");
  await Deno.writeTextFile(
    agentConf,
    `groom\n{\n    mode = agent\n    log\n    {\n        system = "console(output=stdout,time=no)"\n    }\n` +
      `    domains = "${join(dir, "agent")}"\n}\n`,
  );
  const isEvent = (event: string, action?: string) => (line: string) => {
    const record = logRecord(line);
    return record?.event === event && (action === undefined || record.action === action);
  };

  const previous = Deno.env.get("GROOM_BIN");
  Deno.env.set("GROOM_BIN", launcher);
  await using backend = startBackend();
  let server: GroomProcess | undefined;
  let agent: GroomProcess | undefined;
  try {
    server = new GroomProcess([serverConf]);
    const listen = logRecord(await server.waitFor(isEvent("listen")));
    const port = Number(String(listen?.address).split(":").pop());
    await Deno.writeTextFile(
      join(dir, "agent", "localhost"),
      `groom\n{\n    active = yes\n    secret = "${secret}"\n    remote = "127.0.0.1:${port}"\n` +
        `    insecure = yes\n    targets\n    {\n        active = [ backend ]\n` +
        `        backend\n        {\n            target = "http://127.0.0.1:${backend.port}"\n` +
        `        }\n    }\n}\n`,
    );
    agent = new GroomProcess([agentConf]);
    await agent.waitFor(isEvent("domain", "connect"));
    await server.waitFor(isEvent("domain", "connect"));
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(join(tls, "ca.pem"))],
      allowHost: true,
    });
    try {
      const response = await fetch(`https://127.0.0.1:${port}/hello`, {
        client,
        headers: { host: `localhost:${port}` },
      });
      assert.equal(response.status, 200, server.output());
      assert.equal(await response.text(), "hello from the backend\n");
    } finally {
      client.close();
    }
    const start = logRecord(server.lines().find(isEvent("start")) ?? "");
    assert.equal(start?.version, VERSION);
  } finally {
    if (previous === undefined) Deno.env.delete("GROOM_BIN");
    else Deno.env.set("GROOM_BIN", previous);
    await agent?.[Symbol.asyncDispose]();
    await server?.[Symbol.asyncDispose]();
  }
}
