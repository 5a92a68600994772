/**
 * Loading configuration files: the macro language of groom 1.3 (CFG-1…CFG-4) and the only I/O
 * of the configuration language. Macros (`{{<glob}}` include, `{{=glob}}` list include,
 * `{{&NAME}}` environment, `{{!name}}` command-line option, `{{-}}`, `{{+glob}}`, `{{_}}`,
 * `{{|cmd}}` command, `{{@url}}` fetch) are expanded left to right, in a loop, so macro output
 * may hold macros. Unlike the original (ODD-22, ODD-30) no macro is expanded inside a comment,
 * `|` and `@` are left alone inside quoted strings and run only when the caller opts in, domain
 * files may not run or fetch anything and include only inside their roots, include cycles and
 * runaway expansion are errors, and a missing main file is an error. A source map from the
 * expanded text back to each file's lines lets syntax errors name the included file. All I/O
 * goes through an injectable {@link ConfIo}.
 * @module
 */

import { basename, dirname, isAbsolute, posix, resolve } from "node:path";
import { expandGlob, type GlobFileSystem, GlobPatternError, hasGlobMeta } from "./glob.ts";
import {
  ConfLexer,
  type ConfPosition,
  type ConfWarning,
  hashConf,
  LexMode,
  lineLocator,
  parseConf,
  type ParsedConf,
} from "./syntax.ts";

/** A parsed configuration file with its macros expanded. */
export interface ConfDocument extends ParsedConf {
  /** {@link hashConf} of the tree: unchanged by comment or whitespace edits (CFG-11, DOM-5). */
  hash: string;
  /** Absolute paths of every file read, in reading order: the main file, includes, list files. */
  files: string[];
}

/**
 * A file that cannot be loaded: a missing, unreadable or directory main file, an include
 * cycle, a refused macro, runaway expansion. The message reads `<file>: <reason>`, or
 * `<file>:<line>:<column>: <reason>` when the problem has a place (a macro).
 */
export class ConfFileError extends Error {
  /** The file concerned (the main file as given, or the file holding the macro). */
  readonly file: string;
  /** 1-based line of the macro concerned, when there is one. */
  readonly line: number | undefined;
  /** 1-based column of the macro concerned, when there is one. */
  readonly column: number | undefined;
  /** The reason alone. */
  readonly reason: string;

  /** Builds the error for `file` (or for the place `position`, which then names the file). */
  constructor(reason: string, file: string, position?: ConfPosition) {
    super(
      position === undefined
        ? `${file}: ${reason}`
        : `${position.file}:${position.line}:${position.column}: ${reason}`,
    );
    this.name = "ConfFileError";
    this.file = position?.file ?? file;
    this.line = position?.line;
    this.column = position?.column;
    this.reason = reason;
  }
}

/** Outcome of running a `{{|…}}` command. */
export type CommandResult =
  | { status: "ok"; output: string }
  | { status: "failed"; reason: string }
  | { status: "timeout" }
  | { status: "too-large" };

/** Outcome of a `{{@…}}` fetch. */
export type FetchResult =
  | { status: "ok"; body: string }
  | { status: "failed"; reason: string }
  | { status: "timeout" }
  | { status: "too-large" };

/** Time and size bounds given to {@link ConfIo.runCommand} and {@link ConfIo.fetchText}. */
export interface IoLimits {
  /** Milliseconds before giving up. */
  timeoutMs: number;
  /** Largest output or body accepted, in bytes. */
  maxBytes: number;
}

/** Every I/O the loader does; {@link DENO_CONF_IO} is the real one. */
export interface ConfIo extends GlobFileSystem {
  /** File metadata (following links); throws `Deno.errors.NotFound` and the like. */
  stat(path: string): Promise<{ isFile: boolean; isDirectory: boolean; size: number }>;
  /** File contents; throws like `Deno.readFile`. */
  readFile(path: string): Promise<Uint8Array>;
  /** Canonical path (links resolved); throws when the path does not exist. */
  realPath(path: string): Promise<string>;
  /** Runs `path` with exactly one argument and returns its standard output. */
  runCommand(path: string, argument: string, limits: IoLimits): Promise<CommandResult>;
  /** HTTP(S) GET of `url`; `ok` only for a 2xx status. */
  fetchText(url: string, limits: IoLimits): Promise<FetchResult>;
}

