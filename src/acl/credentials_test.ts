/**
 * Tests of client credentials, agent secrets and Basic parsing (ACL-4…ACL-7, SRV-8, PROTO-7 row 4,
 * ODD-9, ODD-19, ODD-20).
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  constantTimeEqual,
  type CredentialDeps,
  describeSecretProblem,
  matchCredential,
  matchSecret,
  MAX_BASIC_AUTH_HEADER_BYTES,
  MAX_CREDENTIALS_FILE_BYTES,
  parseBasicAuth,
  readBoundedTextFile,
  verifyCrypt,
} from "./credentials.ts";
import { sha512Crypt } from "./sha512_crypt.ts";
import { loadVectors, VECTOR_COUNT, vectorPassword } from "./_test_vectors.ts";

/** `mkpasswd -m sha-512 -S saltsalt s3cret` */
const S3CRET_HASH =
  "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
/** A yescrypt string as current `mkpasswd` writes by default (ACL-4). */
const YESCRYPT_HASH = "$y$j9T$PaFDjX9QNW9ZaXo5Lct4N.$Tr6Ud5zZHuTwEkP9LXKJ1EXc6w8yE9eX9b6Sfjc2Qm.";

/** Reads `@file` entries from a map instead of the disk and counts the reads. */
function fakeFiles(files: Record<string, string>): CredentialDeps & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    readTextFile: (path: string) => {
      reads.push(path);
      const text = files[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(text);
    },
  };
}

Deno.test("verifyCrypt() accepts every recorded vector and rejects a wrong password (ACL-7)", async () => {
  const vectors = await loadVectors();
  assert.equal(vectors.length, VECTOR_COUNT);
  for (const vector of vectors) {
    const password = vectorPassword(vector);
    assert.equal(verifyCrypt(password, vector.hash), true, vector.source);
    assert.equal(verifyCrypt(new Uint8Array([...password, 0x21]), vector.hash), false);
  }
});

Deno.test("verifyCrypt() accepts explicit rounds=5000 and salts over 16 characters (ODD-20)", () => {
  const digest = S3CRET_HASH.slice("$6$saltsalt$".length);
  assert.equal(verifyCrypt("s3cret", `$6$rounds=5000$saltsalt$${digest}`), true);
  // CLI-6: the digest was made with the first 16 bytes of "0123456789abcdefXYZ".
  const longSalt =
    "$6$0123456789abcdefXYZ$9thd55iRLq5Bb8fNEH5vOrOl9WTFuAug213u0Nrthc.jCpIe.hsezasoJTy0aE.XIOnF1u2.f0olW.ugerHZg0";
  assert.equal(verifyCrypt("mysecret1", longSalt), true);
  assert.equal(verifyCrypt("mysecret2", longSalt), false);
});

Deno.test("verifyCrypt() never matches other schemes, malformed or oversized input (ACL-4, ACL-7)", () => {
  assert.equal(verifyCrypt("s3cret", YESCRYPT_HASH), false);
  assert.equal(verifyCrypt("s3cret", "$5$saltsalt$abc"), false);
  assert.equal(verifyCrypt("s3cret", S3CRET_HASH.slice(0, -1)), false);
  assert.equal(verifyCrypt("s3cret", ""), false);
  assert.equal(verifyCrypt("s3cret", S3CRET_HASH.replace("$6$", "$6$rounds=2000000$")), false);
  assert.equal(verifyCrypt("s".repeat(4097), S3CRET_HASH), false);
});

