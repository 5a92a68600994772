/**
 * Client credentials and agent secrets (ACL-4…ACL-7, SRV-8, PROTO-7 row 4) with the fixes of
 * ODD-9, ODD-19 and ODD-20: every comparison is constant-time, a stored `login:password` entry is
 * split at its first `:` only, entries without a login match no client, `$6$` hashes are parsed
 * and verified as glibc computes them, other hash schemes never match and are reported. `@file`
 * entries are read at each check through an injectable, bounded reader. Results carry the
 * configuration problems met on the way, worded without any secret, for the caller to log.
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { MAX_PASSWORD_BYTES, parseSha512Crypt, sha512CryptDigest } from "./sha512_crypt.ts";

/**
 * Largest `@file` read for credentials or secrets. The file is read at every check (ACL-5), so a
 * huge or endless file (`@/dev/zero`) must not exhaust memory or stall requests; 1 MiB holds
 * thousands of entries.
 */
export const MAX_CREDENTIALS_FILE_BYTES = 1024 * 1024;
/**
 * Largest `Authorization` header value parsed for Basic credentials: the base64 of a
 * {@linkcode MAX_PASSWORD_BYTES} password plus a login, with room to spare. Longer values count as
 * absent credentials (ACL-6) instead of being decoded.
 */
export const MAX_BASIC_AUTH_HEADER_BYTES = 8192;

/** Reads a text file (the `@file` entries of ACL-5). Rejects when the file cannot be read. */
export type ReadTextFile = (path: string) => Promise<string>;

/** Dependencies of {@linkcode matchCredential} and {@linkcode matchSecret}. */
export interface CredentialDeps {
  /** Reads `@file` entries; default {@linkcode readBoundedTextFile}. */
  readTextFile?: ReadTextFile;
}

/** Outcome of a credential or secret check. */
export interface CredentialMatch {
  /** Whether the input matched an entry. */
  matched: boolean;
  /**
   * Configuration problems met while checking (unreadable file, entry that can never match,
   * unsupported hash scheme). They never contain a secret; the same problems recur at every
   * check, so callers should log each distinct text once.
   */
  problems: string[];
}

/** Login and password from an `Authorization: Basic` header (ACL-6). */
export interface BasicCredentials {
  /** The login, empty when the header is absent or invalid. */
  login: string;
  /** The password, empty when the header is absent or invalid. */
  password: string;
}

/** Options of {@linkcode describeSecretProblem}. */
export interface DescribeSecretOptions {
  /**
   * `"secret"` (default): the entry is a whole agent secret (`secret` directive).
   * `"credential"`: the entry is a `clients.credentials` item, `login:password`.
   */
  kind?: "secret" | "credential";
}

/** Crypt schemes recognised only to be refused, by their `$id$` prefix, with a readable name. */
const UNSUPPORTED_SCHEMES: Readonly<Record<string, string>> = {
  "1": "md5crypt",
  "2": "bcrypt",
  "2a": "bcrypt",
  "2b": "bcrypt",
  "2x": "bcrypt",
  "2y": "bcrypt",
  "3": "NT hash",
  "5": "sha256crypt",
  "7": "scrypt",
  "gy": "gost-yescrypt",
  "md5": "Sun md5crypt",
  "sha1": "sha1crypt",
  "y": "yescrypt",
  "argon2i": "argon2",
  "argon2d": "argon2",
  "argon2id": "argon2",
};

/** The `$id$` prefix of a crypt string. */
const SCHEME_PREFIX_REGEXP = /^\$([0-9a-z]+)\$/;
/** Standard base64 with mandatory padding, as Go's `base64.StdEncoding` expects. */
const STRICT_BASE64_REGEXP = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Compares two secrets in constant time with respect to their content and length (ODD-9): both
 * are reduced to SHA-256 digests, which `timingSafeEqual` compares. Strings are compared as UTF-8.
 */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/**
 * Verifies `password` against a stored `$6$[rounds=N$]salt$digest` string (ACL-7) by recomputing
 * the digest with the stored salt (its first 16 bytes) and rounds and comparing it in constant
 * time. Unlike the original (ODD-20), an explicit `rounds=5000$` or a salt longer than 16
 * characters verifies, the digest being computed as glibc computes it. Anything else (other schemes, malformed strings, rounds above the limit, passwords over
 * {@linkcode MAX_PASSWORD_BYTES}) is no match; {@linkcode describeSecretProblem} tells why.
 */
export function verifyCrypt(password: string | Uint8Array, stored: string): boolean {
  const bytes = typeof password === "string" ? new TextEncoder().encode(password) : password;
  if (bytes.length > MAX_PASSWORD_BYTES) return false;
  let parts;
  try {
    parts = parseSha512Crypt(stored);
  } catch (error) {
    if (error instanceof RangeError) return false; // rounds above the limit
    throw error;
  }
  if (parts === undefined) return false;
  return constantTimeEqual(sha512CryptDigest(bytes, parts.salt, parts.rounds), parts.digest);
}

