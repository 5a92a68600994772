/**
 * The GitHub Actions workflows (issue #5; PKG-6): actionlint finds nothing in them, CI covers the
 * three operating systems, and the release builds every target, the zip and both Debian packages
 * and attaches them with their checksums.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { lintWorkflows } from "../../scripts/actionlint.ts";
import { ROOT } from "../_harness/groom_process.ts";

const WORKFLOWS = join(ROOT, ".github", "workflows");

Deno.test("actionlint finds nothing in .github/workflows (issue #5)", async () => {
  const { files, findings } = await lintWorkflows(ROOT);
  assert.deepEqual(files.map((file) => file.slice(WORKFLOWS.length + 1)), [
    "ci.yml",
    "release.yml",
  ]);
  assert.deepEqual(findings, []);
});

Deno.test("the workflow linter reports a broken workflow", async () => {
  const dir = await Deno.makeTempDir({ prefix: "groom-workflows-" });
  try {
    await Deno.mkdir(join(dir, ".github", "workflows"), { recursive: true });
    await Deno.writeTextFile(
      join(dir, ".github", "workflows", "bad.yml"),
      "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [nothing]\n" +
        "    steps:\n      - run: echo ${{ matrix.nope }}\n",
    );
    const { findings } = await lintWorkflows(dir);
    assert.deepEqual(findings.map((f) => f.kind).sort(), ["expression", "job-needs"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CI checks and tests on Linux, macOS and Windows; the release ships zip, .debs and SHA256SUMS (PKG-6)", async () => {
  const ci = await Deno.readTextFile(join(WORKFLOWS, "ci.yml"));
  assert.match(ci, /os: \[ubuntu-latest, macos-latest, windows-latest\]/);
  for (const step of ["deno fmt --check", "deno lint", "deno check", "deno task test"]) {
    assert.ok(ci.includes(`run: ${step}`), step);
  }
  const release = await Deno.readTextFile(join(WORKFLOWS, "release.yml"));
  assert.match(release, /tags: \["v\*"\]/);
  for (
    const line of [
      "deno task build --target all",
      "deno task deb --arch amd64 dist/compile/groom",
      "deno task deb --arch arm64 dist/compile/groom",
      `sha256sum "groom_\${VERSION}.zip" groom_*.deb > SHA256SUMS`,
      `"dist/groom_\${VERSION}.zip" dist/groom_*.deb dist/SHA256SUMS`,
    ]
  ) assert.ok(release.includes(line), line);
});
