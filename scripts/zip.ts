/**
 * A small ZIP writer for the portable archive (PKG-2): deflate (zlib level 9 by default, as the
 * original's `zip -9`) or store, Unix permissions in the external attributes so `unzip` restores
 * the executable bits of the binaries and the launcher, UTF-8 names, one fixed timestamp for every
 * entry (SOURCE_DATE_EPOCH in release builds, so two builds of one commit are byte-identical).
 * Entries are written one after another, so memory holds one file at a time. No ZIP64: the
 * archive and each entry stay below 4 GiB, which is checked.
 * @module
 */

import { crc32, deflateRawSync } from "node:zlib";

/** One entry: a folder (name ends with `/`), or a file given by its bytes or a path to read. */
export interface ZipEntry {
  /** Path inside the archive, `/`-separated; folders end with `/`. */
  readonly name: string;
  /** Unix permission bits, e.g. 0o755 for executables; default 0o644 (files), 0o755 (folders). */
  readonly mode?: number;
  /** The file's bytes. */
  readonly data?: Uint8Array;
  /** A file to read the bytes from (when `data` is not given). */
  readonly path?: string;
}

/** Options of {@linkcode writeZip}. */
export interface ZipOptions {
  /** zlib level 0-9; default 9. */
  readonly level?: number;
  /** Timestamp of every entry; default now. */
  readonly mtime?: Date;
}

/** Summary of a written archive. */
export interface ZipSummary {
  readonly entries: number;
  readonly bytes: number;
}

/** The ZIP format's 32-bit size and offset fields (no ZIP64 here). */
const MAX_ZIP_OFFSET = 0xffff_ffff;
const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL = 0x06054b50;
/** "Version made by": 3 = Unix (so external attributes carry st_mode), spec 2.0. */
const MADE_BY_UNIX = (3 << 8) | 20;
const VERSION_NEEDED = 20;
/** General purpose flag bit 11: names are UTF-8. */
const FLAG_UTF8 = 0x0800;
const METHOD_STORE = 0;
const METHOD_DEFLATE = 8;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
/** MS-DOS directory attribute, for unzip tools that ignore Unix modes. */
const DOS_DIRECTORY = 0x10;

/** MS-DOS date and time fields (UTC, 2-second resolution, years 1980-2107). */
export function dosDateTime(date: Date): { time: number; date: number } {
  const year = Math.min(Math.max(date.getUTCFullYear(), 1980), 2107);
  return {
    time: (date.getUTCHours() << 11) | (date.getUTCMinutes() << 5) |
      Math.floor(date.getUTCSeconds() / 2),
    date: ((year - 1980) << 9) | ((date.getUTCMonth() + 1) << 5) | date.getUTCDate(),
  };
}

/** Writes `entries`, in that order, to a new ZIP file at `path`. */
export async function writeZip(
  path: string,
  entries: readonly ZipEntry[],
  options: ZipOptions = {},
): Promise<ZipSummary> {
  const level = options.level ?? 9;
  const stamp = dosDateTime(options.mtime ?? new Date());
  const encoder = new TextEncoder();
  const central: Uint8Array[] = [];
  const seen = new Set<string>();
  let offset = 0;
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const write = async (bytes: Uint8Array) => {
    let done = 0;
    while (done < bytes.length) done += await file.write(bytes.subarray(done));
    offset += bytes.length;
  };
  for (const entry of entries) {
    if (entry.name === "" || entry.name.startsWith("/") || entry.name.split("/").includes("..")) {
      throw new RangeError(`Cannot add "${entry.name}" to a ZIP archive: not a relative path`);
    }
    if (seen.has(entry.name)) {
      throw new RangeError(`Cannot add "${entry.name}" to a ZIP archive twice`);
    }
    seen.add(entry.name);
    const isDir = entry.name.endsWith("/");
    const raw = isDir ? new Uint8Array() : entry.data ?? await readEntry(entry);
    const packed = isDir || level === 0 ? raw : deflateRawSync(raw, { level });
    const method = packed.length < raw.length ? METHOD_DEFLATE : METHOD_STORE;
    const body = method === METHOD_DEFLATE ? packed : raw;
    const crc = crc32(raw) >>> 0;
    const name = encoder.encode(entry.name);
    if (offset + 30 + name.length + body.length > MAX_ZIP_OFFSET) {
      throw new RangeError(`Cannot write ${path}: larger than 4 GiB, which needs ZIP64`);
    }
    const mode = (isDir ? S_IFDIR : S_IFREG) | (entry.mode ?? (isDir ? 0o755 : 0o644));
    const fields = { method, crc, compressed: body.length, size: raw.length, name };
    const headerOffset = offset;
    await write(localHeader(fields, stamp));
    await write(body);
    central.push(centralHeader(fields, stamp, mode, isDir, headerOffset));
  }
  const centralOffset = offset;
  for (const header of central) await write(header);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, END_OF_CENTRAL, true);
  end.setUint16(8, central.length, true);
  end.setUint16(10, central.length, true);
  end.setUint32(12, offset - centralOffset, true);
  end.setUint32(16, centralOffset, true);
  await write(new Uint8Array(end.buffer));
  return { entries: central.length, bytes: offset };
}

interface EntryFields {
  readonly method: number;
  readonly crc: number;
  readonly compressed: number;
  readonly size: number;
  readonly name: Uint8Array;
}

async function readEntry(entry: ZipEntry): Promise<Uint8Array> {
  if (entry.path === undefined) {
    throw new TypeError(`Cannot add "${entry.name}" to a ZIP archive: no data and no path`);
  }
  return await Deno.readFile(entry.path);
}

function localHeader(fields: EntryFields, stamp: { time: number; date: number }): Uint8Array {
  const view = new DataView(new ArrayBuffer(30 + fields.name.length));
  view.setUint32(0, LOCAL_HEADER, true);
  view.setUint16(4, VERSION_NEEDED, true);
  view.setUint16(6, FLAG_UTF8, true);
  view.setUint16(8, fields.method, true);
  view.setUint16(10, stamp.time, true);
  view.setUint16(12, stamp.date, true);
  view.setUint32(14, fields.crc, true);
  view.setUint32(18, fields.compressed, true);
  view.setUint32(22, fields.size, true);
  view.setUint16(26, fields.name.length, true);
  const bytes = new Uint8Array(view.buffer);
  bytes.set(fields.name, 30);
  return bytes;
}

function centralHeader(
  fields: EntryFields,
  stamp: { time: number; date: number },
  mode: number,
  isDir: boolean,
  headerOffset: number,
): Uint8Array {
  const view = new DataView(new ArrayBuffer(46 + fields.name.length));
  view.setUint32(0, CENTRAL_HEADER, true);
  view.setUint16(4, MADE_BY_UNIX, true);
  view.setUint16(6, VERSION_NEEDED, true);
  view.setUint16(8, FLAG_UTF8, true);
  view.setUint16(10, fields.method, true);
  view.setUint16(12, stamp.time, true);
  view.setUint16(14, stamp.date, true);
  view.setUint32(16, fields.crc, true);
  view.setUint32(20, fields.compressed, true);
  view.setUint32(24, fields.size, true);
  view.setUint16(28, fields.name.length, true);
  view.setUint32(38, ((mode << 16) | (isDir ? DOS_DIRECTORY : 0)) >>> 0, true);
  view.setUint32(42, headerOffset, true);
  const bytes = new Uint8Array(view.buffer);
  bytes.set(fields.name, 46);
  return bytes;
}