/**
 * Describes why a configured secret or credential entry can never match, for `groom check` and
 * start-up warnings, or returns `undefined` when it looks usable. `@file` entries are not read
 * here. The text never contains the secret.
 *
 * @example
 * ```ts
 * describeSecretProblem("$y$j9T$…"); // "unsupported hash scheme $y$ (yescrypt); use `groom password`"
 * describeSecretProblem("alice", { kind: "credential" }); // "no \":\" between login and password…"
 * ```
 */
export function describeSecretProblem(
  entry: string,
  options: DescribeSecretOptions = {},
): string | undefined {
  const trimmed = entry.trim();
  if (isFileEntry(trimmed)) return undefined;
  if (options.kind === "credential") {
    const split = splitCredentialEntry(trimmed);
    if (typeof split === "string") return split;
    return describeCandidateProblem(split.candidate);
  }
  return describeCandidateProblem(trimmed);
}

/**
 * Checks client Basic credentials against `clients.credentials` (ACL-4, ACL-5, SRV-8), fixed per
 * ODD-9/ODD-19: each entry is `login:password`, `login:$6$…` or `@/path/file`; an entry is split at
 * its first `:` only and the whole (trimmed) remainder is the password or hash, so passwords may
 * contain `:`; login and password are trimmed as in the original; an empty login, or an entry
 * without `:` or with an empty login, matches nothing. Files are read at each check; their
 * trimmed non-empty lines not starting with `#` are entries (never followed as `@` references).
 */
export async function matchCredential(
  login: string,
  password: string,
  entries: readonly string[],
  deps: CredentialDeps = {},
): Promise<CredentialMatch> {
  const problems: string[] = [];
  const wantedLogin = login.trim();
  const givenPassword = password.trim();
  const check = (entry: string, where: string): boolean => {
    const split = splitCredentialEntry(entry);
    if (typeof split === "string") {
      problems.push(`${where}: ${split}`);
      return false;
    }
    // Logins are compared in constant time too, so timing does not tell how much of one matched.
    if (wantedLogin === "" || !constantTimeEqual(split.login, wantedLogin)) return false;
    return checkCandidate(givenPassword, split.candidate, where, problems);
  };
  const name = (index: number) => `credentials entry ${index + 1}`;
  const matched = await scanEntries(entries, name, check, problems, deps);
  return { matched, problems };
}

/**
 * Checks an agent's bearer secret against the domain's `secret` (PROTO-7 row 4, ACL-4, ACL-5),
 * fixed per ODD-9/ODD-19: the whole trimmed secret is compared with the whole trimmed entry, plain
 * or `$6$` hash, or, for `@/path/file`, with each line of the file (trimmed, non-empty, not
 * starting with `#`). An empty secret or entry never matches.
 */
export async function matchSecret(
  secret: string,
  entry: string,
  deps: CredentialDeps = {},
): Promise<CredentialMatch> {
  const problems: string[] = [];
  const given = secret.trim();
  if (given === "" || entry.trim() === "") return { matched: false, problems };
  const check = (candidate: string, where: string): boolean =>
    checkCandidate(given, candidate, where, problems);
  const matched = await scanEntries([entry], () => "secret", check, problems, deps);
  return { matched, problems };
}

/**
 * Extracts Basic credentials from an `Authorization` header value (ACL-6, SRV-8): the scheme
 * `Basic` (case-insensitive) and one space, then standard base64 with padding of UTF-8
 * `login:password`, split at the first `:`. Anything else (absent, other scheme, bad base64,
 * invalid UTF-8, no `:`, longer than {@linkcode MAX_BASIC_AUTH_HEADER_BYTES}) gives an empty login
 * and password, as Go's `Request.BasicAuth` does.
 */
