/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`, or `deno task bench --cpu-prof=DIR`): the
 * functions with the most self time, and the time spent under each groom source file or Deno
 * extension (inclusive), both as shares of the busy (non-idle) samples. The evidence behind the
 * README's performance notes. Usage:
 * `deno run --allow-read scripts/bench/profile_top.ts FILE.cpuprofile [top=30]`
 * @module
 */

/** One node of V8's `.cpuprofile` call tree. */
interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

/** The parts of a `.cpuprofile` used here. */
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** A line of the summary: a name and its share of the busy samples, in percent. */
export interface Share {
  readonly name: string;
  readonly percent: number;
}

/** The summary of one profile. */
export interface ProfileSummary {
  /** Profiled wall time in milliseconds. */
  readonly wallMs: number;
  /** Share of the samples where the thread was idle, in percent. */
  readonly idlePercent: number;
  /** Functions by self time (`name file:line`). */
  readonly self: Share[];
  /** Groom source files (`src/…`) and Deno extensions (`ext:deno_…`) by inclusive time. */
  readonly inclusive: Share[];
}

const IDLE = new Set(["(idle)"]);

function shortUrl(url: string): string {
  const src = url.indexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  if (url.startsWith("ext:")) return url.split("/")[0] ?? url;
  return url;
}

/** Summarises `profile`, keeping the `top` largest entries of each list. */
export function summarise(profile: CpuProfile, top = 30): ProfileSummary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const counts = new Map<number, number>();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  let idle = 0;
  let busy = 0;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, count] of counts) {
    const frame = nodes.get(id)?.callFrame;
    if (frame === undefined) continue;
    if (IDLE.has(frame.functionName)) {
      idle += count;
      continue;
    }
    busy += count;
    const key = `${frame.functionName || "(anonymous)"} ${shortUrl(frame.url)}:${
      frame.lineNumber + 1
    }`;
    self.set(key, (self.get(key) ?? 0) + count);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const file = shortUrl(nodes.get(at)?.callFrame.url ?? "");
      if ((file.startsWith("src/") || file.startsWith("ext:")) && !seen.has(file)) {
        seen.add(file);
        inclusive.set(file, (inclusive.get(file) ?? 0) + count);
      }
    }
  }
  const shares = (map: Map<string, number>): Share[] =>
    [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, count]) => ({
      name,
      percent: busy === 0 ? 0 : (count / busy) * 100,
    }));
  const total = idle + busy;
  return {
    wallMs: (profile.endTime - profile.startTime) / 1000,
    idlePercent: total === 0 ? 0 : (idle / total) * 100,
    self: shares(self),
    inclusive: shares(inclusive),
  };
}

if (import.meta.main) {
  const file = Deno.args[0];
  if (file === undefined) {
    console.error("usage: profile_top.ts FILE.cpuprofile [top]");
    Deno.exit(1);
  }
  const summary = summarise(
    JSON.parse(await Deno.readTextFile(file)) as CpuProfile,
    Number(Deno.args[1] ?? 30),
  );
  console.log(
    `${file}: ${summary.wallMs.toFixed(0)} ms profiled, ${
      summary.idlePercent.toFixed(1)
    } % idle (shares below are of the busy samples)`,
  );
  console.log("\nself time:");
  for (const { name, percent } of summary.self) {
    console.log(`${percent.toFixed(1).padStart(6)} %  ${name}`);
  }
  console.log("\ninclusive, by file:");
  for (const { name, percent } of summary.inclusive) {
    console.log(`${percent.toFixed(1).padStart(6)} %  ${name}`);
  }
}
