/**
 * `deno task deb`: the Debian package of PKG-4/PKG-5/PKG-7, built with `dpkg-deb` alone (no
 * debhelper). It packages the program it is given, for one architecture:
 *
 * ```
 * deno task deb [--arch amd64|arm64] [--compress xz|gzip|zstd|none] [--level N] [PROGRAM]
 *   PROGRAM: a compiled groom binary for that architecture, or a staged archive folder
 *            (dist/compile/groom, dist/bundle/groom) holding groom-linux-<arch>
 * ```
 *
 * Without PROGRAM it builds the best it can for that architecture: `deno compile`, or, when
 * compile cannot get its base runtime, the `--bundle` variant (the npm Deno runtime + groom.js,
 * started by the launcher), so a working package comes out either way. The package is written to
 * `dist/groom_<version>_<arch>.deb`; its files, scripts and unit come from packaging/debian/.
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import {
  BaseRuntimeUnavailableError,
  build,
  formatBytes,
  readVersion,
  ROOT,
  type Target,
  TARGETS,
  Variant,
} from "./build.ts";

/** Debian architectures groom is packaged for, with the build target each one takes. */
export const DEB_ARCHES: Readonly<Record<string, Target>> = Object.fromEntries(
  TARGETS.filter((t) => t.debArch !== undefined).map((t) => [t.debArch as string, t]),
);

/** Compressors `dpkg-deb -Z` accepts. */
const COMPRESSORS = ["xz", "gzip", "zstd", "none"] as const;
type Compressor = typeof COMPRESSORS[number];

/** ELF e_machine values, to check a binary's architecture before packaging it. */
const ELF_MACHINES: Readonly<Record<number, string>> = { 0x3e: "amd64", 0xb7: "arm64" };

/** Configuration files dpkg keeps when the administrator edited them. */
export const CONFFILES: readonly string[] = [
  "/etc/groom/groom.conf",
  "/etc/groom/domains/www.domain.com",
];

/** Usage text of `deno task deb`. */
export const DEB_USAGE =
  `usage: deno task deb [--arch amd64|arm64] [--compress xz|gzip|zstd|none] [--level N] [--out DIR] [PROGRAM]
  PROGRAM  a compiled groom binary, or a staged folder (dist/compile/groom, dist/bundle/groom);
           default: build one now (deno compile, else the --bundle variant)
  --arch   Debian architecture (default: this computer's)
  --compress, --level  dpkg-deb compression (default: xz, dpkg-deb's level)
  --out    write to DIR instead of dist/
  --no-version-check  do not run PROGRAM --version (it must say the version of deno.json)`;

/** Thrown for a bad `deno task deb` command line or input. */
export class DebUsageError extends Error {
  override name = "DebUsageError";
}

/** Parsed command line of `deno task deb`. */
export interface DebArgs {
  readonly arch: string;
  readonly compress: Compressor;
  readonly level?: number;
  readonly program?: string;
  /** Output folder; default dist/. */
  readonly out?: string;
  readonly versionCheck: boolean;
  readonly help: boolean;
}

/** This computer's Debian architecture, when groom is packaged for it. */
export function hostDebArch(): string | undefined {
  return TARGETS.find((t) => t.key === `linux-${Deno.build.arch}`)?.debArch;
}

