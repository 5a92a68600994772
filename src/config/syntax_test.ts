/**
 * Tests of the configuration parser, formatter and hash: the CFG-12 table row by row in every
 * style, each CFG-13 form (now accepted or still rejected, ODD-30), CFG-8…CFG-11, positions,
 * warnings, the lexer shared with macro expansion, and property tests (round trip through
 * formatConf, and "parse or ConfSyntaxError, nothing else" on arbitrary or mutated text).
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConfLexer,
  type ConfObject,
  ConfSyntaxError,
  type ConfValue,
  formatConf,
  hashConf,
  isWordChar,
  LexMode,
  MAX_NESTING,
  parseConf,
  rewriteSeparators,
} from "./syntax.ts";

/** Parses and returns the tree only. */
function tree(text: string): ConfObject {
  return parseConf(text).tree;
}

/** Asserts that `text` is rejected at `line:column`, with `fragment` in the reason. */
function assertRejected(text: string, line: number, column: number, fragment = ""): void {
  assert.throws(
    () => parseConf(text, { file: "t.conf" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfSyntaxError, `not a ConfSyntaxError: ${error}`);
      assert.equal(`${error.line}:${error.column}`, `${line}:${column}`, error.message);
      assert.equal(error.file, "t.conf");
      assert.ok(error.message.startsWith(`t.conf:${line}:${column}: `), error.message);
      assert.ok(error.reason.includes(fragment), `"${error.reason}" lacks "${fragment}"`);
      return true;
    },
  );
}

/** The three layouts CFG-12 is observed in: top level, K&R and Allman sections. */
const STYLES = [
  { name: "top level", wrap: (body: string) => body, unwrap: (t: ConfObject) => t },
  {
    name: "K&R",
    wrap: (body: string) => `groom {\n${body}\n}`,
    unwrap: (t: ConfObject) => t.groom as ConfObject,
  },
  {
    name: "Allman",
    wrap: (body: string) => `groom\n{\n${body}\n}`,
    unwrap: (t: ConfObject) => t.groom as ConfObject,
  },
];

/** CFG-12, one entry per input of the table, with the observed result. */
const CFG12_ROWS: { input: string; expected: ConfObject }[] = [
  { input: "key = value", expected: { key: "value" } },
  { input: "key: value", expected: { key: "value" } },
  { input: "key=value", expected: { key: "value" } },
  { input: "key:value", expected: { key: "value" } },
  { input: "key = value;", expected: { key: "value" } },
  { input: "key\t=\tvalue", expected: { key: "value" } },
  { input: "key value;", expected: { key: "value" } },
  { input: 'key = "x y"', expected: { key: "x y" } },
  { input: 'key = "a#b // c"', expected: { key: "a#b // c" } },
  { input: 'key = "x = y : z"', expected: { key: "x = y : z" } },
  { input: 'key = ""', expected: { key: "" } },
  { input: "key = some;thing", expected: { key: "some;thing" } },
  { input: "key = x=y", expected: { key: "x:y" } },
  { input: "key = ^/static/.+$", expected: { key: "^/static/.+$" } },
  { input: "key = [ x, y ]", expected: { key: ["x", "y"] } },
  { input: 'key = [ "x", "y" ]', expected: { key: ["x", "y"] } },
  { input: 'key = [ "x", ]', expected: { key: ["x"] } },
  { input: "key = [ ]", expected: { key: [] } },
  { input: "key = []", expected: { key: [] } },
  { input: 'key [ "x", "y" ]', expected: { key: ["x", "y"] } },
  { input: 'key\n[\n"x"\n"y"\n]', expected: { key: ["x", "y"] } },
  { input: 'key [\n"x"\n"y"\n]', expected: { key: ["x", "y"] } },
  { input: 'key [\n"x" # one\n"y" // two\n]', expected: { key: ["x", "y"] } },
  { input: 'key =[\n"x"\n"y"\n]', expected: { key: ["x", "y"] } },
  { input: 'key\n[\n"x", "y"\n"z"\n]', expected: { key: ["x", "y", "z"] } },
  { input: "key\n[\n{\na = 1\n}\n]", expected: { key: [{ a: "1" }] } },
  { input: "key {\nsub = 1\n}", expected: { key: { sub: "1" } } },
  { input: "key\n{\nsub = 1\n}", expected: { key: { sub: "1" } } },
  {
    input: "key {\n  deeper {\n    deepest {\n      leaf = 1\n    }\n  }\n}",
    expected: { key: { deeper: { deepest: { leaf: "1" } } } },
  },
  { input: "key { }", expected: { key: {} } },
  { input: "key {\n}", expected: { key: {} } },
  {
    input: "# whole line\nkey = v # trailing\n// whole line\nk2 = w // trailing\n" +
      "/* one line */\n/* several\nlines */\nk3 = z",
    expected: { key: "v", k2: "w", k3: "z" },
  },
];

