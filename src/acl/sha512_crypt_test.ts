/**
 * Tests of SHA-512-crypt (ACL-7, CLI-6) against recorded glibc/libxcrypt outputs
 * (`testdata/sha512_crypt_vectors.json`, made with `mkpasswd -m sha-512`).
 * @module
 */

import assert from "node:assert/strict";
import {
  DEFAULT_ROUNDS,
  describeSaltProblem,
  MAX_PASSWORD_BYTES,
  MAX_ROUNDS,
  parseSha512Crypt,
  sha512Crypt,
} from "./sha512_crypt.ts";
import { loadVectors, VECTOR_COUNT, vectorPassword } from "./_test_vectors.ts";

/** Salt and rounds read back out of a recorded hash (independent of the code under test). */
function settingOf(hash: string): { salt: string; rounds: number } {
  const match = /^\$6\$(?:rounds=(\d+)\$)?([^$]*)\$[./0-9A-Za-z]{86}$/.exec(hash);
  assert.ok(match, `fixture hash is not a $6$ string: ${hash}`);
  return { salt: match[2] ?? "", rounds: match[1] === undefined ? 5000 : Number(match[1]) };
}

Deno.test("sha512Crypt() reproduces every recorded mkpasswd -m sha-512 vector (ACL-7)", async () => {
  const vectors = await loadVectors();
  assert.equal(vectors.length, VECTOR_COUNT);
  for (const vector of vectors) {
    const { salt, rounds } = settingOf(vector.hash);
    // libxcrypt keeps an explicit rounds=5000$; groom writes it only for other values (ACL-7).
    const expected = vector.hash.replace(/^\$6\$rounds=5000\$/, "$6$");
    assert.equal(sha512Crypt(vectorPassword(vector), salt, { rounds }), expected, vector.source);
  }
});

Deno.test("sha512Crypt() takes the generator's salt as given and keeps its first 16 bytes (ACL-7)", async () => {
  const vectors = (await loadVectors()).filter((vector) => vector.salt !== undefined);
  assert.equal(vectors.length, 20);
  for (const vector of vectors) {
    const options = vector.rounds === undefined ? {} : { rounds: vector.rounds };
    const expected = vector.hash.replace(/^\$6\$rounds=5000\$/, "$6$");
    assert.equal(
      sha512Crypt(vectorPassword(vector), vector.salt ?? "", options),
      expected,
      vector.source,
    );
  }
});

Deno.test("sha512Crypt() gives the CLI-6 vectors of the spec", () => {
  assert.equal(
    sha512Crypt("mysecret1", "saltsalt"),
    "$6$saltsalt$/bUAMPFBdWgbQeKFXw9U4x6W4hOholUcjdy1QcMc1aaFQIGcOQOpVcSH420YXqZEzrBeSKMwQvIeDLy2PMZUZ/",
  );
  assert.equal(
    sha512Crypt("mysecret1", "0123456789abcdefXYZ"),
    "$6$0123456789abcdef$9thd55iRLq5Bb8fNEH5vOrOl9WTFuAug213u0Nrthc.jCpIe.hsezasoJTy0aE.XIOnF1u2.f0olW.ugerHZg0",
  );
  // `groom password s3cret saltsalt` = `mkpasswd -m sha-512 -S saltsalt s3cret`
  assert.equal(
    sha512Crypt("s3cret", "saltsalt"),
    "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1",
  );
});

Deno.test("sha512Crypt() writes rounds= only when rounds differ from 5000 (ACL-7)", () => {
  assert.equal(DEFAULT_ROUNDS, 5000);
  assert.match(sha512Crypt("s3cret", "saltsalt", { rounds: 5000 }), /^\$6\$saltsalt\$/);
  assert.match(
    sha512Crypt("s3cret", "saltsalt", { rounds: 1001 }),
    /^\$6\$rounds=1001\$saltsalt\$/,
  );
});

Deno.test("sha512Crypt() raises rounds below 1000 to 1000, as glibc clamps (ACL-7)", () => {
  const at1000 =
    "$6$rounds=1000$saltsalt$zcCvYcDM8j0aB28drG.Vwe4L4mnOkoRyg3Q.Bu7J9v6yK9aKDDPiDDlrOhF03cpnd3KFfSzTDNEBa0iVYm2H90";
  assert.equal(sha512Crypt("s3cret", "saltsalt", { rounds: 1000 }), at1000);
  assert.equal(sha512Crypt("s3cret", "saltsalt", { rounds: 999 }), at1000);
  assert.equal(sha512Crypt("s3cret", "saltsalt", { rounds: 0 }), at1000);
});