/** Parses the arguments of `deno task deb`. */
export function parseDebArgs(args: readonly string[]): DebArgs {
  let arch = hostDebArch() ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64");
  let compress: Compressor = "xz";
  let level: number | undefined;
  let program: string | undefined;
  let out: string | undefined;
  let versionCheck = true;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [name, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      const next = inline ?? args[++i];
      if (next === undefined) throw new DebUsageError(`Cannot parse ${name}: missing value`);
      return next;
    };
    if (name === "--help" || name === "-h") help = true;
    else if (name === "--no-version-check") versionCheck = false;
    else if (name === "--arch") arch = value();
    else if (name === "--out") out = value();
    else if (name === "--compress") {
      const chosen = value();
      if (!(COMPRESSORS as readonly string[]).includes(chosen)) {
        throw new DebUsageError(`Cannot compress with "${chosen}": use ${COMPRESSORS.join(", ")}`);
      }
      compress = chosen as Compressor;
    } else if (name === "--level") {
      const text = value();
      if (!/^[0-9]$|^1[0-9]$/.test(text)) {
        throw new DebUsageError(`Cannot use --level ${text}: a number from 0 to 19`);
      }
      level = Number(text);
    } else if (name.startsWith("-")) {
      throw new DebUsageError(`Cannot parse "${arg}": unknown option`);
    } else if (program !== undefined) throw new DebUsageError(`Cannot package two programs`);
    else program = arg;
  }
  if (DEB_ARCHES[arch] === undefined) {
    throw new DebUsageError(
      `Cannot package for "${arch}": groom is packaged for ${Object.keys(DEB_ARCHES).join(", ")}`,
    );
  }
  return {
    arch,
    compress,
    ...(level === undefined ? {} : { level }),
    ...(program === undefined ? {} : { program }),
    ...(out === undefined ? {} : { out }),
    versionCheck,
    help,
  };
}

/**
 * The Debian version of a semver version: a pre-release sorts before its release in Debian with
 * `~` (`2.0.0-rc.1` → `2.0.0~rc.1`); no Debian revision, the package is native.
 */
export function debianVersion(version: string): string {
  const match = /^(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/.exec(version);
  if (!match) throw new TypeError(`Cannot make a Debian version of "${version}": not semver`);
  const [, core, pre, meta] = match;
  const clean = (part: string) => part.replaceAll("-", ".");
  return `${core}${pre ? `~${clean(pre)}` : ""}${meta ? `+${clean(meta)}` : ""}`;
}

/** One line `conf/server.conf` → `/etc/groom/groom.conf` rewrite; each must match exactly once. */
const SERVER_CONF_EDITS: readonly [string, string][] = [
  [`listen = [ "127.0.0.1:8443,groom.certificates" ]`, `listen = [ "*:443,groom.certificates" ]`],
  [`"* conf/dummy.pem conf/dummy.key"`, `"* /etc/groom/cert.pem /etc/groom/key.pem"`],
  [`domains = "conf/server"`, `domains = "/etc/groom/domains"`],
  // The journal stamps every line already.
  [`// system = "console(output=stdout)"`, `system = "console(output=stdout,time=no)"`],
  [`access = "console(output=stdout)"`, `access = "console(output=stdout,time=no)"`],
];

/** Marks the end of the sample's header, which the Debian header replaces. */
const HEADER_END = "# Lines starting with // are directives";

/**
 * `/etc/groom/groom.conf`: the repository's sample server configuration, every option still
 * documented, rewritten for a system install: HTTPS on every interface, port 443, the certificate
 * made at installation, `/etc/groom/domains`, console logs for the journal (ODD-29).
 */
export function debianServerConf(sample: string, header: string): string {
  const start = sample.indexOf(HEADER_END);
  if (start < 0) throw new TypeError(`Cannot find "${HEADER_END}" in conf/server.conf`);
  let text = header.trimEnd() + "\n#\n" + sample.slice(start);
  for (const [from, to] of SERVER_CONF_EDITS) {
    const count = text.split(from).length - 1;
    if (count !== 1) {
      throw new TypeError(`Cannot rewrite conf/server.conf: "${from}" found ${count} times`);
    }
    text = text.replace(from, to);
  }
  return text;
}

/** The ELF architecture of a binary as a Debian architecture, or undefined when not ELF. */
export function elfDebArch(head: Uint8Array): string | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c) {
    return undefined;
  }
  if (head[3] !== 0x46) return undefined;
  return ELF_MACHINES[(head[18] as number) | ((head[19] as number) << 8)] ?? "unknown";
}

/** What goes into /usr: a compiled binary, or the launcher with the runtime and groom.js. */
export type Program =
  | { readonly variant: "compile"; readonly binary: string }
  | {
    readonly variant: "bundle";
    readonly launcher: string;
    readonly script: string;
    readonly runtime: string;
  };

