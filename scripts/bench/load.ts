/**
 * Closed-loop HTTP load for `deno task bench`: `wrk` when installed (a Lua `done` hook prints the
 * percentiles and error counts as JSON), else `autocannon` from npm (through `npx`, with the test
 * CA in `NODE_EXTRA_CA_CERTS`), else the bench's own Deno client. Every tool keeps `connections`
 * keep-alive HTTP/1.1 connections busy for `seconds` and reports requests/s, latency percentiles
 * in milliseconds, errors and non-2xx answers in one shape.
 * @module
 */

import { join } from "node:path";
import type { Percentiles, Target } from "./client.ts";
import { runScript } from "./procs.ts";
import { CA_FILE, ROOT } from "./stack.ts";

/** The load generators the bench knows. */
export type LoadTool = "wrk" | "autocannon" | "deno";

/** autocannon version run through npx (pinned, so runs compare). */
const AUTOCANNON = "autocannon@8.0.0";
/** wrk threads: one per core of the 2-core reference machine. */
const WRK_THREADS = 2;

/** One load run's figures. */
export interface LoadResult {
  readonly tool: LoadTool;
  readonly connections: number;
  readonly seconds: number;
  readonly requests: number;
  readonly rps: number;
  readonly latency: Percentiles;
  /** Socket errors and timeouts. */
  readonly errors: number;
  /** Answers outside 2xx (wrk counts those above 399). */
  readonly non2xx: number;
}

/** One load run. */
export interface LoadJob extends Target {
  readonly path: string;
  readonly connections: number;
  readonly seconds: number;
}

const WRK_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%.1f,"p99":%.1f,"p999":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`;

async function commandWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    const output = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return output.success;
  } catch {
    return false;
  }
}

/** The tool to use: `wanted` when given, else wrk, else autocannon (if npx can run it), else deno. */
export async function chooseTool(wanted?: string): Promise<LoadTool> {
  if (wanted === "wrk" || wanted === "autocannon" || wanted === "deno") return wanted;
  if (wanted !== undefined && wanted !== "auto") {
    throw new TypeError(`Cannot use load tool "${wanted}": use wrk, autocannon, deno or auto`);
  }
  // `wrk -v` exits 1 on some builds, so ask the shell whether it is on the PATH.
  if (await commandWorks("sh", ["-c", "command -v wrk"])) return "wrk";
  if (await commandWorks("npx", ["--yes", AUTOCANNON, "--version"])) return "autocannon";
  return "deno";
}

async function runWrk(job: LoadJob): Promise<LoadResult> {
  const script = await Deno.makeTempFile({ prefix: "groom-bench-", suffix: ".lua" });
  try {
    await Deno.writeTextFile(script, WRK_SCRIPT);
    const threads = Math.min(WRK_THREADS, job.connections);
    const output = await new Deno.Command("wrk", {
      args: [
        `-t${threads}`,
        `-c${job.connections}`,
        `-d${Math.max(1, Math.round(job.seconds))}s`,
        "--timeout",
        "10s",
        "-s",
        script,
        "-H",
        `Host: ${job.host}`,
        job.origin + job.path,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    const line = text.split("\n").find((l) => l.startsWith("WRKJSON "));
    if (line === undefined) {
      throw new Error(
        `wrk printed no result:\n${text}\n${new TextDecoder().decode(output.stderr)}`,
      );
    }
    const r = JSON.parse(line.slice(8)) as Record<string, number>;
    const seconds = (r.duration_us ?? 0) / 1e6;
    const requests = r.requests ?? 0;
    return {
      tool: "wrk",
      connections: job.connections,
      seconds,
      requests,
      rps: requests / seconds,
      latency: {
        p50: (r.p50 ?? 0) / 1000,
        p99: (r.p99 ?? 0) / 1000,
        p999: (r.p999 ?? 0) / 1000,
        count: requests,
      },
      errors: (r.connect ?? 0) + (r.read ?? 0) + (r.write ?? 0) + (r.timeout ?? 0),
      non2xx: r.status ?? 0,
    };
  } finally {
    await Deno.remove(script).catch(() => {});
  }
}

async function runAutocannon(job: LoadJob): Promise<LoadResult> {
  const output = await new Deno.Command("npx", {
    args: [
      "--yes",
      AUTOCANNON,
      "--json",
      "-c",
      String(job.connections),
      "-d",
      String(job.seconds),
      "-H",
      `host=${job.host}`,
      job.origin + job.path,
    ],
    env: { NODE_EXTRA_CA_CERTS: CA_FILE },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const start = text.indexOf("{");
  if (start < 0) {
    throw new Error(`autocannon printed no result:\n${new TextDecoder().decode(output.stderr)}`);
  }
  // deno-lint-ignore no-explicit-any
  const r = JSON.parse(text.slice(start)) as any;
  const requests = Number(r.requests?.total ?? 0);
  const seconds = Number(r.duration ?? job.seconds);
  return {
    tool: "autocannon",
    connections: job.connections,
    seconds,
    requests,
    rps: requests / seconds,
    latency: {
      p50: Number(r.latency?.p50 ?? 0),
      p99: Number(r.latency?.p99 ?? 0),
      p999: Number(r.latency?.p99_9 ?? 0),
      count: requests,
    },
    errors: Number(r.errors ?? 0) + Number(r.timeouts ?? 0),
    non2xx: Number(r.non2xx ?? 0),
  };
}

async function runDeno(job: LoadJob): Promise<LoadResult> {
  const r = await runScript<{
    requests: number;
    seconds: number;
    rps: number;
    latency: Percentiles;
    non2xx: number;
    errors: number;
  }>(join(ROOT, "scripts", "bench", "client.ts"), [JSON.stringify({ op: "load", ...job })]);
  return {
    tool: "deno",
    connections: job.connections,
    seconds: r.seconds,
    requests: r.requests,
    rps: r.rps,
    latency: r.latency,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

/** Runs one closed-loop load with `tool`. */
export function runLoad(tool: LoadTool, job: LoadJob): Promise<LoadResult> {
  switch (tool) {
    case "wrk":
      return runWrk(job);
    case "autocannon":
      return runAutocannon(job);
    case "deno":
      return runDeno(job);
  }
}
