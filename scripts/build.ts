/**
 * `deno task build`: the portable archive of PKG-2/PKG-7. By default each selected target is built
 * with `deno compile` and groom's permissions (scripts/permissions.ts); `--bundle` builds the same
 * layout from the npm registry alone: one `deno bundle` JavaScript file plus, per target, the Deno
 * runtime of the `@deno/<platform>` npm package. Both are staged under `dist/<variant>/groom/` and
 * zipped to `dist/groom_<version>.zip` (`…_bundle.zip`). `--target` keeps a build small.
 *
 * ```
 * deno task build [--bundle] [--target T[,T…]]… [--no-zip]
 *   T: linux-x86_64 linux-aarch64 darwin-x86_64 darwin-aarch64 windows-x86_64 windows-aarch64,
 *      a Deno target triple, "host" or "all" (default)
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUNDLE_RUN_FLAGS, GROOM_FLAGS } from "./permissions.ts";
import { writeZip, type ZipEntry } from "./zip.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** One platform groom is shipped for. */
export interface Target {
  /** Our name, `<os>-<arch>` as the launcher computes it from `uname`. */
  readonly key: string;
  /** `deno compile --target` triple. */
  readonly triple: string;
  /** npm package carrying the Deno runtime of that platform. */
  readonly npm: string;
  /** File name of the compiled binary inside `groom/` (PKG-2, ODD-28). */
  readonly binary: string;
  /** File name of the Deno runtime inside `groom/groom-<key>/` (the `--bundle` variant). */
  readonly runtime: string;
  /** Debian architecture, for the Linux targets. */
  readonly debArch?: string;
}

/** The six targets, in archive order. */
export const TARGETS: readonly Target[] = [
  {
    key: "linux-x86_64",
    triple: "x86_64-unknown-linux-gnu",
    npm: "@deno/linux-x64-glibc",
    binary: "groom-linux-x86_64",
    runtime: "deno",
    debArch: "amd64",
  },
  {
    key: "linux-aarch64",
    triple: "aarch64-unknown-linux-gnu",
    npm: "@deno/linux-arm64-glibc",
    binary: "groom-linux-aarch64",
    runtime: "deno",
    debArch: "arm64",
  },
  {
    key: "darwin-x86_64",
    triple: "x86_64-apple-darwin",
    npm: "@deno/darwin-x64",
    binary: "groom-darwin-x86_64",
    runtime: "deno",
  },
  {
    key: "darwin-aarch64",
    triple: "aarch64-apple-darwin",
    npm: "@deno/darwin-arm64",
    binary: "groom-darwin-aarch64",
    runtime: "deno",
  },
  {
    key: "windows-x86_64",
    triple: "x86_64-pc-windows-msvc",
    npm: "@deno/win32-x64",
    binary: "groom.exe",
    runtime: "deno.exe",
  },
  {
    key: "windows-aarch64",
    triple: "aarch64-pc-windows-msvc",
    npm: "@deno/win32-arm64",
    binary: "groom-windows-aarch64.exe",
    runtime: "deno.exe",
  },
];

/** The two ways of building the archive. */
export const Variant = { Compile: "compile", Bundle: "bundle" } as const;
/** A {@linkcode Variant} value. */
export type Variant = typeof Variant[keyof typeof Variant];

/** Sample files copied into `groom/conf/` (PKG-2, plus the marked dummy certificate they use). */
export const CONF_FILES: readonly string[] = [
  "server.conf",
  "agent.conf",
  "server/www.domain.com",
  "agent/www.domain.com",
  "dummy.pem",
  "dummy.key",
];

/** Parsed command line of `deno task build`. */
export interface BuildArgs {
  readonly variant: Variant;
  readonly targets: readonly Target[];
  readonly zip: boolean;
  /** Output folder (zip, staging); default dist/. */
  readonly out?: string;
  readonly help: boolean;
}

/** Usage text of `deno task build`. */
export const BUILD_USAGE =
  `usage: deno task build [--bundle] [--target T[,T...]]... [--no-zip] [--out DIR]
  --bundle   build from the npm registry only: groom.js (deno bundle) + the @deno/<platform> runtimes
  --target   ${TARGETS.map((t) => t.key).join(", ")},
             a deno compile triple, "host" or "all" (default: all)
  --no-zip   stage dist/<variant>/groom/ only
  --out      write to DIR instead of dist/ (the npm cache stays in dist/cache)`;