for (const row of CFG12_ROWS) {
  for (const style of STYLES) {
    Deno.test(`parseConf() reads ${JSON.stringify(row.input)} as CFG-12 says (${style.name})`, () => {
      assert.deepStrictEqual(style.unwrap(tree(style.wrap(row.input))), row.expected);
    });
  }
}

Deno.test("parseConf() accepts plain JSON and keeps its numbers, booleans and null (CFG-12)", () => {
  assert.deepStrictEqual(tree('{"groom":{"mode":"server"}}'), { groom: { mode: "server" } });
  assert.deepStrictEqual(
    tree('{"a": 1, "b": [1, 2.5e3, -3], "c": true, "d": null, "e": {"f": false}}'),
    { a: 1, b: [1, 2500, -3], c: true, d: null, e: { f: false } },
  );
});

Deno.test("parseConf() keeps top-level pairs without a groom section (CFG-12)", () => {
  assert.deepStrictEqual(tree("mode = server"), { mode: "server" });
});

Deno.test("parseConf() rejects `key value` without ';' as groom 1.3 does (CFG-12)", () => {
  for (const style of STYLES) {
    const text = style.wrap("key value");
    assert.throws(() => parseConf(text), ConfSyntaxError, style.name);
  }
  assertRejected("key value", 1, 10, `after "key value"`);
});

Deno.test("parseConf() makes every groom-syntax scalar a string (CFG-10)", () => {
  assert.deepStrictEqual(tree("n = 5\nf = 1.5\nt = true\nz = null\nl = [1,2]"), {
    n: "5",
    f: "1.5",
    t: "true",
    z: "null",
    l: ["1", "2"],
  });
});

