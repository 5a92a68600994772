/**
 * Keeps a mode's view of its domains folder current: a scan at start, a scan shortly after the
 * folder changes (`Deno.watchFs` on the folder, debounced, since watching a file goes silent after
 * an editor's atomic save), and a periodic rescan as a safety net (DOM-2). Each scan lists the
 * folder, plans the work with the pure `planScan`, reads changed files through the injected
 * loader and reports load / update / remove / error events. Scans never overlap.
 * @module
 */

import { join } from "node:path";
import { classifyEntry, printable } from "./names.ts";
import { type FileStamp, planScan, type ScannedFile } from "./diff.ts";

/** Delay between a change notification and the scan it triggers: lets an editor finish writing. */
export const WATCH_DEBOUNCE_MS = 200;
/** Period of the safety-net rescan (DOM-2's 5 s scan period). */
export const RESCAN_INTERVAL_MS = 5_000;
/** Largest domain file read; a domain file is a few hundred bytes, anything huge is a mistake. */
export const MAX_DOMAIN_FILE_SIZE = 1024 * 1024;

/** A domain as loaded by the mode's loader. */
export interface LoadedDomain<T> {
  /** The typed settings. */
  readonly config: T;
  /** Content hash (CFG-11 role): equal hashes mean nothing changed. */
  readonly hash: string;
}

/** What a scan found. */
export type DomainEvent<T> =
  | { readonly type: "load"; readonly name: string; readonly path: string; readonly config: T }
  | {
    readonly type: "update";
    readonly name: string;
    readonly path: string;
    readonly config: T;
    readonly previous: T;
  }
  | { readonly type: "remove"; readonly name: string; readonly previous: T }
  | { readonly type: "error"; readonly name: string; readonly path: string; readonly error: Error }
  | { readonly type: "invalid"; readonly path: string; readonly reason: string }
  | { readonly type: "folder-error"; readonly folder: string; readonly error: Error };

/** Options of a {@linkcode DomainWatcher}. */
export interface DomainWatcherOptions<T> {
  /** The folder to scan, asked at every scan so a reload can move it (DOM-1). */
  readonly folder: () => string;
  /** Reads one domain file; throws on a syntax or file error. */
  readonly load: (file: ScannedFile) => Promise<LoadedDomain<T>>;
  /** Receives every event, in order. Must not throw. */
  readonly onEvent: (event: DomainEvent<T>) => void;
  /** Rescan period, default {@linkcode RESCAN_INTERVAL_MS}. */
  readonly rescanMs?: number;
  /** Debounce of change notifications, default {@linkcode WATCH_DEBOUNCE_MS}. */
  readonly debounceMs?: number;
  /** Watch the folder for changes (default true); tests of the pure scan turn it off. */
  readonly watch?: boolean;
}

interface Entry<T> {
  stamp: FileStamp;
  loaded?: LoadedDomain<T>;
}

/** Scans a domains folder and reports what changed. Close it to stop every timer and watcher. */
export class DomainWatcher<T> {
  readonly #options: DomainWatcherOptions<T>;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #reportedInvalid = new Set<string>();
  #folderError: string | undefined;
  #scanning: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #fsWatcher: Deno.FsWatcher | undefined;
  #watchedFolder: string | undefined;
  #watchLoop: Promise<void> | undefined;

  /** Creates a watcher; call {@linkcode start} to begin. */
  constructor(options: DomainWatcherOptions<T>) {
    this.#options = options;
  }

  /** Runs the first scan, then keeps watching. Resolves once the first scan is done. */
  async start(): Promise<void> {
    await this.scan();
    this.#schedule();
  }

  /** The loaded settings of a domain, if its file was read successfully. */
  get(name: string): T | undefined {
    return this.#entries.get(name)?.loaded?.config;
  }

