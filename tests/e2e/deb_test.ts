/**
 * The Debian package (issue #5; PKG-4, PKG-5, PKG-7, ODD-29): built once by `deno task deb` with
 * no program (the best build this computer can make), its control data, conffiles, scripts and
 * systemd unit read back with `dpkg-deb`, then installed with `dpkg -i` into a throwaway root
 * (`dpkg --root`, maintainer scripts run with DPKG_ROOT), where the files sit where the README
 * says, the user groom and a certificate exist, and the installed configuration starts, listens
 * and answers; then purged.
 * @module
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import {
  CONFFILES,
  debianServerConf,
  debianVersion,
  elfDebArch,
  hostDebArch,
} from "../../scripts/deb.ts";
import { GroomProcess, logRecord, ROOT } from "../_harness/groom_process.ts";

const decoder = new TextDecoder();
const VERSION: string = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).version;
const DEB_VERSION = debianVersion(VERSION);
const ARCH = hostDebArch();

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(cmd, { args, stdin: "null", ...options }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function has(tool: string): Promise<boolean> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

const CAN_BUILD = Deno.build.os === "linux" && ARCH !== undefined && await has("dpkg-deb") &&
  await has("npm");
/** dpkg -i needs root, or fakeroot to pretend. */
const AS_ROOT = Deno.uid() === 0 ? [] : (await has("fakeroot")) ? ["fakeroot"] : undefined;

/** One build for the whole file (gzip level 1: xz would spend half a minute on the runtime). */
let built: Promise<{ deb: string; out: string; log: string }> | undefined;
function buildOnce() {
  built ??= (async () => {
    const out = await Deno.makeTempDir({ prefix: "groom-deb-" });
    const result = await run(
      Deno.execPath(),
      ["task", "deb", "--compress", "gzip", "--level", "1", "--out", out],
      { cwd: ROOT },
    );
    assert.equal(result.code, 0, result.stderr);
    return {
      deb: join(out, `groom_${DEB_VERSION}_${ARCH}.deb`),
      out,
      log: result.stdout + result.stderr,
    };
  })();
  return built;
}

/** Deletes the shared build after the last test that uses it. */
async function cleanUp(): Promise<void> {
  if (built === undefined) return;
  const { out } = await built;
  await Deno.remove(out, { recursive: true });
  built = undefined;
}

/** `dpkg-deb --contents` as path → "mode owner/group [-> target]". */
async function contents(deb: string): Promise<Map<string, string>> {
  const result = await run("dpkg-deb", ["--contents", deb]);
  assert.equal(result.code, 0, result.stderr);
  return new Map(
    result.stdout.trimEnd().split("\n").map((line) => {
      const fields = line.split(/\s+/);
      const path = (fields[5] as string).replace(/^\./, "");
      const link = fields[6] === "->" ? ` -> ${fields[7]}` : "";
      return [path, `${fields[0]} ${fields[1]}${link}`];
    }),
  );
}

/** One section's `Key=Value` lines of a unit file (repeated keys keep the last value). */
function unitSection(text: string, section: string): Map<string, string> {
  const values = new Map<string, string>();
  let current = "";
  for (const line of text.split("\n")) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) current = header[1] as string;
    else if (current === section && /^[A-Za-z]+=/.test(line)) {
      values.set(line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1));
    }
  }
  return values;
}

Deno.test("debianVersion() sorts pre-releases before their release (PKG-4)", () => {
  const cases: [string, string][] = [
    ["2.0.0", "2.0.0"],
    ["2.0.0-dev", "2.0.0~dev"],
    ["2.0.0-rc.1", "2.0.0~rc.1"],
    ["2.0.0-rc-1+build.5", "2.0.0~rc.1+build.5"],
  ];
  for (const [semver, debian] of cases) assert.equal(debianVersion(semver), debian);
  assert.throws(() => debianVersion("2.0"), /not semver/);
});

Deno.test("elfDebArch() reads the architecture a binary was built for", () => {
  const elf = (machine: number) => {
    const head = new Uint8Array(20);
    head.set([0x7f, 0x45, 0x4c, 0x46]);
    head[18] = machine & 0xff;
    head[19] = machine >> 8;
    return head;
  };
  assert.equal(elfDebArch(elf(0x3e)), "amd64");
  assert.equal(elfDebArch(elf(0xb7)), "arm64");
  assert.equal(elfDebArch(elf(0x28)), "unknown");
  assert.equal(elfDebArch(new TextEncoder().encode("#!/bin/sh\necho not an ELF\n")), undefined);
});

