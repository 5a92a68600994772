/**
 * The certificates of one HTTPS listener (TLS-5…TLS-7): an ordered list of `PATTERN CERT KEY`
 * entries, the pure SNI selection of TLS-6 (`select`) and the impure part that loads the PEM pairs
 * and reloads them when a certificate or key file changes (`refresh`, `watch`). Failures are
 * reported through an injected `onEvent` callback, once per change of the files, and never take a
 * working pair out of service. This module imports nothing from the rest of `src/`.
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";

/** Period of the certificate file check: the original checks at most every 15 s (TLS-7). */
export const CERT_CHECK_INTERVAL_MS = 15_000;

/**
 * Largest certificate or key file read. A chain is a few KiB; the bound stops a mistaken path
 * (a log file, `/dev/zero`) from being read into memory.
 */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;

/** The pattern of the fallback entry (TLS-5). */
export const FALLBACK_PATTERN = "*";

/** One certificate entry of a listener, in configuration order (TLS-5). */
export interface CertEntry {
  /**
   * Regular expression matched against the SNI name, unanchored unless it anchors itself, or `*`
   * for the fallback entry (TLS-6). A string is compiled with the store's `compile` option.
   */
  readonly pattern: string | RegExp;
  /** Certificate (chain) PEM file. */
  readonly cert: string;
  /** Private key PEM file. */
  readonly key: string;
}

/** A loaded certificate chain and its private key, both PEM text. */
export interface CertPair {
  /** Certificate chain, PEM. */
  readonly cert: string;
  /** Private key, PEM. */
  readonly key: string;
}

/** What the store reports; the caller decides how to log it. */
export type CertEvent =
  | {
    /** A pair was loaded (`initial`) or replaced after its files changed. */
    readonly type: "certificate-loaded";
    readonly cert: string;
    readonly key: string;
    /** True for the first successful load of the entry. */
    readonly initial: boolean;
    /** Subject of the certificate, e.g. `CN=localhost`. */
    readonly subject: string;
    /** End of validity, ISO 8601. */
    readonly notAfter: string;
  }
  | {
    /** Loading failed; reported once per change of the files (fix of TLS-7/ODD-15). */
    readonly type: "certificate-failed";
    readonly cert: string;
    readonly key: string;
    /** Std-style message, e.g. `Cannot load certificate "a.pem": key "a.key" does not match`. */
    readonly error: string;
    /** True when a previously loaded pair stays in service. */
    readonly keptPrevious: boolean;
  };

/** Options of {@linkcode CertStore}. */
export interface CertStoreOptions {
  /** Receives load successes and failures. */
  onEvent?: (event: CertEvent) => void;
  /**
   * Compiles a string pattern; it may throw, and an entry whose pattern does not compile never
   * matches (TLS-6). Default `new RegExp(pattern)`; the server passes the RE2-compatible compiler.
   */
  compile?: (pattern: string) => RegExp;
}

/** An entry as seen by {@linkcode selectCertificate}: its matcher and its pair when loaded. */
export interface SelectableEntry<T> {
  /** Compiled pattern, `*` for a fallback, `undefined` for a pattern that never matches. */
  readonly pattern: RegExp | typeof FALLBACK_PATTERN | undefined;
  /** The loaded value, `undefined` while nothing could be loaded. */
  readonly pair: T | undefined;
}

/** A `:port` suffix on an SNI name (TLS-6 strips it). */
const PORT_SUFFIX_REGEXP = /:\d*$/;

/**
 * Certificate selection of TLS-6, pure: with a server name, strip a `:port` suffix, lower-case it
 * (SNI names are case-insensitive, RFC 6066 §3 and ODD-13; Deno's TLS stack hands them over
 * lower-cased anyway), then the first loaded non-`*` entry whose pattern matches wins; otherwise
 * (no name, or no match) the first loaded `*` entry; otherwise `undefined`, which fails the
 * handshake.
 */
