/**
 * Tests of the certificate store: the pure selection of TLS-6 (table-driven) and the loading and
 * reloading of TLS-7 with its fixes (key changes noticed, failures reported once, old pair kept).
 * Files are real, in a temporary folder, copied from `tests/testdata/tls`.
 * @module
 */

import assert from "node:assert/strict";
import {
  type CertEvent,
  type CertPair,
  CertStore,
  FALLBACK_PATTERN,
  loadCertPair,
  MAX_PEM_FILE_BYTES,
  type SelectableEntry,
  selectCertificate,
} from "./mod.ts";

const TESTDATA = new URL("../../tests/testdata/tls/", import.meta.url);
const read = (name: string) => Deno.readTextFile(new URL(name, TESTDATA));
const LOCALHOST = { cert: await read("localhost.pem"), key: await read("localhost.key") };
const OTHER = { cert: await read("other.localhost.pem"), key: await read("other.localhost.key") };

type Row = [label: string, serverName: string | undefined, expected: string | undefined];

Deno.test("selectCertificate() walks patterns in order, then the first loaded * (TLS-6)", () => {
  const entries: SelectableEntry<string>[] = [
    { pattern: /^api\.example\.com$/, pair: "api" },
    { pattern: FALLBACK_PATTERN, pair: undefined }, // unloaded fallback: skipped
    { pattern: /example\.com/, pair: "unanchored" },
    { pattern: /^down\.example\.org$/, pair: undefined }, // unloaded: skipped
    { pattern: undefined, pair: "invalid-regex" }, // a pattern that did not compile never matches
    { pattern: /org$/, pair: "org" },
    { pattern: FALLBACK_PATTERN, pair: "fallback" },
    { pattern: FALLBACK_PATTERN, pair: "second-fallback" },
  ];
  const rows: Row[] = [
    ["exact anchored match", "api.example.com", "api"],
    ["unanchored regex matches inside the name", "www.example.com.evil.net", "unanchored"],
    ["first match wins over later ones", "api.example.com.org", "unanchored"],
    [":port suffix is stripped", "api.example.com:8443", "api"],
    ["names are lower-cased (ODD-13, RFC 6066)", "API.Example.COM", "api"],
    ["unloaded entry is skipped", "down.example.org", "org"],
    ["no match falls back to the first loaded *", "nothing.test", "fallback"],
    ["no SNI uses the first loaded *", undefined, "fallback"],
    ["empty SNI is no SNI", "", "fallback"],
  ];
  for (const [label, serverName, expected] of rows) {
    assert.equal(selectCertificate(entries, serverName), expected, label);
  }
  assert.equal(rows.length, 9);
});

Deno.test("selectCertificate() gives undefined without a match and without a loaded * (TLS-6)", () => {
  const entries: SelectableEntry<string>[] = [
    { pattern: /^a\.test$/, pair: "a" },
    { pattern: FALLBACK_PATTERN, pair: undefined },
  ];
  assert.equal(selectCertificate(entries, "b.test"), undefined);
  assert.equal(selectCertificate(entries, undefined), undefined);
  assert.equal(selectCertificate([], "a.test"), undefined, "no entries at all");
});

Deno.test("selectCertificate() is stable with g/y flagged patterns", () => {
  const entries: SelectableEntry<string>[] = [{ pattern: /a\.test/g, pair: "a" }];
  for (let round = 0; round < 3; round++) assert.equal(selectCertificate(entries, "a.test"), "a");
});

