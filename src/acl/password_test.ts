/**
 * Tests of the `groom password` logic (CLI-3…CLI-6) with injected randomness.
 * @module
 */

import assert from "node:assert/strict";
import { makePassword, PASSWORD_TOO_SHORT_ERROR, SHORT_SECRET_WARNING } from "./password.ts";
import { sha512Crypt } from "./sha512_crypt.ts";
import { verifyCrypt } from "./credentials.ts";

/** A deterministic random source: bytes start, start+1, … (mod 256); records the sizes asked. */
function counting(start: number): { random: (length: number) => Uint8Array; asked: number[] } {
  const asked: number[] = [];
  let next = start;
  return {
    asked,
    random: (length: number) => {
      asked.push(length);
      return Uint8Array.from({ length }, () => next++ & 0xff);
    },
  };
}

Deno.test("makePassword() prints the CLI-6 and mkpasswd vectors for a given secret and salt", () => {
  const cases: [string, string, string][] = [
    [
      "mysecret1",
      "saltsalt",
      "$6$saltsalt$/bUAMPFBdWgbQeKFXw9U4x6W4hOholUcjdy1QcMc1aaFQIGcOQOpVcSH420YXqZEzrBeSKMwQvIeDLy2PMZUZ/",
    ],
    [
      "mysecret1",
      "0123456789abcdefXYZ",
      "$6$0123456789abcdef$9thd55iRLq5Bb8fNEH5vOrOl9WTFuAug213u0Nrthc.jCpIe.hsezasoJTy0aE.XIOnF1u2.f0olW.ugerHZg0",
    ],
    // mkpasswd -m sha-512 -S colonsalt user:pa:ss
    [
      "user:pa:ss",
      "colonsalt",
      "$6$colonsalt$P1kubDtcrn6xh/xcxLz2m.aofDR443izLCJ3ALeCLxTaRE4NFmkP.Rj7zrvMCROmge/ZuSuWRM9UZRTgEhx5T1",
    ],
  ];
  for (const [secret, salt, line] of cases) {
    const source = counting(0);
    assert.deepEqual(makePassword(secret, salt, source.random), { ok: true, line });
    assert.deepEqual(source.asked, [], "nothing random is drawn when both are given");
  }
});

Deno.test("makePassword() generates a 43-character base64url secret and appends it (CLI-3, CLI-6)", () => {
  const source = counting(0xf0);
  const result = makePassword(undefined, "saltsalt", source.random);
  assert.deepEqual(source.asked, [32]);
  // bytes f0 f1 … ff 00 01 … 0f in base64url without padding
  const secret = "8PHy8_T19vf4-fr7_P3-_wABAgMEBQYHCAkKCwwNDg8";
  assert.equal(secret.length, 43);
  assert.deepEqual(result, { ok: true, line: `${sha512Crypt(secret, "saltsalt")} - ${secret}` });
});

Deno.test("makePassword() generates an 8-character standard base64 salt (CLI-4, ODD-20)", () => {
  // Bytes fb ef be … give "+", which is outside the crypt alphabet but accepted (ODD-20).
  const random = (length: number) =>
    Uint8Array.from({ length }, (_, i) => [0xfb, 0xef, 0xbe][i % 3] ?? 0);
  const result = makePassword("mysecret1", undefined, random);
  assert.deepEqual(result, { ok: true, line: sha512Crypt("mysecret1", "++++++++") });
  const counted = makePassword("mysecret1", undefined, counting(0).random);
  assert.deepEqual(counted, { ok: true, line: sha512Crypt("mysecret1", "AAECAwQF") });
});

Deno.test("makePassword() generates both when neither is given, and the line verifies (CLI-3…CLI-6)", () => {
  const source = counting(1);
  const result = makePassword(undefined, undefined, source.random);
  assert.deepEqual(source.asked, [32, 6]);
  assert.ok(result.ok);
  const match = /^(\$6\$([A-Za-z0-9+/]{8})\$[./0-9A-Za-z]{86}) - ([A-Za-z0-9_-]{43})$/.exec(
    result.line,
  );
  assert.ok(match, result.line);
  assert.equal(verifyCrypt(match[3] ?? "", match[1] ?? ""), true);
  // The default source is a CSPRNG: two runs differ.
  const first = makePassword();
  const second = makePassword();
  assert.ok(first.ok && second.ok);
  assert.notEqual(first.line, second.line);
});

Deno.test("makePassword() refuses a salt shorter than 8 bytes (CLI-5)", () => {
  assert.equal(PASSWORD_TOO_SHORT_ERROR, "provided secret and/or salt are too short");
  const tooShort = { ok: false, error: PASSWORD_TOO_SHORT_ERROR };
  assert.deepEqual(makePassword("mysecret1", "salt"), tooShort);
  assert.deepEqual(makePassword("mysecret1", ""), tooShort);
  // Bytes, not characters: "ééé" + "a" is 7 bytes, "éééé" is 8.
  assert.deepEqual(makePassword("mysecret1", "ééé" + "a"), tooShort);
});

Deno.test("makePassword() hashes a short secret with a warning: groom password s3cret saltsalt equals mkpasswd (issue #2 over CLI-5)", () => {
  // `mkpasswd -m sha-512 -S saltsalt s3cret`
  const S3CRET_HASH =
    "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
  assert.deepEqual(makePassword("s3cret", "saltsalt"), {
    ok: true,
    line: S3CRET_HASH,
    warning: SHORT_SECRET_WARNING,
  });
  assert.equal(makePassword("", "saltsalt").ok, true);
  const seven = makePassword("1234567", "saltsalt");
  assert.equal(seven.ok && seven.warning, SHORT_SECRET_WARNING);
  assert.deepEqual(Object.keys(makePassword("12345678", "saltsalt")), ["ok", "line"]);
});

Deno.test("makePassword() explains input sha512-crypt cannot take", () => {
  assert.deepEqual(makePassword("mysecret1", "salt$salt"), {
    ok: false,
    error: 'Cannot use salt for SHA-512-crypt: the salt contains "$"',
  });
  assert.deepEqual(makePassword("x".repeat(4097), "saltsalt"), {
    ok: false,
    error: "Cannot hash a password of 4097 bytes: the limit is 4096",
  });
  assert.throws(() => makePassword(undefined, "saltsalt", () => new Uint8Array(3)), RangeError);
});
