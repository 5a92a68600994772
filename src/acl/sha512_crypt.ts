/**
 * SHA-512-crypt (`$6$`, Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", ACL-7) over
 * `node:crypto`: {@linkcode sha512Crypt} writes the string glibc `crypt()` / `mkpasswd -m sha-512`
 * writes, and {@linkcode parseSha512Crypt} / {@linkcode sha512CryptDigest} take a stored string
 * apart and recompute its digest, so that verification compares digests rather than whole
 * strings (the ODD-20 fix: an explicit `rounds=5000$` or a salt longer than 16 characters still
 * verifies). Inputs are bounded because the cost grows with password length times rounds and runs
 * synchronously on the event loop.
 * @module
 */

import { createHash } from "node:crypto";

/** Rounds used when a setting names none (Drepper's default; `rounds=` is then not written). */
export const DEFAULT_ROUNDS = 5000;
/** Lowest rounds value: smaller requests are raised to it, as glibc does. */
export const MIN_ROUNDS = 1000;
/**
 * Highest rounds value computed. glibc clamps at 999 999 999, but at about 2 µs per round here one
 * check would block the event loop for half an hour: any client able to send a password could
 * stall the proxy (CPU DoS). One million still covers common generators (passlib: 656 000);
 * larger requests are refused with a RangeError instead of being clamped.
 */
export const MAX_ROUNDS = 1_000_000;
/**
 * Longest password accepted, in UTF-8 bytes. The work per round grows with the password length,
 * so an unbounded password sent by a peer is a CPU DoS; 4 KiB is far above any real password.
 */
export const MAX_PASSWORD_BYTES = 4096;
/** Salt bytes used by the algorithm; longer salts are truncated, as glibc does. */
export const MAX_SALT_BYTES = 16;
/** Length of the encoded digest that ends every `$6$` string. */
export const DIGEST_LENGTH = 86;

/** The crypt base64 alphabet (not the standard one): `./0-9A-Za-z`. */
const CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Byte order of the final encoding, three bytes per four characters (Drepper, step 22). */
const ENCODING_ORDER: readonly (readonly [number, number, number])[] = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];

/**
 * `$6$[rounds=N$]salt$digest`. The salt is everything up to the next `$` (glibc stops there too);
 * a `rounds=` field that is not all digits is part of the salt, as in glibc. Rounds digits are
 * bounded so the number stays exact.
 */
const SHA512_CRYPT_REGEXP = /^\$6\$(?:rounds=(\d{1,15})\$)?([^$]*)\$([./0-9A-Za-z]{86})$/;

/** Options of {@linkcode sha512Crypt}. */
export interface Sha512CryptOptions {
  /** Rounds, default {@linkcode DEFAULT_ROUNDS}; below {@linkcode MIN_ROUNDS} it is raised. */
  rounds?: number;
}

/** The parts of a stored `$6$` string, as returned by {@linkcode parseSha512Crypt}. */
export interface Sha512CryptParts {
  /** Rounds to compute with (already raised to {@linkcode MIN_ROUNDS} when lower). */
  rounds: number;
  /** Whether the string carried a `rounds=` field (even `rounds=5000`). */
  explicitRounds: boolean;
  /** The salt bytes the algorithm uses: at most {@linkcode MAX_SALT_BYTES}. */
  salt: Uint8Array;
  /** The 86-character encoded digest. */
  digest: string;
}

/**
 * Computes the SHA-512-crypt string of `password` with `salt`, byte-identical to glibc `crypt()`
 * and `mkpasswd -m sha-512 -S <salt>` (ACL-7, CLI-6): the salt is truncated to its first 16 bytes,
 * `rounds=N$` is written only when N differs from 5000.
 *
 * @throws {RangeError} the password exceeds {@linkcode MAX_PASSWORD_BYTES}, the salt contains `$`
 * or a character outside printable ASCII, or rounds is not an integer or exceeds
 * {@linkcode MAX_ROUNDS}.
 *
 * @example
 * ```ts
 * sha512Crypt("mysecret1", "saltsalt"); // "$6$saltsalt$/bUAMPFBdWgbQ…"
 * ```
 */
export function sha512Crypt(
  password: string | Uint8Array,
  salt: string,
  options: Sha512CryptOptions = {},
): string {
  const rounds = checkRounds(options.rounds ?? DEFAULT_ROUNDS);
  const saltProblem = describeSaltProblem(salt);
  if (saltProblem !== undefined) {
    throw new RangeError(`Cannot use salt for SHA-512-crypt: ${saltProblem}`);
  }
  const usedSalt = salt.slice(0, MAX_SALT_BYTES); // ASCII only, so characters are bytes
  const digest = sha512CryptDigest(passwordBytes(password), encodeUtf8(usedSalt), rounds);
  const roundsField = rounds === DEFAULT_ROUNDS ? "" : `rounds=${rounds}$`;
  return `$6$${roundsField}${usedSalt}$${digest}`;
}

/**
 * Takes a stored `$6$` string apart, or returns `undefined` when it is not one (wrong scheme,
 * missing `$`, digest not 86 characters of the crypt alphabet).
 *
 * @throws {RangeError} the string is well formed but asks for more than {@linkcode MAX_ROUNDS}.
 */
export function parseSha512Crypt(stored: string): Sha512CryptParts | undefined {
  const match = SHA512_CRYPT_REGEXP.exec(stored);
  if (match === null) return undefined;
  const [, roundsText, saltText = "", digest = ""] = match;
  const rounds = roundsText === undefined ? DEFAULT_ROUNDS : Number(roundsText);
  return {
    rounds: checkRounds(rounds),
    explicitRounds: roundsText !== undefined,
    salt: encodeUtf8(saltText).subarray(0, MAX_SALT_BYTES),
    digest,
  };
}