/** A temporary folder with cert/key files and a store over them, events recorded. */
async function fixture(
  files: Record<string, string>,
  entries: (dir: string) => { pattern: string | RegExp; cert: string; key: string }[],
  options: { compile?: (pattern: string) => RegExp } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "groom_cert_store_" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  const events: CertEvent[] = [];
  const store = new CertStore(entries(dir), { onEvent: (event) => events.push(event), ...options });
  return {
    dir,
    store,
    events,
    write: (name: string, text: string) => Deno.writeTextFile(`${dir}/${name}`, text),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Which test certificate a pair serves. */
const cnOf = (pair: CertPair | undefined) => pair === undefined ? undefined : subjectOf(pair.cert);

function subjectOf(cert: string): string {
  // The PEMs in testdata differ, so identity of text is enough to tell them apart.
  if (cert === LOCALHOST.cert) return "localhost";
  if (cert === OTHER.cert) return "other.localhost";
  return "unknown";
}

Deno.test("CertStore.refresh() loads every pair and select() serves them by SNI (TLS-5, TLS-6)", async () => {
  await using f = await fixture(
    { "l.pem": LOCALHOST.cert, "l.key": LOCALHOST.key, "o.pem": OTHER.cert, "o.key": OTHER.key },
    (dir) => [
      { pattern: "other\\.localhost$", cert: `${dir}/o.pem`, key: `${dir}/o.key` },
      { pattern: "*", cert: `${dir}/l.pem`, key: `${dir}/l.key` },
    ],
  );
  assert.equal(f.store.select("other.localhost"), undefined, "nothing before the first refresh");
  assert.equal(await f.store.refresh(), true);
  assert.equal(f.store.generation, 1);
  assert.equal(cnOf(f.store.select("other.localhost")), "other.localhost");
  assert.equal(cnOf(f.store.select("x.other.localhost")), "other.localhost");
  assert.equal(cnOf(f.store.select("localhost")), "localhost");
  assert.equal(cnOf(f.store.select(undefined)), "localhost");
  assert.deepEqual(
    f.events.map((event) => [event.type, event.type === "certificate-loaded" && event.subject]),
    [["certificate-loaded", "CN=other.localhost"], ["certificate-loaded", "CN=localhost"]],
  );
  const first = f.events[0];
  assert.ok(first?.type === "certificate-loaded" && first.initial);
  assert.match(first.notAfter, /^\d{4}-\d\d-\d\dT/);
  assert.equal(await f.store.refresh(), false, "unchanged files: nothing reloaded");
  assert.equal(f.events.length, 2);
});

Deno.test("CertStore notices a key change alone and keeps the old pair while cert and key disagree (TLS-7 fix)", async () => {
  await using f = await fixture(
    { "c.pem": LOCALHOST.cert, "c.key": LOCALHOST.key },
    (dir) => [{ pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` }],
  );
  await f.store.refresh();
  let changes = 0;
  const unsubscribe = f.store.subscribe(() => changes++);
  // Step 1: a renewal writes the certificate first; the old key does not belong to it.
  await f.write("c.pem", OTHER.cert);
  assert.equal(await f.store.refresh(), false);
  assert.equal(cnOf(f.store.select(undefined)), "localhost", "previous pair stays in service");
  const failure = f.events.at(-1);
  assert.ok(failure?.type === "certificate-failed");
  assert.match(failure.error, /does not belong to it/);
  assert.equal(failure.keptPrevious, true);
  // Step 2: only the key file changes; the original would not notice (TLS-7).
  await f.write("c.key", OTHER.key);
  assert.equal(await f.store.refresh(), true);
  assert.equal(cnOf(f.store.select(undefined)), "other.localhost");
  assert.equal(changes, 1);
  assert.equal(f.store.generation, 2);
  unsubscribe();
});

Deno.test("CertStore reports a broken certificate once per change and keeps serving the old one (ODD-15)", async () => {
  await using f = await fixture(
    { "c.pem": LOCALHOST.cert, "c.key": LOCALHOST.key },
    (dir) => [{ pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` }],
  );
  await f.store.refresh();
  await f.write("c.pem", "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
  for (let check = 0; check < 3; check++) assert.equal(await f.store.refresh(), false);
  const failures = f.events.filter((event) => event.type === "certificate-failed");
  assert.equal(failures.length, 1, "three checks, one report");
  assert.match(failures[0]?.type === "certificate-failed" ? failures[0].error : "", /^Cannot load/);
  assert.equal(cnOf(f.store.select("anything")), "localhost");
  await f.write("c.pem", "still not a certificate");
  await f.store.refresh();
  assert.equal(f.events.filter((event) => event.type === "certificate-failed").length, 2);
  await f.write("c.pem", LOCALHOST.cert);
  assert.equal(await f.store.refresh(), true, "a good file again is loaded");
});

Deno.test("CertStore reports missing files at start and loads them when they appear (TLS-7, ODD-15)", async () => {
  await using f = await fixture(
    {},
    (dir) => [{ pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` }],
  );
  assert.equal(await f.store.refresh(), false);
  assert.equal(await f.store.refresh(), false);
  assert.equal(f.events.length, 1, "reported once");
  const failure = f.events[0];
  assert.ok(failure?.type === "certificate-failed" && !failure.keptPrevious);
  assert.equal(f.store.select(undefined), undefined);
  await f.write("c.pem", LOCALHOST.cert);
  await f.write("c.key", LOCALHOST.key);
  assert.equal(await f.store.refresh(), true);
  assert.equal(cnOf(f.store.select(undefined)), "localhost");
});

Deno.test("CertStore notices an older file moved into place (same mtime semantics as ODD-14)", async () => {
  await using f = await fixture(
    { "c.pem": LOCALHOST.cert, "c.key": LOCALHOST.key, "n.pem": OTHER.cert, "n.key": OTHER.key },
    (dir) => [{ pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` }],
  );
  await f.store.refresh();
  const { mtime } = await Deno.stat(`${f.dir}/c.pem`);
  assert.ok(mtime);
  for (const name of ["n.pem", "n.key"]) await Deno.utime(`${f.dir}/${name}`, mtime, mtime);
  await Deno.rename(`${f.dir}/n.pem`, `${f.dir}/c.pem`);
  await Deno.rename(`${f.dir}/n.key`, `${f.dir}/c.key`);
  assert.equal(await f.store.refresh(), true);
  assert.equal(cnOf(f.store.select(undefined)), "other.localhost");
});

Deno.test("CertStore compiles string patterns with the given compiler; a bad one never matches (TLS-6)", async () => {
  await using f = await fixture(
    { "o.pem": OTHER.cert, "o.key": OTHER.key, "l.pem": LOCALHOST.cert, "l.key": LOCALHOST.key },
    (dir) => [
      { pattern: "(unclosed", cert: `${dir}/o.pem`, key: `${dir}/o.key` },
      { pattern: "ICASE", cert: `${dir}/o.pem`, key: `${dir}/o.key` },
      { pattern: "*", cert: `${dir}/l.pem`, key: `${dir}/l.key` },
    ],
    { compile: (pattern) => new RegExp(pattern, "i") },
  );
  await f.store.refresh();
  assert.equal(cnOf(f.store.select("(unclosed")), "localhost");
  assert.equal(cnOf(f.store.select("icase.test")), "other.localhost");
});

Deno.test("loadCertPair() refuses files over MAX_PEM_FILE_BYTES and non-PEM keys", async () => {
  const dir = await Deno.makeTempDir({ prefix: "groom_cert_store_" });
  try {
    await Deno.writeTextFile(`${dir}/big.pem`, "x".repeat(MAX_PEM_FILE_BYTES + 1));
    await Deno.writeTextFile(`${dir}/c.pem`, LOCALHOST.cert);
    await Deno.writeTextFile(`${dir}/bad.key`, "not a key");
    await assert.rejects(
      loadCertPair(`${dir}/big.pem`, `${dir}/bad.key`),
      /over the 1048576 limit/,
    );
    await assert.rejects(loadCertPair(`${dir}/c.pem`, `${dir}/bad.key`), /not a PEM private key/);
    await assert.rejects(
      loadCertPair(`${dir}/none.pem`, `${dir}/bad.key`),
      /Cannot read certificate/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CertStore.watch() checks periodically and stops when its signal aborts (TLS-7)", async () => {
  await using f = await fixture(
    { "c.pem": LOCALHOST.cert, "c.key": LOCALHOST.key },
    (dir) => [{ pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` }],
  );
  await f.store.refresh();
  const changed = Promise.withResolvers<void>();
  const unsubscribe = f.store.subscribe(() => changed.resolve());
  const controller = new AbortController();
  const watching = f.store.watch({ signal: controller.signal, intervalMs: 5 });
  await f.write("c.pem", OTHER.cert);
  await f.write("c.key", OTHER.key);
  await changed.promise; // resolved by a periodic check, not by the test
  assert.equal(cnOf(f.store.select(undefined)), "other.localhost");
  controller.abort();
  await watching;
  unsubscribe();
});