/** Thrown for a bad `deno task build` command line. */
export class BuildUsageError extends Error {
  override name = "BuildUsageError";
}

/** The target of the computer running this script, if groom is built for it. */
export function hostTarget(): Target | undefined {
  return TARGETS.find((target) => target.key === `${Deno.build.os}-${Deno.build.arch}`);
}

/** Resolves target names (our keys, triples, `host`, `all`) to targets, in archive order. */
export function selectTargets(names: readonly string[]): Target[] {
  if (names.length === 0) return [...TARGETS];
  const chosen = new Set<Target>();
  for (const name of names.flatMap((value) => value.split(",")).map((value) => value.trim())) {
    if (name === "") continue;
    if (name === "all") {
      TARGETS.forEach((target) => chosen.add(target));
      continue;
    }
    const target = name === "host"
      ? hostTarget()
      : TARGETS.find((candidate) => candidate.key === name || candidate.triple === name);
    if (target === undefined) {
      throw new BuildUsageError(
        name === "host"
          ? `Cannot build for the host: groom is not built for ${Deno.build.os} ${Deno.build.arch}`
          : `Cannot build for "${name}": unknown target (${TARGETS.map((t) => t.key).join(", ")})`,
      );
    }
    chosen.add(target);
  }
  if (chosen.size === 0) throw new BuildUsageError("Cannot build: --target names no target");
  return TARGETS.filter((target) => chosen.has(target));
}

/** Parses the arguments of `deno task build`. */
export function parseBuildArgs(args: readonly string[]): BuildArgs {
  let variant: Variant = Variant.Compile;
  let zip = true;
  let help = false;
  let out: string | undefined;
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--bundle") variant = Variant.Bundle;
    else if (arg === "--no-zip") zip = false;
    else if (arg === "--help" || arg === "-h") help = true;
    else if (arg.startsWith("--target=")) names.push(arg.slice("--target=".length));
    else if (arg.startsWith("--out=")) out = arg.slice("--out=".length);
    else if (arg === "--target" || arg === "--out") {
      const value = args[++i];
      if (value === undefined) throw new BuildUsageError(`Cannot parse ${arg}: missing value`);
      if (arg === "--out") out = value;
      else names.push(value);
    } else throw new BuildUsageError(`Cannot parse "${arg}": unknown argument`);
  }
  return { variant, targets: selectTargets(names), zip, ...(out ? { out } : {}), help };
}

/** The version stamped into every build: deno.json's "version" (also shown by `groom --version`). */
export async function readVersion(root = ROOT): Promise<string> {
  const json = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  if (
    typeof json.version !== "string" || !/^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$/.test(json.version)
  ) {
    throw new TypeError(`Cannot read the version from deno.json: "${json.version}" is no semver`);
  }
  return json.version;
}

/** `deno compile` arguments for one target (permissions from scripts/permissions.ts, no `-A`). */
export function compileArgs(target: Target, output: string, entry = "main.ts"): string[] {
  return [
    "compile",
    "--no-check", // type checking is `deno task ok`'s job; the release workflow runs it first
    "--quiet",
    ...GROOM_FLAGS,
    "--target",
    target.triple,
    "--output",
    output,
    entry,
  ];
}

/** The `deno run` arguments the bundle launcher passes before `groom.js`. */
export function bundleRunFlags(): string[] {
  return [...BUNDLE_RUN_FLAGS, ...GROOM_FLAGS];
}

/** The POSIX launcher `groom/groom` (PKG-3 with ODD-28 fixed), from packaging/groom.sh. */
export async function renderLauncher(root = ROOT): Promise<string> {
  const template = await Deno.readTextFile(join(root, "packaging", "groom.sh"));
  return fill(template, "packaging/groom.sh");
}

/** The Windows launcher `groom/groom.cmd` of the bundle variant (CRLF line ends). */
export async function renderWindowsLauncher(root = ROOT): Promise<string> {
  const template = await Deno.readTextFile(join(root, "packaging", "groom.cmd"));
  return fill(template, "packaging/groom.cmd").replace(/\r?\n/g, "\r\n");
}

function fill(template: string, name: string): string {
  if (!template.includes("@RUN_FLAGS@")) {
    throw new TypeError(`Cannot render ${name}: the @RUN_FLAGS@ placeholder is missing`);
  }
  return template.replaceAll("@RUN_FLAGS@", bundleRunFlags().join(" "));
}

