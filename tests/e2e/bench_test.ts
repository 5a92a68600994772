/**
 * `deno task bench` in its smallest form (issue 7): the smoke profile starts the bench backend, a
 * groom server and a groom agent as processes, runs every figure with tiny sizes, and writes the
 * JSON report. The test checks the report has every figure and that nothing failed (no errors, no
 * non-2xx answers). It asserts no speed: speed targets live in the bench output, not in tests.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../_harness/groom_process.ts";

/** wrk when installed (as the bench would choose), else the bench's own Deno client. */
async function loadTool(): Promise<string> {
  try {
    const which = await new Deno.Command("sh", {
      args: ["-c", "command -v wrk"],
      stdout: "null",
      stderr: "null",
    }).output();
    return which.success ? "wrk" : "deno";
  } catch {
    return "deno";
  }
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Every leaf under `value` that should be a number and is not, as dotted paths. */
function missingNumbers(value: unknown, path: string, out: string[]): string[] {
  if (value === null || value === undefined) out.push(path);
  else if (typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) missingNumbers(inner, `${path}.${key}`, out);
  } else if (typeof value === "number" && !Number.isFinite(value)) out.push(path);
  return out;
}

Deno.test("deno task bench --profile=smoke writes every figure of issue 7 with no errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "groom-bench-test-" });
  try {
    const out = join(dir, "report.json");
    const tool = await loadTool();
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        join(ROOT, "scripts", "bench.ts"),
        "--profile=smoke",
        `--tool=${tool}`,
        `--out=${out}`,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench failed:\n${stdout}\n${stderr}`);
    // The markdown table is printed.
    assert.match(stdout, /\| 100 B responses, 50 connections: requests\/s \|/);

    const report = JSON.parse(await Deno.readTextFile(out));
    assert.deepEqual(report.errors, []);
    assert.equal(report.profile, "smoke");
    assert.equal(report.tool, tool);
    const f = report.figures;
    // 1. small responses at 10 and 50 connections, both routes.
    for (const c of ["c10", "c50"]) {
      for (const route of ["direct", "groom"]) {
        const load = f.small[c][route];
        assert.ok(load.requests > 0, `${c} ${route} made no request`);
        for (const key of ["rps", "p50", "p99", "p999"]) {
          const value = key === "rps" ? load.rps : load.latency[key];
          assert.ok(isFiniteNumber(value), `${c} ${route} ${key}`);
        }
        assert.equal(load.errors, 0);
        assert.equal(load.non2xx, 0);
      }
    }
    // 2.–4. bulk both ways, parallel, fairness, WebSocket, on both routes.
    for (const route of ["direct", "groom"]) {
      assert.ok(f.bulk.download[route].mbps > 0);
      assert.ok(f.bulk.upload[route].mbps > 0);
      assert.ok(f.parallel[route].mbps > 0);
      assert.ok(isFiniteNumber(f.fairness[route].idle.p99));
      assert.ok(isFiniteNumber(f.fairness[route].loaded.p99));
      assert.ok(f.fairness[route].downloads >= 1);
      assert.ok(f.ws["1KiB"][route].messagesPerSecond > 0);
      assert.ok(f.ws["64KiB"][route].messagesPerSecond > 0);
    }
    // 5. and 6.: memory and CPU figures (numbers on Linux, absent where /proc is missing).
    if (report.procAvailable) {
      assert.deepEqual(missingNumbers(f.memory, "memory", []), []);
      assert.ok(isFiniteNumber(f.cpu.downloadPerGiB));
      assert.ok(isFiniteNumber(f.cpu.uploadPerGiB));
    }
    assert.ok(isFiniteNumber(f.ttfb.addedP50));
    assert.ok(isFiniteNumber(f.ttfb.addedP99));
    // Every target of the issue is evaluated.
    assert.equal(report.targets.length, 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
