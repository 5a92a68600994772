/**
 * The logic of `groom password [<secret> [<salt>]]` (CLI-3…CLI-6): generate what is missing,
 * refuse short input with the original's exact message, and return the line to print. Pure apart
 * from randomness, which is injectable so tests are deterministic; printing and exit codes are the
 * CLI's business.
 * @module
 */

import { randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import { sha512Crypt } from "./sha512_crypt.ts";

/** Bytes drawn for a generated secret (CLI-3): 256 bits, 43 base64url characters. */
export const GENERATED_SECRET_BYTES = 32;
/** Bytes drawn for a generated salt (CLI-4): 48 bits, 8 base64 characters. */
export const GENERATED_SALT_BYTES = 6;
/** Shortest salt accepted, and shortest secret accepted without a warning, in UTF-8 bytes (CLI-5). */
export const MIN_SECRET_OR_SALT_BYTES = 8;
/** The error text of CLI-5, byte for byte (the CLI appends `\n`). */
export const PASSWORD_TOO_SHORT_ERROR = "provided secret and/or salt are too short";
/** Printed on stderr for a given secret shorter than {@linkcode MIN_SECRET_OR_SALT_BYTES}. */
export const SHORT_SECRET_WARNING =
  "warning: the secret is shorter than 8 bytes; prefer a longer one";

/** Returns `length` random bytes; default: `node:crypto` `randomBytes` (a CSPRNG). */
export type RandomSource = (length: number) => Uint8Array;

/** Outcome of {@linkcode makePassword}: the line to print on stdout, or the error for stderr. */
export type PasswordResult =
  | { ok: true; line: string; warning?: string }
  | { ok: false; error: string };

/**
 * Computes the output of `groom password [<secret> [<salt>]]` (CLI-3…CLI-6), without the final
 * newline. A given secret or salt is used verbatim (an empty string counts as given). A missing
 * secret is 32 random bytes in base64url without padding, and the line then ends with
 * ` - <secret>`; a missing salt is 6 random bytes in standard base64 (8 characters). A salt
 * shorter than 8 bytes gives {@linkcode PASSWORD_TOO_SHORT_ERROR}. A given secret shorter than 8
 * bytes is hashed with {@linkcode SHORT_SECRET_WARNING}: issue #2 asks that
 * `groom password s3cret saltsalt` equal `mkpasswd`, which overrides CLI-5's refusal (the issue
 * is the newer decision); mkpasswd itself accepts short secrets. Input that sha512-crypt cannot
 * take (salt with `$` or non-ASCII, secret over 4096 bytes) gives a descriptive error.
 *
 * @example
 * ```ts
 * makePassword("mysecret1", "saltsalt");
 * // { ok: true, line: "$6$saltsalt$/bUAMPFBdWgbQ…" }
 * ```
 */
export function makePassword(
  secret?: string,
  salt?: string,
  random: RandomSource = randomBytes,
): PasswordResult {
  const generated = secret === undefined;
  const usedSecret = secret ?? Buffer.from(draw(random, GENERATED_SECRET_BYTES)).toString(
    "base64url",
  );
  // Standard base64 as the original does (CLI-4): it may contain `+`, outside the crypt alphabet
  // `./0-9A-Za-z`; glibc and our verifier accept it, so the original's behaviour is kept (ODD-20).
  const usedSalt = salt ??
    Buffer.from(draw(random, GENERATED_SALT_BYTES)).toString("base64").replace(/=+$/, "");
  if (utf8Length(usedSalt) < MIN_SECRET_OR_SALT_BYTES) {
    return { ok: false, error: PASSWORD_TOO_SHORT_ERROR };
  }
  const short = utf8Length(usedSecret) < MIN_SECRET_OR_SALT_BYTES;
  let hash: string;
  try {
    hash = sha512Crypt(usedSecret, usedSalt);
  } catch (error) {
    if (error instanceof RangeError) return { ok: false, error: error.message };
    throw error;
  }
  const line = generated ? `${hash} - ${usedSecret}` : hash;
  return short ? { ok: true, line, warning: SHORT_SECRET_WARNING } : { ok: true, line };
}

/** Draws exactly `length` bytes from `random`. */
function draw(random: RandomSource, length: number): Uint8Array {
  const bytes = random(length);
  if (bytes.length !== length) {
    throw new RangeError(`Cannot use random source: asked ${length} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** Length of `text` in UTF-8 bytes. */
function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
