/**
 * Enforces the module boundaries of the architecture note: a file outside a `src/<concern>/`
 * folder imports only that folder's `mod.ts`; the leaf concerns import nothing else from `src/`;
 * concerns form no cycle; no `jsr:` or `https:` imports anywhere (JSR is unreachable here).
 * Prints every violation and exits 1 when there is one.
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
/** Concerns that must not import any other concern. */
const LEAVES = new Set(["protocol", "acl", "log", "sys"]);
/** Allowed concern → concern edges (the dependency direction of the architecture note). */
const ALLOWED: Record<string, string[]> = {
  cli: ["config", "log", "acl", "server", "agent", "domains", "tls", "sys"],
  server: ["tunnel", "protocol", "domains", "acl", "tls", "config", "log", "sys"],
  agent: ["tunnel", "protocol", "domains", "config", "log", "acl", "sys"],
  tunnel: ["protocol", "log"],
  domains: ["config", "log", "acl"],
  tls: ["log"],
  config: ["acl"],
  protocol: [],
  acl: [],
  log: [],
  sys: [],
};
const IMPORT_REGEXP =
  /(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g;

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && !["node_modules", "testdata", "tools", "dist"].includes(entry.name)) {
      yield* walk(path);
    } else if (entry.isFile && /\.(ts|tsx|js)$/.test(entry.name)) {
      yield path;
    }
  }
}

function concernOf(file: string): string | undefined {
  const rel = relative(join(ROOT, "src"), file);
  if (rel.startsWith("..")) return undefined;
  return rel.split(/[\\/]/)[0];
}

const problems: string[] = [];
const edges = new Map<string, Set<string>>();
let files = 0;
for (const top of ["main.ts", "src", "tests", "scripts"]) {
  const start = join(ROOT, top);
  const info = await Deno.stat(start).catch(() => undefined);
  if (!info) continue;
  const list = info.isFile ? [start] : await Array.fromAsync(walk(start));
  for (const file of list) {
    files++;
    const text = await Deno.readTextFile(file);
    const from = concernOf(file);
    const where = relative(ROOT, file);
    for (const match of text.matchAll(IMPORT_REGEXP)) {
      const spec = match[1] ?? match[2] ?? match[3] ?? "";
      if (/^(jsr:|https?:)/.test(spec)) problems.push(`${where}: remote import "${spec}"`);
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec);
      const to = concernOf(target);
      if (to === undefined || to === from) continue;
      const inside = relative(join(ROOT, "src", to), target);
      if (inside !== "mod.ts") {
        problems.push(
          `${where}: imports "${spec}"; outside src/${to}/ only mod.ts may be imported`,
        );
      }
      if (from === undefined) continue;
      if (LEAVES.has(from)) {
        problems.push(`${where}: src/${from}/ is a leaf but imports src/${to}/`);
      } else if (!(ALLOWED[from] ?? []).includes(to)) {
        problems.push(`${where}: src/${from}/ may not depend on src/${to}/`);
      }
      (edges.get(from) ?? edges.set(from, new Set()).get(from))?.add(to);
    }
  }
}

// Cycle check over concern edges (depth-first search with colours).
const state = new Map<string, "visiting" | "done">();
function visit(node: string, path: string[]): void {
  if (state.get(node) === "done") return;
  if (state.get(node) === "visiting") {
    problems.push(`import cycle: ${[...path, node].join(" → ")}`);
    return;
  }
  state.set(node, "visiting");
  for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
  state.set(node, "done");
}
for (const node of edges.keys()) visit(node, []);

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  console.error(`check_imports: ${problems.length} problem(s) in ${files} files`);
  Deno.exit(1);
}
console.log(`check_imports: ${files} files, boundaries respected`);
