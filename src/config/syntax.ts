/**
 * The groom configuration language (CFG-5…CFG-13): a recursive-descent parser that turns text into
 * a tree of strings, arrays and objects, plus a formatter and a content hash. It yields the tree
 * groom 1.3's regex-rewrite pipeline yields for every construct that pipeline accepts (CFG-12),
 * and also accepts the unambiguous constructs the original rejects (ODD-30): one-line objects,
 * `key = [` on its own line, one-character section names, two pairs on one line, unquoted
 * multi-line array items, `[x,y]`, bare values with spaces and unknown escapes such as `"\d"`.
 * Plain JSON input keeps its numbers, booleans and nulls; everything else is a string. The module
 * is pure (no I/O); macros are expanded beforehand by `macros.ts`, which shares its lexical rules
 * through {@link ConfLexer}.
 * @module
 */

import { createHash } from "node:crypto";

/** A scalar: numbers, booleans and null only come from plain-JSON input. */
export type ConfScalar = string | number | boolean | null;
/** Any configuration value. */
export type ConfValue = ConfScalar | ConfValue[] | ConfObject;
/** A section: keys to values. */
export interface ConfObject {
  /** A member: its key as written (after CFG-9 splitting) and its value. */
  [key: string]: ConfValue;
}

/** A place in a source file; line and column are 1-based, columns count UTF-16 code units. */
export interface ConfPosition {
  /** The file name as given to the parser (or as matched by an include). */
  file: string;
  /** 1-based line number. */
  line: number;
  /** 1-based column (a tab counts as one). */
  column: number;
}

/** A malformed configuration text; the message reads `<file>:<line>:<column>: <reason>`. */
export class ConfSyntaxError extends SyntaxError {
  /** File holding the error. */
  readonly file: string;
  /** 1-based line of the error. */
  readonly line: number;
  /** 1-based column of the error. */
  readonly column: number;
  /** The reason alone, without the position. */
  readonly reason: string;

  /** Builds the error from a reason and the position it concerns. */
  constructor(reason: string, position: ConfPosition) {
    super(`${position.file}:${position.line}:${position.column}: ${reason}`);
    this.name = "ConfSyntaxError";
    this.file = position.file;
    this.line = position.line;
    this.column = position.column;
    this.reason = reason;
  }
}

/** Something legal but probably not what the author meant (a value cut by a comment…). */
export interface ConfWarning {
  /** What happened, without the position. */
  message: string;
  /** Where it happened. */
  position: ConfPosition;
}

/** The result of {@link parseConf}. */
export interface ParsedConf {
  /** The configuration tree. */
  tree: ConfObject;
  /** Dotted path of every value (`groom.listen.0`) → where that value starts. */
  positions: ReadonlyMap<string, ConfPosition>;
  /** Warnings in source order. */
  warnings: ConfWarning[];
}

/** Options of {@link parseConf}. */
export interface ParseConfOptions {
  /** File name used in positions (default `<config>`); ignored when `locate` is given. */
  file?: string;
  /** Maps an offset of `text` to a source position (used after macro expansion). */
  locate?: (offset: number) => ConfPosition;
}

/**
 * Deepest nesting of sections and arrays. groom's deepest real path has four levels
 * (`groom.targets.<name>.hosts.0`); 64 leaves room for any sane file while keeping the recursive
 * descent far from the call-stack limit.
 */
export const MAX_NESTING = 64;

/** File name used in positions when the caller gives none. */
export const DEFAULT_CONF_FILE = "<config>";

/** Whitespace inside a line (RE2's `\s` without the newline, plus `\v` and a byte-order mark). */
const INLINE_SPACE = new Set([" ", "\t", "\r", "\f", "\v", "\uFEFF"]);
/** Characters that end a bare word: they are structure, never part of a key or a word. */
const STRUCTURE = new Set(['"', "=", ":", "{", "}", "[", "]", ",", ";"]);
/** The escapes JSON defines (CFG-8); `u` is handled apart. */
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};
/** Leading/trailing characters groom 1.3 trims inside quotes (RE2 `\s` minus space and `\n`). */
const QUOTE_TRIM = new Set(["\t", "\f", "\r"]);
/** RE2's `\s` (CFG-6), used by the `x=y` → `x:y` rewrite of bare values. */
const RE2_SPACE = new Set([" ", "\t", "\n", "\f", "\r"]);
const HEX4_REGEXP = /^[0-9A-Fa-f]{4}$/;