export function parseBasicAuth(headerValue: string | null | undefined): BasicCredentials {
  const none = { login: "", password: "" };
  if (typeof headerValue !== "string" || headerValue.length > MAX_BASIC_AUTH_HEADER_BYTES) {
    return none;
  }
  const prefix = "basic ";
  if (headerValue.slice(0, prefix.length).toLowerCase() !== prefix) return none;
  const encoded = headerValue.slice(prefix.length);
  if (!STRICT_BASE64_REGEXP.test(encoded)) return none;
  let decoded: string;
  try {
    const binary = atob(encoded);
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    decoded = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return none; // invalid UTF-8: refuse rather than map different bytes to U+FFFD
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return none;
  return { login: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Reads a UTF-8 text file of at most `maxBytes` bytes (default
 * {@linkcode MAX_CREDENTIALS_FILE_BYTES}), the default reader of `@file` entries. Reading stops
 * once the limit is passed, so special files of endless content are refused too.
 *
 * @throws {RangeError} the file is larger than `maxBytes`.
 * @throws {Deno.errors.NotFound} and the other errors of `Deno.open` / `read`.
 */
export async function readBoundedTextFile(
  path: string,
  maxBytes: number = MAX_CREDENTIALS_FILE_BYTES,
): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(maxBytes + 1);
  let length = 0;
  while (length < buffer.length) {
    const count = await file.read(buffer.subarray(length));
    if (count === null) break;
    length += count;
  }
  if (length > maxBytes) {
    throw new RangeError(`file larger than ${maxBytes} bytes`);
  }
  return new TextDecoder().decode(buffer.subarray(0, length));
}

/** A stored credential entry split at its first `:`. */
interface CredentialEntry {
  login: string;
  candidate: string;
}

/** Splits `login:password` at the first `:`, or describes why the entry matches no client. */
function splitCredentialEntry(entry: string): CredentialEntry | string {
  const colon = entry.indexOf(":");
  if (colon < 0) {
    return `no ":" between login and password (login:password), the entry never matches`;
  }
  const login = entry.slice(0, colon).trim();
  if (login === "") return 'empty login before ":", the entry never matches';
  return { login, candidate: entry.slice(colon + 1).trim() };
}

/** Why a password candidate (plain text or hash) can never match, or `undefined`. */
function describeCandidateProblem(candidate: string): string | undefined {
  if (candidate === "") return "empty password or secret, the entry never matches";
  const scheme = SCHEME_PREFIX_REGEXP.exec(candidate)?.[1];
  if (scheme === "6") {
    try {
      if (parseSha512Crypt(candidate) === undefined) {
        return "malformed $6$ hash (expected $6$[rounds=N$]salt$ and 86 characters of ./0-9A-Za-z)";
      }
    } catch (error) {
      if (error instanceof RangeError) return `unusable $6$ hash: ${error.message}`;
      throw error;
    }
    return undefined;
  }
  if (scheme !== undefined && Object.hasOwn(UNSUPPORTED_SCHEMES, scheme)) {
    return `unsupported hash scheme $${scheme}$ (${UNSUPPORTED_SCHEMES[scheme]}); ` +
      "use `groom password`";
  }
  return undefined;
}

/**
 * Compares a password with one candidate: `$6$` hashes are verified, other known hash schemes
 * never match (problem reported), anything else is plain text compared in constant time.
 */
function checkCandidate(
  password: string,
  candidate: string,
  where: string,
  problems: string[],
): boolean {
  const problem = describeCandidateProblem(candidate);
  if (problem !== undefined) {
    problems.push(`${where}: ${problem}`);
    return false;
  }
  if (candidate.startsWith("$6$")) return verifyCrypt(password, candidate);
  return constantTimeEqual(password, candidate);
}

/** Whether a trimmed entry is an `@/path/file` reference (ACL-4: `@` plus at least one more). */
function isFileEntry(entry: string): boolean {
  return entry.startsWith("@") && entry.length > 1;
}

/**
 * Runs `check` over the configured entries, expanding `@file` entries into their lines (ACL-5),
 * until one matches. `name` gives an entry's name in problem texts.
 */
async function scanEntries(
  entries: readonly string[],
  name: (index: number) => string,
  check: (entry: string, where: string) => boolean,
  problems: string[],
  deps: CredentialDeps,
): Promise<boolean> {
  const readTextFile = deps.readTextFile ?? readBoundedTextFile;
  for (const [index, rawEntry] of entries.entries()) {
    const entry = rawEntry.trim();
    if (entry === "") continue;
    if (!isFileEntry(entry)) {
      if (check(entry, name(index))) return true;
      continue;
    }
    const path = entry.slice(1).trim();
    const text = await readEntryFile(readTextFile, path, problems);
    if (text === undefined) continue;
    for (const [lineIndex, rawLine] of text.split("\n").entries()) {
      const line = rawLine.trim();
      if (line === "" || line.startsWith("#")) continue;
      if (check(line, `file "${path}" line ${lineIndex + 1}`)) return true;
    }
  }
  return false;
}

/** Reads an `@file`, or records a problem and returns `undefined` (read errors never match). */
async function readEntryFile(
  readTextFile: ReadTextFile,
  path: string,
  problems: string[],
): Promise<string | undefined> {
  try {
    const text = await readTextFile(path);
    if (text.length > MAX_CREDENTIALS_FILE_BYTES) {
      throw new RangeError(`file larger than ${MAX_CREDENTIALS_FILE_BYTES} bytes`);
    }
    return text;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    problems.push(`Cannot read file "${path}": ${reason}`);
    return undefined;
  }
}

/** SHA-256 of a string (UTF-8) or bytes. */
function sha256(value: string | Uint8Array): Uint8Array {
  return createHash("sha256").update(value).digest();
}