/**
 * `deno compile` could not get its base runtime (`denort`) from Deno's download host. Carries the
 * explanation printed to the user; `deno task deb` catches it to fall back to the bundle variant.
 */
export class BaseRuntimeUnavailableError extends Error {
  override name = "BaseRuntimeUnavailableError";
}

/** Options of {@linkcode build}. */
export interface BuildOptions {
  readonly variant: Variant;
  readonly targets: readonly Target[];
  /** Write the zip (else only stage). */
  readonly zip: boolean;
  /** Repository root; default {@linkcode ROOT}. */
  readonly root?: string;
  /** Output folder of the zip; default `dist/`. */
  readonly out?: string;
  /** Staging folder (it is emptied first); default `<out>/<variant>/groom`. */
  readonly stage?: string;
  /** Progress lines; default stderr. */
  readonly log?: (line: string) => void;
}

/** What {@linkcode build} produced. */
export interface BuildResult {
  readonly variant: Variant;
  readonly version: string;
  readonly targets: readonly Target[];
  /** The staged `groom/` folder (the archive's content). */
  readonly stage: string;
  /** The zip, when written. */
  readonly zip?: string;
  readonly zipBytes?: number;
  readonly seconds: number;
}

/** Builds the selected targets into the staging folder and, unless told not to, zips it. */
export async function build(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const root = options.root ?? ROOT;
  const log = options.log ?? ((line: string) => console.error(line));
  const version = await readVersion(root);
  const dist = join(root, "dist");
  const out = options.out ?? dist;
  const stage = options.stage ?? join(out, options.variant, "groom");
  await Deno.remove(stage, { recursive: true }).catch(ignoreNotFound);
  await Deno.mkdir(join(stage, "conf"), { recursive: true });
  const entries: ZipEntry[] = [];

  if (options.variant === Variant.Compile) {
    const denortBin = Deno.env.get("DENORT_BIN");
    if (denortBin && options.targets.length !== 1) {
      throw new BuildUsageError(
        `Cannot use DENORT_BIN=${denortBin} for ${options.targets.length} targets: it is the ` +
          `runtime of one target; choose it with --target`,
      );
    }
    for (const target of options.targets) {
      const output = join(stage, target.binary);
      log(`build: deno compile ${target.triple} -> ${output}`);
      await compile(target, output, root);
      entries.push({ name: `groom/${target.binary}`, path: output, mode: 0o755 });
    }
  } else {
    const script = join(stage, "groom.js");
    log(`build: deno bundle main.ts -> ${script}`);
    await run(
      Deno.execPath(),
      ["bundle", "--quiet", "--platform", "deno", "-o", script, "main.ts"],
      {
        cwd: root,
      },
    );
    entries.push({ name: "groom/groom.js", path: script, mode: 0o644 });
    for (const target of options.targets) {
      const runtime = await denoRuntime(target, join(dist, "cache"), root, log);
      await Deno.mkdir(join(stage, `groom-${target.key}`));
      const copy = join(stage, `groom-${target.key}`, target.runtime);
      await Deno.copyFile(runtime, copy);
      await Deno.chmod(copy, 0o755).catch(() => {}); // No modes on Windows.
      entries.push({ name: `groom/groom-${target.key}/`, mode: 0o755 });
      entries.push({
        name: `groom/groom-${target.key}/${target.runtime}`,
        path: copy,
        mode: 0o755,
      });
    }
    if (options.targets.some((target) => target.key.startsWith("windows-"))) {
      const cmd = join(stage, "groom.cmd");
      await Deno.writeTextFile(cmd, await renderWindowsLauncher(root));
      entries.push({ name: "groom/groom.cmd", path: cmd, mode: 0o755 });
    }
  }
  const launcher = join(stage, "groom");
  await Deno.writeTextFile(launcher, await renderLauncher(root));
  await Deno.chmod(launcher, 0o755).catch(() => {});
  entries.push({ name: "groom/groom", path: launcher, mode: 0o755 });

  entries.push({ name: "groom/conf/", mode: 0o755 });
  for (
    const dir of new Set(CONF_FILES.filter((f) => f.includes("/")).map((f) => f.split("/")[0]))
  ) {
    await Deno.mkdir(join(stage, "conf", dir as string), { recursive: true });
    entries.push({ name: `groom/conf/${dir}/`, mode: 0o755 });
  }
  for (const file of CONF_FILES) {
    await Deno.copyFile(join(root, "conf", file), join(stage, "conf", file));
    entries.push({ name: `groom/conf/${file}`, path: join(stage, "conf", file), mode: 0o644 });
  }

  await checkHostBuild(stage, options.targets, version, log);

  let zip: string | undefined;
  let zipBytes: number | undefined;
  if (options.zip) {
    zip = join(out, `groom_${version}${options.variant === Variant.Bundle ? "_bundle" : ""}.zip`);
    const ordered: ZipEntry[] = [
      { name: "groom/", mode: 0o755 },
      ...entries.sort((a, b) => a.name.localeCompare(b.name, "en")),
    ];
    log(`build: writing ${zip}`);
    zipBytes = (await writeZip(zip, ordered, { mtime: sourceDate() })).bytes;
  }
  return {
    variant: options.variant,
    version,
    targets: options.targets,
    stage,
    ...(zip === undefined ? {} : { zip }),
    ...(zipBytes === undefined ? {} : { zipBytes }),
    seconds: (performance.now() - started) / 1000,
  };
}

