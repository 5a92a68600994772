import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  createSessionSealer,
  credentialFingerprint,
  readCookie,
  SESSION_COOKIE,
  sessionKey,
  sessionSetCookie,
  withoutCookie,
} from "./session.ts";

const CLAIMS = { domain: "app.example", login: "alice", fingerprint: "fp", expires: 2_000 };

Deno.test("a sealed session opens for its domain until it expires (ODD-10)", () => {
  let now = 1_000_000;
  const sealer = createSessionSealer(sessionKey(""), () => now);
  const token = sealer.seal(CLAIMS);
  assert.deepEqual(sealer.open(token, "app.example"), CLAIMS);
  assert.equal(sealer.open(token, "other.example"), undefined); // bound to the domain
  now = 2_000_000;
  assert.equal(sealer.open(token, "app.example"), undefined); // expired
});

Deno.test("tampered, foreign-key, oversized and malformed tokens never open", () => {
  const sealer = createSessionSealer(sessionKey(""), () => 0);
  const token = sealer.seal(CLAIMS);
  const [payload, mac] = token.split(".") as [string, string];
  const forged = Buffer.from(JSON.stringify([1, "app.example", "root", "fp", 2_000]))
    .toString("base64url");
  const bad = [
    `${forged}.${mac}`,
    `${payload}.${mac.slice(0, -2)}AA`,
    createSessionSealer(sessionKey(""), () => 0).seal(CLAIMS),
    `${payload}.`,
    ".",
    "",
    "x".repeat(5000),
    `${Buffer.from("not json").toString("base64url")}.${mac}`,
  ];
  for (const value of bad) assert.equal(sealer.open(value, "app.example"), undefined, value);
  assert.equal(bad.length, 8);
});

Deno.test("a configured key makes servers accept each other's sessions", () => {
  const a = createSessionSealer(sessionKey("shared secret"), () => 0);
  const b = createSessionSealer(sessionKey("shared secret"), () => 0);
  assert.deepEqual(b.open(a.seal(CLAIMS), "app.example"), CLAIMS);
});

Deno.test("credentialFingerprint() changes only with the login's own entries and @files", () => {
  const base = ["alice:pw1", "bob:pw2", "@/etc/users"];
  const alice = credentialFingerprint("alice", base);
  assert.equal(credentialFingerprint("alice", ["alice:pw1", "bob:other", "@/etc/users"]), alice);
  assert.notEqual(credentialFingerprint("alice", ["alice:pw9", "bob:pw2", "@/etc/users"]), alice);
  assert.notEqual(credentialFingerprint("alice", ["bob:pw2", "@/etc/users"]), alice);
});

Deno.test("cookie helpers read and strip exactly our cookie (ODD-18)", () => {
  assert.equal(readCookie(`a=1; ${SESSION_COOKIE}=tok; b=2`, SESSION_COOKIE), "tok");
  assert.equal(readCookie("x__Host-groom=tok", SESSION_COOKIE), undefined);
  assert.equal(withoutCookie(`a=1; ${SESSION_COOKIE}=tok; b=2`, SESSION_COOKIE), "a=1; b=2");
  assert.equal(withoutCookie(`${SESSION_COOKIE}=tok`, SESSION_COOKIE), undefined);
  assert.equal(
    withoutCookie("mygroom=1; __Host-groomy=2", SESSION_COOKIE),
    "mygroom=1; __Host-groomy=2",
  );
  assert.equal(
    sessionSetCookie("tok", 1200),
    `${SESSION_COOKIE}=tok; Path=/; Max-Age=1200; Secure; HttpOnly; SameSite=Lax`,
  );
});