/** Finds the program for `arch` in a binary path or a staged archive folder. */
export async function resolveProgram(path: string, arch: string): Promise<Program> {
  const target = DEB_ARCHES[arch] as Target;
  const info = await Deno.stat(path).catch(() => undefined);
  if (info === undefined) throw new DebUsageError(`Cannot package ${path}: no such file or folder`);
  let binary = path;
  if (info.isDirectory) {
    const entry = join(path, `groom-${target.key}`);
    const entryInfo = await Deno.stat(entry).catch(() => undefined);
    if (entryInfo?.isDirectory) {
      const program: Program = {
        variant: "bundle",
        launcher: join(path, "groom"),
        script: join(path, "groom.js"),
        runtime: join(entry, target.runtime),
      };
      for (const file of [program.launcher, program.script, program.runtime]) {
        if (!(await Deno.stat(file).catch(() => undefined))?.isFile) {
          throw new DebUsageError(`Cannot package ${path}: ${file} is missing`);
        }
      }
      await checkArch(program.runtime, arch);
      return program;
    }
    if (!entryInfo?.isFile) {
      throw new DebUsageError(
        `Cannot package ${path}: it has no groom-${target.key} (deno task build --target ${target.key})`,
      );
    }
    binary = entry;
  }
  await checkArch(binary, arch);
  return { variant: "compile", binary };
}

async function checkArch(path: string, arch: string): Promise<void> {
  using file = await Deno.open(path);
  const head = new Uint8Array(20);
  const read = await file.read(head) ?? 0;
  const found = elfDebArch(head.subarray(0, read));
  if (found !== arch) {
    throw new DebUsageError(
      `Cannot package ${path} as ${arch}: it is ${found ? `an ${found} ELF` : "no Linux"} binary`,
    );
  }
}

/** Options of {@linkcode buildDeb}. */
export interface DebOptions {
  readonly arch: string;
  readonly program: Program;
  readonly compress?: Compressor;
  readonly level?: number;
  /** Run the program (when it runs here) and require `groom <deno.json version>`; default true. */
  readonly versionCheck?: boolean;
  /** Repository root; default {@linkcode ROOT}. */
  readonly root?: string;
  /** Output folder; default `dist/`. */
  readonly out?: string;
  /** Progress lines; default stderr. */
  readonly log?: (line: string) => void;
}

/** What {@linkcode buildDeb} produced. */
export interface DebResult {
  readonly path: string;
  readonly bytes: number;
  readonly version: string;
  readonly variant: "compile" | "bundle";
  readonly seconds: number;
}

