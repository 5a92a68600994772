/** Tests of dotted-path lookups (CFG-14, CFG-15). @module */

import assert from "node:assert/strict";
import type { ConfObject } from "./syntax.ts";
import {
  childPaths,
  joinPath,
  listChildren,
  lookupString,
  lookupValue,
  splitPath,
} from "./tree.ts";

const TREE: ConfObject = {
  groom: {
    mode: "server",
    number: 5,
    flag: true,
    nothing: null,
    listen: ["*:443,groom.sni", "127.0.0.1:8443,a.pem,a.key"],
    single: "*:443,groom.sni",
    log: { system: "console(output=stdout)", access: "" },
    targets: { active: ["static"], static: { path: "^/static/" } },
    nested: [{ name: "first" }, ["deep"]],
  },
};

Deno.test("lookupString() succeeds on a scalar at the path, numbers and booleans as text (CFG-14, CFG-7)", () => {
  const table: [string, string | undefined][] = [
    ["groom.mode", "server"],
    ["groom.log.system", "console(output=stdout)"],
    ["groom.log.access", ""],
    ["groom.targets.static.path", "^/static/"],
    ["groom.listen.0", "*:443,groom.sni"],
    ["groom.listen.1", "127.0.0.1:8443,a.pem,a.key"],
    [" groom . log . system ", "console(output=stdout)"], // segments are trimmed
    ["groom.nested.0.name", "first"],
    ["groom.nested.1.0", "deep"],
    ["groom.listen.2", undefined], // out of bounds
    ["groom.listen.-1", undefined],
    ["groom.listen.x", undefined], // not a decimal index
    ["groom.listen.0x1", undefined],
    ["groom.number", "5"], // plain-JSON number: groom 1.3's rewrite quoted it
    ["groom.flag", "true"], // plain-JSON boolean, likewise
    ["groom.nothing", undefined], // JSON null
    ["groom.log", undefined], // object
    ["groom.listen", undefined], // array
    ["groom.mode.x", undefined], // through a scalar
    ["groom.missing", undefined],
    ["", undefined],
  ];
  for (const [path, expected] of table) {
    assert.equal(lookupString(TREE, path), expected, JSON.stringify(path));
  }
});

Deno.test("lookupValue() returns sections and lists as they are (CFG-14)", () => {
  assert.deepEqual(lookupValue(TREE, "groom.log"), {
    system: "console(output=stdout)",
    access: "",
  });
  assert.equal(lookupValue(TREE, "groom.number"), 5);
  assert.equal(lookupValue(TREE, "groom.nothing"), undefined);
});

Deno.test("childPaths() enumerates arrays in order and object keys (CFG-15)", () => {
  assert.deepEqual(childPaths(TREE, "groom.listen"), ["groom.listen.0", "groom.listen.1"]);
  assert.deepEqual(childPaths(TREE, "groom.log").sort(), ["groom.log.access", "groom.log.system"]);
  assert.deepEqual(childPaths(TREE, " groom . listen "), ["groom.listen.0", "groom.listen.1"]);
  assert.deepEqual(childPaths(TREE, "groom.single"), []); // a scalar has no children
  assert.deepEqual(childPaths(TREE, "groom.missing"), []);
  assert.deepEqual(childPaths(TREE, ""), []);
});

Deno.test("listChildren() yields nothing for a single string but warns (CFG-15)", () => {
  assert.deepEqual(listChildren(TREE, "groom.listen"), {
    paths: ["groom.listen.0", "groom.listen.1"],
  });
  const single = listChildren(TREE, "groom.single");
  assert.deepEqual(single.paths, []);
  assert.match(
    single.warning ?? "",
    /^Expected a list, found the single value "\*:443,groom\.sni"/,
  );
  assert.match(single.warning ?? "", /write \[ "\*:443,groom\.sni" \]/);
  assert.match(listChildren(TREE, "groom.number").warning ?? "", /single value 5/);
  assert.deepEqual(listChildren(TREE, "groom.missing"), { paths: [] });
});

Deno.test("splitPath() and joinPath() trim and skip empty segments", () => {
  assert.deepEqual(splitPath(" groom . log "), ["groom", "log"]);
  assert.deepEqual(splitPath(""), []);
  assert.equal(joinPath("groom", "", "log", "system"), "groom.log.system");
});