export function selectCertificate<T>(
  entries: readonly SelectableEntry<T>[],
  serverName: string | undefined,
): T | undefined {
  if (serverName !== undefined && serverName !== "") {
    const name = serverName.replace(PORT_SUFFIX_REGEXP, "").toLowerCase();
    for (const entry of entries) {
      if (entry.pair === undefined || entry.pattern === undefined) continue;
      if (entry.pattern === FALLBACK_PATTERN) continue;
      entry.pattern.lastIndex = 0; // a g or y flag would make test() stateful
      if (entry.pattern.test(name)) return entry.pair;
    }
  }
  for (const entry of entries) {
    if (entry.pattern === FALLBACK_PATTERN && entry.pair !== undefined) return entry.pair;
  }
  return undefined;
}

/** Per-entry state of the store. */
interface EntryState extends SelectableEntry<CertPair> {
  readonly entry: CertEntry;
  pair: CertPair | undefined;
  /** File stamp of the pair in service. */
  loadedStamp: string | undefined;
  /** Stamp and message of the last reported failure (report once per change). */
  reportedFailure: string | undefined;
}

/** Thrown when a certificate/key pair cannot be read or does not hold together. */
export class CertificateLoadError extends Error {
  /** @param message std-style message */
  constructor(message: string) {
    super(message);
    this.name = "CertificateLoadError";
  }
}

/**
 * The certificate entries of one listener with their loaded pairs. `select` is pure over the
 * current state; `refresh` checks the files (size, mtime, inode of certificate AND key: a key
 * change or an older file moved into place is noticed, fixing TLS-7) and reloads changed pairs;
 * `watch` runs `refresh` periodically. Subscribers hear about every change of a served pair.
 */
export class CertStore {
  #entries: EntryState[];
  #onEvent: (event: CertEvent) => void;
  #subscribers = new Set<() => void>();
  #generation = 0;
  #refreshing: Promise<boolean> | undefined;
  #refreshed = false;

  /**
   * @param entries certificate entries in configuration order
   * @param options event callback and pattern compiler
   */
  constructor(entries: readonly CertEntry[], options: CertStoreOptions = {}) {
    const compile = options.compile ?? ((pattern: string) => new RegExp(pattern));
    this.#onEvent = options.onEvent ?? (() => {});
    this.#entries = entries.map((entry) => ({
      entry,
      pattern: compileEntryPattern(entry.pattern, compile),
      pair: undefined,
      loadedStamp: undefined,
      reportedFailure: undefined,
    }));
  }

  /** The entries, in order. */
  get entries(): readonly CertEntry[] {
    return this.#entries.map((state) => state.entry);
  }

  /** Increases whenever a served pair changes; 0 before anything was loaded. */
  get generation(): number {
    return this.#generation;
  }

  /** True once `refresh` has completed at least once. */
  get refreshed(): boolean {
    return this.#refreshed;
  }

  /** The pair for a TLS handshake with this SNI name (TLS-6); `undefined` fails it. */
  select(serverName: string | undefined): CertPair | undefined {
    return selectCertificate(this.#entries, serverName);
  }

  /** Calls `callback` after each refresh that changed a served pair; returns the unsubscriber. */
  subscribe(callback: () => void): () => void {
    this.#subscribers.add(callback);
    return () => this.#subscribers.delete(callback);
  }

  /**
   * Checks every entry's files and loads those whose certificate or key changed. A pair that
   * fails to load keeps the previous one in service. Concurrent calls share one check.
   * @returns whether a served pair changed
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Runs `refresh` every `intervalMs` until `signal` aborts. Never rejects: failures are
   * reported as events.
   */
  async watch(
    options: { signal: AbortSignal; intervalMs?: number },
  ): Promise<void> {
    const intervalMs = options.intervalMs ?? CERT_CHECK_INTERVAL_MS;
    while (!options.signal.aborted) {
      try {
        await delay(intervalMs, undefined, { signal: options.signal });
      } catch {
        return; // aborted
      }
      await this.refresh();
    }
  }

  async #refresh(): Promise<boolean> {
    let changed = false;
    for (const state of this.#entries) {
      if (await this.#refreshEntry(state)) changed = true;
    }
    this.#refreshed = true;
    if (changed) {
      this.#generation++;
      for (const subscriber of [...this.#subscribers]) subscriber();
    }
    return changed;
  }

  async #refreshEntry(state: EntryState): Promise<boolean> {
    const { cert, key } = state.entry;
    let stamp: string;
    try {
      stamp = `${await fileStamp(cert)}|${await fileStamp(key)}`;
    } catch (error) {
      this.#failed(state, `stat:${messageOf(error)}`, error);
      return false;
    }
    if (stamp === state.loadedStamp) return false;
    let pair: CertPair & { subject: string; notAfter: string };
    try {
      pair = await loadCertPair(cert, key);
    } catch (error) {
      this.#failed(state, stamp, error);
      return false;
    }
    const initial = state.pair === undefined;
    state.pair = { cert: pair.cert, key: pair.key };
    state.loadedStamp = stamp;
    state.reportedFailure = undefined;
    this.#onEvent({
      type: "certificate-loaded",
      cert,
      key,
      initial,
      subject: pair.subject,
      notAfter: pair.notAfter,
    });
    return true;
  }

  #failed(state: EntryState, stamp: string, error: unknown): void {
    const message = messageOf(error);
    const signature = `${stamp}\n${message}`;
    if (state.reportedFailure === signature) return;
    state.reportedFailure = signature;
    this.#onEvent({
      type: "certificate-failed",
      cert: state.entry.cert,
      key: state.entry.key,
      error: message,
      keptPrevious: state.pair !== undefined,
    });
  }
}