Deno.test("constantTimeEqual() compares content and length without throwing (ODD-9)", () => {
  assert.equal(constantTimeEqual("secret", "secret"), true);
  assert.equal(constantTimeEqual("secret", "secreT"), false);
  // node's timingSafeEqual throws on different lengths; the digest comparison does not.
  assert.equal(constantTimeEqual("secret", "secret-longer"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual("", "x"), false);
  assert.equal(constantTimeEqual("pässwörd", new TextEncoder().encode("pässwörd")), true);
  assert.equal(constantTimeEqual("a".repeat(100_000), "a".repeat(100_000)), true);
});

Deno.test("matchCredential() matches plain and $6$ entries by login (ACL-4, SRV-8)", async () => {
  const entries = ["alice:wonderland", `bob:${S3CRET_HASH}`];
  const cases: [string, string, boolean][] = [
    ["alice", "wonderland", true],
    ["alice", "Wonderland", false],
    ["alice", "wonderlan", false],
    ["bob", "s3cret", true],
    ["bob", "wonderland", false],
    ["alice", "s3cret", false],
    ["carol", "wonderland", false],
    [" alice ", " wonderland ", true], // both sides trimmed, as the original does
    ["Alice", "wonderland", false],
  ];
  for (const [login, password, expected] of cases) {
    const result = await matchCredential(login, password, entries);
    assert.deepEqual(result, { matched: expected, problems: [] }, `${login}:${password}`);
  }
});

Deno.test("matchCredential() compares the whole password after the first ':' (ODD-19)", async () => {
  const entries = ["user:abc:X", "colon:" + sha512Crypt("pa:ss", "saltsalt")];
  assert.equal((await matchCredential("user", "abc:X", entries)).matched, true);
  assert.equal((await matchCredential("user", "abc:Y", entries)).matched, false);
  assert.equal((await matchCredential("user", "abc", entries)).matched, false);
  assert.equal((await matchCredential("colon", "pa:ss", entries)).matched, true);
  assert.equal((await matchCredential("colon", "pa", entries)).matched, false);
});

Deno.test("matchCredential() matches no client with an entry without login (ODD-19)", async () => {
  const result = await matchCredential("", "secret", ["secret", ":secret"]);
  assert.equal(result.matched, false);
  assert.deepEqual(result.problems, [
    'credentials entry 1: no ":" between login and password (login:password), the entry never matches',
    'credentials entry 2: empty login before ":", the entry never matches',
  ]);
  // An empty client login never matches, whatever the entries.
  assert.equal((await matchCredential("", "pw", ["a:pw"])).matched, false);
  // Problems never repeat the secret.
  assert.ok(result.problems.every((problem) => !problem.includes("secret")));
});

Deno.test("matchCredential() refuses unsupported hash schemes and says why (ACL-4, ODD-20)", async () => {
  const result = await matchCredential("alice", "s3cret", [
    `alice:${YESCRYPT_HASH}`,
    "alice:$6$broken",
  ]);
  assert.deepEqual(result, {
    matched: false,
    problems: [
      "credentials entry 1: unsupported hash scheme $y$ (yescrypt); use `groom password`",
      "credentials entry 2: malformed $6$ hash (expected $6$[rounds=N$]salt$ and 86 characters of ./0-9A-Za-z)",
    ],
  });
});

Deno.test("matchCredential() skips empty entries and stops at the first match (ACL-2, ACL-4)", async () => {
  const files = fakeFiles({ "/never": "x:y" });
  const result = await matchCredential("a", "1", ["", "   ", "a:1", "@/never"], files);
  assert.deepEqual(result, { matched: true, problems: [] });
  assert.deepEqual(files.reads, []);
});

Deno.test("matchCredential() reads @file entries at each check (ACL-5)", async () => {
  const files = fakeFiles({
    "/etc/groom/users": [
      "# comment: skipped",
      "",
      "   alice : wonderland   ",
      `bob:${S3CRET_HASH}\r`,
      "@/etc/groom/other",
      "nocolon",
    ].join("\n"),
  });
  const entries = ["@ /etc/groom/users"];
  assert.equal((await matchCredential("alice", "wonderland", entries, files)).matched, true);
  assert.equal((await matchCredential("bob", "s3cret", entries, files)).matched, true);
  const miss = await matchCredential("carol", "x", entries, files);
  assert.equal(miss.matched, false);
  assert.deepEqual(miss.problems, [
    'file "/etc/groom/users" line 5: no ":" between login and password (login:password), the entry never matches',
    'file "/etc/groom/users" line 6: no ":" between login and password (login:password), the entry never matches',
  ]);
  // A "#" line is a comment, not a login.
  assert.equal((await matchCredential("# comment", "skipped", entries, files)).matched, false);
  assert.deepEqual(files.reads, Array(4).fill("/etc/groom/users"));
});

Deno.test("matchCredential() reports unreadable or oversized @files and does not match (ACL-5)", async () => {
  const files = fakeFiles({ "/big": "a:b\n".repeat(MAX_CREDENTIALS_FILE_BYTES / 4 + 1) });
  const result = await matchCredential("a", "b", ["@/missing", "@/big"], files);
  assert.deepEqual(result, {
    matched: false,
    problems: [
      'Cannot read file "/missing": No such file: /missing',
      `Cannot read file "/big": file larger than ${MAX_CREDENTIALS_FILE_BYTES} bytes`,
    ],
  });
});

Deno.test("matchCredential() reads real @files with the default bounded reader (ACL-5)", async () => {
  const path = await Deno.makeTempFile({ prefix: "groom_acl_" });
  try {
    await Deno.writeTextFile(path, "# users\nalice:wonderland\n");
    assert.deepEqual(await matchCredential("alice", "wonderland", [`@${path}`]), {
      matched: true,
      problems: [],
    });
    await Deno.writeTextFile(path, "x".repeat(MAX_CREDENTIALS_FILE_BYTES + 1));
    const result = await matchCredential("alice", "wonderland", [`@${path}`]);
    assert.equal(result.matched, false);
    assert.deepEqual(result.problems, [
      `Cannot read file "${path}": file larger than ${MAX_CREDENTIALS_FILE_BYTES} bytes`,
    ]);
  } finally {
    await Deno.remove(path);
  }
  const missing = await matchCredential("alice", "wonderland", [`@${path}`]);
  assert.equal(missing.matched, false);
  assert.match(missing.problems[0] ?? "", /^Cannot read file ".*": No such file/);
});

Deno.test("readBoundedTextFile() reads up to the limit and refuses more", async () => {
  const path = await Deno.makeTempFile({ prefix: "groom_acl_" });
  try {
    await Deno.writeTextFile(path, "héllo");
    assert.equal(await readBoundedTextFile(path, 6), "héllo");
    await assert.rejects(readBoundedTextFile(path, 5), RangeError);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("matchSecret() compares the whole bearer secret with the whole entry (PROTO-7 row 4, ODD-19)", async () => {
  const cases: [string, string, boolean][] = [
    ["agent-secret", "agent-secret", true],
    ["agent-secret", "agent-Secret", false],
    ["  agent-secret ", "agent-secret", true],
    ["user:abc:X", "user:abc:X", true],
    ["user:abc", "user:abc:X", false], // the original cut both at the first ':'
    ["abc", "user:abc", false],
    ["s3cret", S3CRET_HASH, true],
    ["s3cret2", S3CRET_HASH, false],
    ["", "", false],
    ["x", "", false],
    ["", "x", false],
    ["   ", "   ", false],
  ];
  for (const [secret, entry, expected] of cases) {
    const result = await matchSecret(secret, entry);
    assert.deepEqual(result, { matched: expected, problems: [] }, `${secret} / ${entry}`);
  }
});

Deno.test("matchSecret() reads @file entries, one secret per line (ACL-5)", async () => {
  const files = fakeFiles({ "/secrets": `# agents\nfirst:secret\n${S3CRET_HASH}\n` });
  assert.equal((await matchSecret("first:secret", "@/secrets", files)).matched, true);
  assert.equal((await matchSecret("s3cret", "@/secrets", files)).matched, true);
  assert.equal((await matchSecret("# agents", "@/secrets", files)).matched, false);
  assert.equal((await matchSecret("/secrets", "@/secrets", files)).matched, false);
  assert.deepEqual(await matchSecret("s3cret", "@/nope", files), {
    matched: false,
    problems: ['Cannot read file "/nope": No such file: /nope'],
  });
  // A lone "@" is not a file reference (ACL-4): it is the plain secret "@".
  assert.equal((await matchSecret("@", "@", files)).matched, true);
});

Deno.test("matchSecret() reports an unsupported hash scheme (ODD-20)", async () => {
  assert.deepEqual(await matchSecret("s3cret", YESCRYPT_HASH), {
    matched: false,
    problems: ["secret: unsupported hash scheme $y$ (yescrypt); use `groom password`"],
  });
});

Deno.test("describeSecretProblem() explains entries that never match (ACL-4, ODD-20)", () => {
  const cases: [string, "secret" | "credential" | undefined, string | undefined][] = [
    ["plain-secret", undefined, undefined],
    [S3CRET_HASH, undefined, undefined],
    ["@/etc/groom/secret", undefined, undefined],
    [YESCRYPT_HASH, undefined, "unsupported hash scheme $y$ (yescrypt); use `groom password`"],
    ["$1$abc$def", "secret", "unsupported hash scheme $1$ (md5crypt); use `groom password`"],
    ["$5$abc$def", undefined, "unsupported hash scheme $5$ (sha256crypt); use `groom password`"],
    ["$2b$12$abc", undefined, "unsupported hash scheme $2b$ (bcrypt); use `groom password`"],
    [
      "$6$abc",
      undefined,
      "malformed $6$ hash (expected $6$[rounds=N$]salt$ and 86 characters of ./0-9A-Za-z)",
    ],
    [
      S3CRET_HASH.replace("$6$", "$6$rounds=5000000$"),
      undefined,
      "unusable $6$ hash: Cannot use 5000000 SHA-512-crypt rounds: the limit is 1000000 (CPU cost)",
    ],
    ["   ", undefined, "empty password or secret, the entry never matches"],
    ["$money$ is plain", undefined, undefined],
    ["alice:wonderland", "credential", undefined],
    [`alice:${S3CRET_HASH}`, "credential", undefined],
    ["@/etc/groom/users", "credential", undefined],
    [
      "alice",
      "credential",
      'no ":" between login and password (login:password), the entry never matches',
    ],
    [":pw", "credential", 'empty login before ":", the entry never matches'],
    ["alice:", "credential", "empty password or secret, the entry never matches"],
    [
      `alice:${YESCRYPT_HASH}`,
      "credential",
      "unsupported hash scheme $y$ (yescrypt); use `groom password`",
    ],
  ];
  for (const [entry, kind, expected] of cases) {
    const options = kind === undefined ? {} : { kind };
    assert.equal(describeSecretProblem(entry, options), expected, entry);
  }
});

Deno.test("parseBasicAuth() follows Go's Request.BasicAuth (ACL-6, SRV-8)", () => {
  const none = { login: "", password: "" };
  const basic = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const cases: [string | null | undefined, { login: string; password: string }][] = [
    [`Basic ${basic("alice:wonderland")}`, { login: "alice", password: "wonderland" }],
    [`basic ${basic("alice:wonderland")}`, { login: "alice", password: "wonderland" }],
    [`BASIC ${basic("alice:wonderland")}`, { login: "alice", password: "wonderland" }],
    [`Basic ${basic("user:abc:X")}`, { login: "user", password: "abc:X" }],
    [`Basic ${basic(":pw")}`, { login: "", password: "pw" }],
    [`Basic ${basic("alice:")}`, { login: "alice", password: "" }],
    [`Basic ${basic("jürgen:pässwörd")}`, { login: "jürgen", password: "pässwörd" }],
    [`Basic ${basic("no colon")}`, none],
    ["Basic ", none],
    ["Basic", none],
    [`Basic  ${basic("alice:wonderland")}`, none], // two spaces
    [`Basic\t${basic("alice:wonderland")}`, none],
    [`Bearer ${basic("alice:wonderland")}`, none],
    ["Basic YWxpY2U6d29uZGVybGFuZA", none], // padding missing
    ["Basic YWxp!2U6d29uZGVybGFuZA==", none],
    [`Basic ${btoa("alice:\xff\xfe")}`, none], // not UTF-8
    [`Basic ${basic("alice:" + "x".repeat(MAX_BASIC_AUTH_HEADER_BYTES))}`, none],
    ["", none],
    [null, none],
    [undefined, none],
  ];
  for (const [header, expected] of cases) {
    assert.deepEqual(parseBasicAuth(header), expected, String(header).slice(0, 40));
  }
});

Deno.test("verifyCrypt() accepts the password a hash was made from and no other (ACL-7, property)", () => {
  const saltChars = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+";
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme", maxLength: 40 }),
      fc.string({ unit: fc.constantFrom(...saltChars), minLength: 0, maxLength: 20 }),
      fc.string({ minLength: 1, maxLength: 4 }),
      (password, salt, suffix) => {
        const hash = sha512Crypt(password, salt, { rounds: 1000 });
        assert.equal(verifyCrypt(password, hash), true);
        assert.equal(verifyCrypt(password + suffix, hash), false);
      },
    ),
    { numRuns: 25 },
  );
});