  /** Names of every domain currently loaded. */
  names(): string[] {
    return [...this.#entries].filter(([, entry]) => entry.loaded).map(([name]) => name);
  }

  /**
   * Scans now. Concurrent calls share the running scan and ask for one more pass after it, so no
   * change notified during a scan is lost.
   */
  scan(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = (async () => {
      try {
        do {
          this.#again = false;
          await this.#scanOnce();
        } while (this.#again && !this.#closed);
      } finally {
        this.#scanning = undefined;
      }
    })();
    return this.#scanning;
  }

  /** Forgets every file stamp so the next scan re-reads every file (used after SIGHUP). */
  invalidate(): void {
    for (const entry of this.#entries.values()) entry.stamp = { path: "", mtimeMs: null, size: -1 };
  }

  /** Stops timers and the folder watcher, and waits for a running scan. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#debounce);
    this.#closeFsWatcher();
    await this.#watchLoop;
    await this.#scanning;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.scan().finally(() => this.#schedule());
    }, this.#options.rescanMs ?? RESCAN_INTERVAL_MS);
  }

  async #list(folder: string): Promise<ScannedFile[] | undefined> {
    const files: ScannedFile[] = [];
    try {
      for await (const item of Deno.readDir(folder)) {
        const verdict = classifyEntry(item.name);
        const path = join(folder, item.name);
        if (verdict.kind === "skipped") continue;
        if (verdict.kind === "invalid") {
          if (!this.#reportedInvalid.has(path)) {
            this.#reportedInvalid.add(path);
            this.#emit({ type: "invalid", path: printable(path), reason: verdict.reason });
          }
          continue;
        }
        const info = await Deno.stat(path).catch(() => undefined);
        if (!info?.isFile) continue;
        files.push({
          name: verdict.name,
          path,
          mtimeMs: info.mtime?.getTime() ?? null,
          size: info.size,
        });
      }
      this.#folderError = undefined;
      return files;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (this.#folderError !== message) {
        this.#folderError = message;
        this.#emit({ type: "folder-error", folder, error: asError(error) });
      }
      return undefined;
    }
  }

  async #scanOnce(): Promise<void> {
    const folder = this.#options.folder();
    this.#watchFolder(folder);
    const scanned = await this.#list(folder);
    if (scanned === undefined || this.#closed) return;
    const stamps = new Map([...this.#entries].map(([name, entry]) => [name, entry.stamp]));
    const plan = planScan(stamps, scanned);
    for (const name of plan.removed) {
      const previous = this.#entries.get(name)?.loaded;
      this.#entries.delete(name);
      if (previous) this.#emit({ type: "remove", name, previous: previous.config });
    }
    for (const file of plan.read) {
      if (this.#closed) return;
      await this.#read(file);
    }
  }

  async #read(file: ScannedFile): Promise<void> {
    const entry = this.#entries.get(file.name);
    const stamp: FileStamp = { path: file.path, mtimeMs: file.mtimeMs, size: file.size };
    let loaded: LoadedDomain<T>;
    try {
      if (file.size > MAX_DOMAIN_FILE_SIZE) {
        throw new RangeError(`domain file is larger than ${MAX_DOMAIN_FILE_SIZE} bytes`);
      }
      loaded = await this.#options.load(file);
    } catch (error) {
      // The previous version stays in force (DOM-6); reported once per file change (ODD-15).
      if (entry) entry.stamp = stamp;
      else this.#entries.set(file.name, { stamp });
      this.#emit({ type: "error", name: file.name, path: file.path, error: asError(error) });
      return;
    }
    if (this.#closed) return;
    const previous = entry?.loaded;
    this.#entries.set(file.name, { stamp, loaded });
    if (!previous) {
      this.#emit({ type: "load", name: file.name, path: file.path, config: loaded.config });
    } else if (previous.hash !== loaded.hash) {
      this.#emit({
        type: "update",
        name: file.name,
        path: file.path,
        config: loaded.config,
        previous: previous.config,
      });
    }
  }

  #emit(event: DomainEvent<T>): void {
    try {
      this.#options.onEvent(event);
    } catch {
      // A listener's failure must not stop the scan of the other domains.
    }
  }

  #watchFolder(folder: string): void {
    if (this.#options.watch === false || this.#watchedFolder === folder) return;
    this.#closeFsWatcher();
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(folder, { recursive: false });
    } catch {
      return; // Folder missing for now: the periodic rescan tries again.
    }
    this.#fsWatcher = watcher;
    this.#watchedFolder = folder;
    this.#watchLoop = (async () => {
      try {
        for await (const _event of watcher) this.#poke();
      } catch {
        // The folder vanished or the watcher was closed; the rescan timer takes over.
      }
      if (this.#fsWatcher === watcher) {
        this.#fsWatcher = undefined;
        this.#watchedFolder = undefined;
      }
    })();
  }

  #poke(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.scan();
    }, this.#options.debounceMs ?? WATCH_DEBOUNCE_MS);
  }

  #closeFsWatcher(): void {
    const watcher = this.#fsWatcher;
    this.#fsWatcher = undefined;
    this.#watchedFolder = undefined;
    try {
      watcher?.close();
    } catch {
      // Already closed.
    }
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