/**
 * Reads and checks a PEM certificate/key pair: both parse, and the key belongs to the
 * certificate (`X509Certificate.checkPrivateKey`). Throws {@linkcode CertificateLoadError}.
 */
export async function loadCertPair(
  certFile: string,
  keyFile: string,
): Promise<CertPair & { subject: string; notAfter: string }> {
  const cert = await readPem(certFile, "certificate");
  const key = await readPem(keyFile, "key");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new CertificateLoadError(
      `Cannot load certificate "${certFile}": not a PEM certificate (${messageOf(error)})`,
    );
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new CertificateLoadError(
      `Cannot load key "${keyFile}": not a PEM private key (${messageOf(error)})`,
    );
  }
  if (!matches) {
    throw new CertificateLoadError(
      `Cannot load certificate "${certFile}": key "${keyFile}" does not belong to it`,
    );
  }
  return {
    cert,
    key,
    subject: x509.subject.replaceAll("\n", ", "),
    notAfter: new Date(x509.validTo).toISOString(),
  };
}

async function readPem(path: string, what: string): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    throw new CertificateLoadError(`Cannot read ${what} "${path}": ${messageOf(error)}`);
  }
  try {
    const { size } = await file.stat();
    if (size > MAX_PEM_FILE_BYTES) {
      throw new CertificateLoadError(
        `Cannot read ${what} "${path}": ${size} bytes is over the ${MAX_PEM_FILE_BYTES} limit`,
      );
    }
    const buffer = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const read = await file.read(buffer.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    return new TextDecoder().decode(buffer.subarray(0, filled));
  } finally {
    file.close();
  }
}

/** What identifies a version of a file: modification time, size and inode. */
async function fileStamp(path: string): Promise<string> {
  const info = await Deno.stat(path);
  return `${info.mtime?.getTime() ?? "?"}/${info.size}/${info.ino ?? "?"}`;
}

function compileEntryPattern(
  pattern: string | RegExp,
  compile: (pattern: string) => RegExp,
): RegExp | typeof FALLBACK_PATTERN | undefined {
  if (pattern instanceof RegExp) return pattern;
  if (pattern === FALLBACK_PATTERN) return FALLBACK_PATTERN;
  try {
    return compile(pattern);
  } catch {
    return undefined; // TLS-6: an invalid regex never matches (the config layer warns)
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
