/**
 * Walks the configuration fixtures (rathole-style): every `tests/testdata/conf/valid/*.conf` must
 * parse to the tree in its `*.json` twin, every `tests/testdata/conf/invalid/*.conf` must fail
 * with a ConfSyntaxError at the `line:column` on the first line of its `*.error` twin, whose
 * optional second line is a fragment of the reason (CFG-12, CFG-13, ODD-30).
 * @module
 */

import assert from "node:assert/strict";
import { ConfSyntaxError, parseConf } from "./syntax.ts";

const FIXTURES = new URL("../../tests/testdata/conf/", import.meta.url);

/** Base names of the `.conf` files of a fixture folder, and the names of all its files. */
function listFixtures(folder: string): { bases: string[]; names: Set<string> } {
  const names = new Set<string>();
  for (const entry of Deno.readDirSync(new URL(`${folder}/`, FIXTURES))) names.add(entry.name);
  const bases = [...names].filter((name) => name.endsWith(".conf"))
    .map((name) => name.slice(0, -".conf".length)).sort();
  return { bases, names };
}

function readFixture(folder: string, name: string): string {
  return Deno.readTextFileSync(new URL(`${folder}/${name}`, FIXTURES));
}

Deno.test("every valid fixture parses to the tree of its .json twin (CFG-12, ODD-30)", () => {
  const { bases, names } = listFixtures("valid");
  assert.ok(bases.length >= 15, `only ${bases.length} valid fixtures`);
  assert.equal(names.size, bases.length * 2, "every .conf needs a .json twin and vice versa");
  let checked = 0;
  for (const base of bases) {
    assert.ok(names.has(`${base}.json`), `${base}.json is missing`);
    const expected = JSON.parse(readFixture("valid", `${base}.json`));
    const { tree } = parseConf(readFixture("valid", `${base}.conf`), { file: `${base}.conf` });
    assert.deepStrictEqual(tree, expected, `${base}.conf`);
    checked++;
  }
  assert.equal(checked, bases.length);
});

Deno.test("every invalid fixture fails where its .error twin says (CFG-13)", () => {
  const { bases, names } = listFixtures("invalid");
  assert.ok(bases.length >= 12, `only ${bases.length} invalid fixtures`);
  assert.equal(names.size, bases.length * 2, "every .conf needs a .error twin and vice versa");
  let checked = 0;
  for (const base of bases) {
    const [place = "", fragment = ""] = readFixture("invalid", `${base}.error`).split("\n");
    assert.match(place, /^\d+:\d+$/, `${base}.error must start with line:column`);
    const text = readFixture("invalid", `${base}.conf`);
    assert.throws(() => parseConf(text, { file: `${base}.conf` }), (error: unknown) => {
      assert.ok(error instanceof ConfSyntaxError, `${base}.conf: ${error}`);
      assert.equal(`${error.line}:${error.column}`, place, error.message);
      assert.ok(error.message.startsWith(`${base}.conf:${place}: `), error.message);
      assert.ok(error.reason.includes(fragment), `${error.reason} lacks "${fragment}"`);
      return true;
    }, `${base}.conf`);
    checked++;
  }
  assert.equal(checked, bases.length);
});
