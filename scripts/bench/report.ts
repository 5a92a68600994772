/**
 * The report of `deno task bench`: the JSON shape written to `bench/results/`, the targets
 * checked against it, and the markdown table printed (and pasted into the README).
 * @module
 */

import type { LoadResult } from "./load.ts";
import type { Percentiles } from "./client.ts";

/** RSS (bytes) of the two groom processes; `undefined` where /proc is missing. */
export interface Pair {
  readonly server: number | undefined;
  readonly agent: number | undefined;
}

/** Everything one run measured. */
export interface Report {
  readonly date: string;
  readonly profile: string;
  /** The load generator of figure 1: `wrk`, `autocannon` or `deno`. */
  readonly tool: string;
  /** Runs of each figure-1 load; the best is reported. */
  readonly loadRepeats: number;
  readonly machine: {
    readonly cores: number;
    readonly cpu: string;
    readonly memoryBytes: number;
    readonly os: string;
    readonly deno: string;
    readonly v8: string;
    readonly loadTool: string;
    readonly loadAverageAtStart: number[];
    readonly commit: string;
  };
  /** The tunnel's sub-protocol in force. */
  readonly protocol: string;
  readonly procAvailable: boolean;
  readonly figures: {
    readonly small: Record<string, Record<string, LoadResult>>;
    readonly probes: Record<string, { latency: Percentiles; ttfb: Percentiles }>;
    readonly bulk: Record<
      string,
      Record<string, { mbps: number; seconds: number; cpuSeconds?: number }>
    >;
    readonly parallel: Record<string, { mbps: number; seconds: number }>;
    readonly fairness: Record<
      string,
      { idle: Percentiles; loaded: Percentiles; downloadMbps: number; downloads: number }
    >;
    readonly ws: Record<string, Record<string, { messagesPerSecond: number; mbps: number }>>;
    readonly memory: {
      readonly idle1: Pair;
      readonly idleMany: Pair & {
        readonly domains: number;
        /** How the extra domains' agents dial: `verified` TLS, or `insecure` without openssl. */
        readonly tls: string;
      };
      readonly loadPeak50: Pair;
      readonly perStream: {
        readonly streams: number;
        readonly before: Pair;
        readonly during: Pair;
        readonly server: number | undefined;
        readonly agent: number | undefined;
        /** The same requests straight to the backend (Deno's HTTPS server): its RSS per request. */
        readonly direct?: number | undefined;
      };
      /** After the slow-request step, before the other loads (context for the leak check). */
      readonly idleBeforeLoad: Pair;
      readonly afterMove: Pair & { readonly movedBytes: number; readonly restSeconds: number };
    };
    readonly cpu: {
      readonly downloadPerGiB: number | undefined;
      readonly uploadPerGiB: number | undefined;
      readonly moveMbps: number;
    };
    readonly ttfb: {
      readonly direct: Percentiles;
      readonly groom: Percentiles;
      readonly addedP50: number;
      readonly addedP99: number;
    };
  };
  /** Every error and non-2xx seen, by step; empty when the run was clean. */
  readonly errors: string[];
  readonly targets: Target[];
}

/** One target of the issue and whether this run met it. */
export interface Target {
  readonly name: string;
  readonly target: string;
  readonly measured: string;
  /** `undefined` when the figure is not available here (no /proc). */
  readonly met: boolean | undefined;
}

const MB = 1e6;