/** CFG-13: what groom 1.3 rejects, and what this parser does with it now (ODD-30). */
const CFG13_FORMS: {
  name: string;
  input: string;
  expected?: ConfObject;
  error?: [line: number, column: number, fragment: string];
}[] = [
  { name: "`key = [` then a newline", input: 'key = [\n"x"\n]', expected: { key: ["x"] } },
  { name: "`key = {` then a newline", input: "key = {\na = 1\n}", expected: { key: { a: "1" } } },
  { name: "a one-line object", input: "key { sub = 1 }", expected: { key: { sub: "1" } } },
  {
    name: "nested one-line objects",
    input: "key { a { b = 1; c = 2 } }",
    expected: { key: { a: { b: "1", c: "2" } } },
  },
  { name: "`key = {a}`", input: "key = {a}", error: [1, 9, `after key "a"`] },
  { name: "`key = [x,y]`", input: "key = [x,y]", expected: { key: ["x", "y"] } },
  { name: "`key = [ x y ]`", input: "key = [ x y ]", error: [1, 11, "expected ',' or ']'"] },
  {
    name: '`key = [ "x" "y" ]`',
    input: 'key = [ "x" "y" ]',
    error: [1, 13, "expected ',' or ']'"],
  },
  {
    name: "unquoted multi-line array items",
    input: "key [\nx\ny\n]",
    expected: { key: ["x", "y"] },
  },
  { name: "a one-character section name", input: "k {\na = 1\n}", expected: { k: { a: "1" } } },
  {
    name: "a one-character Allman section name",
    input: "k\n{\na = 1\n}",
    expected: { k: { a: "1" } },
  },
  { name: "`key = x y`", input: "key = x y", expected: { key: "x y" } },
  { name: '`key = a"b`', input: 'key = a"b', error: [1, 8, `unexpected '"'`] },
  { name: "`a = 1; b = 2;`", input: "a = 1; b = 2;", expected: { a: "1", b: "2" } },
  { name: "`a = 1, b = 2`", input: "a = 1, b = 2", expected: { a: "1", b: "2" } },
  {
    name: '`key = "x" key2 = "y"`',
    input: 'key = "x" key2 = "y"',
    error: [1, 11, "expected ';', ',' or a new line"],
  },
  { name: "`key =` with no value", input: "key =", error: [1, 6, "expected a value after '='"] },
  {
    name: "`key =` followed by another pair",
    input: "key =\nother = 1",
    error: [1, 6, "expected a value after '='"],
  },
  {
    name: "a block comment containing '*'",
    input: "/* a * b **/\nkey = 1",
    expected: { key: "1" },
  },
  {
    name: "a block comment containing '//' and '#'",
    input: "/* see // and # here */ key = 1",
    expected: { key: "1" },
  },
  { name: '`"\\d"`', input: 'key = "^\\d+\\.x$"', expected: { key: "^\\d+\\.x$" } },
  {
    name: "a string spanning lines",
    input: 'key = "a\nb"',
    error: [1, 7, "unterminated string"],
  },
  {
    name: 'the README server example\'s stray `""` glued to an array item',
    input:
      'groom {\n  certificates\n  [\n    "^a\\\\.com$ a.pem a.key""\n    "* b.pem b.key"\n  ]\n}',
    error: [4, 28, "expected ',' or ']' after an array item"],
  },
  {
    name: 'a stray `""` after a scalar value',
    input: 'cert = "a.pem" ""',
    error: [1, 16, "expected ';', ',' or a new line"],
  },
];

for (const form of CFG13_FORMS) {
  const verdict = form.error === undefined ? "accepts" : "still rejects";
  Deno.test(`parseConf() ${verdict} ${form.name} (CFG-13, ODD-30)`, () => {
    if (form.error === undefined) {
      assert.deepStrictEqual(tree(form.input), form.expected);
    } else {
      assertRejected(form.input, ...form.error);
    }
  });
}

Deno.test("parseConf() decodes JSON escapes and keeps unknown ones (CFG-8, ODD-30)", () => {
  assert.deepStrictEqual(
    tree(
      String.raw`a = "\\ \" \/ \b \f \n \r \t \u00e9 \ud83d\ude00"` + "\n" + String.raw`b = "\d\."`,
    ),
    { a: '\\ " / \b \f \n \r \t é 😀', b: "\\d\\." },
  );
  assert.deepStrictEqual(tree(String.raw`regex = "^api\\.domain\\.com$"`), {
    regex: "^api\\.domain\\.com$",
  });
  // Bare values go through the same decoding, as they did through JSON in groom 1.3.
  assert.deepStrictEqual(tree(String.raw`a = x\\y` + "\n" + String.raw`b = ^\d+$`), {
    a: "x\\y",
    b: "^\\d+$",
  });
  assertRejected(String.raw`a = "\u12"`, 1, 6, "4 hexadecimal digits");
});

Deno.test("parseConf() treats single quotes as text and warns (CFG-8)", () => {
  const parsed = parseConf("a = 'x y'");
  assert.deepStrictEqual(parsed.tree, { a: "'x y'" });
  assert.match(parsed.warnings[0]?.message ?? "", /single quotes/);
});

Deno.test("parseConf() keeps the spaces of quoted values but trims touching tabs (CFG-6)", () => {
  assert.deepStrictEqual(tree('a = "  padded  "\nb = "\tx\t"\nc = "\t"'), {
    a: "  padded  ",
    b: "x",
    c: "\t",
  });
});