/**
 * True when `char` belongs to a bare word: not whitespace and not one of `" = : { } [ ] , ;`.
 * A `/*` right after such a character is text (`/static/*`), not a comment.
 */
export function isWordChar(char: string | undefined): boolean {
  return char !== undefined && char !== "\n" && !INLINE_SPACE.has(char) && !STRUCTURE.has(char);
}

/** The lexical modes of {@link ConfLexer}. */
export const LexMode = {
  /** Live configuration text. */
  Code: "code",
  /** Inside a quoted string. */
  String: "string",
  /** Inside a `#` or `//` comment. */
  LineComment: "line-comment",
  /** Inside a `/* … *\/` comment. */
  BlockComment: "block-comment",
} as const;
/** One of the {@link LexMode} values. */
export type LexMode = typeof LexMode[keyof typeof LexMode];

/**
 * A character-at-a-time classifier of configuration text into live code, strings and comments,
 * with exactly the parser's rules: `#` and `//` start a comment anywhere outside a string, `/*`
 * starts one unless it follows a word character, `"` starts a string, a backslash escapes the
 * next character, a newline ends strings and line comments. Macro expansion uses it to skip
 * comments and to recognise quoted text; it needs no lookahead, so text can be fed in pieces.
 */
export class ConfLexer {
  #mode: LexMode = LexMode.Code;
  #escape = false;
  #slash = false;
  #slashAfterWord = false;
  #star = false;
  #previousIsWord = false;

  /** The mode the next character will be read in. */
  get mode(): LexMode {
    return this.#mode;
  }

  /** True when the next character is escaped by a backslash (in code or in a string). */
  get escaped(): boolean {
    return this.#escape;
  }

  /** Classifies one more character (one UTF-16 code unit). */
  feed(char: string): void {
    switch (this.#mode) {
      case LexMode.Code:
        this.#feedCode(char);
        return;
      case LexMode.String:
        if (this.#escape) this.#escape = char === "\n" ? this.#endString() : false;
        else if (char === "\\") this.#escape = true;
        else if (char === '"' || char === "\n") this.#endString();
        return;
      case LexMode.LineComment:
        if (char === "\n") this.#toCode();
        return;
      case LexMode.BlockComment:
        if (this.#star && char === "/") this.#toCode();
        else this.#star = char === "*";
        return;
    }
  }

  #feedCode(char: string): void {
    if (this.#escape) {
      this.#escape = false;
      this.#previousIsWord = isWordChar(char);
      return;
    }
    if (this.#slash) {
      this.#slash = false;
      if (char === "/") {
        this.#mode = LexMode.LineComment;
        return;
      }
      if (char === "*" && !this.#slashAfterWord) {
        this.#mode = LexMode.BlockComment;
        this.#star = false;
        return;
      }
    }
    if (char === "\\") {
      this.#escape = true;
    } else if (char === '"') {
      this.#mode = LexMode.String;
    } else if (char === "#") {
      this.#mode = LexMode.LineComment;
    } else if (char === "/") {
      this.#slash = true;
      this.#slashAfterWord = this.#previousIsWord;
    }
    this.#previousIsWord = isWordChar(char);
  }

  #endString(): false {
    this.#toCode();
    return false;
  }

  #toCode(): void {
    this.#mode = LexMode.Code;
    this.#previousIsWord = false;
    this.#star = false;
  }
}

