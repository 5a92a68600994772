/**
 * `deno task bench` (issue 7): measures groom against a direct connection to the same backend, in
 * the same run, on loopback with real TLS, and prints a markdown table; the figures go to
 * `bench/results/<date>.json` (not committed). A backend, a groom server and a groom agent run as
 * separate processes started from configuration files (the code path users run); every client is
 * its own process. Figures (each "direct" = the same backend over HTTPS, the limit):
 *
 * 1. requests/s and latency p50/p99/p99.9 for a 100-byte response at 10 and 50 connections
 *    (wrk when installed, else autocannon from npm, else a Deno client; the report says which);
 * 2. MB/s of one 100 MiB download and one 100 MiB upload (SHA-256 checked);
 * 3. ten parallel 10 MiB downloads (aggregate MB/s) and fairness: p99 of sequential small
 *    requests during back-to-back 100 MiB downloads against their idle p99;
 * 4. WebSocket echo messages/s for 1 KiB and 64 KiB messages;
 * 5. RSS of server and agent: idle with 1 domain and with 100 domains (100 tunnels), peak under
 *    the 50-connection load, per in-flight stream at 1,000 concurrent slow requests, and after
 *    moving 1 GiB plus a minute of rest (no leak);
 * 6. CPU seconds (server + agent) per GiB moved, and the time to first byte the tunnel adds.
 *
 * Options: `--quick` (reduced sizes and durations, under 60 s), `--profile=full|quick|smoke`
 * (`smoke`: the test's ~15 s run), `--tool=auto|wrk|autocannon|deno`, `--out=FILE`,
 * `--protocols=groom2,groom` (what the agent offers, `GROOM_AGENT_PROTOCOLS`), `--cpu-prof=DIR`
 * (V8 CPU profiles of server and agent in DIR/server and DIR/agent; `scripts/bench/profile_top.ts`
 * summarises one).
 * RSS and CPU come from /proc (Linux); elsewhere they are reported as n/a.
 * @module
 */

import { join } from "node:path";
import type { ClientJob, Percentiles, Target } from "./bench/client.ts";
import { chooseTool, type LoadResult, type LoadTool, runLoad } from "./bench/load.ts";
import { Child, procAvailable, rssBytes, RssSampler, runScript, totalCpu } from "./bench/procs.ts";
import { DOMAIN, ROOT, startStack } from "./bench/stack.ts";
import { evaluateTargets, markdownReport, type Report } from "./bench/report.ts";

const MIB = 1024 * 1024;

/** Sizes and durations of one run. */
export interface Profile {
  readonly name: "full" | "quick" | "smoke";
  /** Seconds of each closed-loop load run (figure 1). */
  readonly loadSeconds: number;
  /**
   * Runs of each closed-loop load; the one with the most requests/s is kept (best of N: other
   * work on a shared machine only ever slows a run down).
   */
  readonly loadRepeats: number;
  /** Seconds of warm-up load before measuring. */
  readonly warmupSeconds: number;
  /** Sequential small requests per latency probe (figures 3 and 6). */
  readonly probeCount: number;
  /** Size of the single download and upload (figure 2) and of the fairness download. */
  readonly bulkSize: number;
  /** Size of each of the ten parallel downloads (figure 3). */
  readonly parallelSize: number;
  /** Seconds of each WebSocket echo run (figure 4). */
  readonly wsSeconds: number;
  /** Concurrent slow requests (figure 5). */
  readonly slowRequests: number;
  /** Bytes moved before the leak check (figure 5). */
  readonly moveSize: number;
  /** Rest after the loads before the leak check, seconds (the target says a minute). */
  readonly settleSeconds: number;
  /** Connected domains of the "many domains" idle figure (figure 5). */
  readonly domains: number;
}