Deno.test("parseConf() splits keys with spaces into two levels; dots stay (CFG-9)", () => {
  assert.deepStrictEqual(tree('"quoted key" = 6'), { quoted: { key: "6" } });
  assert.deepStrictEqual(tree("a b = 1"), { a: { b: "1" } });
  assert.deepStrictEqual(tree("a b c = 1"), { a: { b: "1" } });
  assert.deepStrictEqual(tree("sub.key = 5"), { "sub.key": "5" });
  // The split replaces a non-object under the first word, whatever the order (CFG-9)...
  assert.deepStrictEqual(tree("a = 1\na b = 2"), { a: { b: "2" } });
  assert.deepStrictEqual(tree("a b = 2\na = 1"), { a: { b: "2" } });
  // ...and merges into an object.
  assert.deepStrictEqual(tree("ab {\nc = 3\n}\nab d = 4"), { ab: { c: "3", d: "4" } });
  assert.deepStrictEqual(tree("targets api\n{\npath = /x\n}"), {
    targets: { api: { path: "/x" } },
  });
  // A single word with surrounding spaces is not split.
  assert.deepStrictEqual(tree('" a" = 1'), { " a": "1" });
});

Deno.test("parseConf() lets the last duplicate win and a repeated section replace (CFG-10)", () => {
  assert.deepStrictEqual(tree("a = 1\na = 2"), { a: "2" });
  assert.deepStrictEqual(tree("sec {\na = 1\n}\nsec {\nb = 2\n}"), { sec: { b: "2" } });
});

Deno.test("parseConf() keeps __proto__ and friends as plain keys", () => {
  const parsed = tree('__proto__ = x\nconstructor { toString = y }\n"__proto__ b" = z');
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepStrictEqual(Object.keys(parsed), ["__proto__", "constructor"]);
  assert.deepStrictEqual(parsed.constructor, { toString: "y" });
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(parsed, "__proto__")?.value, { b: "z" });
});

Deno.test("parseConf() follows groom 1.3 on ';' glued to text (CFG-6 steps 5-6)", () => {
  assert.deepStrictEqual(tree("a = x;;\nb = [ 1; ]\nc = [ 1;, 2 ]\nd = [\n1;\n2;\n]"), {
    a: "x;",
    b: ["1;"],
    c: ["1;", "2"],
    d: ["1", "2"],
  });
  assert.deepStrictEqual(tree("a;b = 1\nkey some;thing;"), { "a;b": "1", key: "some;thing" });
});

Deno.test("parseConf() rewrites '=' in bare values like groom 1.3 and warns (CFG-6 step 7)", () => {
  const parsed = parseConf("a = x=y\nb = x =y\nc = ==x\nd = a==b\ne = :x\nf = 127.0.0.1:80");
  assert.deepStrictEqual(parsed.tree, {
    a: "x:y",
    b: "x:y",
    c: "=:x",
    d: "a:=b",
    e: ":x",
    f: "127.0.0.1:80",
  });
  assert.deepStrictEqual(parsed.warnings.map((warning) => warning.position.line), [1, 2, 3, 4]);
  assert.match(parsed.warnings[0]?.message ?? "", /"x=y" is read as "x:y"/);
});

Deno.test("rewriteSeparators() matches the original regex and stays linear", () => {
  const cases: [string, string][] = [
    ["x=y", "x:y"],
    ["a b=c", "a b:c"],
    ["a  :b", "a:b"],
    ["=x", "=x"],
    ["a::b", "a::b"],
    ["/x?a=b&c=d", "/x?a:b&c:d"],
    ["no separator here", "no separator here"],
  ];
  for (const [input, expected] of cases) assert.equal(rewriteSeparators(input), expected, input);
  const long = "a".repeat(200_000);
  const started = performance.now();
  assert.equal(rewriteSeparators(long), long);
  assert.ok(performance.now() - started < 500);
});

Deno.test("parseConf() cuts bare values at '#' and '//' and warns (CFG-6 step 1)", () => {
  const parsed = parseConf('a = http://h/x\nb = abc#def\nc = ok # comment\nd = "http://h/x"');
  assert.deepStrictEqual(parsed.tree, { a: "http:", b: "abc", c: "ok", d: "http://h/x" });
  assert.equal(parsed.warnings.length, 2);
  assert.match(parsed.warnings[0]?.message ?? "", /"http:" is cut by the comment.*quote it/);
  assert.deepStrictEqual(parsed.warnings[0]?.position, { file: "<config>", line: 1, column: 5 });
  assert.equal(parsed.warnings[1]?.position.line, 2);
});