/** Builds the default `locate` function: offsets of `text` to line and column in `file`. */
export function lineLocator(text: string, file: string): (offset: number) => ConfPosition {
  const starts = [0];
  for (let index = text.indexOf("\n"); index !== -1; index = text.indexOf("\n", index + 1)) {
    starts.push(index + 1);
  }
  return (offset: number): ConfPosition => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((starts[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    return { file, line: low + 1, column: offset - (starts[low] ?? 0) + 1 };
  };
}

/** True when `value` is a section (a plain object, not an array or null). */
function isObject(value: ConfValue | undefined): value is ConfObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Stores `key` as an own property, so `__proto__` and friends are plain keys. */
function define(target: ConfObject | ConfValue[], key: string, value: ConfValue): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** True when the whole text is strict JSON holding an object (the "plain JSON" input form). */
function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * groom 1.3's separator rewrite (CFG-6 step 7, `(\S+?)\s*[:=]` → `$1:`) applied to one bare
 * value, in linear time: every `=` or `:` that follows a non-blank run loses the blanks before
 * it and becomes `:` (`x=y` → `x:y`, `x =y` → `x:y`, `=x` stays).
 */
export function rewriteSeparators(raw: string): string {
  let out = "";
  let start = 0;
  let index = 0;
  while (index < raw.length) {
    if (RE2_SPACE.has(raw.charAt(index))) {
      index++;
      continue;
    }
    // A match must start here with at least one non-blank character.
    let cursor = index + 1;
    let matched = -1;
    let runEnd = -1;
    while (cursor < raw.length) {
      const char = raw.charAt(cursor);
      if (char === "=" || char === ":") {
        matched = cursor;
        runEnd = cursor;
        break;
      }
      if (RE2_SPACE.has(char)) {
        let after = cursor;
        while (after < raw.length && RE2_SPACE.has(raw.charAt(after))) after++;
        const next = raw.charAt(after);
        if (next === "=" || next === ":") {
          matched = after;
          runEnd = cursor;
        }
        break;
      }
      cursor++;
    }
    if (matched === -1) {
      // Every start inside this run fails the same way: resume after the run.
      index = cursor;
      continue;
    }
    out += raw.slice(start, runEnd) + ":";
    start = matched + 1;
    index = matched + 1;
  }
  return out + raw.slice(start);
}

/** A member's key as read, before key splitting (CFG-9). */
interface KeyInfo {
  /** Decoded words (a quoted key is one word). */
  words: string[];
  /** Offset of each word. */
  offsets: number[];
  /** True for a quoted key. */
  quoted: boolean;
}

/** Offsets of one object's or array's entries: the key and the value start. */
interface EntryOffsets {
  key: number;
  value: number;
}

/** One parse of one text. Not reused. */
class Parser {
  readonly #text: string;
  readonly #json: boolean;
  readonly #locate: (offset: number) => ConfPosition;
  readonly #warnings: ConfWarning[] = [];
  readonly #offsets = new WeakMap<object, Map<string, EntryOffsets>>();
  #pos = 0;

  constructor(text: string, locate: (offset: number) => ConfPosition) {
    this.#text = text;
    this.#locate = locate;
    this.#json = isJsonObject(text);
  }

  parse(): ParsedConf {
    const root = this.#newObject();
    this.#skipBlank();
    if (this.#text[this.#pos] === "{") {
      const open = this.#pos;
      this.#pos++;
      this.#parseMembers(root, open, 0);
      this.#skipBlank();
      if (this.#pos < this.#text.length) {
        this.#fail(
          `expected end of file after the '}' closing the top-level object, found ${this.#describe()}`,
        );
      }
    } else {
      this.#parseMembers(root, undefined, 0);
    }
    this.#splitKeys(root);
    const positions = new Map<string, ConfPosition>();
    this.#collectPositions(root, "", positions);
    return { tree: root, positions, warnings: this.#warnings };
  }

  // ---- errors and warnings ----

  #fail(reason: string, offset: number = this.#pos): never {
    throw new ConfSyntaxError(reason, this.#locate(offset));
  }

  #warn(message: string, offset: number): void {
    this.#warnings.push({ message, position: this.#locate(offset) });
  }

  #describe(offset: number = this.#pos): string {
    const code = this.#text.codePointAt(offset);
    if (code === undefined) return "end of file";
    if (code === 0x0a) return "end of line";
    if (code < 0x20 || code === 0x7f) return `character U+${code.toString(16).padStart(4, "0")}`;
    return `'${String.fromCodePoint(code)}'`;
  }

  #where(offset: number): string {
    const position = this.#locate(offset);
    return `line ${position.line}, column ${position.column}`;
  }

  // ---- blanks and comments ----

  #isLineCommentAt(offset: number): boolean {
    const char = this.#text[offset];
    return char === "#" || (char === "/" && this.#text[offset + 1] === "/");
  }

  #isBlockCommentAt(offset: number): boolean {
    return this.#text[offset] === "/" && this.#text[offset + 1] === "*" &&
      !isWordChar(this.#text[offset - 1]);
  }

  /** Skips spaces and comments up to (not over) the end of the line. */
  #skipInline(): void {
    const text = this.#text;
    // Right after a comment, `/*` opens another one even though `/` precedes it.
    let afterComment = false;
    for (;;) {
      const char = text[this.#pos];
      if (char === undefined) return;
      if (INLINE_SPACE.has(char)) {
        this.#pos++;
        afterComment = false;
      } else if (
        this.#isBlockCommentAt(this.#pos) ||
        (afterComment && char === "/" && text[this.#pos + 1] === "*")
      ) {
        const end = text.indexOf("*/", this.#pos + 2);
        if (end === -1) this.#fail("unterminated comment: expected '*/' before the end of file");
        this.#pos = end + 2;
        afterComment = true;
      } else if (this.#isLineCommentAt(this.#pos)) {
        const end = text.indexOf("\n", this.#pos);
        this.#pos = end === -1 ? text.length : end;
      } else {
        return;
      }
    }
  }

  /** Skips spaces, comments and newlines. */
  #skipBlank(): void {
    for (;;) {
      this.#skipInline();
      if (this.#text[this.#pos] !== "\n") return;
      this.#pos++;
    }
  }

  /**
   * After a `;` at `offset - 1`: true when that `;` ends a value, i.e. it is followed by a blank,
   * the end of the line or a comment. Glued to anything else it is text, as in groom 1.3
   * (`some;thing`, `[ 1;, 2 ]` → `"1;"`, `a;;` → `"a;"`).
   */
  #endsValueAt(offset: number): boolean {
    const char = this.#text[offset];
    return char === undefined || char === "\n" || INLINE_SPACE.has(char) ||
      this.#isLineCommentAt(offset) || (char === "/" && this.#text[offset + 1] === "*");
  }

  /**
   * In an array, a `;` ends an item only at the end of a line (blanks and comments may follow):
   * groom 1.3 reads `[ 1; ]` as `["1;"]` and turns only a line-final `;` into a separator.
   */
  #endsItemAt(offset: number): boolean {
    const text = this.#text;
    let index = offset;
    for (;;) {
      const char = text[index];
      if (char === undefined || char === "\n" || this.#isLineCommentAt(index)) return true;
      if (INLINE_SPACE.has(char)) {
        index++;
      } else if (char === "/" && text[index + 1] === "*") {
        const end = text.indexOf("*/", index + 2);
        if (end === -1) return true;
        index = end + 2;
      } else {
        return false;
      }
    }
  }

  // ---- containers ----

  #newObject(): ConfObject {
    const object: ConfObject = {};
    this.#offsets.set(object, new Map());
    return object;
  }

  #newArray(): ConfValue[] {
    const array: ConfValue[] = [];
    this.#offsets.set(array, new Map());
    return array;
  }

  #entries(container: object): Map<string, EntryOffsets> {
    let entries = this.#offsets.get(container);
    if (entries === undefined) {
      entries = new Map();
      this.#offsets.set(container, entries);
    }
    return entries;
  }

  #set(target: ConfObject, key: string, value: ConfValue, offsets: EntryOffsets): void {
    define(target, key, value);
    this.#entries(target).set(key, offsets);
  }

  /**
   * CFG-9: a key holding spaces becomes a two-level path (`a b` → `a.b`, later words dropped),
   * replacing a non-object already stored under the first word and merging into an object.
   * Children were split when they were closed, so one level suffices.
   */
  #splitKeys(object: ConfObject): void {
    const entries = this.#entries(object);
    for (const key of Object.keys(object)) {
      const words = key.split(" ").filter((word) => word !== "");
      const first = words[0];
      const second = words[1];
      if (first === undefined || second === undefined) continue;
      const value = object[key] as ConfValue;
      const offsets = entries.get(key) ?? { key: 0, value: 0 };
      let inner = Object.hasOwn(object, first) ? object[first] : undefined;
      if (!isObject(inner)) {
        inner = this.#newObject();
        this.#set(object, first, inner, { key: offsets.key, value: offsets.key });
      }
      this.#set(inner, second, value, offsets);
      delete object[key];
      entries.delete(key);
    }
  }

  #collectPositions(
    container: ConfObject | ConfValue[],
    prefix: string,
    positions: Map<string, ConfPosition>,
  ): void {
    const entries = this.#entries(container);
    for (const key of Object.keys(container)) {
      const path = prefix === "" ? key : `${prefix}.${key}`;
      const offsets = entries.get(key);
      if (offsets !== undefined) positions.set(path, this.#locate(offsets.value));
      const value = (container as Record<string, ConfValue>)[key];
      if (typeof value === "object" && value !== null) {
        this.#collectPositions(value, path, positions);
      }
    }
  }

  // ---- members ----

  /** Members up to the `}` matching `open` (or to the end of file at top level). */
  #parseMembers(object: ConfObject, open: number | undefined, depth: number): void {
    const text = this.#text;
    for (;;) {
      this.#skipBlank();
      const char = text[this.#pos];
      if (char === undefined) {
        if (open === undefined) return;
        this.#fail(
          `expected '}' to close the section opened at ${this.#where(open)}, found end of file`,
        );
      }
      if (char === ";" || char === ",") {
        this.#pos++;
        continue;
      }
      if (char === "}") {
        if (open === undefined) this.#fail("unexpected '}' outside any section");
        this.#pos++;
        return;
      }
      const member = this.#parseMember(object, depth);
      this.#skipInline();
      const next = text[this.#pos];
      if (
        member.bracketed || next === undefined || next === "\n" || next === ";" || next === "," ||
        next === "}"
      ) continue;
      this.#fail(
        `expected ';', ',' or a new line after the value of "${member.key}", found ${this.#describe()}`,
      );
    }
  }

  #readKey(): KeyInfo {
    const char = this.#text[this.#pos];
    if (char === '"') {
      const offset = this.#pos;
      return { words: [this.#readQuoted()], offsets: [offset], quoted: true };
    }
    if (!isWordChar(char)) this.#fail(`expected a key, found ${this.#describe()}`);
    const words: string[] = [];
    const offsets: number[] = [];
    for (;;) {
      offsets.push(this.#pos);
      words.push(this.#readWord());
      // Words separated by blanks or comments on the same line form one key (`a b = 1`).
      this.#skipInline();
      if (!isWordChar(this.#text[this.#pos])) return { words, offsets, quoted: false };
    }
  }

  /** One bare word of a key (escapes decoded). */
  #readWord(): string {
    const text = this.#text;
    const start = this.#pos;
    let index = start;
    for (;;) {
      const char = text[index];
      if (char === undefined || char === "\n" || INLINE_SPACE.has(char)) break;
      if (char === "\\") {
        index += text[index + 1] === undefined || text[index + 1] === "\n" ? 1 : 2;
        continue;
      }
      if (this.#isLineCommentAt(index) || this.#isBlockCommentAt(index)) break;
      if (char === ";" && this.#endsValueAt(index + 1)) break;
      if (char !== ";" && STRUCTURE.has(char)) break;
      index++;
    }
    this.#pos = index;
    return this.#decode(text.slice(start, index), start);
  }

  /** One member; returns its key (for messages) and whether its value ended with a bracket. */
  #parseMember(object: ConfObject, depth: number): { key: string; bracketed: boolean } {
    const text = this.#text;
    const keyOffset = this.#pos;
    const key = this.#readKey();
    const joined = key.words.join(" ");
    this.#skipInline();
    const char = text[this.#pos];
    if (char === "=" || char === ":") {
      this.#pos++;
      return this.#parseSeparatedValue(object, joined, keyOffset, char, depth);
    }
    if (char === "{" || char === "[") {
      this.#store(object, joined, keyOffset, this.#pos, this.#parseContainer(depth));
      return { key: joined, bracketed: true };
    }
    // `key value;` (CFG-12): the first word is the key, the rest is the value.
    if (!key.quoted && key.words.length >= 2 && (char === ";" || char === ",")) {
      const valueOffset = key.offsets[1] ?? keyOffset;
      const value = key.words.slice(1).join(" ");
      this.#store(object, key.words[0] ?? "", keyOffset, valueOffset, value);
      return { key: key.words[0] ?? "", bracketed: false };
    }
    if (key.words.length === 1 && (char === '"' || (key.quoted && isWordChar(char)))) {
      const valueOffset = this.#pos;
      const value = char === '"' ? this.#readQuoted() : this.#readBare(false);
      this.#skipInline();
      const next = text[this.#pos];
      if (next !== ";" && next !== ",") {
        this.#fail(
          `expected ';' after "${joined}" ${JSON.stringify(value)} (or write ${joined} = ${
            JSON.stringify(value)
          }), found ${this.#describe()}`,
        );
      }
      this.#store(object, joined, keyOffset, valueOffset, value);
      return { key: joined, bracketed: false };
    }
    if (char === undefined || char === "\n") {
      // Allman style: the section or array opens on a later line.
      const save = this.#pos;
      this.#skipBlank();
      const next = text[this.#pos];
      if (next === "{" || next === "[") {
        this.#store(object, joined, keyOffset, this.#pos, this.#parseContainer(depth));
        return { key: joined, bracketed: true };
      }
      this.#pos = save;
    }
    const expected = key.words.length >= 2 && !key.quoted
      ? `expected '=', ':', '{', '[' or a final ';' after "${joined}"`
      : `expected '=', ':', '{' or '[' after key "${joined}"`;
    this.#fail(`${expected}, found ${this.#describe()}`);
  }

  #parseSeparatedValue(
    object: ConfObject,
    key: string,
    keyOffset: number,
    separator: string,
    depth: number,
  ): { key: string; bracketed: boolean } {
    const text = this.#text;
    this.#skipInline();
    let char = text[this.#pos];
    if (char === undefined || char === "\n") {
      // `key =` then the section or array on a later line; any other value must be on this line.
      const save = this.#pos;
      this.#skipBlank();
      char = text[this.#pos];
      if (char !== "{" && char !== "[") this.#pos = save;
    }
    char = text[this.#pos];
    if (char === "{" || char === "[") {
      this.#store(object, key, keyOffset, this.#pos, this.#parseContainer(depth));
      return { key, bracketed: true };
    }
    if (
      char === undefined || char === "\n" || char === "}" || char === "]" || char === "," ||
      (char === ";" && this.#endsValueAt(this.#pos + 1))
    ) {
      this.#fail(
        `expected a value after '${separator}' for key "${key}", found ${this.#describe()}`,
      );
    }
    const valueOffset = this.#pos;
    const value = char === '"' ? this.#readQuoted() : this.#readBare(false);
    this.#store(object, key, keyOffset, valueOffset, value);
    return { key, bracketed: false };
  }

  #store(
    object: ConfObject,
    key: string,
    keyOffset: number,
    valueOffset: number,
    value: ConfValue,
  ): void {
    this.#set(object, key, value, { key: keyOffset, value: valueOffset });
  }

  #parseContainer(depth: number): ConfObject | ConfValue[] {
    const open = this.#pos;
    if (depth + 1 > MAX_NESTING) {
      this.#fail(`sections and arrays nested deeper than ${MAX_NESTING} levels`);
    }
    this.#pos++;
    if (this.#text[open] === "[") return this.#parseArray(open, depth + 1);
    const object = this.#newObject();
    this.#parseMembers(object, open, depth + 1);
    this.#splitKeys(object);
    return object;
  }

  #parseArray(open: number, depth: number): ConfValue[] {
    const text = this.#text;
    const array = this.#newArray();
    const entries = this.#entries(array);
    let separators = 0;
    let secondSeparator = -1;
    let needSeparator = false;
    for (;;) {
      this.#skipInline();
      const char = text[this.#pos];
      if (char === undefined) {
        this.#fail(
          `expected ']' to close the array opened at ${this.#where(open)}, found end of file`,
        );
      }
      if (char === "\n") {
        this.#pos++;
        needSeparator = false;
        continue;
      }
      if (char === "]") {
        this.#pos++;
        return array;
      }
      if (char === "," || char === ";") {
        if (array.length === 0 && separators === 0) {
          this.#fail(`expected an array item or ']', found ${this.#describe()}`);
        }
        separators++;
        if (separators === 2) secondSeparator = this.#pos;
        this.#pos++;
        needSeparator = false;
        continue;
      }
      if (char === "}") this.#fail("expected ']' to close the array, found '}'");
      if (needSeparator) {
        this.#fail(`expected ',' or ']' after an array item, found ${this.#describe()}`);
      }
      if (separators >= 2) {
        this.#fail("unexpected ',': empty array item", secondSeparator);
      }
      const offset = this.#pos;
      let value: ConfValue;
      if (char === "{" || char === "[") {
        value = this.#parseContainer(depth);
      } else {
        value = char === '"' ? this.#readQuoted() : this.#readBare(true);
        needSeparator = true;
      }
      const index = String(array.length);
      array.push(value);
      entries.set(index, { key: offset, value: offset });
      separators = 0;
    }
  }

  // ---- scalars ----

  /** A quoted string (CFG-8): JSON escapes, unknown escapes kept, no newline inside. */
  #readQuoted(): string {
    const text = this.#text;
    const open = this.#pos;
    let index = open + 1;
    for (;;) {
      const char = text[index];
      if (char === undefined || char === "\n") {
        this.#fail(
          `unterminated string: expected '"' before the ${
            char === undefined ? "end of file" : "end of line"
          } (strings cannot span lines)`,
          open,
        );
      }
      if (char === "\\") {
        if (text[index + 1] === undefined || text[index + 1] === "\n") {
          index++;
          continue;
        }
        index += 2;
        continue;
      }
      if (char === '"') break;
      index++;
    }
    this.#pos = index + 1;
    let start = open + 1;
    let end = index;
    // groom 1.3 trims tabs, form feeds and CRs touching the quotes (CFG-6 step 14).
    while (start < end && QUOTE_TRIM.has(text.charAt(start))) start++;
    while (end > start && QUOTE_TRIM.has(text.charAt(end - 1))) end--;
    if (start === end) {
      start = open + 1;
      end = index;
    }
    return this.#decode(text.slice(start, end), start);
  }

  /**
   * A bare value. Outside arrays it runs to the end of the line, a comment, `,`, `}` or a `;`
   * that is not glued to more text, and may hold spaces; in arrays it stops at a blank or `]`.
   */
  #readBare(inArray: boolean): ConfScalar {
    const text = this.#text;
    const start = this.#pos;
    let end = start;
    let index = start;
    for (;;) {
      const char = text[index];
      if (char === undefined || char === "\n") break;
      if (char === "\\") {
        index += text[index + 1] === undefined || text[index + 1] === "\n" ? 1 : 2;
        end = index;
        continue;
      }
      if (this.#isLineCommentAt(index)) {
        if (index === end && index > start && !this.#json) {
          this.#warn(
            `value ${JSON.stringify(text.slice(start, end))} is cut by the comment that starts ` +
              `with '${char === "#" ? "#" : "//"}'; quote it to keep the rest`,
            start,
          );
        }
        break;
      }
      if (this.#isBlockCommentAt(index)) break;
      if (INLINE_SPACE.has(char)) {
        if (inArray) break;
        index++;
        continue;
      }
      if (char === "," || char === "}" || char === "]") break;
      if (char === ";" && (inArray ? this.#endsItemAt(index + 1) : this.#endsValueAt(index + 1))) {
        break;
      }
      if (char === '"') {
        this.#fail(`unexpected '"' in an unquoted value; quote the whole value`, index);
      }
      if (char === "{" || char === "[") {
        this.#fail(`unexpected '${char}' in an unquoted value; quote the value`, index);
      }
      index++;
      end = index;
    }
    this.#pos = index;
    const raw = text.slice(start, end);
    if (this.#json) {
      const literal = this.#jsonLiteral(raw, start);
      if (literal !== undefined) return literal;
    }
    const rewritten = rewriteSeparators(raw);
    if (rewritten !== raw) {
      this.#warn(
        `unquoted value ${JSON.stringify(raw)} is read as ${
          JSON.stringify(rewritten)
        } ('=' becomes ':' as in groom 1.3); quote it to keep it as written`,
        start,
      );
    }
    const value = this.#decode(rewritten, start);
    if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      this.#warn(
        `single quotes do not delimit strings: the value ${
          JSON.stringify(value)
        } keeps them; use double quotes`,
        start,
      );
    }
    return value;
  }

  /** In plain-JSON input, a bare token is a number, `true`, `false` or `null`. */
  #jsonLiteral(raw: string, offset: number): ConfScalar | undefined {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return undefined;
    }
    if (typeof value === "number") {
      if (!Number.isFinite(value)) this.#fail(`number ${raw} is out of range`, offset);
      return value;
    }
    if (typeof value === "boolean" || value === null) return value;
    return undefined;
  }

  /** Decodes JSON escapes; unknown ones (`\d`) stay as written, backslash included. */
  #decode(raw: string, offset: number): string {
    if (!raw.includes("\\")) return raw;
    let out = "";
    let index = 0;
    while (index < raw.length) {
      const slash = raw.indexOf("\\", index);
      if (slash === -1) {
        out += raw.slice(index);
        break;
      }
      out += raw.slice(index, slash);
      const code = raw.charAt(slash + 1);
      if (code === "u") {
        const hex = raw.slice(slash + 2, slash + 6);
        if (!HEX4_REGEXP.test(hex)) {
          this.#fail(`expected 4 hexadecimal digits after '\\u'`, offset + slash);
        }
        out += String.fromCharCode(parseInt(hex, 16));
        index = slash + 6;
        continue;
      }
      const simple = SIMPLE_ESCAPES[code];
      out += simple ?? `\\${code}`;
      index = slash + 2;
    }
    return out;
  }
}