/** The profiles: the full figures, a reduced one for checks, a tiny one for the test. */
export const PROFILES: Record<Profile["name"], Profile> = {
  full: {
    name: "full",
    loadSeconds: 10,
    loadRepeats: 2,
    warmupSeconds: 3,
    probeCount: 1000,
    bulkSize: 100 * MIB,
    parallelSize: 10 * MIB,
    wsSeconds: 5,
    slowRequests: 1000,
    moveSize: 1024 * MIB,
    settleSeconds: 60,
    domains: 100,
  },
  quick: {
    name: "quick",
    loadSeconds: 2,
    loadRepeats: 1,
    warmupSeconds: 1,
    probeCount: 200,
    bulkSize: 20 * MIB,
    parallelSize: 2 * MIB,
    wsSeconds: 1,
    slowRequests: 200,
    moveSize: 256 * MIB,
    settleSeconds: 3,
    domains: 20,
  },
  smoke: {
    name: "smoke",
    loadSeconds: 1,
    loadRepeats: 1,
    warmupSeconds: 0,
    probeCount: 50,
    bulkSize: 4 * MIB,
    parallelSize: 1 * MIB,
    wsSeconds: 0.5,
    slowRequests: 50,
    moveSize: 32 * MIB,
    settleSeconds: 0.2,
    domains: 3,
  },
};

/** Small response size of figure 1 and of the probes. */
const SMALL_SIZE = 100;
/** Parallel downloads of figure 3. */
const PARALLEL = 10;
/** WebSocket messages in flight: enough to keep the pipe busy, few enough to measure echoes. */
const WS_WINDOW = { small: 32, large: 8 } as const;

/** Upper bound of the fairness download loop (the bench stops it when the probe is done). */
const LOOP_LIMIT_SECONDS = 600;

const CLIENT = join(ROOT, "scripts", "bench", "client.ts");

/** The two ways to the backend: directly (the limit) and through groom. */
type Route = "direct" | "groom";

interface Options {
  readonly profile: Profile;
  readonly tool?: string;
  readonly out?: string;
  readonly protocols?: string;
  /** Folder for V8 CPU profiles of the server and the agent (`--cpu-prof`), written at exit. */
  readonly cpuProf?: string;
}

function parseArgs(args: readonly string[]): Options {
  let profile: Profile = PROFILES.full;
  let tool: string | undefined;
  let out: string | undefined;
  let protocols: string | undefined;
  let cpuProf: string | undefined;
  for (const arg of args) {
    const [key, value] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, ""];
    if (key === "--quick") profile = PROFILES.quick;
    else if (key === "--profile" && value in PROFILES) profile = PROFILES[value as Profile["name"]];
    else if (key === "--tool") tool = value;
    else if (key === "--out") out = value;
    else if (key === "--protocols") protocols = value;
    else if (key === "--cpu-prof" && value !== "") cpuProf = value;
    else throw new TypeError(`Cannot parse bench option "${arg}"`);
  }
  return {
    profile,
    ...(tool === undefined ? {} : { tool }),
    ...(out === undefined ? {} : { out }),
    ...(protocols === undefined ? {} : { protocols }),
    ...(cpuProf === undefined ? {} : { cpuProf }),
  };
}

/** Runs one client job in its own process. */
function client<T>(job: ClientJob): Promise<T & { errors: string[] }> {
  return runScript<T & { errors: string[] }>(CLIENT, [JSON.stringify(job)]);
}

/** Starts a long-running client job (`loop`, `hold`); `stop()` ends it and returns its result. */
function startClient<T>(
  job: ClientJob,
): { child: Child; stop(): Promise<T & { errors: string[] }> } {
  const child = new Child(job.op, Deno.execPath(), ["run", "-A", CLIENT, JSON.stringify(job)]);
  return {
    child,
    async stop() {
      await child.closeInput();
      await child.status();
      const last = [...child.lines()].reverse().find((line) => line.startsWith("{"));
      if (last === undefined) throw new Error(`client ${job.op} gave no result:\n${child.tail()}`);
      return JSON.parse(last) as T & { errors: string[] };
    },
  };
}

async function waitUntil(test: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function machine(tool: LoadTool) {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? cpu;
  } catch { /* not Linux */ }
  let toolVersion = tool === "deno" ? `deno ${Deno.version.deno}` : tool;
  if (tool === "wrk") {
    const output = await new Deno.Command("wrk", { args: ["-v"], stdout: "piped", stderr: "piped" })
      .output().catch(() => undefined);
    const text = output ? new TextDecoder().decode(output.stdout) : "";
    toolVersion = text.split("\n")[0]?.split(" [")[0]?.trim() || "wrk";
  } else if (tool === "autocannon") toolVersion = "autocannon 8.0.0 (npx)";
  let commit = "unknown";
  try {
    const rev = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    const dirty = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    commit = new TextDecoder().decode(rev.stdout).trim() +
      (new TextDecoder().decode(dirty.stdout).trim() === "" ? "" : "+dirty");
  } catch { /* no git */ }
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    memoryBytes: Deno.systemMemoryInfo().total,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadTool: toolVersion,
    loadAverageAtStart: Deno.loadavg(),
    commit,
  };
}