Deno.test("parseConf() reads a glued '/*' as text and a spaced one as a comment", () => {
  assert.deepStrictEqual(tree("a = /static/*\nb = x /* c */\nc = /* c */ y\nd = /*c*//*d*/ z"), {
    a: "/static/*",
    b: "x",
    c: "y",
    d: "z",
  });
  assertRejected("a = 1\n/* never closed", 2, 1, "unterminated comment");
});

Deno.test("parseConf() accepts CRLF line ends, a BOM and blank-only input", () => {
  assert.deepStrictEqual(tree("\uFEFFgroom {\r\n  mode = server\r\n}\r\n"), {
    groom: { mode: "server" },
  });
  assert.deepStrictEqual(tree(""), {});
  assert.deepStrictEqual(tree(" \n\t\n# only a comment\n"), {});
});

Deno.test("parseConf() accepts a top-level object in braces, and nothing after it", () => {
  assert.deepStrictEqual(tree("{\n  groom {\n    mode = server\n  }\n}"), {
    groom: { mode: "server" },
  });
  assertRejected("{ a = 1 }\nb = 2", 2, 1, "expected end of file");
});

Deno.test("parseConf() reports positions of errors with file, line and column", () => {
  const cases: [string, number, number, string][] = [
    ["groom {\n  mode = server\n", 3, 1, "expected '}' to close the section opened at line 1"],
    ["list = [\n  a,\n  b\n", 4, 1, "expected ']' to close the array opened at line 1"],
    ["a = 1\n}", 2, 1, "unexpected '}'"],
    ["a = 1\n]", 2, 1, "expected a key, found ']'"],
    ["= 1", 1, 1, "expected a key, found '='"],
    ["key\nother = 1", 1, 4, `after key "key", found end of line`],
    ["a = [ , x ]", 1, 7, "expected an array item or ']'"],
    ["a = [ x,, y ]", 1, 9, "empty array item"],
    ["a = [ x }", 1, 9, "expected ']'"],
    ["a = x{", 1, 6, "unexpected '{' in an unquoted value"],
    ["a = \u0001\n", 2, 1, ""],
    ["\u0001", 1, 2, "found end of file"],
    ['"unterminated = 1', 1, 1, "unterminated string"],
  ];
  for (const [text, line, column, fragment] of cases) {
    if (fragment === "" && line === 2) {
      // A control character is a value like any other; nothing to reject here.
      assert.deepStrictEqual(tree(text), { a: "\u0001" });
      continue;
    }
    assertRejected(text, line, column, fragment);
  }
});

Deno.test("parseConf() maps every value to where it starts", () => {
  const text = 'groom {\n  mode = server\n  listen = [ "*:443", "*:80" ]\n  targets api {\n' +
    "    path = /x\n  }\n}";
  const { positions } = parseConf(text, { file: "main.conf" });
  assert.deepStrictEqual(positions.get("groom"), { file: "main.conf", line: 1, column: 7 });
  assert.deepStrictEqual(positions.get("groom.mode"), { file: "main.conf", line: 2, column: 10 });
  assert.deepStrictEqual(positions.get("groom.listen"), { file: "main.conf", line: 3, column: 12 });
  assert.deepStrictEqual(positions.get("groom.listen.1"), {
    file: "main.conf",
    line: 3,
    column: 23,
  });
  assert.deepStrictEqual(positions.get("groom.targets.api.path"), {
    file: "main.conf",
    line: 5,
    column: 12,
  });
  assert.equal(positions.get("groom.targets")?.line, 4);
});

