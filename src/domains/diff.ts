/**
 * The pure heart of domain hot reload, in the rathole style: given what was loaded before and
 * what a scan of the folder sees now, decide which files to (re)read and which domains are gone.
 * No I/O here; the watcher does the reading and feeds the results back.
 * @module
 */

/** What a scan saw of one domain file. */
export interface ScannedFile {
  /** Lower-cased domain name (the file name). */
  readonly name: string;
  /** Full path of the file. */
  readonly path: string;
  /** Modification time in milliseconds, `null` when the platform has none. */
  readonly mtimeMs: number | null;
  /** Size in bytes. */
  readonly size: number;
}

/** The stamp of a file at its last read, successful or not. */
export interface FileStamp {
  readonly path: string;
  readonly mtimeMs: number | null;
  readonly size: number;
}

/** What to do after a scan. */
export interface ScanPlan {
  /** Files never read, or changed since their last read (any mtime or size change: ODD-14). */
  readonly read: readonly ScannedFile[];
  /** Known domains whose file is gone: deactivate them (DOM-7, at once rather than after 15 s). */
  readonly removed: readonly string[];
}

/** True when two stamps describe the same file state. */
export function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.path === b.path && a.mtimeMs === b.mtimeMs && a.size === b.size;
}

/**
 * Plans the work of one scan. `known` maps each domain name to the stamp of its last read
 * attempt; a file is read again whenever its stamp differs, so a restored file, an `mtime` in the
 * past (`cp -p`) or a same-second edit of a different size are all noticed (ODD-14). A file whose
 * last read failed is not re-read until it changes, so a broken file is reported once per change
 * instead of every scan (ODD-15).
 */
export function planScan(
  known: ReadonlyMap<string, FileStamp>,
  scanned: readonly ScannedFile[],
): ScanPlan {
  const read: ScannedFile[] = [];
  const seen = new Set<string>();
  for (const file of scanned) {
    seen.add(file.name);
    const stamp = known.get(file.name);
    if (stamp === undefined || !sameStamp(stamp, file)) read.push(file);
  }
  const removed = [...known.keys()].filter((name) => !seen.has(name));
  return { read, removed };
}