/** Runs the whole bench; returns the report (also printed and written). */
export async function runBench(options: Options): Promise<Report> {
  const profile = options.profile;
  const tool = await chooseTool(options.tool);
  const started = new Date();
  const log = (text: string) => console.error(`bench: ${text}`);
  log(`profile ${profile.name}, load tool ${tool}`);
  const env: Record<string, string> = options.protocols === undefined
    ? {}
    : { GROOM_AGENT_PROTOCOLS: options.protocols };
  const profiling = (who: string) =>
    options.cpuProf === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${join(options.cpuProf, who)}`];
  await using stack = await startStack({
    env,
    serverFlags: profiling("server"),
    agentFlags: profiling("agent"),
  });
  const pids = [stack.server.pid, stack.agent.pid];
  const direct = {
    origin: `https://127.0.0.1:${stack.backendPorts.tls}`,
    host: `localhost:${stack.backendPorts.tls}`,
  };
  const groom = {
    origin: `https://127.0.0.1:${stack.serverPort}`,
    host: `${DOMAIN}:${stack.serverPort}`,
  };
  const routes: Record<Route, Target> = { direct, groom };
  const errors: string[] = [];
  const note = (where: string, list: readonly string[] | undefined) => {
    for (const error of list ?? []) errors.push(`${where}: ${error}`);
  };
  const noteLoad = (where: string, result: LoadResult) => {
    if (result.errors > 0) errors.push(`${where}: ${result.errors} socket errors`);
    if (result.non2xx > 0) errors.push(`${where}: ${result.non2xx} non-2xx answers`);
  };

  // Idle memory with one connected domain, before any load.
  await sleep(Math.min(2000, profile.settleSeconds * 1000));
  const idle1 = pids.map(rssBytes);

  // 5. Memory per in-flight stream, on fresh processes (a warmed heap hides it).
  log(`${profile.slowRequests} concurrent slow requests`);
  const waiting = async () => {
    const response = await fetch(`http://127.0.0.1:${stack.backendPorts.plain}/stats`);
    return ((await response.json()) as { never: number }).never;
  };
  /** Holds the slow requests through `target`; RSS of `measured` before and during. */
  const holdSlow = async (target: Target, measured: readonly number[], what: string) => {
    const before = measured.map(rssBytes);
    const holder = startClient<{ errorCount: number; errors: string[] }>({
      op: "hold",
      ...target,
      count: profile.slowRequests,
    });
    await waitUntil(
      async () => (await waiting()) >= profile.slowRequests,
      60_000,
      "the slow requests to reach the backend",
    );
    await sleep(Math.min(500, profile.settleSeconds * 1000)); // let the allocations settle
    const during = measured.map(rssBytes);
    const held = await holder.stop();
    note(what, held.errors);
    await waitUntil(async () => (await waiting()) === 0, 30_000, "the slow requests to end");
    return { before, during };
  };
  // The reference first, on a fresh backend: what Deno's own HTTPS server (the backend) spends
  // per in-flight request, the floor for groom's server, which runs on the same server code.
  const directSlow = await holdSlow(direct, [stack.backend.pid], "slow requests direct");
  const { before: beforeSlow, during: duringSlow } = await holdSlow(groom, pids, "slow requests");

  // Idle again after the slow requests, before the other loads (context for the leak check).
  await sleep(Math.min(3000, profile.settleSeconds * 1000));
  const idleBeforeLoad = pids.map(rssBytes);

  /** Runs `step` for the direct route, then for groom. */
  const each = async <T>(step: (name: Route, target: Target) => Promise<T>) => {
    const direct = await step("direct", routes.direct);
    return { direct, groom: await step("groom", routes.groom) };
  };

  if (profile.warmupSeconds > 0) log("warming up");
  await each(async (name, target) => {
    if (profile.warmupSeconds === 0) return;
    noteLoad(
      `warm-up ${name}`,
      await runLoad(tool, {
        ...target,
        path: `/bytes?size=${SMALL_SIZE}`,
        connections: 10,
        seconds: profile.warmupSeconds,
      }),
    );
    const warm = await client<unknown>({ op: "download", ...target, size: 4 * MIB, parallel: 2 });
    note(`warm-up ${name}`, warm.errors);
  });

  // 1. Small responses; the RSS peak of groom's processes under the 50-connection load.
  let loadPeak: (number | undefined)[] = [];
  const smallLoad = (connections: number) =>
    each(async (name, target) => {
      log(`small responses, ${connections} connections, ${name}`);
      const sampler = name === "groom" && connections === 50 ? new RssSampler(pids) : undefined;
      let best: LoadResult | undefined;
      for (let run = 0; run < profile.loadRepeats; run++) {
        const result = await runLoad(tool, {
          ...target,
          path: `/bytes?size=${SMALL_SIZE}`,
          connections,
          seconds: profile.loadSeconds,
        });
        noteLoad(`small ${connections}c ${name}`, result);
        if (best === undefined || result.rps > best.rps) best = result;
      }
      if (sampler) loadPeak = sampler.stop();
      return best as LoadResult;
    });
  const small = { c10: await smallLoad(10), c50: await smallLoad(50) };

  // 6b. Idle latency probe: time to first byte, and the fairness baseline.
  const probes = await each(async (name, target) => {
    log(`latency probe, ${name}`);
    const result = await client<{ latency: Percentiles; ttfb: Percentiles }>({
      op: "probe",
      ...target,
      size: SMALL_SIZE,
      count: profile.probeCount,
    });
    note(`probe ${name}`, result.errors);
    return { latency: result.latency, ttfb: result.ttfb };
  });

  // 2. Bulk, one body each way; CPU of server + agent while groom moves them.
  const bulkRun = (direction: "download" | "upload") =>
    each(async (name, target) => {
      log(`bulk ${direction} of ${profile.bulkSize / MIB} MiB, ${name}`);
      const cpuBefore = totalCpu(pids);
      const result = await client<{ mbps: number; seconds: number }>(
        direction === "download"
          ? { op: "download", ...target, size: profile.bulkSize, parallel: 1 }
          : { op: "upload", ...target, size: profile.bulkSize },
      );
      const cpuAfter = totalCpu(pids);
      note(`bulk ${direction} ${name}`, result.errors);
      const cpuSeconds = name === "groom" && cpuBefore !== undefined && cpuAfter !== undefined
        ? cpuAfter - cpuBefore
        : undefined;
      return {
        mbps: result.mbps,
        seconds: result.seconds,
        ...(cpuSeconds === undefined ? {} : { cpuSeconds }),
      };
    });
  const bulk = { download: await bulkRun("download"), upload: await bulkRun("upload") };

  // 3. Ten parallel downloads, then fairness.
  const parallel = await each(async (name, target) => {
    log(`${PARALLEL} parallel downloads of ${profile.parallelSize / MIB} MiB, ${name}`);
    const result = await client<{ mbps: number; seconds: number }>({
      op: "download",
      ...target,
      size: profile.parallelSize,
      parallel: PARALLEL,
    });
    note(`parallel ${name}`, result.errors);
    return { mbps: result.mbps, seconds: result.seconds };
  });
  const fairness = await each(async (name, target) => {
    log(`fairness: small requests during ${profile.bulkSize / MIB} MiB downloads, ${name}`);
    const bulkLoop = startClient<{ mbps: number; downloads: number }>({
      op: "loop",
      ...target,
      size: profile.bulkSize,
      seconds: LOOP_LIMIT_SECONDS,
    });
    await bulkLoop.child.waitFor((line) => line === "started");
    const probe = await client<{ latency: Percentiles }>({
      op: "probe",
      ...target,
      size: SMALL_SIZE,
      count: profile.probeCount,
    });
    const loop = await bulkLoop.stop();
    note(`fairness probe ${name}`, probe.errors);
    note(`fairness download ${name}`, loop.errors);
    return {
      idle: probes[name].latency,
      loaded: probe.latency,
      downloadMbps: loop.mbps,
      downloads: loop.downloads,
    };
  });

  // 4. WebSocket echo.
  const wsRun = (label: string, size: number, window: number) =>
    each(async (name) => {
      log(`WebSocket echo ${label}, ${name}`);
      const port = name === "direct" ? stack.backendPorts.tls : stack.serverPort;
      const result = await client<{ messagesPerSecond: number; mbps: number }>({
        op: "ws",
        url: `wss://localhost:${port}/ws`,
        size,
        window,
        seconds: profile.wsSeconds,
      });
      note(`ws ${label} ${name}`, result.errors);
      return { messagesPerSecond: result.messagesPerSecond, mbps: result.mbps };
    });
  const ws = {
    "1KiB": await wsRun("1 KiB", 1024, WS_WINDOW.small),
    "64KiB": await wsRun("64 KiB", 64 * 1024, WS_WINDOW.large),
  };

  // 6a. Move a lot, measure CPU, then rest and check memory returns.
  log(`moving ${profile.moveSize / MIB} MiB`);
  const cpuBeforeMove = totalCpu(pids);
  const moved = await client<{ mbps: number; seconds: number }>({
    op: "download",
    ...groom,
    size: profile.moveSize,
    parallel: 1,
  });
  const cpuAfterMove = totalCpu(pids);
  note("move", moved.errors);
  log(`resting ${profile.settleSeconds} s`);
  await sleep(profile.settleSeconds * 1000);
  const afterRest = pids.map(rssBytes);

  // 5. Many domains, one tunnel each, idle (last: the heap they grow is not given back).
  log(`${profile.domains} connected domains`);
  await stack.addDomains(profile.domains - 1);
  await sleep(Math.min(3000, profile.settleSeconds * 1000));
  const idleMany = pids.map(rssBytes);
  await stack.removeDomains();

  for (const child of [stack.server, stack.agent]) {
    for (const line of child.lines()) {
      if (/"(ERROR|error)"|panicked|Uncaught/.test(line) && !/"event":"config"/.test(line)) {
        errors.push(`${child.name} log: ${line.slice(0, 300)}`);
      }
    }
  }

  const gib = (bytes: number) => bytes / (1024 * MIB);
  const pair = (values: (number | undefined)[]) => ({ server: values[0], agent: values[1] });
  const report: Report = {
    date: started.toISOString(),
    profile: profile.name,
    tool,
    loadRepeats: profile.loadRepeats,
    machine: await machine(tool),
    protocol: stack.protocol,
    procAvailable: procAvailable(),
    figures: {
      small,
      probes,
      bulk,
      parallel,
      fairness,
      ws,
      memory: {
        idle1: pair(idle1),
        idleMany: { domains: profile.domains, tls: stack.extraDomainTls, ...pair(idleMany) },
        loadPeak50: pair(loadPeak),
        perStream: {
          streams: profile.slowRequests,
          before: pair(beforeSlow),
          during: pair(duringSlow),
          server: perStream(beforeSlow[0], duringSlow[0], profile.slowRequests),
          agent: perStream(beforeSlow[1], duringSlow[1], profile.slowRequests),
          direct: perStream(directSlow.before[0], directSlow.during[0], profile.slowRequests),
        },
        idleBeforeLoad: pair(idleBeforeLoad),
        afterMove: {
          movedBytes: profile.moveSize,
          restSeconds: profile.settleSeconds,
          ...pair(afterRest),
        },
      },
      cpu: {
        downloadPerGiB: cpuBeforeMove === undefined || cpuAfterMove === undefined
          ? undefined
          : (cpuAfterMove - cpuBeforeMove) / gib(profile.moveSize),
        uploadPerGiB: bulk.upload.groom.cpuSeconds === undefined
          ? undefined
          : bulk.upload.groom.cpuSeconds / gib(profile.bulkSize),
        moveMbps: moved.mbps,
      },
      ttfb: {
        direct: probes.direct.ttfb,
        groom: probes.groom.ttfb,
        addedP50: probes.groom.ttfb.p50 - probes.direct.ttfb.p50,
        addedP99: probes.groom.ttfb.p99 - probes.direct.ttfb.p99,
      },
    },
    errors,
    targets: [],
  };
  report.targets.push(...evaluateTargets(report));
  return report;
}

function perStream(before: number | undefined, during: number | undefined, count: number) {
  return before === undefined || during === undefined ? undefined : (during - before) / count;
}

if (import.meta.main) {
  const options = parseArgs(Deno.args);
  const report = await runBench(options);
  const markdown = markdownReport(report);
  console.log(markdown);
  const out = options.out ??
    join(ROOT, "bench", "results", `${report.date.replace(/[:.]/g, "-")}.json`);
  await Deno.mkdir(join(out, ".."), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
  console.error(`bench: results written to ${out}`);
  Deno.exit(report.errors.length === 0 ? 0 : 1);
}