Deno.test("sha512Crypt() refuses rounds above MAX_ROUNDS and non-integers (CPU bound)", () => {
  assert.equal(MAX_ROUNDS, 1_000_000);
  for (const rounds of [MAX_ROUNDS + 1, 999_999_999, 2 ** 40, -1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => sha512Crypt("s3cret", "saltsalt", { rounds }), RangeError, `${rounds}`);
  }
});

Deno.test("sha512Crypt() refuses passwords over MAX_PASSWORD_BYTES (CPU bound)", () => {
  assert.equal(MAX_PASSWORD_BYTES, 4096);
  assert.match(sha512Crypt("x".repeat(MAX_PASSWORD_BYTES), "saltsalt"), /^\$6\$saltsalt\$.{86}$/);
  assert.throws(() => sha512Crypt("x".repeat(MAX_PASSWORD_BYTES + 1), "saltsalt"), RangeError);
  // Bytes, not characters: 2049 two-byte characters are 4098 bytes.
  assert.throws(() => sha512Crypt("é".repeat(2049), "saltsalt"), RangeError);
  assert.throws(() => sha512Crypt(new Uint8Array(MAX_PASSWORD_BYTES + 1), "saltsalt"), RangeError);
});

Deno.test("sha512Crypt() hashes strings as UTF-8 (ACL-7)", () => {
  const text = "pässwörd 🔑";
  assert.equal(
    sha512Crypt(text, "saltsalt"),
    sha512Crypt(new TextEncoder().encode(text), "saltsalt"),
  );
});

Deno.test("sha512Crypt() refuses salts with $ or outside printable ASCII; accepts + (ODD-20)", () => {
  assert.throws(() => sha512Crypt("s3cret", "ab$cdefgh"), {
    name: "RangeError",
    message: 'Cannot use salt for SHA-512-crypt: the salt contains "$"',
  });
  assert.throws(() => sha512Crypt("s3cret", "saltsält"), /U\+00E4/);
  assert.throws(() => sha512Crypt("s3cret", "salt\nsalt"), /U\+000A/);
  assert.equal(describeSaltProblem("ab+cdefgh"), undefined);
  assert.equal(describeSaltProblem(""), undefined);
});

Deno.test("parseSha512Crypt() reads rounds and salt, glibc-style (ACL-7, ODD-20)", () => {
  const digest = "A".repeat(86);
  const parsed = parseSha512Crypt(`$6$rounds=5000$saltsalt$${digest}`);
  assert.deepEqual(parsed, {
    rounds: 5000,
    explicitRounds: true,
    salt: new TextEncoder().encode("saltsalt"),
    digest,
  });
  assert.equal(parseSha512Crypt(`$6$saltsalt$${digest}`)?.explicitRounds, false);
  assert.equal(parseSha512Crypt(`$6$rounds=10$s$${digest}`)?.rounds, 1000);
  assert.equal(parseSha512Crypt(`$6$$${digest}`)?.salt.length, 0);
  assert.equal(parseSha512Crypt(`$6$0123456789abcdefXYZ$${digest}`)?.salt.length, 16);
  // Not digits: glibc takes "rounds=x" as the salt.
  assert.deepEqual(
    parseSha512Crypt(`$6$rounds=x$${digest}`)?.salt,
    new TextEncoder().encode("rounds=x"),
  );
});

Deno.test("parseSha512Crypt() rejects malformed strings and refuses huge rounds (ACL-7)", () => {
  const digest = "A".repeat(86);
  for (
    const bad of [
      "",
      "$6$",
      "$6$saltsalt",
      `$6$saltsalt$${digest}x`,
      `$6$saltsalt$${digest.slice(1)}`,
      `$6$saltsalt$${digest.slice(1)}+`,
      `$5$saltsalt$${digest}`,
      `$6$rounds=5000$salt$salt$${digest}`,
      ` $6$saltsalt$${digest}`,
    ]
  ) {
    assert.equal(parseSha512Crypt(bad), undefined, bad);
  }
  assert.throws(() => parseSha512Crypt(`$6$rounds=999999999$saltsalt$${digest}`), RangeError);
});
