/**
 * groom's system events (LOG-10) and the access record (SRV-20) as typed builders, so every
 * caller produces exactly the fields of the original and nothing else. Each event builder returns
 * a {@linkcode LogEvent} (level plus record) for `Logger.emit()`. Deliberate departures, from
 * section 12: a `stop` event exists (ODD-33), a listener that cannot bind is an ERROR (ODD-15), a
 * failed reload is a WARN rather than an INFO (ODD-15).
 *
 * @module
 */

import type { LogLevel } from "./format.ts";

/** A record with the level it is logged at. */
export interface LogEvent {
  /** Level of the line. */
  readonly level: LogLevel;
  /** The JSON object (keys are sorted when encoded, LOG-7). */
  readonly record: Readonly<Record<string, unknown>>;
}

/** `server` or `agent`; any other text is logged as is (the start event of CLI-9). */
export type Mode = string;

/** Text of an error value: an `Error`'s message, anything else as a string. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Identity of the running process, shared by the lifecycle events. */
export interface ProcessInfo {
  /** The configuration file path as given on the command line. */
  readonly config: string;
  /** The mode. */
  readonly mode: Mode;
  /** Process id. */
  readonly pid: number;
  /** groom's version (the original logs `1.3.2`). */
  readonly version: string;
}

/** INFO `{"config","event":"start","mode","pid","version"}` at start (CLI-9, LOG-10). */
export function startEvent(info: ProcessInfo): LogEvent {
  const { config, mode, pid, version } = info;
  return { level: "info", record: { config, event: "start", mode, pid, version } };
}

/** INFO `{"config","event":"reload","mode","pid","version"}` after a successful SIGHUP. */
export function reloadEvent(info: ProcessInfo): LogEvent {
  const { config, mode, pid, version } = info;
  return { level: "info", record: { config, event: "reload", mode, pid, version } };
}

/**
 * `{"config","error","event":"reload","mode"}` when a SIGHUP reload fails (CLI-10). The original
 * logs it at INFO; we use WARN (ODD-15).
 */
export function reloadFailedEvent(
  info: { readonly config: string; readonly mode: Mode; readonly error: unknown },
): LogEvent {
  const { config, mode } = info;
  return {
    level: "warning",
    record: { config, error: errorText(info.error), event: "reload", mode },
  };
}

/**
 * INFO `{"config","event":"stop","mode","pid","version"}` (plus `signal` when given) on a
 * graceful shutdown; new (ODD-33), the original has no stop event.
 */
export function stopEvent(info: ProcessInfo & { readonly signal?: string }): LogEvent {
  const { config, mode, pid, version, signal } = info;
  const record: Record<string, unknown> = { config, event: "stop", mode, pid, version };
  if (signal !== undefined && signal !== "") record.signal = signal;
  return { level: "info", record };
}

/**
 * INFO `{"certificates","event":"listen","listen","mode"}` per listener (TLS-2): `listen` is the
 * address as written (with `*`), `certificates` the remaining pieces joined by `,`.
 */
export function listenEvent(
  info: { readonly listen: string; readonly certificates: string; readonly mode: Mode },
): LogEvent {
  const { certificates, listen, mode } = info;
  return { level: "info", record: { certificates, event: "listen", listen, mode } };
}

/**
 * ERROR `{"error","event":"listen","listen","mode"}` when a listener cannot bind or serve; new
 * (ODD-15), the original retries silently (TLS-3).
 */
export function listenFailedEvent(
  info: { readonly listen: string; readonly error: unknown; readonly mode: Mode },
): LogEvent {
  const { listen, mode } = info;
  return {
    level: "error",
    record: { error: errorText(info.error), event: "listen", listen, mode },
  };
}

/** What happened to a domain. */
export type DomainEventInput =
  | {
    /** A new domain file parsed, or a domain file's content changed. */
    readonly action: "load" | "update";
    readonly domain: string;
    readonly mode: Mode;
  }
  | {
    /** A tunnel came up or went down (PROTO-9). */
    readonly action: "connect" | "disconnect";
    readonly domain: string;
    readonly mode: Mode;
    /** Agent `ip:port` on the server, configured `remote` on the agent. */
    readonly remote: string;
  };

/**
 * INFO `{"action","domain","event":"domain","mode"}` for `load`/`update`, with `remote` for
 * `connect`/`disconnect` (LOG-10).
 */
export function domainEvent(input: DomainEventInput): LogEvent {
  const { action, domain, mode } = input;
  const record: Record<string, unknown> = { action, domain, event: "domain", mode };
  if (input.action === "connect" || input.action === "disconnect") record.remote = input.remote;
  return { level: "info", record };
}