/** SOURCE_DATE_EPOCH (reproducible builds) or now. */
function sourceDate(): Date {
  const epoch = Deno.env.get("SOURCE_DATE_EPOCH");
  return epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date();
}

/**
 * Runs the host's build once (`groom --version` through the launcher) so a build whose version
 * stamp or permissions are broken fails here, not on a user's machine.
 */
async function checkHostBuild(
  stage: string,
  targets: readonly Target[],
  version: string,
  log: (line: string) => void,
): Promise<void> {
  const host = hostTarget();
  if (host === undefined || !targets.includes(host) || Deno.build.os === "windows") return;
  const output = await new Deno.Command(join(stage, "groom"), {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success || text !== `groom ${version}`) {
    const denortBin = Deno.env.get("DENORT_BIN");
    throw new Error(
      `Cannot use the ${host.key} build: "groom --version" printed "${text}" (expected ` +
        `"groom ${version}"): ${new TextDecoder().decode(output.stderr).trim()}` +
        (denortBin ? `\nIs DENORT_BIN=${denortBin} a denort binary? A deno binary is not.` : ""),
    );
  }
  log(`build: ${host.key} build says "${text}"`);
}

async function compile(target: Target, output: string, root: string): Promise<void> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(target, output),
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.success) {
    if (stderr.trim() !== "") console.error(stderr.trimEnd());
    return;
  }
  if (/dl\.deno\.land|base binary|denort/i.test(stderr)) {
    throw new BaseRuntimeUnavailableError(await runtimeHelp(target, stderr));
  }
  throw new Error(`Cannot compile groom for ${target.triple}:\n${stderr.trimEnd()}`);
}

/** The message for a `deno compile` that could not download `denort`. */
async function runtimeHelp(target: Target, stderr: string): Promise<string> {
  const version = Deno.version.deno;
  const lines = stripAnsi(stderr).split("\n").map((line) => line.trim().replace(/^\d+: /, ""));
  const cause =
    lines.find((line) =>
      /error sending request|dns error|connect|denort|not found/i.test(line) &&
      !line.startsWith("Download ")
    ) ?? lines.find((line) => line !== "") ?? "";
  const denoDir = await denoDirectory();
  const denortBin = Deno.env.get("DENORT_BIN");
  return [
    denortBin
      ? `deno compile could not use DENORT_BIN=${denortBin} as its base runtime for ${target.triple}:`
      : `deno compile could not get its base runtime, denort ${version} for ${target.triple}, ` +
        `from Deno's download host (dl.deno.land):`,
    `  ${cause}`,
    `Provide that runtime, then build again:`,
    `  DENORT_BIN=/path/to/denort deno task build --target ${target.key}`,
    `    (the denort binary of Deno ${version} for ${target.triple}, unzipped from ` +
    `denort-${target.triple}.zip of the Deno release; one target per build)`,
    `  or copy denort-${target.triple}.zip into ${join(denoDir, "dl", "release", `v${version}`)}/`,
    `Or build the variant that needs only the npm registry: deno task build --bundle`,
  ].join("\n");
}

async function denoDirectory(): Promise<string> {
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const dir = JSON.parse(new TextDecoder().decode(output.stdout)).denoDir;
    if (typeof dir === "string") return dir;
  } catch {
    // Fall through to the documented default.
  }
  return Deno.env.get("DENO_DIR") ?? "$DENO_DIR";
}