Deno.test("/etc/groom/groom.conf is conf/server.conf made to listen on 443 with /etc paths (ODD-29)", async () => {
  const sample = await Deno.readTextFile(join(ROOT, "conf", "server.conf"));
  const header = await Deno.readTextFile(join(ROOT, "packaging", "debian", "groom.conf.header"));
  const text = debianServerConf(sample, header);
  assert.ok(text.startsWith(header.trimEnd()));
  assert.match(text, /^\s*listen = \[ "\*:443,groom\.certificates" \]$/m);
  assert.match(text, /^\s*"\* \/etc\/groom\/cert\.pem \/etc\/groom\/key\.pem"$/m);
  assert.match(text, /^\s*domains = "\/etc\/groom\/domains"$/m);
  assert.match(text, /^\s*system = "console\(output=stdout,time=no\)"$/m);
  assert.doesNotMatch(text, /conf\/|127\.0\.0\.1:8443/);
  // Every option the sample documents is still documented.
  const directives = (conf: string) => conf.match(/^\s*(?:\/\/ )?[a-z_]+ = /gm)?.length ?? 0;
  assert.equal(directives(text), directives(sample));
  assert.throws(
    () => debianServerConf(sample.replace(`domains = "conf/server"`, ""), header),
    /found 0/,
  );
});

Deno.test({
  name: "deno task deb: control data, conffiles and maintainer scripts (PKG-4)",
  ignore: !CAN_BUILD,
  async fn() {
    const { deb, log } = await buildOnce();
    assert.match(
      log,
      new RegExp(`groom ${DEB_VERSION.replace(/[.+~]/g, "\\$&")} \\((compile|bundle)\\)`),
    );
    const fields = await run("dpkg-deb", [
      "--show",
      "--showformat",
      "${Package}|${Version}|${Architecture}|${Section}|${Priority}|${Depends}|${Recommends}\\n",
      deb,
    ]);
    assert.equal(
      fields.stdout,
      `groom|${DEB_VERSION}|${ARCH}|net|optional|libc6 (>= 2.27), libgcc-s1 | libgcc1|openssl\n`,
    );
    const info = await run("dpkg-deb", ["--info", deb]);
    for (const script of ["postinst", "prerm", "postrm"]) {
      assert.match(info.stdout, new RegExp(`\\d+ lines\\s+\\*\\s+${script}\\s+#!/bin/sh`), script);
    }
    const control = await Deno.makeTempDir({ prefix: "groom-control-" });
    try {
      assert.equal((await run("dpkg-deb", ["--control", deb, control])).code, 0);
      assert.equal(
        await Deno.readTextFile(join(control, "conffiles")),
        CONFFILES.join("\n") + "\n",
      );
      assert.deepEqual(CONFFILES, ["/etc/groom/groom.conf", "/etc/groom/domains/www.domain.com"]);
      const sums = await Deno.readTextFile(join(control, "md5sums"));
      assert.match(sums, /^[0-9a-f]{32} {2}usr\/lib\/systemd\/system\/groom\.service$/m);
      assert.doesNotMatch(sums, /etc\/groom/); // conffiles have their sums in conffiles data
      const postinst = await Deno.readTextFile(join(control, "postinst"));
      assert.doesNotMatch(
        postinst,
        /systemctl (--system )?(enable|start)|deb-systemd-invoke start/,
      );
    } finally {
      await Deno.remove(control, { recursive: true });
    }
  },
});

Deno.test({
  name: "deno task deb: files where the README says, owned by root (PKG-4, PKG-7)",
  ignore: !CAN_BUILD,
  async fn() {
    const { deb } = await buildOnce();
    const files = await contents(deb);
    const expected: [string, string][] = [
      ["/etc/groom/groom.conf", "-rw-r--r-- root/root"],
      ["/etc/groom/domains/", "drwxr-xr-x root/root"],
      ["/etc/groom/domains/www.domain.com", "-rw-r--r-- root/root"],
      ["/usr/lib/systemd/system/groom.service", "-rw-r--r-- root/root"],
      ["/usr/lib/sysusers.d/groom.conf", "-rw-r--r-- root/root"],
      ["/usr/share/doc/groom/README.Debian", "-rw-r--r-- root/root"],
      ["/usr/share/doc/groom/examples/agent.conf", "-rw-r--r-- root/root"],
      ["/usr/share/doc/groom/examples/server.conf", "-rw-r--r-- root/root"],
      ["/usr/share/groom/dummy.pem", "-rw-r--r-- root/root"],
      ["/var/log/groom/", "drwxr-xr-x root/root"],
    ];
    for (const [path, mode] of expected) assert.equal(files.get(path), mode, path);
    const bin = files.get("/usr/bin/groom");
    if (bin === "-rwxr-xr-x root/root") {
      assert.ok(![...files.keys()].some((path) => path.startsWith("/usr/lib/groom/")));
    } else {
      // The bundle variant: the launcher, groom.js and the runtime of the architecture.
      assert.equal(bin, "lrwxrwxrwx root/root -> ../lib/groom/groom");
      const key = ARCH === "amd64" ? "linux-x86_64" : "linux-aarch64";
      assert.equal(files.get("/usr/lib/groom/groom"), "-rwxr-xr-x root/root");
      assert.equal(files.get("/usr/lib/groom/groom.js"), "-rw-r--r-- root/root");
      assert.equal(files.get(`/usr/lib/groom/groom-${key}/deno`), "-rwxr-xr-x root/root");
    }
    for (const [path, mode] of files) assert.match(mode, / root\/root/, path);
    assert.ok(!files.has("/etc/groom/key.pem"), "the private key is made at installation");
  },
});