/**
 * WARN `{"domain","error","event":"error","mode","remote"}`: an agent refused (server, PROTO-7),
 * a dial failure (agent, AGT-1), or, without `remote`, a domain file that does not parse
 * (`domain` is then `<folder>/<file>`).
 */
export function errorEvent(
  info: {
    readonly domain: string;
    readonly error: unknown;
    readonly mode: Mode;
    readonly remote?: string;
  },
): LogEvent {
  const { domain, mode, remote } = info;
  const record: Record<string, unknown> = {
    domain,
    error: errorText(info.error),
    event: "error",
    mode,
  };
  if (remote !== undefined) record.remote = remote;
  return { level: "warning", record };
}

/** DEBUG `{"action","domain","event":"stream","mode","stream"}` when a stream opens or closes. */
export function streamEvent(
  info: {
    readonly action: "activate" | "shutdown";
    readonly domain: string;
    readonly mode: Mode;
    /** Stream id (an integer). */
    readonly stream: number;
  },
): LogEvent {
  const { action, domain, mode, stream } = info;
  return { level: "debug", record: { action, domain, event: "stream", mode, stream } };
}

/** Matches a single byte range `bytes=A-B`, each bound optional (SRV-20). */
const SINGLE_RANGE_REGEXP = /^bytes=(\d+)?-(\d+)?$/;

/** What an access record is built from (SRV-20). */
export interface AccessRecordInput {
  /** Request arrival, milliseconds since the Unix epoch. */
  readonly start: number;
  /** Microseconds from arrival to the record (rounded to an integer). */
  readonly durationMicros: number;
  /** Domain name (Host without port). */
  readonly domain: string;
  /** Transaction id. */
  readonly id: string;
  /** Request method. */
  readonly method: string;
  /** TCP peer `ip:port` (never a forwarded address). */
  readonly remote: string;
  /** Status as SRV-21 logs it. */
  readonly status: number;
  /** Bytes received, counted per SRV-20. */
  readonly in: number;
  /** Bytes sent, counted per SRV-20 (the original starts at 52). */
  readonly out: number;
  /** Percent-decoded URL path. */
  readonly path: string;
  /** Raw query string without `?` (appended when non-empty after trimming). */
  readonly query?: string;
  /** Why the request was refused or ended; left out when empty. */
  readonly reason?: string;
  /** Raw `User-Agent` header, if any. */
  readonly userAgent?: string | null;
  /** Raw `Referer` header, if any. */
  readonly referer?: string | null;
  /** Raw `Range` header, if any. */
  readonly range?: string | null;
}

/**
 * The access record of SRV-20, to be logged at INFO on the access logger (LOG-11): `start`,
 * `duration`, `domain`, `id`, `method`, `remote`, `status`, `in`, `out`, `path` always; `reason`,
 * `ua`, `referer` only when non-empty (trimmed); `range` only for a single `bytes=A-B` range.
 */
export function accessRecord(input: AccessRecordInput): Record<string, unknown> {
  const record: Record<string, unknown> = {
    domain: input.domain,
    duration: Math.round(input.durationMicros),
    id: input.id,
    in: input.in,
    method: input.method,
    out: input.out,
    path: accessPath(input.path, input.query),
    remote: input.remote,
    start: Math.floor(input.start),
    status: input.status,
  };
  if (input.reason !== undefined && input.reason !== "") record.reason = input.reason;
  const ua = input.userAgent?.trim() ?? "";
  if (ua !== "") record.ua = ua;
  const referer = input.referer?.trim() ?? "";
  if (referer !== "") record.referer = referer;
  const range = accessRange(input.range);
  if (range !== null) record.range = range;
  return record;
}

/** The access record as a {@linkcode LogEvent} (always INFO, LOG-11). */
export function accessEvent(input: AccessRecordInput): LogEvent {
  return { level: "info", record: accessRecord(input) };
}

/** The logged path: the decoded path, plus `?` and the trimmed query when non-empty. */
export function accessPath(path: string, query?: string): string {
  const trimmed = query?.trim() ?? "";
  return trimmed === "" ? path : `${path}?${trimmed}`;
}

/** `"A-B"` for a `Range` header holding one `bytes=A-B` range (each bound optional), else null. */
export function accessRange(header: string | null | undefined): string | null {
  const match = SINGLE_RANGE_REGEXP.exec(header?.trim() ?? "");
  return match === null ? null : `${match[1] ?? ""}-${match[2] ?? ""}`;
}
