import assert from "node:assert/strict";
import { type FileStamp, planScan, type ScannedFile } from "./diff.ts";

function file(name: string, mtimeMs: number | null, size = 10): ScannedFile {
  return { name, path: `/d/${name}`, mtimeMs, size };
}

Deno.test("planScan() reads new files and reports vanished ones (DOM-4, DOM-7)", () => {
  const known = new Map<string, FileStamp>([["old.example", file("old.example", 1)]]);
  const plan = planScan(known, [file("new.example", 5)]);
  assert.deepEqual(plan.read.map((f) => f.name), ["new.example"]);
  assert.deepEqual(plan.removed, ["old.example"]);
});

Deno.test("planScan() re-reads on any stamp change, older mtime included (ODD-14)", () => {
  const known = new Map<string, FileStamp>([
    ["same.example", file("same.example", 100)],
    ["older.example", file("older.example", 100)],
    ["bigger.example", file("bigger.example", 100, 10)],
  ]);
  const plan = planScan(known, [
    file("same.example", 100),
    file("older.example", 50),
    file("bigger.example", 100, 11),
  ]);
  assert.deepEqual(plan.read.map((f) => f.name), ["older.example", "bigger.example"]);
  assert.deepEqual(plan.removed, []);
});