Deno.test({
  name:
    "the unit restarts, reloads on SIGHUP, logs to the journal, runs hardened, not enabled (PKG-5, ODD-29)",
  ignore: !CAN_BUILD,
  async fn() {
    const { deb } = await buildOnce();
    const unit = await run("sh", [
      "-c",
      'dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/lib/systemd/system/groom.service',
      "sh",
      deb,
    ]);
    assert.equal(unit.code, 0, unit.stderr);
    const service = unitSection(unit.stdout, "Service");
    const expected: [string, string][] = [
      ["ExecStart", "/usr/bin/groom /etc/groom/groom.conf"],
      ["ExecReload", "/bin/kill -HUP $MAINPID"],
      ["Restart", "always"],
      ["RestartSec", "3"],
      ["LimitNOFILE", "16384"],
      ["StandardOutput", "journal"],
      ["StandardError", "journal"],
      ["User", "groom"],
      ["AmbientCapabilities", "CAP_NET_BIND_SERVICE"],
      ["CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"],
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["LogsDirectory", "groom"], // writable /var/log/groom under ProtectSystem=strict
      ["ProtectHome", "yes"],
    ];
    for (const [key, value] of expected) assert.equal(service.get(key), value, key);
    assert.equal(service.has("MemoryDenyWriteExecute"), false, "V8 needs to JIT");
    assert.equal(unitSection(unit.stdout, "Install").get("WantedBy"), "multi-user.target");
    if (await has("systemd-analyze")) {
      // Every directive known to this systemd (the binary is swapped for one that exists here).
      const dir = await Deno.makeTempDir({ prefix: "groom-unit-" });
      try {
        await Deno.writeTextFile(
          join(dir, "groom.service"),
          unit.stdout.replace("ExecStart=/usr/bin/groom", "ExecStart=/bin/true"),
        );
        const verify = await run("systemd-analyze", [
          "verify",
          "--man=no",
          join(dir, "groom.service"),
        ]);
        assert.equal(verify.stdout + verify.stderr, "");
        assert.equal(verify.code, 0);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  },
});

Deno.test({
  name:
    "dpkg -i into a throwaway root: files, user groom, certificate; the installed configuration serves; purge (PKG-4, ODD-29)",
  ignore: !CAN_BUILD || AS_ROOT === undefined,
  async fn() {
    const { deb } = await buildOnce();
    const root = await Deno.makeTempDir({ prefix: "groom-root-" });
    const [command, ...prefix] = AS_ROOT?.length ? [...AS_ROOT, "dpkg"] : ["dpkg"];
    const dpkg = (...args: string[]) =>
      run(command as string, [
        ...prefix,
        `--root=${root}`,
        `--log=${join(root, "dpkg.log")}`, // not the host's /var/log/dpkg.log
        "--force-script-chrootless", // maintainer scripts run here, with DPKG_ROOT=root
        "--force-depends", // the throwaway root has no libc6 package
        ...args,
      ]);
    try {
      for (const dir of ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"]) {
        await Deno.mkdir(join(root, dir), { recursive: true });
      }
      await Deno.writeTextFile(join(root, "var/lib/dpkg/status"), "");
      const installed = await dpkg("--install", deb);
      assert.equal(installed.code, 0, installed.stdout + installed.stderr);
      assert.match((await dpkg("--status", "groom")).stdout, /^Status: install ok installed$/m);

      // The README's list.
      for (
        const path of [
          "usr/bin/groom",
          "etc/groom/groom.conf",
          "etc/groom/domains/www.domain.com",
          "etc/groom/cert.pem",
          "etc/groom/key.pem",
          "usr/lib/systemd/system/groom.service",
          "usr/share/doc/groom/examples/agent.conf",
          "var/log/groom",
        ]
      ) assert.ok(await Deno.stat(join(root, path)), path);
      assert.equal(
        await Deno.lstat(join(root, "etc/systemd/system/multi-user.target.wants/groom.service"))
          .catch(() => "absent"),
        "absent",
        "not enabled",
      );

      // The service user, and what it was given.
      const passwd = await Deno.readTextFile(join(root, "etc/passwd"));
      const user = /^groom:x:(\d+):(\d+):[^:]*:\/nonexistent:\/usr\/sbin\/nologin$/m.exec(passwd);
      assert.ok(user, passwd);
      const [uid, gid] = [Number(user[1]), Number(user[2])];
      const logs = await Deno.stat(join(root, "var/log/groom"));
      assert.equal((logs.mode ?? 0) & 0o777, 0o750);
      const key = await Deno.stat(join(root, "etc/groom/key.pem"));
      assert.equal((key.mode ?? 0) & 0o777, 0o640);
      if (AS_ROOT?.length === 0) {
        assert.deepEqual([logs.uid, logs.gid], [uid, gid]);
        assert.equal(key.gid, gid);
      }
      const cert = new X509Certificate(await Deno.readFile(join(root, "etc/groom/cert.pem")));
      assert.ok(new Date(cert.validTo) > new Date(), `not expired (ODD-29): ${cert.validTo}`);
      assert.match(cert.subject, /replace it|not for production/);

      // The installed configuration starts and listens: paths into the root, port 0 on loopback.
      const conf = join(root, "test.conf");
      await Deno.writeTextFile(
        conf,
        (await Deno.readTextFile(join(root, "etc/groom/groom.conf")))
          .replaceAll("/etc/groom/", `${root}/etc/groom/`)
          .replace(`"*:443,`, `"127.0.0.1:0,`),
      );
      const groom = join(root, "usr/bin/groom");
      const check = await run(groom, ["check", conf]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const version = await run(groom, ["--version"]);
      assert.equal(version.stdout, `groom ${VERSION}\n`);
      const previous = Deno.env.get("GROOM_BIN");
      Deno.env.set("GROOM_BIN", groom); // the harness starts $GROOM_BIN
      try {
        await using server = new GroomProcess([conf]);
        const listen = logRecord(
          await server.waitFor((line) => logRecord(line)?.event === "listen"),
        );
        const port = Number(String(listen?.address).split(":").pop());
        const client = Deno.createHttpClient({
          caCerts: [await Deno.readTextFile(join(root, "etc/groom/cert.pem"))],
        });
        try {
          const response = await fetch(`https://127.0.0.1:${port}/`, { client });
          await response.body?.cancel();
          assert.equal(response.status, 404, server.output()); // no active domain yet
        } finally {
          client.close();
        }
      } finally {
        if (previous === undefined) Deno.env.delete("GROOM_BIN");
        else Deno.env.set("GROOM_BIN", previous);
      }

      const purged = await dpkg("--purge", "groom");
      assert.equal(purged.code, 0, purged.stdout + purged.stderr);
      for (
        const path of [
          "usr/bin/groom",
          "etc/groom/groom.conf",
          "etc/groom/key.pem",
          "var/log/groom",
        ]
      ) {
        assert.equal(await Deno.lstat(join(root, path)).catch(() => "gone"), "gone", path);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "deno task deb packages a given binary at /usr/bin/groom, and refuses one of another architecture",
  ignore: !CAN_BUILD,
  async fn() {
    // The deno binary stands in for a compiled groom: an ELF of this architecture.
    const out = await Deno.makeTempDir({ prefix: "groom-deb-bin-" });
    try {
      const made = await run(
        Deno.execPath(),
        [
          "task",
          "deb",
          "--arch",
          ARCH as string,
          "--compress",
          "none",
          "--out",
          out,
          Deno.execPath(),
        ],
        { cwd: ROOT },
      );
      assert.equal(made.code, 2, "deno --version is not groom's version (ODD-29)");
      assert.match(made.stderr, /it says "deno \S+ [^"]*", not "groom /);
      const forced = await run(
        Deno.execPath(),
        ["task", "deb", "--no-version-check", "--compress", "none", "--out", out, Deno.execPath()],
        { cwd: ROOT },
      );
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout, /\(compile\)/);
      const files = await contents(join(out, `groom_${DEB_VERSION}_${ARCH}.deb`));
      assert.equal(files.get("/usr/bin/groom"), "-rwxr-xr-x root/root");
      assert.ok(![...files.keys()].some((path) => path.startsWith("/usr/lib/groom/")));

      const other = ARCH === "amd64" ? "arm64" : "amd64";
      const refused = await run(
        Deno.execPath(),
        ["task", "deb", "--arch", other, "--out", out, Deno.execPath()],
        { cwd: ROOT },
      );
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, new RegExp(`as ${other}: it is an ${ARCH} ELF binary`));
    } finally {
      await Deno.remove(out, { recursive: true });
      await cleanUp();
    }
  },
});