/**
 * Parses configuration text into a tree (CFG-5…CFG-13, ODD-30). Never throws anything but
 * {@link ConfSyntaxError}; always terminates (nesting is bounded by {@link MAX_NESTING}).
 *
 * Scalars are strings (`5` and `true` are `"5"` and `"true"`), except in plain-JSON input (a
 * text that is a JSON object as a whole), where numbers, booleans and null keep their type.
 * Kept from groom 1.3, with a warning where it surprises: `#` and `//` start a comment anywhere
 * outside quotes, so they cut bare values (`a = http://h` gives `"http:"`); `=` inside a bare
 * value reads as `:` (`a = x=y` gives `"x:y"`); a `;` ends a value only before a blank, a
 * comment or the end of the line (`some;thing` stays whole). New: `/*` starts a comment only
 * after a blank or punctuation (`/static/*` is text); a bare value outside arrays may hold
 * spaces; unknown escapes such as `\d` are kept as written.
 */
export function parseConf(text: string, options: ParseConfOptions = {}): ParsedConf {
  const locate = options.locate ?? lineLocator(text, options.file ?? DEFAULT_CONF_FILE);
  try {
    return new Parser(text, locate).parse();
  } catch (error) {
    if (error instanceof ConfSyntaxError) throw error;
    // Defensive: nothing else is expected, but callers rely on the single error class.
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfSyntaxError(`cannot parse configuration: ${reason}`, locate(0));
  }
}