Deno.test("parseConf() uses the locate option for every position", () => {
  const locate = (offset: number) => ({ file: "mapped", line: 100, column: offset + 1 });
  const parsed = parseConf("a = 1", { locate });
  assert.deepStrictEqual(parsed.positions.get("a"), { file: "mapped", line: 100, column: 5 });
  assert.throws(() => parseConf("a =", { locate }), /^ConfSyntaxError: mapped:100:4: /);
});

Deno.test(`parseConf() nests ${MAX_NESTING} levels and rejects deeper input without overflow`, () => {
  const deep = (levels: number) => `${"x { ".repeat(levels)}${"} ".repeat(levels)}`;
  assert.doesNotThrow(() => parseConf(deep(MAX_NESTING)));
  assertRejected(deep(MAX_NESTING + 1), 1, MAX_NESTING * 4 + 3, `deeper than ${MAX_NESTING}`);
  assert.throws(() => parseConf(`a = ${"[".repeat(100_000)}`), ConfSyntaxError);
  assert.throws(() => parseConf(`${"[".repeat(100_000)}${"]".repeat(100_000)}`), ConfSyntaxError);
});

Deno.test("ConfLexer classifies code, strings and comments as the parser reads them", () => {
  const text = 'a = "x # {{" # c {{\nb = /static/* /* {{ */ "q\\"" // x\nc = 1';
  const lexer = new ConfLexer();
  const modes: string[] = [];
  for (const char of text) {
    modes.push(lexer.mode.charAt(0));
    lexer.feed(char);
  }
  const shown = modes.join("");
  // c = code, s = string, l = line comment, b = block comment (mode before each character).
  assert.equal(
    shown,
    "cccccsssssssccllllll" + "cccccccccccccccc" + "bbbbbb" + "ccssss" + "ccclll" + "ccccc",
  );
  assert.equal(shown.length, text.length);
  assert.equal(LexMode.Code, "code");
  assert.ok(isWordChar("a") && isWordChar("/") && !isWordChar("=") && !isWordChar(" "));
});

Deno.test("formatConf() writes groom syntax that parseConf() reads back", () => {
  const original: ConfObject = {
    groom: {
      mode: "server",
      listen: ["*:443", "127.0.0.1:80"],
      empty: [],
      nothing: {},
      "odd key": "x",
      "": "",
      targets: { api: { hosts: [{ url: "http://a", weight: "2" }], path: "^/(.*)$" } },
      nested: [["a"], []],
    },
  };
  assert.throws(() => formatConf(original), RangeError);
  delete (original.groom as ConfObject)["odd key"];
  const text = formatConf(original);
  assert.match(text, /^groom \{\n {2}mode = "server"\n {2}listen \[\n/);
  assert.deepStrictEqual(tree(text), original);
  assert.equal(formatConf({}), "");
});

Deno.test("formatConf() writes typed trees as JSON to keep their types", () => {
  const typed: ConfObject = { a: 1.5, b: [true, null, "x"], c: { d: -7 } };
  const text = formatConf(typed);
  assert.deepStrictEqual(JSON.parse(text), typed);
  assert.deepStrictEqual(tree(text), typed);
  assert.throws(() => formatConf({ a: Number.NaN }), RangeError);
});

Deno.test("hashConf() ignores comments, blanks and member order, not values (CFG-11)", () => {
  const a = hashConf(tree("groom {\n  mode = server\n  log = x\n}"));
  const b = hashConf(tree("# new comment\ngroom { log = x; mode = server }  // trailing\n"));
  const c = hashConf(tree("groom {\n  mode = agent\n  log = x\n}"));
  assert.match(a, /^[0-9a-f]{40}$/);
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(hashConf({}), "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f"); // SHA-1 of "{}"
});

// ---- property tests ----

/** Keys that CFG-9 does not split (at most one word). */
const KEY = fc.string({ unit: "grapheme", maxLength: 8 }).filter((key) =>
  key.split(" ").filter((word) => word !== "").length <= 1
);
const STRING = fc.string({ unit: "binary", maxLength: 12 });

const STRING_TREE = fc.letrec<{ value: ConfValue; object: ConfObject }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    STRING,
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc.dictionary(KEY, tie("value"), { maxKeys: 4, noNullPrototype: true }),
})).object;

