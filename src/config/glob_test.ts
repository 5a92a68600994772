/**
 * Tests of the Go-compatible glob used by the include macros (CFG-4): the vectors of Go's own
 * `filepath.Match` tests, then `expandGlob` over a real temporary directory.
 * @module
 */

import assert from "node:assert/strict";
import { compileGlob, expandGlob, GlobPatternError, hasGlobMeta, matchGlob } from "./glob.ts";
import { DENO_CONF_IO } from "./macros.ts";

/** Go's `filepath.Match` test vectors: pattern, name, match (or "bad" for ErrBadPattern). */
const MATCH_VECTORS: [string, string, boolean | "bad"][] = [
  ["abc", "abc", true],
  ["*", "abc", true],
  ["*c", "abc", true],
  ["a*", "a", true],
  ["a*", "abc", true],
  ["a*", "ab/c", false],
  ["a*/b", "abc/b", true],
  ["a*/b", "a/c/b", false],
  ["a*b*c*d*e*/f", "axbxcxdxe/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/fff", false],
  ["a*b?c*x", "abxbbxdbxebxczzx", true],
  ["a*b?c*x", "abxbbxdbxebxczzy", false],
  ["ab[c]", "abc", true],
  ["ab[b-d]", "abc", true],
  ["ab[e-g]", "abc", false],
  ["ab[^c]", "abc", false],
  ["ab[^b-d]", "abc", false],
  ["ab[^e-g]", "abc", true],
  ["a\\*b", "a*b", true],
  ["a\\*b", "ab", false],
  ["a?b", "a☺b", true],
  ["a[^a]b", "a☺b", true],
  ["a???b", "a☺b", false],
  ["a[^a][^a][^a]b", "a☺b", false],
  ["[a-ζ]*", "α", true],
  ["*[a-ζ]", "A", false],
  ["a?b", "a/b", false],
  ["a*b", "a/b", false],
  ["[\\]a]", "]", true],
  ["[\\-]", "-", true],
  ["[x\\-]", "x", true],
  ["[x\\-]", "-", true],
  ["[x\\-]", "z", false],
  ["[\\-x]", "x", true],
  ["[\\-x]", "-", true],
  ["[\\-x]", "a", false],
  ["[]a]", "]", "bad"],
  ["[-]", "-", "bad"],
  ["[x-]", "x", "bad"],
  ["[-x]", "x", "bad"],
  ["\\", "a", "bad"],
  ["[a-b-c]", "a", "bad"],
  ["[", "a", "bad"],
  ["[^", "a", "bad"],
  ["[^bc", "a", "bad"],
  ["a[", "a", "bad"],
  ["a/b[", "x", "bad"],
  ["*x", "xxx", true],
  [".*", ".hidden", true],
  ["*", ".hidden", true],
  ["[z-a]", "m", false],
];

Deno.test("matchGlob() follows Go's filepath.Match vectors (CFG-4)", () => {
  for (const [pattern, name, expected] of MATCH_VECTORS) {
    if (expected === "bad") {
      assert.throws(() => matchGlob(pattern, name), GlobPatternError, pattern);
    } else {
      assert.equal(matchGlob(pattern, name), expected, `${pattern} ~ ${name}`);
    }
  }
});

Deno.test("compileGlob() names the pattern in its error and hasGlobMeta() spots wildcards", () => {
  assert.throws(() => compileGlob("conf.d/[x"), /Cannot use glob pattern "conf\.d\/\[x": /);
  assert.ok(hasGlobMeta("a*") && hasGlobMeta("a?") && hasGlobMeta("a[b]") && hasGlobMeta("a\\b"));
  assert.ok(!hasGlobMeta("/etc/groom/server.conf"));
});

Deno.test("expandGlob() lists matches in order like Go's filepath.Glob (CFG-4)", async () => {
  const root = await Deno.makeTempDir({ prefix: "groom_glob_" });
  try {
    for (
      const name of ["b.conf", "a.conf", ".hidden.conf", "notes.txt", "sub/c.conf", "sub2/c.conf"]
    ) {
      await Deno.mkdir(`${root}/${name}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.writeTextFile(`${root}/${name}`, name);
    }
    await Deno.mkdir(`${root}/dir.conf`);
    assert.deepStrictEqual(await expandGlob(`${root}/*.conf`, DENO_CONF_IO), [
      `${root}/.hidden.conf`,
      `${root}/a.conf`,
      `${root}/b.conf`,
      `${root}/dir.conf`,
    ]);
    assert.deepStrictEqual(await expandGlob(`${root}/[ab].conf`, DENO_CONF_IO), [
      `${root}/a.conf`,
      `${root}/b.conf`,
    ]);
    assert.deepStrictEqual(await expandGlob(`${root}/*/c.conf`, DENO_CONF_IO), [
      `${root}/sub/c.conf`,
      `${root}/sub2/c.conf`,
    ]);
    // Without wildcards, a path matches itself when it exists.
    assert.deepStrictEqual(await expandGlob(`${root}/a.conf`, DENO_CONF_IO), [`${root}/a.conf`]);
    assert.deepStrictEqual(await expandGlob(`${root}/missing.conf`, DENO_CONF_IO), []);
    // A file used as a directory, or a missing directory, matches nothing.
    assert.deepStrictEqual(await expandGlob(`${root}/a.conf/*`, DENO_CONF_IO), []);
    assert.deepStrictEqual(await expandGlob(`${root}/nowhere/*`, DENO_CONF_IO), []);
    await assert.rejects(expandGlob(`${root}/[`, DENO_CONF_IO), GlobPatternError);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
