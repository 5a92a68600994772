import assert from "node:assert/strict";
import { classifyEntry, domainNameProblem } from "./names.ts";

Deno.test("classifyEntry() skips dot, underscore and dpkg- entries silently (DOM-2)", () => {
  for (const entry of [".hidden", "_common", "www.example.com.dpkg-old", ".www.example.com.swp"]) {
    assert.deepEqual(classifyEntry(entry), { kind: "skipped" }, entry);
  }
});

Deno.test("classifyEntry() lower-cases valid host names (ODD-13)", () => {
  const cases: [string, string][] = [
    ["www.domain.com", "www.domain.com"],
    ["WWW.Domain.COM", "www.domain.com"],
    ["localhost", "localhost"],
    ["a-b.c-d.example", "a-b.c-d.example"],
    ["127.0.0.1", "127.0.0.1"],
    ["x", "x"],
  ];
  for (const [entry, name] of cases) {
    assert.deepEqual(classifyEntry(entry), { kind: "domain", name });
  }
});

Deno.test("classifyEntry() refuses names that are not host names before any path is built", () => {
  assert.deepEqual(classifyEntry(".."), { kind: "skipped" });
  const bad = [
    "a..b",
    "a/b",
    "a\\b",
    "-lead.example",
    "trail-.example",
    "sp ace.example",
    "ctl\u0007.example",
    "new\nline",
    "x".repeat(64) + ".example",
    "a.".repeat(127) + "a",
    "www.example.com~",
    "ünï.example",
    "a.b.",
  ];
  for (const entry of bad) {
    const verdict = classifyEntry(entry);
    assert.equal(verdict.kind, "invalid", JSON.stringify(entry));
  }
  assert.equal(bad.length, 13);
});

Deno.test("domainNameProblem() escapes hostile characters in its reason", () => {
  const reason = domainNameProblem("bad\nlabel") ?? "";
  assert.ok(!reason.includes("\n"));
  assert.match(reason, /bad\\nlabel/);
});