/**
 * The Deno runtime for `target` from the `@deno/<platform>` npm package of the running Deno's
 * version: `npm pack` into dist/cache/npm (checked against the integrity recorded in
 * tools/deno/package-lock.json when it pins that version), unpacked once into dist/cache/runtime.
 */
export async function denoRuntime(
  target: Target,
  cache: string,
  root = ROOT,
  log: (line: string) => void = (line) => console.error(line),
): Promise<string> {
  const version = Deno.version.deno;
  const unpacked = join(cache, "runtime", `${version}-${target.key}`, target.runtime);
  if (await exists(unpacked)) return unpacked;
  const packs = join(cache, "npm");
  await Deno.mkdir(packs, { recursive: true });
  const tarball = join(packs, `${target.npm.slice(1).replace("/", "-")}-${version}.tgz`);
  if (!await exists(tarball)) {
    log(`build: npm pack ${target.npm}@${version}`);
    try {
      await run("npm", ["pack", `${target.npm}@${version}`, "--pack-destination", packs], {
        quiet: true,
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error("Cannot fetch the Deno runtimes: --bundle needs npm (Node.js) on PATH");
      }
      throw error;
    }
  }
  await checkIntegrity(tarball, target, version, root, log);
  const temp = await Deno.makeTempDir({ dir: cache, prefix: "unpack-" });
  try {
    await run("tar", ["-xzf", tarball, "-C", temp, `package/${target.runtime}`], { quiet: true });
    await Deno.mkdir(join(unpacked, ".."), { recursive: true });
    await Deno.rename(join(temp, "package", target.runtime), unpacked);
  } finally {
    await Deno.remove(temp, { recursive: true }).catch(ignoreNotFound);
  }
  return unpacked;
}

async function checkIntegrity(
  tarball: string,
  target: Target,
  version: string,
  root: string,
  log: (line: string) => void,
): Promise<void> {
  let lock: { packages?: Record<string, { version?: string; integrity?: string }> };
  try {
    lock = JSON.parse(await Deno.readTextFile(join(root, "tools", "deno", "package-lock.json")));
  } catch {
    log(`build: ${basename(tarball)} not checked (no tools/deno/package-lock.json)`);
    return;
  }
  const pinned = lock.packages?.[`node_modules/${target.npm}`];
  if (pinned?.version !== version || pinned.integrity === undefined) {
    log(`build: ${basename(tarball)} not checked (the lock file pins no ${target.npm}@${version})`);
    return;
  }
  const actual = "sha512-" + createHash("sha512").update(await Deno.readFile(tarball)).digest(
    "base64",
  );
  if (actual !== pinned.integrity) {
    await Deno.remove(tarball);
    throw new Error(
      `Cannot use ${basename(tarball)}: its sha512 differs from tools/deno/package-lock.json ` +
        `(removed; run the build again to fetch it anew)`,
    );
  }
}

async function run(
  cmd: string,
  args: readonly string[],
  options: { cwd?: string; quiet?: boolean } = {},
): Promise<void> {
  const result = await new Deno.Command(cmd, {
    args: [...args],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: "null",
    stdout: options.quiet ? "piped" : "inherit",
    stderr: "piped",
  }).output();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr).trimEnd();
    throw new Error(`Cannot run ${cmd} ${args.join(" ")} (exit ${result.code}):\n${stderr}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Human-readable size, e.g. `41.3 MB` (base 1000, as `ls -h --si`). */
export function formatBytes(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

if (import.meta.main) {
  try {
    const args = parseBuildArgs(Deno.args);
    if (args.help) {
      console.log(BUILD_USAGE);
      Deno.exit(0);
    }
    const result = await build({
      variant: args.variant,
      targets: args.targets,
      zip: args.zip,
      ...(args.out === undefined ? {} : { out: args.out }),
    });
    const where = result.zip === undefined
      ? result.stage
      : `${result.zip} (${formatBytes(result.zipBytes ?? 0)})`;
    console.log(
      `build: groom ${result.version} ${result.variant} for ${
        result.targets.map((t) => t.key).join(", ")
      } -> ${where} in ${result.seconds.toFixed(1)} s`,
    );
  } catch (error) {
    if (error instanceof BuildUsageError) {
      console.error(`build: ${error.message}\n${BUILD_USAGE}`);
      Deno.exit(2);
    }
    console.error(`build: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