function fixed(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

function mb(bytes: number | undefined): string {
  return bytes === undefined ? "n/a" : `${(bytes / MB).toFixed(1)} MB`;
}

function kb(bytes: number | undefined): string {
  return bytes === undefined ? "n/a" : `${(bytes / 1000).toFixed(1)} KB`;
}

function ratio(groom: number | undefined, direct: number | undefined): number | undefined {
  return groom === undefined || direct === undefined || direct === 0 ? undefined : groom / direct;
}

function both(test: (value: number) => boolean, pair: Pair): boolean | undefined {
  if (pair.server === undefined || pair.agent === undefined) return undefined;
  return test(pair.server) && test(pair.agent);
}

/** The targets, checked against `report`. */
export function evaluateTargets(report: Report): Target[] {
  const f = report.figures;
  const c50 = ratio(f.small.c50?.groom?.rps, f.small.c50?.direct?.rps);
  const addedP99 = (f.small.c10?.groom?.latency.p99 ?? NaN) -
    (f.small.c10?.direct?.latency.p99 ?? NaN);
  const down = ratio(f.bulk.download?.groom?.mbps, f.bulk.download?.direct?.mbps);
  const up = ratio(f.bulk.upload?.groom?.mbps, f.bulk.upload?.direct?.mbps);
  const fair = f.fairness.groom === undefined
    ? undefined
    : f.fairness.groom.loaded.p99 / f.fairness.groom.idle.p99;
  const memory = f.memory;
  const perStream = { server: memory.perStream.server, agent: memory.perStream.agent };
  // Strict: against the fresh idle level, before any load (the 1,000 slow requests included).
  const idle = memory.idle1;
  const after = memory.afterMove;
  const returned: Pair = {
    server: after.server === undefined || idle.server === undefined
      ? undefined
      : after.server / idle.server,
    agent: after.agent === undefined || idle.agent === undefined
      ? undefined
      : after.agent / idle.agent,
  };
  return [
    {
      name: "small responses, requests/s at 50 connections",
      target: ">= 0.25 x direct (stretch 0.5 x)",
      measured: `${fixed(c50, 2)} x`,
      met: c50 === undefined ? undefined : c50 >= 0.25,
    },
    {
      name: "added p99 at 10 connections",
      target: "<= 2 ms",
      measured: `${fixed(addedP99, 2)} ms`,
      met: Number.isFinite(addedP99) ? addedP99 <= 2 : undefined,
    },
    {
      name: "bulk download, one body",
      target: ">= 0.6 x direct MB/s",
      measured: `${fixed(down, 2)} x`,
      met: down === undefined ? undefined : down >= 0.6,
    },
    {
      name: "bulk upload, one body",
      target: ">= 0.6 x direct MB/s",
      measured: `${fixed(up, 2)} x`,
      met: up === undefined ? undefined : up >= 0.6,
    },
    {
      name: "fairness: small-request p99 during a download",
      target: "<= 2 x idle p99",
      measured: `${fixed(fair, 2)} x`,
      met: fair === undefined ? undefined : fair <= 2,
    },
    {
      name: "memory per in-flight stream",
      target: "<= 50 KB (server and agent)",
      measured: `server ${kb(perStream.server)}, agent ${kb(perStream.agent)}`,
      met: both((v) => v <= 50_000, perStream),
    },
    {
      name: "RSS under the 50-connection load",
      target: "<= 100 MB each",
      measured: `server ${mb(memory.loadPeak50.server)}, agent ${mb(memory.loadPeak50.agent)}`,
      met: both((v) => v <= 100 * MB, memory.loadPeak50),
    },
    {
      name: `RSS ${after.restSeconds} s after the loads (no leak)`,
      target: "within 10 % of the fresh idle RSS",
      measured: `server ${fixed(returned.server, 2)} x, agent ${fixed(returned.agent, 2)} x idle`,
      met: both((v) => v <= 1.1, returned),
    },
    {
      name: "errors and non-2xx answers",
      target: "none",
      measured: String(report.errors.length),
      met: report.errors.length === 0,
    },
  ];
}

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** The markdown report: machine line, the figures table, the targets table. */
export function markdownReport(report: Report): string {
  const f = report.figures;
  const m = report.machine;
  const lines: string[] = [];
  lines.push(
    `Run ${report.date} (${report.profile} profile, figure 1 best of ${report.loadRepeats}), ` +
      `${m.cores} cores (${m.cpu}), ${m.os}, ` +
      `Deno ${m.deno}, load tool ${m.loadTool}, tunnel protocol ${report.protocol}, commit ${m.commit}, ` +
      `load average at start ${m.loadAverageAtStart.map((v) => v.toFixed(2)).join(" ")}.`,
    "",
  );
  lines.push(row(["figure", "direct", "groom", "groom / direct"]));
  lines.push(row(["---", "---:", "---:", "---:"]));
  for (const c of ["c10", "c50"]) {
    const d = f.small[c]?.direct;
    const g = f.small[c]?.groom;
    const n = c.slice(1);
    lines.push(
      row([
        `100 B responses, ${n} connections: requests/s`,
        fixed(d?.rps, 0),
        fixed(g?.rps, 0),
        fixed(ratio(g?.rps, d?.rps), 2),
      ]),
    );
    lines.push(row([
      `… latency p50 / p99 / p99.9 (ms)`,
      `${fixed(d?.latency.p50, 2)} / ${fixed(d?.latency.p99, 2)} / ${fixed(d?.latency.p999, 2)}`,
      `${fixed(g?.latency.p50, 2)} / ${fixed(g?.latency.p99, 2)} / ${fixed(g?.latency.p999, 2)}`,
      "",
    ]));
  }
  for (const direction of ["download", "upload"]) {
    const d = f.bulk[direction]?.direct;
    const g = f.bulk[direction]?.groom;
    lines.push(
      row([
        `one ${report.profile === "full" ? "100 MiB" : "bulk"} ${direction}: MB/s`,
        fixed(d?.mbps),
        fixed(g?.mbps),
        fixed(ratio(g?.mbps, d?.mbps), 2),
      ]),
    );
  }
  lines.push(row([
    "10 parallel downloads: aggregate MB/s",
    fixed(f.parallel.direct?.mbps),
    fixed(f.parallel.groom?.mbps),
    fixed(ratio(f.parallel.groom?.mbps, f.parallel.direct?.mbps), 2),
  ]));
  const fd = f.fairness.direct;
  const fg = f.fairness.groom;
  lines.push(row([
    "small-request p99 idle → during a download (ms)",
    `${fixed(fd?.idle.p99, 2)} → ${fixed(fd?.loaded.p99, 2)} (${
      fixed(fd && fd.loaded.p99 / fd.idle.p99, 2)
    } x)`,
    `${fixed(fg?.idle.p99, 2)} → ${fixed(fg?.loaded.p99, 2)} (${
      fixed(fg && fg.loaded.p99 / fg.idle.p99, 2)
    } x)`,
    "",
  ]));
  for (const label of ["1KiB", "64KiB"]) {
    const d = f.ws[label]?.direct;
    const g = f.ws[label]?.groom;
    lines.push(row([
      `WebSocket echo ${label.replace("KiB", " KiB")}: messages/s`,
      fixed(d?.messagesPerSecond, 0),
      fixed(g?.messagesPerSecond, 0),
      fixed(ratio(g?.messagesPerSecond, d?.messagesPerSecond), 2),
    ]));
  }
  lines.push(row([
    "time to first byte p50 / p99 (ms), sequential 100 B",
    `${fixed(f.ttfb.direct.p50, 2)} / ${fixed(f.ttfb.direct.p99, 2)}`,
    `${fixed(f.ttfb.groom.p50, 2)} / ${fixed(f.ttfb.groom.p99, 2)}`,
    `+${fixed(f.ttfb.addedP50, 2)} / +${fixed(f.ttfb.addedP99, 2)} ms`,
  ]));
  lines.push("", row(["groom process figure", "server", "agent"]), row(["---", "---:", "---:"]));
  const mem = f.memory;
  lines.push(row(["RSS idle, 1 domain", mb(mem.idle1.server), mb(mem.idle1.agent)]));
  lines.push(
    row([
      `RSS idle, ${mem.idleMany.domains} domains (one tunnel each)`,
      mb(mem.idleMany.server),
      mb(mem.idleMany.agent),
    ]),
  );
  lines.push(
    row([
      "RSS idle after the slow requests, before the other loads",
      mb(mem.idleBeforeLoad.server),
      mb(mem.idleBeforeLoad.agent),
    ]),
  );
  lines.push(
    row([
      "RSS peak under the 50-connection load",
      mb(mem.loadPeak50.server),
      mb(mem.loadPeak50.agent),
    ]),
  );
  lines.push(
    row([
      `RSS per in-flight stream (${mem.perStream.streams} slow requests)`,
      kb(mem.perStream.server),
      kb(mem.perStream.agent),
    ]),
  );
  lines.push(
    row([
      "… the same requests straight to the backend (Deno.serve over TLS)",
      kb(mem.perStream.direct),
      "",
    ]),
  );
  lines.push(row([
    `RSS after moving ${
      (mem.afterMove.movedBytes / 2 ** 20).toFixed(0)
    } MiB and ${mem.afterMove.restSeconds} s of rest`,
    mb(mem.afterMove.server),
    mb(mem.afterMove.agent),
  ]));
  lines.push(row([
    "CPU s per GiB (server + agent): download / upload",
    `${fixed(f.cpu.downloadPerGiB, 2)} / ${fixed(f.cpu.uploadPerGiB, 2)}`,
    "",
  ]));
  lines.push("", row(["target", "wanted", "measured", "met"]), row(["---", "---", "---", "---"]));
  for (const t of report.targets) {
    lines.push(
      row([t.name, t.target, t.measured, t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"]),
    );
  }
  if (report.errors.length > 0) {
    lines.push(
      "",
      `Errors (${report.errors.length}):`,
      ...report.errors.slice(0, 20).map((e) => `- ${e}`),
    );
  }
  return lines.join("\n");
}