/**
 * Returns the 86-character encoded SHA-512-crypt digest of `password` with the salt bytes (only
 * the first 16 are used) and rounds given, the last field of a `$6$` string.
 *
 * @throws {RangeError} the password exceeds {@linkcode MAX_PASSWORD_BYTES} or rounds is out of
 * range (see {@linkcode sha512Crypt}).
 */
export function sha512CryptDigest(password: Uint8Array, salt: Uint8Array, rounds: number): string {
  if (password.length > MAX_PASSWORD_BYTES) {
    throw new RangeError(
      `Cannot hash a password of ${password.length} bytes: the limit is ${MAX_PASSWORD_BYTES}`,
    );
  }
  const roundCount = checkRounds(rounds);
  const key = password;
  const saltBytes = salt.subarray(0, MAX_SALT_BYTES);

  // Steps 4-8: digest B = SHA512(key salt key).
  const digestB = sha512(key, saltBytes, key);

  // Steps 1-3 and 9-12: digest A.
  const hashA = createHash("sha512").update(key).update(saltBytes);
  hashA.update(repeatTo(digestB, key.length));
  for (let length = key.length; length > 0; length >>>= 1) {
    hashA.update((length & 1) !== 0 ? digestB : key);
  }
  let current: Uint8Array = hashA.digest();

  // Steps 13-16: the P sequence, from SHA512(key repeated key.length times).
  const hashDP = createHash("sha512");
  for (let i = 0; i < key.length; i++) hashDP.update(key);
  const sequenceP = repeatTo(new Uint8Array(hashDP.digest()), key.length);

  // Steps 17-20: the S sequence, from SHA512(salt repeated 16 + A[0] times).
  const hashDS = createHash("sha512");
  const saltRepeats = 16 + (current[0] ?? 0);
  for (let i = 0; i < saltRepeats; i++) hashDS.update(saltBytes);
  const sequenceS = repeatTo(new Uint8Array(hashDS.digest()), saltBytes.length);

  // Step 21: the rounds. Each round's input is assembled in one scratch buffer so that only one
  // update() call crosses into the native hash per round (about 20% faster than four calls).
  const scratch = new Uint8Array(2 * 64 + sequenceS.length + 2 * sequenceP.length);
  for (let round = 0; round < roundCount; round++) {
    const odd = (round & 1) !== 0;
    let length = append(scratch, 0, odd ? sequenceP : current);
    if (round % 3 !== 0) length = append(scratch, length, sequenceS);
    if (round % 7 !== 0) length = append(scratch, length, sequenceP);
    length = append(scratch, length, odd ? current : sequenceP);
    current = createHash("sha512").update(scratch.subarray(0, length)).digest();
  }

  return encodeDigest(current);
}

/**
 * Describes why `salt` cannot be used by {@linkcode sha512Crypt}, or returns `undefined`. `$` would
 * end the salt early and make an unparseable string; control and non-ASCII characters would break
 * configuration lines or the 16-byte truncation. `+`, outside the crypt alphabet, is accepted as
 * glibc accepts it (ODD-20: `groom password` generates such salts).
 */
export function describeSaltProblem(salt: string): string | undefined {
  for (const char of salt) {
    if (char === "$") return `the salt contains "$"`;
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || code > 0x7e) {
      return `the salt contains U+${code.toString(16).toUpperCase().padStart(4, "0")}, ` +
        `only printable ASCII is accepted`;
    }
  }
  return undefined;
}

/** Validates a rounds count and raises it to MIN_ROUNDS (glibc behaviour). */
function checkRounds(rounds: number): number {
  if (!Number.isSafeInteger(rounds) || rounds < 0) {
    throw new RangeError(`Cannot use ${rounds} SHA-512-crypt rounds: not a non-negative integer`);
  }
  if (rounds > MAX_ROUNDS) {
    throw new RangeError(
      `Cannot use ${rounds} SHA-512-crypt rounds: the limit is ${MAX_ROUNDS} (CPU cost)`,
    );
  }
  return Math.max(rounds, MIN_ROUNDS);
}

/** UTF-8 bytes of a password (strings) or the bytes themselves. */
function passwordBytes(password: string | Uint8Array): Uint8Array {
  return typeof password === "string" ? encodeUtf8(password) : password;
}

/** UTF-8 encoding without a shared encoder (no module-level state). */
function encodeUtf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** One SHA-512 digest over the concatenation of `parts`. */
function sha512(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha512");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** Copies `part` into `target` at `offset`; returns the offset after it. */
function append(target: Uint8Array, offset: number, part: Uint8Array): number {
  target.set(part, offset);
  return offset + part.length;
}

/** `source` repeated and cut to exactly `length` bytes. */
function repeatTo(source: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += source.length) {
    out.set(source.subarray(0, Math.min(source.length, length - offset)), offset);
  }
  return out;
}

/** The crypt-base64 encoding of the final 64-byte digest (86 characters). */
function encodeDigest(digest: Uint8Array): string {
  let out = "";
  for (const [high, middle, low] of ENCODING_ORDER) {
    out += encode24(digest[high] ?? 0, digest[middle] ?? 0, digest[low] ?? 0, 4);
  }
  return out + encode24(0, 0, digest[63] ?? 0, 2);
}

/** Drepper's b64_from_24bit: the low 6 bits first. */
function encode24(high: number, middle: number, low: number, count: number): string {
  let word = (high << 16) | (middle << 8) | low;
  let out = "";
  for (let i = 0; i < count; i++) {
    out += CRYPT_ALPHABET[word & 0x3f];
    word >>>= 6;
  }
  return out;
}
