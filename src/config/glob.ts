/**
 * File-name patterns for the configuration macros (CFG-4), with Go's `filepath.Match` and
 * `filepath.Glob` semantics, which groom 1.3 used: `*` matches any run of characters but `/`,
 * `?` one character but `/`, `[…]` a class (`[^…]` negated, `a-z` ranges, `\` escapes), `\x` the
 * character `x`. A leading dot is not special. Matches come in lexical order per directory, a
 * pattern without wildcards matches itself when the path exists, and unreadable directories
 * simply match nothing. File-system access goes through {@link GlobFileSystem}.
 * @module
 */

import { posix } from "node:path";

/** A malformed pattern (`[`, `[]`, `a\`…), as Go's `filepath.ErrBadPattern`. */
export class GlobPatternError extends SyntaxError {
  /** The pattern as written. */
  readonly pattern: string;

  /** Builds the error for `pattern` with the reason it is malformed. */
  constructor(pattern: string, reason: string) {
    super(`Cannot use glob pattern ${JSON.stringify(pattern)}: ${reason}`);
    this.name = "GlobPatternError";
    this.pattern = pattern;
  }
}

/** The file-system calls {@link expandGlob} needs. */
export interface GlobFileSystem {
  /** True when something exists at `path` (not following a final symbolic link). */
  exists(path: string): Promise<boolean>;
  /** The entry names of the directory at `path` (following links), or `undefined`. */
  listDirectory(path: string): Promise<string[] | undefined>;
}

/**
 * Go's limit on path separators in a pattern (`pathSeparatorsLimit` in `filepath.Glob`): the
 * recursion over wildcard directories is bounded by it.
 */
const MAX_GLOB_SEPARATORS = 10_000;

const META_REGEXP = /[*?[\\]/;

/** True when `pattern` holds a wildcard or an escape (`*`, `?`, `[`, `\`). */
export function hasGlobMeta(pattern: string): boolean {
  return META_REGEXP.test(pattern);
}

function literal(char: string): string {
  return `\\u{${(char.codePointAt(0) ?? 0).toString(16)}}`;
}

/**
 * Compiles a pattern to an anchored `RegExp` over one name (a `/` in the pattern only matches
 * itself). Throws {@link GlobPatternError} for a malformed pattern.
 */
export function compileGlob(pattern: string): RegExp {
  const chars = Array.from(pattern);
  let source = "^";
  let index = 0;
  const escaped = (): string => {
    let char = chars[index];
    if (char === undefined) throw new GlobPatternError(pattern, "unterminated character class");
    if (char === "-" || char === "]") {
      throw new GlobPatternError(pattern, `unescaped '${char}' in a character class`);
    }
    if (char === "\\") {
      index++;
      char = chars[index];
      if (char === undefined) throw new GlobPatternError(pattern, "unterminated character class");
    }
    index++;
    return char;
  };
  while (index < chars.length) {
    const char = chars[index] as string;
    if (char === "*") {
      while (chars[index] === "*") index++;
      source += "[^/]*";
    } else if (char === "?") {
      index++;
      source += "[^/]";
    } else if (char === "\\") {
      index++;
      const next = chars[index];
      if (next === undefined) throw new GlobPatternError(pattern, "trailing backslash");
      index++;
      source += literal(next);
    } else if (char === "[") {
      index++;
      let negated = false;
      if (chars[index] === "^") {
        negated = true;
        index++;
      }
      let ranges = "";
      let count = 0;
      for (;;) {
        if (chars[index] === "]" && count > 0) {
          index++;
          break;
        }
        const low = escaped();
        let high = low;
        if (chars[index] === "-") {
          index++;
          high = escaped();
        }
        count++;
        // Go matches nothing for a reversed range; a JS class would reject it.
        if ((low.codePointAt(0) ?? 0) <= (high.codePointAt(0) ?? 0)) {
          ranges += `${literal(low)}-${literal(high)}`;
        }
      }
      source += `[${negated ? "^" : ""}${ranges}]`;
    } else {
      index++;
      source += literal(char);
    }
  }
  return new RegExp(`${source}$`, "u");
}

/** Go's `filepath.Match`: true when `name` matches `pattern` as a whole. */
export function matchGlob(pattern: string, name: string): boolean {
  return compileGlob(pattern).test(name);
}

/** Go's `cleanGlobPath`: the directory part of a pattern without its trailing separator. */
function cleanGlobDirectory(directory: string): string {
  if (directory === "") return ".";
  if (directory === "/") return directory;
  return directory.slice(0, -1);
}

async function globDirectory(
  directory: string,
  pattern: string,
  matches: string[],
  fileSystem: GlobFileSystem,
): Promise<void> {
  const names = await fileSystem.listDirectory(directory);
  if (names === undefined) return;
  const matcher = compileGlob(pattern);
  for (const name of [...names].sort()) {
    if (matcher.test(name)) matches.push(posix.join(directory, name));
  }
}

async function globWithLimit(
  pattern: string,
  depth: number,
  fileSystem: GlobFileSystem,
): Promise<string[]> {
  if (depth >= MAX_GLOB_SEPARATORS) throw new GlobPatternError(pattern, "too many separators");
  compileGlob(pattern);
  if (!hasGlobMeta(pattern)) return (await fileSystem.exists(pattern)) ? [pattern] : [];
  const slash = pattern.lastIndexOf("/");
  const directory = cleanGlobDirectory(pattern.slice(0, slash + 1));
  const file = pattern.slice(slash + 1);
  const matches: string[] = [];
  if (!hasGlobMeta(directory)) {
    await globDirectory(directory, file, matches, fileSystem);
    return matches;
  }
  if (directory === pattern) throw new GlobPatternError(pattern, "cannot split the pattern");
  for (const match of await globWithLimit(directory, depth + 1, fileSystem)) {
    await globDirectory(match, file, matches, fileSystem);
  }
  return matches;
}

/**
 * Go's `filepath.Glob`: every existing path matching `pattern`, wildcards allowed in any
 * segment. Throws {@link GlobPatternError} for a malformed pattern; I/O errors match nothing.
 */
export function expandGlob(pattern: string, fileSystem: GlobFileSystem): Promise<string[]> {
  return globWithLimit(pattern, 0, fileSystem);
}