const SCALAR = fc.oneof(
  STRING,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
  fc.boolean(),
  fc.constant(null),
);
const TYPED_TREE = fc.letrec<{ value: ConfValue; object: ConfObject }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    SCALAR,
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc.dictionary(KEY, tie("value"), { maxKeys: 4, noNullPrototype: true }),
})).object;

Deno.test("formatConf() then parseConf() gives back any string tree (property)", () => {
  fc.assert(
    fc.property(STRING_TREE, (value) => {
      assert.deepStrictEqual(tree(formatConf(value)), value);
    }),
    { numRuns: 300 },
  );
});

Deno.test("formatConf() then parseConf() gives back any typed tree (property)", () => {
  fc.assert(
    fc.property(TYPED_TREE, (value) => {
      assert.deepStrictEqual(tree(formatConf(value)), value);
    }),
    { numRuns: 200 },
  );
});

/** Throws unless `text` parses or fails with a ConfSyntaxError. */
function parsesOrSyntaxError(text: string): void {
  try {
    parseConf(text);
  } catch (error) {
    if (!(error instanceof ConfSyntaxError)) throw error;
    assert.ok(error.line >= 1 && error.column >= 1);
  }
}

/** Characters that matter to the grammar, to bias random text toward hard cases. */
const GRAMMAR_CHAR = fc.constantFrom(
  ..."{}[]\",;:=#/*\\ \t\n\r\uFEFFaZ09.-_'@u",
);

Deno.test("parseConf() parses or throws ConfSyntaxError on arbitrary text (property)", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 60 }),
        fc.array(GRAMMAR_CHAR, { maxLength: 80 }).map((chars) => chars.join("")),
      ),
      parsesOrSyntaxError,
    ),
    { numRuns: 1500 },
  );
});

/**
 * Blanks what ConfLexer calls comment content (keeping newlines, and the `*` and `/` of block
 * comments so that they still close at the same place).
 */
function blankComments(text: string): string {
  const lexer = new ConfLexer();
  let out = "";
  for (const char of text) {
    const mode = lexer.mode;
    lexer.feed(char);
    const inComment = mode === LexMode.LineComment || mode === LexMode.BlockComment;
    const keep = char === "\n" || (mode === LexMode.BlockComment && (char === "*" || char === "/"));
    out += inComment && !keep ? " ".repeat(char.length) : char;
  }
  return out;
}

Deno.test("ConfLexer's comments are exactly text that parseConf ignores (property)", () => {
  fc.assert(
    fc.property(
      fc.array(GRAMMAR_CHAR, { maxLength: 60 }).map((chars) => chars.join("")),
      (text) => {
        let expected: ConfObject;
        try {
          expected = parseConf(text).tree;
        } catch {
          return;
        }
        assert.deepStrictEqual(parseConf(blankComments(text)).tree, expected);
      },
    ),
    { numRuns: 3000 },
  );
});

const VALID_DOCUMENTS = [
  'groom {\n  mode = server\n  listen = [ "*:443" ]\n  log = "console(output=stdout)"\n}\n',
  "groom\n{\n  targets api {\n    path = ^/api/(.*)$\n    hosts [\n      {\n        url = x\n      }\n    ]\n  }\n}\n",
  '{"groom": {"mode": "agent", "n": [1, 2, {"a": null}]}}',
  "# comment\na = 1; b = 2\nc { d = [x,y] }\n/* block * with star */\ne value;\n",
];

Deno.test("parseConf() parses or throws ConfSyntaxError on mutated documents (property)", () => {
  const edit = fc.record({
    at: fc.nat(),
    remove: fc.nat({ max: 4 }),
    insert: fc.array(GRAMMAR_CHAR, { maxLength: 4 }).map((chars) => chars.join("")),
  });
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID_DOCUMENTS),
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      (document, edits) => {
        let text = document;
        for (const { at, remove, insert } of edits) {
          const position = at % (text.length + 1);
          text = text.slice(0, position) + insert + text.slice(position + remove);
        }
        parsesOrSyntaxError(text);
      },
    ),
    { numRuns: 1500 },
  );
});