/** Keys written bare by {@link formatConf}; others are quoted. */
const BARE_KEY_REGEXP = /^[A-Za-z0-9_][A-Za-z0-9_.\-]+$/;

function formatKey(key: string): string {
  return BARE_KEY_REGEXP.test(key) ? key : JSON.stringify(key);
}

/** Checks that `value` can be written back: finite numbers, keys that do not split (CFG-9). */
function checkFormattable(value: ConfValue, path: string): boolean {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new RangeError(`Cannot format "${path}": ${value} is not a finite number`);
    }
    return true;
  }
  if (typeof value !== "object" || value === null) return typeof value !== "string";
  let typed = false;
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (checkFormattable(item, `${path}.${index}`)) typed = true;
    });
    return typed;
  }
  for (const key of Object.keys(value)) {
    if (key.split(" ").filter((word) => word !== "").length > 1) {
      throw new RangeError(
        `Cannot format key ${JSON.stringify(key)}: a key with two words is read as a path`,
      );
    }
    if (checkFormattable(value[key] as ConfValue, path === "" ? key : `${path}.${key}`)) {
      typed = true;
    }
  }
  return typed;
}

function formatMembers(object: ConfObject, indent: string, lines: string[]): void {
  for (const key of Object.keys(object)) {
    formatEntry(`${indent}${formatKey(key)} `, object[key] as ConfValue, indent, lines);
  }
}