/** Builds `dist/groom_<version>_<arch>.deb` from `program` with `dpkg-deb`. */
export async function buildDeb(options: DebOptions): Promise<DebResult> {
  const started = performance.now();
  const root = options.root ?? ROOT;
  const log = options.log ?? ((line: string) => console.error(line));
  const version = debianVersion(await readVersion(root));
  const packaging = join(root, "packaging", "debian");
  const outDir = options.out ?? join(root, "dist");
  const tree = join(outDir, "deb", `root-${options.arch}`);
  await Deno.remove(tree, { recursive: true }).catch(() => {});
  const put = async (path: string, data: Uint8Array | string, mode = 0o644) => {
    const full = join(tree, path);
    await Deno.mkdir(dirname(full), { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(full, data);
    else await Deno.writeFile(full, data);
    await Deno.chmod(full, mode);
  };
  const copy = async (path: string, from: string, mode = 0o644) =>
    await put(path, await Deno.readFile(from), mode);

  const program = options.program;
  if (options.versionCheck !== false) await checkVersion(program, options.arch, root, log);
  if (program.variant === "compile") {
    await copy("usr/bin/groom", program.binary, 0o755);
  } else {
    const target = DEB_ARCHES[options.arch] as Target;
    await copy("usr/lib/groom/groom", program.launcher, 0o755);
    await copy("usr/lib/groom/groom.js", program.script);
    await copy(`usr/lib/groom/groom-${target.key}/${target.runtime}`, program.runtime, 0o755);
    await Deno.mkdir(join(tree, "usr/bin"), { recursive: true });
    await Deno.symlink("../lib/groom/groom", join(tree, "usr/bin/groom"));
  }
  const conf = join(root, "conf");
  await put(
    "etc/groom/groom.conf",
    debianServerConf(
      await Deno.readTextFile(join(conf, "server.conf")),
      await Deno.readTextFile(join(packaging, "groom.conf.header")),
    ),
  );
  await copy("etc/groom/domains/www.domain.com", join(conf, "server", "www.domain.com"));
  await copy("usr/lib/systemd/system/groom.service", join(packaging, "groom.service"));
  await copy("usr/lib/sysusers.d/groom.conf", join(packaging, "groom.sysusers"));
  await copy("usr/share/groom/selfsigned.cnf", join(packaging, "selfsigned.cnf"));
  await copy("usr/share/groom/dummy.pem", join(conf, "dummy.pem"));
  await copy("usr/share/groom/dummy.key", join(conf, "dummy.key"));
  await copy("usr/share/doc/groom/README.Debian", join(packaging, "README.Debian"));
  for (
    const file of ["server.conf", "agent.conf", "server/www.domain.com", "agent/www.domain.com"]
  ) {
    await copy(`usr/share/doc/groom/examples/${file}`, join(conf, file));
  }
  await Deno.mkdir(join(tree, "var/log/groom"), { recursive: true });

  const files = await listFiles(tree);
  const installedKiB = files.reduce((sum, file) => sum + Math.ceil(file.size / 1024), 0) +
    (await countDirs(tree));
  await put(
    "DEBIAN/control",
    (await Deno.readTextFile(join(packaging, "control")))
      .replaceAll("@VERSION@", version)
      .replaceAll("@ARCH@", options.arch)
      .replaceAll("@MAINTAINER@", maintainer())
      .replaceAll("@INSTALLED_SIZE@", String(installedKiB))
      .replaceAll(
        "@VARIANT@",
        program.variant === "compile"
          ? "deno compile"
          : "deno bundle, run by the Deno runtime of the npm registry",
      ),
  );
  await put("DEBIAN/conffiles", CONFFILES.join("\n") + "\n");
  const conffiles = new Set(CONFFILES.map((path) => path.slice(1)));
  const sums = files.filter((file) => !conffiles.has(file.path)).map((file) =>
    `${file.md5}  ${file.path}`
  );
  await put("DEBIAN/md5sums", sums.join("\n") + "\n");
  for (const script of ["postinst", "prerm", "postrm"]) {
    await copy(`DEBIAN/${script}`, join(packaging, script), 0o755);
  }
  for (const dir of await listDirs(tree)) await Deno.chmod(dir, 0o755);

  const out = join(outDir, `groom_${version}_${options.arch}.deb`);
  const compress = options.compress ?? "xz";
  log(`deb: dpkg-deb --build (${compress}) -> ${out}`);
  await dpkgDeb([
    "--root-owner-group",
    `-Z${compress}`,
    ...(options.level === undefined ? [] : [`-z${options.level}`]),
    "--build",
    tree,
    out,
  ]);
  await Deno.remove(tree, { recursive: true });
  return {
    path: out,
    bytes: (await Deno.stat(out)).size,
    version,
    variant: program.variant,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Runs the program's `--version` when it can run on this computer, so a package never carries a
 * binary of another version than its own (ODD-29: the original shipped 1.3.2 as package 1.3.0).
 */
async function checkVersion(
  program: Program,
  arch: string,
  root: string,
  log: (line: string) => void,
): Promise<void> {
  if (Deno.build.os !== "linux" || hostDebArch() !== arch) {
    log(`deb: ${arch} cannot run here; its version is not checked`);
    return;
  }
  const command = program.variant === "compile" ? program.binary : program.launcher;
  const output = await new Deno.Command(command, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const said = new TextDecoder().decode(output.stdout).trim();
  const expected = `groom ${await readVersion(root)}`;
  if (said !== expected) {
    throw new DebUsageError(
      `Cannot package ${command}: it says "${said.split("\n")[0]}", not "${expected}" ` +
        `(rebuild it, or pass --no-version-check)`,
    );
  }
}

/** Maintainer field: DEBFULLNAME and DEBEMAIL as devscripts read them, else a placeholder. */
function maintainer(): string {
  const name = Deno.env.get("DEBFULLNAME") ?? "groom developers";
  const email = Deno.env.get("DEBEMAIL") ?? "groom@localhost";
  return `${name} <${email}>`;
}

async function dpkgDeb(args: string[]): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("dpkg-deb", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("Cannot build the package: dpkg-deb is missing (apt-get install dpkg)");
    }
    throw error;
  }
  if (!output.success) {
    throw new Error(
      `dpkg-deb ${args.join(" ")} failed:\n${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return new TextDecoder().decode(output.stdout);
}

interface FileEntry {
  readonly path: string;
  readonly size: number;
  readonly md5: string;
}

async function listFiles(tree: string, dir = tree): Promise<FileEntry[]> {
  const found: FileEntry[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const full = join(dir, entry.name);
    if (entry.isDirectory) {
      if (full !== join(tree, "DEBIAN")) found.push(...await listFiles(tree, full));
    } else if (entry.isFile) {
      const data = await Deno.readFile(full);
      const md5 = createHash("md5").update(data).digest("hex");
      found.push({ path: relative(tree, full), size: data.length, md5 });
    }
  }
  return found.sort((a, b) => a.path.localeCompare(b.path, "en"));
}

async function listDirs(dir: string): Promise<string[]> {
  const found: string[] = [dir];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) found.push(...await listDirs(join(dir, entry.name)));
  }
  return found;
}

async function countDirs(tree: string): Promise<number> {
  return (await listDirs(tree)).length - 1;
}

/**
 * Without a program: `deno compile` for the architecture's target, or the `--bundle` variant
 * when compile cannot get its base runtime. Staged under dist/deb/.
 */
export async function bestProgram(
  arch: string,
  log: (line: string) => void,
  out = join(ROOT, "dist"),
): Promise<Program> {
  const target = DEB_ARCHES[arch] as Target;
  const stage = (variant: Variant) => join(out, "deb", `${variant}-${arch}`, "groom");
  try {
    const result = await build({
      variant: Variant.Compile,
      targets: [target],
      zip: false,
      stage: stage(Variant.Compile),
      log,
    });
    return await resolveProgram(result.stage, arch);
  } catch (error) {
    if (!(error instanceof BaseRuntimeUnavailableError)) throw error;
    log(`deb: ${error.message.split("\n")[0]}`);
    log(`deb: packaging the --bundle variant instead (Deno runtime from npm + groom.js)`);
  }
  const result = await build({
    variant: Variant.Bundle,
    targets: [target],
    zip: false,
    stage: stage(Variant.Bundle),
    log,
  });
  return await resolveProgram(result.stage, arch);
}

if (import.meta.main) {
  try {
    const args = parseDebArgs(Deno.args);
    if (args.help) {
      console.log(DEB_USAGE);
      Deno.exit(0);
    }
    const log = (line: string) => console.error(line);
    const program = args.program === undefined
      ? await bestProgram(args.arch, log, args.out)
      : await resolveProgram(args.program, args.arch);
    const result = await buildDeb({
      arch: args.arch,
      program,
      compress: args.compress,
      versionCheck: args.versionCheck,
      ...(args.level === undefined ? {} : { level: args.level }),
      ...(args.out === undefined ? {} : { out: args.out }),
      log,
    });
    console.log(
      `deb: groom ${result.version} (${result.variant}) -> ${result.path} ` +
        `(${formatBytes(result.bytes)}) in ${result.seconds.toFixed(1)} s`,
    );
  } catch (error) {
    if (error instanceof DebUsageError) {
      console.error(`deb: ${error.message}\n${DEB_USAGE}`);
      Deno.exit(2);
    }
    console.error(`deb: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