/** Options of {@link readConfFile}. */
export interface ReadConfOptions {
  /** `domain` files may never run commands or fetch URLs (ODD-22). */
  kind: "main" | "domain";
  /** Allows `{{|…}}` commands in a main file (the `--allow-exec` command-line opt-in). */
  allowExec?: boolean;
  /** Allows `{{@…}}` fetches in a main file (the `--allow-fetch` command-line opt-in). */
  allowFetch?: boolean;
  /** Command-line arguments after the program name, for `{{!name}}` (default none). */
  argv?: readonly string[];
  /** The program name (argv[0]) for `{{-}}` (default empty). */
  programName?: string;
  /** Environment lookup for `{{&NAME}}` (default `Deno.env.get`, unset when not permitted). */
  env?: (name: string) => string | undefined;
  /** Directory that relative paths start from (default `Deno.cwd()`). */
  cwd?: string;
  /** A missing main file reads as an empty configuration instead of failing. */
  missingIsEmpty?: boolean;
  /** Folders that includes (`<`, `=`, `+`) must stay inside; no restriction when absent. */
  roots?: readonly string[];
  /** I/O implementation (default {@link DENO_CONF_IO}). */
  io?: ConfIo;
}

/**
 * Deepest nesting of macro expansions (an include in an include…, or a macro whose output holds
 * a macro). Real configurations nest two or three levels; a self-producing macro hits this.
 */
export const MAX_MACRO_DEPTH = 16;
/** Most macros expanded for one file: far above real use, low enough to stop a runaway loop. */
export const MAX_MACRO_EXPANSIONS = 10_000;
/** Largest expanded text, in UTF-16 code units: configurations are a few KiB. */
export const MAX_EXPANDED_LENGTH = 16 * 1024 * 1024;
/** Largest configuration file read, in bytes. */
export const MAX_CONF_FILE_SIZE = 8 * 1024 * 1024;
/** Most files one macro may match: beyond it a pattern is almost certainly wrong. */
export const MAX_MACRO_MATCHES = 4096;
/** Time a `{{|…}}` command may run: the original waited forever (ODD-22). */
export const COMMAND_TIMEOUT_MS = 10_000;
/** Largest `{{|…}}` output accepted, in bytes. */
export const MAX_COMMAND_OUTPUT = 1024 * 1024;
/** Time a `{{@…}}` fetch may take (CFG-4: 5 s, as the original). */
export const FETCH_TIMEOUT_MS = 5_000;
/** Largest `{{@…}}` body accepted, in bytes. */
export const MAX_FETCH_SIZE = 1024 * 1024;

/** The macro operators of CFG-2. */
const MACRO_OPERATORS = "<=|@&!-+_";
/** RE2's `\s` around a macro argument. */
const MACRO_BLANKS = new Set([" ", "\t", "\n", "\f", "\r"]);

function decodeText(bytes: Uint8Array): string {
  // Replaces invalid UTF-8 like Go's JSON decoder and drops a byte-order mark.
  return new TextDecoder("utf-8").decode(bytes);
}