/** Writes one member (`head` is the indented key and a space) or one array item (`head` = ""). */
function formatEntry(head: string, value: ConfValue, indent: string, lines: string[]): void {
  const start = head === "" ? indent : head;
  const equals = head === "" ? "" : "= ";
  if (Array.isArray(value)) {
    if (value.length === 0) {
      lines.push(`${start}${equals}[]`);
      return;
    }
    lines.push(`${start}[`);
    for (const item of value) formatEntry("", item, `${indent}  `, lines);
    lines.push(`${indent}]`);
  } else if (isObject(value)) {
    lines.push(`${start}{`);
    formatMembers(value, `${indent}  `, lines);
    lines.push(`${indent}}`);
  } else {
    lines.push(`${start}${equals}${JSON.stringify(value)}`);
  }
}

/**
 * Writes a tree in groom syntax (K&R sections, one array item per line, every string quoted)
 * that {@link parseConf} reads back to the same tree; a tree holding numbers, booleans or null
 * is written as plain JSON, the only form that keeps them typed. Throws `RangeError` for a key
 * of two or more words (CFG-9 would split it) or a non-finite number.
 */
export function formatConf(tree: ConfObject): string {
  if (checkFormattable(tree, "")) return `${JSON.stringify(tree, null, 2)}\n`;
  const lines: string[] = [];
  formatMembers(tree, "", lines);
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

function canonicalJson(value: ConfValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${
      keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as ConfValue)}`).join(
        ",",
      )
    }}`;
  }
  return JSON.stringify(value);
}

/**
 * Lower-case hex SHA-1 of the tree's canonical JSON (sorted keys, no blanks): the role of
 * CFG-11's hash, so editing comments, blanks or member order gives the same hash.
 */
export function hashConf(tree: ConfObject): string {
  return createHash("sha1").update(canonicalJson(tree), "utf8").digest("hex");
}