async function readLimited(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `path` with one argument, standard output captured, no input, standard error dropped.
 * The process is killed after `timeoutMs`; reading stops beyond `maxBytes`.
 */
export async function runConfCommand(
  path: string,
  argument: string,
  limits: IoLimits,
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(path, {
      args: [argument],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch (error) {
    return { status: "failed", reason: errorText(error) };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    // A grandchild may still hold the pipe open: stop reading anyway.
    child.stdout.cancel().catch(() => {});
  }, limits.timeoutMs);
  try {
    let output: Uint8Array | undefined;
    try {
      output = await readLimited(child.stdout, limits.maxBytes);
    } catch {
      output = new Uint8Array();
    }
    if (output === undefined && !timedOut) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    const status = await child.status;
    if (timedOut) return { status: "timeout" };
    if (output === undefined) return { status: "too-large" };
    if (!status.success) {
      return {
        status: "failed",
        reason: status.signal === null ? `exit code ${status.code}` : `signal ${status.signal}`,
      };
    }
    return { status: "ok", output: decodeText(output) };
  } finally {
    clearTimeout(timer);
  }
}

/** HTTP(S) GET with a deadline and a body bound; only a 2xx answer is `ok` (CFG-4). */
export async function fetchConfText(url: string, limits: IoLimits): Promise<FetchResult> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { status: "failed", reason: "not a valid URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { status: "failed", reason: `unsupported scheme ${parsed.protocol}` };
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    const response = await fetch(parsed, { signal: controller.signal, redirect: "follow" });
    if (response.status < 200 || response.status > 299) {
      await response.body?.cancel();
      return { status: "failed", reason: `HTTP status ${response.status}` };
    }
    if (response.body === null) return { status: "ok", body: "" };
    const body = await readLimited(response.body, limits.maxBytes);
    if (body === undefined) return { status: "too-large" };
    return { status: "ok", body: decodeText(body) };
  } catch (error) {
    if (controller.signal.aborted) return { status: "timeout" };
    return { status: "failed", reason: errorText(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The real I/O: Deno's file system, processes and `fetch`. */
export const DENO_CONF_IO: ConfIo = Object.freeze({
  async stat(path: string) {
    const info = await Deno.stat(path);
    return { isFile: info.isFile, isDirectory: info.isDirectory, size: info.size };
  },
  readFile(path: string): Promise<Uint8Array> {
    return Deno.readFile(path);
  },
  realPath(path: string): Promise<string> {
    return Deno.realPath(path);
  },
  async exists(path: string): Promise<boolean> {
    try {
      await Deno.lstat(path);
      return true;
    } catch {
      return false;
    }
  },
  async listDirectory(path: string): Promise<string[] | undefined> {
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      return names;
    } catch {
      return undefined;
    }
  },
  runCommand: runConfCommand,
  fetchText: fetchConfText,
});

/** Where the characters of a piece of text come from. */
interface Source {
  at(offset: number): ConfPosition;
}

/** A piece of text being scanned: a file's contents or a macro's output. */
interface Frame {
  readonly text: string;
  index: number;
  runStart: number;
  readonly source: Source;
  /** Directory relative include paths start from. */
  readonly base: string;
  /** Canonical paths of the files being included, outermost first (cycle detection). */
  readonly chain: readonly string[];
  readonly depth: number;
}

/** A run of the expanded text copied from one source. */
interface Segment {
  readonly start: number;
  readonly source: Source;
  readonly sourceOffset: number;
}

/** One `{{op arg}}` found in a text. */
interface MacroMatch {
  readonly start: number;
  readonly end: number;
  readonly operator: string;
  readonly argument: string;
}

/** Finds the macro starting at `index` (`{{`, operator, argument without braces, `}}`). */
function matchMacro(text: string, index: number): MacroMatch | undefined {
  const operator = text.charAt(index + 2);
  if (operator === "" || !MACRO_OPERATORS.includes(operator)) return undefined;
  // The argument holds no brace, so the first brace after the operator must open `}}`; the scan
  // stops at the first brace, which keeps the search linear over a whole text.
  let close = index + 3;
  for (;;) {
    const code = text.charCodeAt(close);
    if (Number.isNaN(code)) return undefined;
    if (code === 0x7b || code === 0x7d) break;
    close++;
  }
  if (text.charCodeAt(close) !== 0x7d || text.charCodeAt(close + 1) !== 0x7d) return undefined;
  let start = index + 3;
  let end = close;
  while (start < end && MACRO_BLANKS.has(text.charAt(start))) start++;
  while (end > start && MACRO_BLANKS.has(text.charAt(end - 1))) end--;
  return { start: index, end: close + 2, operator, argument: text.slice(start, end) };
}

function ioReason(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file or directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  return errorText(error);
}

/** Go's `filepath.Ext`-based base name without extension (`a.conf` → `a`, `.rc` → ``). */
function stem(path: string): string {
  const name = basename(path);
  const dot = name.lastIndexOf(".");
  return dot === -1 ? name : name.slice(0, dot);
}

function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

function fixedSource(position: ConfPosition): Source {
  return { at: () => position };
}

function fileSource(text: string, file: string): Source {
  return { at: lineLocator(text, file) };
}

function defaultEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The expansion of one main file. Not reused. */
class Expander {
  readonly #options: ReadConfOptions;
  readonly #io: ConfIo;
  readonly #cwd: string;
  readonly #topPath: string;
  readonly #roots: string[] | undefined;
  readonly #lexer = new ConfLexer();
  readonly #out: string[] = [];
  readonly #segments: Segment[] = [];
  readonly #files = new Set<string>();
  readonly #warnings: ConfWarning[] = [];
  #length = 0;
  #expansions = 0;

  constructor(
    topPath: string,
    options: ReadConfOptions,
    cwd: string,
    roots: string[] | undefined,
  ) {
    this.#options = options;
    this.#io = options.io ?? DENO_CONF_IO;
    this.#cwd = cwd;
    this.#topPath = topPath;
    this.#roots = roots;
  }

  get files(): string[] {
    return [...this.#files];
  }

  get warnings(): ConfWarning[] {
    return this.#warnings;
  }

  get text(): string {
    return this.#out.join("");
  }

  addFile(path: string): void {
    this.#files.add(path);
  }

  /** Maps an offset of the expanded text to its source position. */
  locate(offset: number): ConfPosition {
    const segments = this.#segments;
    if (segments.length === 0) return { file: this.#topPath, line: 1, column: 1 };
    let low = 0;
    let high = segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((segments[middle]?.start ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    const segment = segments[low] as Segment;
    return segment.source.at(segment.sourceOffset + Math.max(0, offset - segment.start));
  }

  async expand(text: string, file: string, absolute: string, real: string): Promise<void> {
    const stack: Frame[] = [{
      text,
      index: 0,
      runStart: 0,
      source: fileSource(text, file),
      base: dirname(absolute),
      chain: [real],
      depth: 0,
    }];
    const lexer = this.#lexer;
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as Frame;
      const frameText = frame.text;
      let index = frame.index;
      let macro: MacroMatch | undefined;
      while (index < frameText.length) {
        const mode = lexer.mode;
        if (
          (mode === LexMode.Code || mode === LexMode.String) &&
          frameText.charCodeAt(index) === 0x7b && frameText.charCodeAt(index + 1) === 0x7b
        ) {
          const found = matchMacro(frameText, index);
          // `|` and `@` are never expanded inside quoted strings: they stay text.
          if (
            found !== undefined &&
            !(mode === LexMode.String && (found.operator === "|" || found.operator === "@"))
          ) {
            macro = found;
            break;
          }
        }
        lexer.feed(frameText.charAt(index));
        index++;
      }
      this.#flush(frame, index);
      if (macro === undefined) {
        stack.pop();
        continue;
      }
      frame.index = macro.end;
      frame.runStart = macro.end;
      const children = await this.#run(macro, frame);
      for (let child = children.length - 1; child >= 0; child--) {
        stack.push(children[child] as Frame);
      }
    }
  }

  #flush(frame: Frame, end: number): void {
    if (end > frame.runStart) {
      const piece = frame.text.slice(frame.runStart, end);
      this.#segments.push({
        start: this.#length,
        source: frame.source,
        sourceOffset: frame.runStart,
      });
      this.#out.push(piece);
      this.#length += piece.length;
      if (this.#length > MAX_EXPANDED_LENGTH) {
        throw new ConfFileError(
          `configuration grows beyond ${MAX_EXPANDED_LENGTH} characters during macro expansion`,
          this.#topPath,
          frame.source.at(frame.runStart),
        );
      }
    }
    frame.runStart = end;
    frame.index = end;
  }

  #child(parent: Frame, text: string, site: ConfPosition, base: string = parent.base): Frame {
    return {
      text,
      index: 0,
      runStart: 0,
      source: fixedSource(site),
      base,
      chain: parent.chain,
      depth: parent.depth + 1,
    };
  }

  #fail(reason: string, site: ConfPosition): never {
    throw new ConfFileError(reason, site.file, site);
  }

  async #run(macro: MacroMatch, frame: Frame): Promise<Frame[]> {
    const site = frame.source.at(macro.start);
    const shown = `{{${macro.operator}${macro.argument}}}`;
    if (++this.#expansions > MAX_MACRO_EXPANSIONS) {
      this.#fail(`more than ${MAX_MACRO_EXPANSIONS} macros expanded; is a macro looping?`, site);
    }
    if (frame.depth + 1 > MAX_MACRO_DEPTH) {
      this.#fail(
        `macro ${shown} is nested more than ${MAX_MACRO_DEPTH} levels deep; ` +
          "does a macro produce itself?",
        site,
      );
    }
    const argument = macro.argument;
    const space = argument.indexOf(" ");
    const first = space === -1 ? argument : argument.slice(0, space);
    const rest = space === -1 ? "" : argument.slice(space + 1);
    switch (macro.operator) {
      case "<":
        return await this.#include(frame, this.#required(first, shown, site), site);
      case "=":
        return await this.#listInclude(frame, this.#required(first, shown, site), site);
      case "|":
        return await this.#command(frame, this.#required(first, shown, site), rest, site, shown);
      case "@":
        return await this.#fetch(frame, this.#required(first, shown, site), site, shown);
      case "&": {
        const value = (this.#options.env ?? defaultEnv)(first) ?? "";
        return [this.#child(frame, value, site)];
      }
      case "!":
        return [this.#child(frame, this.#argvOption(first), site)];
      case "-": {
        const program = this.#options.programName ?? "";
        const dash = program.indexOf("-");
        return [this.#child(frame, dash === -1 ? "" : program.slice(dash + 1).toLowerCase(), site)];
      }
      case "+": {
        const matches = await this.#glob(this.#baseRelative(frame, first), shown, site);
        return [this.#child(frame, matches.map(stem).join(" ").trim(), site)];
      }
      default:
        return [this.#child(frame, basename(this.#topPath), site)];
    }
  }

  #required(argument: string, shown: string, site: ConfPosition): string {
    if (argument === "") this.#fail(`macro ${shown} needs a file name, pattern or URL`, site);
    return argument;
  }

  #baseRelative(frame: Frame, pattern: string): string {
    return pattern.startsWith("/") ? pattern : `${frame.base}/${pattern}`;
  }

  /** Checks that a pattern cannot reach outside the roots (domain files, ODD-22). */
  #checkRoots(pattern: string, shown: string, site: ConfPosition): void {
    const roots = this.#roots;
    if (roots === undefined) return;
    const segments = pattern.split("/");
    let wild = segments.findIndex((segment) => hasGlobMeta(segment));
    if (wild === -1) wild = segments.length;
    if (segments.slice(wild).includes("..")) {
      this.#fail(`macro ${shown} may not use '..' after a wildcard here`, site);
    }
    const prefix = posix.normalize(segments.slice(0, wild).join("/") || "/");
    if (!roots.some((root) => isInside(prefix, root))) {
      this.#fail(`macro ${shown} reaches outside the allowed folder (${roots.join(", ")})`, site);
    }
  }

  async #glob(pattern: string, shown: string, site: ConfPosition): Promise<string[]> {
    this.#checkRoots(pattern, shown, site);
    let matches: string[];
    try {
      matches = await expandGlob(pattern, this.#io);
    } catch (error) {
      if (error instanceof GlobPatternError) this.#fail(`macro ${shown}: ${error.message}`, site);
      throw error;
    }
    if (matches.length > MAX_MACRO_MATCHES) {
      this.#fail(`macro ${shown} matches more than ${MAX_MACRO_MATCHES} files`, site);
    }
    if (this.#roots !== undefined) {
      for (const match of matches) {
        const real = await this.#realPath(match);
        if (!this.#roots.some((root) => isInside(real, root))) {
          this.#fail(`macro ${shown} reaches ${real}, outside the allowed folder`, site);
        }
      }
    }
    return matches;
  }

  async #realPath(path: string): Promise<string> {
    try {
      return await this.#io.realPath(path);
    } catch {
      return posix.normalize(path);
    }
  }

  /** Reads an included file; `undefined` (with a warning) when it cannot be read. */
  async #readIncluded(
    path: string,
    shown: string,
    site: ConfPosition,
  ): Promise<string | undefined> {
    try {
      const info = await this.#io.stat(path);
      if (info.isDirectory) return undefined;
      if (info.size > MAX_CONF_FILE_SIZE) {
        this.#fail(`macro ${shown}: ${path} is larger than ${MAX_CONF_FILE_SIZE} bytes`, site);
      }
      return decodeText(await this.#io.readFile(path));
    } catch (error) {
      if (error instanceof ConfFileError) throw error;
      this.#warnings.push({
        message: `macro ${shown}: cannot read ${path} (${ioReason(error)}); it inserts nothing`,
        position: site,
      });
      return undefined;
    }
  }

  async #include(frame: Frame, pattern: string, site: ConfPosition): Promise<Frame[]> {
    const shown = `{{<${pattern}}}`;
    const frames: Frame[] = [];
    for (const match of await this.#glob(this.#baseRelative(frame, pattern), shown, site)) {
      const real = await this.#realPath(match);
      if (frame.chain.includes(real)) {
        this.#fail(`include cycle: ${[...frame.chain, real].join(" includes ")}`, site);
      }
      const text = await this.#readIncluded(match, shown, site);
      if (text === undefined) continue;
      this.#files.add(posix.normalize(match));
      frames.push({
        text,
        index: 0,
        runStart: 0,
        source: fileSource(text, match),
        base: dirname(match),
        chain: [...frame.chain, real],
        depth: frame.depth + 1,
      });
    }
    return frames;
  }

  async #listInclude(frame: Frame, pattern: string, site: ConfPosition): Promise<Frame[]> {
    const shown = `{{=${pattern}}}`;
    // Relative to the working directory, not to the including file, as in the original.
    const absolute = isAbsolute(pattern) ? pattern : `${this.#cwd.replace(/\/$/, "")}/${pattern}`;
    let produced = "";
    for (const match of await this.#glob(absolute, shown, site)) {
      const text = await this.#readIncluded(match, shown, site);
      if (text === undefined) continue;
      this.#files.add(posix.normalize(match));
      for (const line of text.split("\n")) {
        const item = line.trim();
        if (item === "" || item.startsWith("#") || item.startsWith("//")) continue;
        produced += `${JSON.stringify(item)}\n`;
      }
    }
    return [this.#child(frame, produced, site)];
  }

  async #command(
    frame: Frame,
    pattern: string,
    argument: string,
    site: ConfPosition,
    shown: string,
  ): Promise<Frame[]> {
    if (this.#options.kind === "domain") {
      this.#fail(`command macro ${shown} is not allowed in domain files`, site);
    }
    if (this.#options.allowExec !== true) {
      this.#fail(
        `command macro ${shown} runs a program; start groom with --allow-exec to permit it`,
        site,
      );
    }
    const matches = await this.#glob(this.#baseRelative(frame, pattern), shown, site);
    if (matches.length === 0) {
      this.#warnings.push({ message: `macro ${shown} matches no file`, position: site });
    }
    let output = "";
    let base: string | undefined;
    for (const match of matches) {
      const result = await this.#io.runCommand(match, argument, {
        timeoutMs: COMMAND_TIMEOUT_MS,
        maxBytes: MAX_COMMAND_OUTPUT,
      });
      if (result.status === "timeout") {
        this.#fail(`command ${match} did not finish within ${COMMAND_TIMEOUT_MS / 1000} s`, site);
      }
      if (result.status === "too-large") {
        this.#fail(`command ${match} wrote more than ${MAX_COMMAND_OUTPUT} bytes`, site);
      }
      if (result.status === "failed") {
        this.#warnings.push({
          message: `command ${match} failed (${result.reason}); it inserts nothing`,
          position: site,
        });
        continue;
      }
      output += result.output;
      base = dirname(match);
    }
    // As the original: multi-line output resolves relative paths against the command's folder.
    const childBase = base !== undefined && output.includes("\n") ? base : frame.base;
    return [this.#child(frame, output, site, childBase)];
  }

  async #fetch(frame: Frame, url: string, site: ConfPosition, shown: string): Promise<Frame[]> {
    if (this.#options.kind === "domain") {
      this.#fail(`fetch macro ${shown} is not allowed in domain files`, site);
    }
    if (this.#options.allowFetch !== true) {
      this.#fail(
        `fetch macro ${shown} downloads configuration; start groom with --allow-fetch to permit it`,
        site,
      );
    }
    const result = await this.#io.fetchText(url, {
      timeoutMs: FETCH_TIMEOUT_MS,
      maxBytes: MAX_FETCH_SIZE,
    });
    if (result.status === "too-large") {
      this.#fail(`fetch ${url} returned more than ${MAX_FETCH_SIZE} bytes`, site);
    }
    if (result.status !== "ok") {
      const reason = result.status === "timeout"
        ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s`
        : result.reason;
      this.#warnings.push({
        message: `fetch ${url} failed (${reason}); it inserts nothing`,
        position: site,
      });
      return [];
    }
    return [this.#child(frame, result.body, site)];
  }

  /** `{{!name}}` (CFG-4): the value of a command-line option, `true`/`false`, or empty. */
  #argvOption(name: string): string {
    let matcher: RegExp;
    try {
      matcher = new RegExp(`^--?(no-?)?(?:${name})(?:(=)(.+))?$`, "i");
    } catch {
      return "";
    }
    const argv = this.#options.argv ?? [];
    for (let index = 0; index < argv.length; index++) {
      const option = argv[index] as string;
      if (option === "--") break;
      const captures = matcher.exec(option);
      if (captures === null) continue;
      if (captures[2] === "=") return captures[3] ?? "";
      const next = argv[index + 1];
      if (next === undefined || next.startsWith("-")) {
        return captures[1] !== undefined && captures[1] !== "" ? "false" : "true";
      }
      return next;
    }
    return "";
  }
}

function emptyDocument(): ConfDocument {
  return { tree: {}, positions: new Map(), warnings: [], hash: hashConf({}), files: [] };
}

/**
 * Reads a configuration file (CFG-1): expands its macros, parses it and hashes the tree. A
 * relative `path` starts from `cwd`. Throws {@link ConfFileError} when the file is missing
 * (unless `missingIsEmpty`), unreadable or a directory, on include cycles, refused macros and
 * runaway expansion, and `ConfSyntaxError` (naming the included file when the error is in one)
 * on malformed text. An empty file is an empty configuration.
 */
export async function readConfFile(path: string, options: ReadConfOptions): Promise<ConfDocument> {
  const io = options.io ?? DENO_CONF_IO;
  const cwd = options.cwd ?? Deno.cwd();
  const absolute = resolve(cwd, path);
  let text: string;
  try {
    const info = await io.stat(absolute);
    if (info.isDirectory) {
      throw new ConfFileError("is a directory, not a configuration file", path);
    }
    if (info.size > MAX_CONF_FILE_SIZE) {
      throw new ConfFileError(`is larger than ${MAX_CONF_FILE_SIZE} bytes`, path);
    }
    text = decodeText(await io.readFile(absolute));
  } catch (error) {
    if (error instanceof ConfFileError) throw error;
    if (error instanceof Deno.errors.NotFound && options.missingIsEmpty === true) {
      return emptyDocument();
    }
    throw new ConfFileError(`cannot read the configuration file: ${ioReason(error)}`, path);
  }
  let roots: string[] | undefined;
  if (options.roots !== undefined) {
    roots = [];
    for (const root of options.roots) {
      const resolved = resolve(cwd, root);
      roots.push(resolved);
      try {
        const real = await io.realPath(resolved);
        if (real !== resolved) roots.push(real);
      } catch {
        // A missing root allows nothing more than its name.
      }
    }
  }
  const expander = new Expander(path, options, cwd, roots);
  let real = absolute;
  try {
    real = await io.realPath(absolute);
  } catch {
    // Keep the resolved path.
  }
  expander.addFile(absolute);
  await expander.expand(text, path, absolute, real);
  const parsed = parseConf(expander.text, { locate: (offset) => expander.locate(offset) });
  return {
    tree: parsed.tree,
    positions: parsed.positions,
    warnings: [...expander.warnings, ...parsed.warnings],
    hash: hashConf(parsed.tree),
    files: expander.files,
  };
}
