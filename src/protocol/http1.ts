/**
 * HTTP/1.x heads as they cross the tunnel and the backend connection. The serialisers write the
 * byte layout of groom 1.3 (PROTO-20, PROTO-22, PROTO-24: Go-canonical names, sorted, one line per
 * value). The parsers are strict and bounded: they reject anything a smuggling attack relies on
 * (ODD-40) and decide the body framing from the parsed fields only (RFC 9112 §6), never by
 * searching the text. Strings hold one character per byte (Latin-1), so obs-text round-trips.
 * @module
 */

import { STATUS_CODES } from "node:http";

/**
 * Largest head accepted by default: Go's `http.DefaultMaxHeaderBytes` (1 MiB), the ceiling a
 * client of groom 1.3 could reach, so every head the original forwarded still fits.
 */
export const MAX_HEAD_SIZE = 1024 * 1024;

/**
 * Largest number of header fields accepted by default. Real requests carry a few dozen; the bound
 * caps per-head work and memory for a peer that sends a megabyte of one-byte fields.
 */
export const MAX_HEADER_COUNT = 1000;

/** Largest Content-Length accepted: beyond 2^53 − 1 a JavaScript number loses integer precision. */
export const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER;

/** One header field line: the name as received (any case) and the value without surrounding OWS. */
export type HeaderField = readonly [name: string, value: string];

/** A request head (PROTO-20). */
export interface RequestHead {
  /** Method token, case-sensitive (`GET`). */
  readonly method: string;
  /** Request-target exactly as received (origin, absolute, authority or asterisk form). */
  readonly target: string;
  /** Protocol version token: `HTTP/1.0` or `HTTP/1.1` (any `HTTP/1.<digit>` is accepted). */
  readonly version: string;
  /** Header fields in received order; `Host` among them. */
  readonly headers: readonly HeaderField[];
}

/** A response head (PROTO-22). */
export interface ResponseHead {
  /** Protocol version token, e.g. `HTTP/1.1`. */
  readonly version: string;
  /** Status code, 100 to 599. */
  readonly status: number;
  /** Reason phrase as sent (possibly empty). */
  readonly reason: string;
  /** Header fields in received order. */
  readonly headers: readonly HeaderField[];
}

/** How the body after a head is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

/** A parsed request head and its body framing. */
export interface ParsedRequestHead {
  /** The head; a duplicated identical Content-Length is collapsed, one overridden by TE removed. */
  readonly head: RequestHead;
  /** How the body is delimited. */
  readonly framing: BodyFraming;
  /**
   * The connection must be closed after this message: it carried both Content-Length and
   * Transfer-Encoding (RFC 9112 §6.1, ODD-40), or (responses) its body ends at close.
   */
  readonly mustClose: boolean;
}

/** A parsed response head and its body framing. */
export interface ParsedResponseHead {
  /** The head; a duplicated identical Content-Length is collapsed, one overridden by TE removed. */
  readonly head: ResponseHead;
  /** How the body is delimited. */
  readonly framing: BodyFraming;
  /** See {@linkcode ParsedRequestHead.mustClose}. */
  readonly mustClose: boolean;
}

/** Limits for the head parsers. */
export interface HeadParseOptions {
  /** Largest head in bytes, blank line included; default {@linkcode MAX_HEAD_SIZE}. */
  readonly maxHeadSize?: number;
  /** Largest number of header fields; default {@linkcode MAX_HEADER_COUNT}. */
  readonly maxHeaderCount?: number;
}

/** Options of {@linkcode parseResponseHead}. */
export interface ResponseParseOptions extends HeadParseOptions {
  /** Method of the request this answers; a `HEAD` request means the response has no body. */
  readonly requestMethod?: string;
}

/** Why a head or a chunked body was refused. */
export type HttpParseErrorReason =
  | "head-too-large"
  | "too-many-headers"
  | "incomplete-head"
  | "trailing-bytes"
  | "bare-cr"
  | "bare-lf"
  | "bad-request-line"
  | "bad-status-line"
  | "bad-method"
  | "bad-target"
  | "unsupported-version"
  | "obs-fold"
  | "space-before-colon"
  | "bad-header-name"
  | "bad-header-value"
  | "bad-content-length"
  | "conflicting-content-length"
  | "bad-transfer-encoding"
  | "unsupported-transfer-encoding"
  | "missing-host"
  | "duplicate-host"
  | "bad-host"
  | "bad-chunk-size"
  | "chunk-size-overflow"
  | "bad-chunk-extension"
  | "chunk-line-too-long"
  | "missing-chunk-crlf"
  | "trailer-too-large"
  | "truncated-chunked-body";

/**
 * A head or chunked body that breaks the HTTP/1.1 syntax or a limit. `status` is what to answer:
 * 400, 431 (too large), 501 (unknown transfer coding) or 505 for requests; 502 for responses.
 */
export class HttpParseError extends Error {
  /** Which rule the input broke. */
  readonly reason: HttpParseErrorReason;
  /** HTTP status to answer with. */
  readonly status: number;

  /** Creates the error with the rule broken and the status to answer. */
  constructor(message: string, options: { reason: HttpParseErrorReason; status: number }) {
    super(message);
    this.name = "HttpParseError";
    this.reason = options.reason;
    this.status = options.status;
  }
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** A whole string of `tchar` (RFC 9110 §5.6.2): a valid method or field name. */
const TCHAR_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether a byte is a `tchar` (RFC 9110 §5.6.2). */
function isTchar(byte: number): boolean {
  if ((byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a)) return true;
  if (byte >= 0x30 && byte <= 0x39) return true;
  switch (byte) {
    case 0x21: // !
    case 0x23: // #
    case 0x24: // $
    case 0x25: // %
    case 0x26: // &
    case 0x27: // '
    case 0x2a: // *
    case 0x2b: // +
    case 0x2d: // -
    case 0x2e: // .
    case 0x5e: // ^
    case 0x5f: // _
    case 0x60: // `
    case 0x7c: // |
    case 0x7e: // ~
      return true;
    default:
      return false;
  }
}

/** field-vchar, SP or HTAB (RFC 9110 §5.5): everything but CTLs and DEL; obs-text allowed. */
function isFieldByte(byte: number): boolean {
  return byte === HTAB || (byte >= SP && byte !== 0x7f);
}

/**
 * Below this length a character loop is the fastest way to decode (measured: 40 ns for 10 bytes
 * against 145 ns with `apply`); above it, `String.fromCharCode.apply` on slices (256 ns for 97
 * bytes, against 1.6 µs for the spread operator, which walks the array's iterator).
 */
const LATIN1_LOOP_MAX = 16;
/** Slice length for `String.fromCharCode.apply`: well below V8's argument count limit. */
const LATIN1_SLICE = 8192;

/** Decodes bytes as Latin-1, one character per byte (TextDecoder's "latin1" is windows-1252). */
function latin1Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let text = "";
  if (end - start <= LATIN1_LOOP_MAX) {
    for (let at = start; at < end; at++) text += String.fromCharCode(bytes[at] ?? 0);
    return text;
  }
  for (let at = start; at < end; at += LATIN1_SLICE) {
    const slice = bytes.subarray(at, Math.min(end, at + LATIN1_SLICE));
    // A typed array is array-like: `apply` takes it without the iterator protocol.
    text += String.fromCharCode.apply(null, slice as unknown as number[]);
  }
  return text;
}

function latin1Encode(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let index = 0; index < text.length; index++) {
    // Every character was validated to be at most 0xff before serialising.
    bytes[index] = text.charCodeAt(index);
  }
  return bytes;
}

type ErrorFactory = (message: string, reason: HttpParseErrorReason, status?: number) => never;

function requestError(message: string, reason: HttpParseErrorReason, status = 400): never {
  throw new HttpParseError(message, { reason, status });
}

function responseError(message: string, reason: HttpParseErrorReason): never {
  throw new HttpParseError(message, { reason, status: 502 });
}

/**
 * Parses one field line `name ":" OWS value OWS` (RFC 9112 §5), `start`..`end` excluding the
 * line terminator. Rejects whitespace before the colon, non-token names and CTLs in the value.
 * Used for header fields and chunked trailers; `what` starts the error message.
 */
export function parseFieldLine(
  bytes: Uint8Array,
  range: { start: number; end: number; status?: number; what?: string },
): HeaderField {
  const { start, end } = range;
  const status = range.status ?? 400;
  const what = range.what ?? "Cannot parse header field";
  const fail = (message: string, reason: HttpParseErrorReason): never => {
    throw new HttpParseError(`${what}${message}`, { reason, status });
  };
  let colon = start;
  while (colon < end && bytes[colon] !== COLON) colon++;
  if (colon === end) fail(": missing colon", "bad-header-name");
  if (colon === start) fail(": empty name", "bad-header-name");
  const last = bytes[colon - 1] ?? 0;
  if (last === SP || last === HTAB) {
    fail(": whitespace before the colon", "space-before-colon");
  }
  for (let at = start; at < colon; at++) {
    if (!isTchar(bytes[at] ?? 0)) {
      fail(
        `: invalid character 0x${(bytes[at] ?? 0).toString(16).padStart(2, "0")} in name`,
        "bad-header-name",
      );
    }
  }
  let valueStart = colon + 1;
  let valueEnd = end;
  while (valueStart < valueEnd && (bytes[valueStart] === SP || bytes[valueStart] === HTAB)) {
    valueStart++;
  }
  while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) {
    valueEnd--;
  }
  for (let at = valueStart; at < valueEnd; at++) {
    if (!isFieldByte(bytes[at] ?? 0)) {
      fail(
        ` "${latin1Decode(bytes, start, colon)}": invalid character 0x${
          (bytes[at] ?? 0).toString(16).padStart(2, "0")
        } in value`,
        "bad-header-value",
      );
    }
  }
  return [latin1Decode(bytes, start, colon), latin1Decode(bytes, valueStart, valueEnd)];
}

/**
 * Index just after the blank line that ends the head at the start of `bytes`, or -1 when it has
 * not arrived yet. A line ends at LF (an optional CR before it is part of the terminator), as
 * the parsers accept (RFC 9112 §2.2). Bytes after the index belong to the body.
 */
export function findHeadEnd(bytes: Uint8Array): number {
  let lineStart = 0;
  for (let at = bytes.indexOf(LF); at !== -1; at = bytes.indexOf(LF, at + 1)) {
    const contentLength = at - lineStart;
    if (contentLength === 0 || (contentLength === 1 && bytes[lineStart] === CR)) return at + 1;
    lineStart = at + 1;
  }
  return -1;
}

/** Lines of a head: start line and field lines, validated for CR/LF use and limits. */
interface HeadLines {
  readonly startLine: { start: number; end: number };
  readonly fields: HeaderField[];
}

function splitHead(
  bytes: Uint8Array,
  options: HeadParseOptions,
  context: { what: string; status: number; fail: ErrorFactory },
): HeadLines {
  const maxHeadSize = options.maxHeadSize ?? MAX_HEAD_SIZE;
  const maxHeaderCount = options.maxHeaderCount ?? MAX_HEADER_COUNT;
  const { what, status, fail } = context;
  if (bytes.length > maxHeadSize) {
    fail(
      `Cannot parse ${what} head: ${bytes.length} bytes exceeds the limit of ${maxHeadSize} bytes`,
      "head-too-large",
      status === 400 ? 431 : status,
    );
  }
  let startLine: { start: number; end: number } | undefined;
  const fields: HeaderField[] = [];
  let lineStart = 0;
  while (true) {
    const lf = bytes.indexOf(LF, lineStart);
    if (lf === -1) {
      fail(`Cannot parse ${what} head: no blank line ends it`, "incomplete-head");
    }
    let lineEnd = lf;
    if (lineEnd > lineStart && bytes[lineEnd - 1] === CR) lineEnd--;
    const cr = bytes.subarray(lineStart, lineEnd).indexOf(CR);
    if (cr !== -1) fail(`Cannot parse ${what} head: bare CR in a line`, "bare-cr");
    if (startLine === undefined) {
      if (lineEnd === lineStart) {
        fail(
          `Cannot parse ${what} head: empty start line`,
          what === "request" ? "bad-request-line" : "bad-status-line",
        );
      }
      startLine = { start: lineStart, end: lineEnd };
    } else if (lineEnd === lineStart) {
      if (lf + 1 !== bytes.length) {
        fail(
          `Cannot parse ${what} head: ${bytes.length - lf - 1} bytes follow the blank line`,
          "trailing-bytes",
        );
      }
      return { startLine, fields };
    } else {
      const first = bytes[lineStart];
      if (first === SP || first === HTAB) {
        fail(`Cannot parse ${what} head: obsolete line folding`, "obs-fold");
      }
      if (fields.length === maxHeaderCount) {
        fail(
          `Cannot parse ${what} head: more than ${maxHeaderCount} header fields`,
          "too-many-headers",
          status === 400 ? 431 : status,
        );
      }
      fields.push(parseFieldLine(bytes, { start: lineStart, end: lineEnd, status }));
    }
    lineStart = lf + 1;
  }
}

const VERSION_REGEXP = /^HTTP\/([0-9])\.[0-9]$/;
const ABSOLUTE_FORM_REGEXP = /^[A-Za-z][A-Za-z0-9+.\-]*:/;
const AUTHORITY_FORM_REGEXP = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):[0-9]+$/;
const HOST_REGEXP = /^[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]*$/;

function isTargetByte(byte: number): boolean {
  return (byte > SP && byte < 0x7f) || byte >= 0x80;
}

/** Whether a request-target is in absolute form (`http://host/path`), which carries the host. */
export function isAbsoluteFormTarget(target: string): boolean {
  return ABSOLUTE_FORM_REGEXP.test(target);
}

/**
 * Go's MIME canonical form of a header name: first letter and every letter after `-` upper-case,
 * the rest lower-case (`sec-websocket-key` → `Sec-Websocket-Key`). Like Go, a name containing a
 * non-token character is returned unchanged.
 */
export function canonicalHeaderName(name: string): string {
  if (!TCHAR_REGEXP.test(name)) return name;
  // Token characters are ASCII: case changes are ±32 on letters. Most names arrive either
  // canonical already (returned as is) or lower-case (from `Headers`).
  let canonical = true;
  let upper = true;
  for (let index = 0; index < name.length; index++) {
    const code = name.charCodeAt(index);
    if (upper ? code >= 0x61 && code <= 0x7a : code >= 0x41 && code <= 0x5a) {
      canonical = false;
      break;
    }
    upper = code === 0x2d;
  }
  if (canonical) return name;
  const codes = new Array<number>(name.length);
  upper = true;
  for (let index = 0; index < name.length; index++) {
    let code = name.charCodeAt(index);
    if (upper) {
      if (code >= 0x61 && code <= 0x7a) code -= 0x20;
    } else if (code >= 0x41 && code <= 0x5a) code += 0x20;
    codes[index] = code;
    upper = code === 0x2d;
  }
  return String.fromCharCode.apply(null, codes);
}

/** Every value of a header, in order; the name is compared case-insensitively. */
export function headerValues(headers: readonly HeaderField[], name: string): string[] {
  const wanted = name.toLowerCase();
  return headers.filter(([fieldName]) => fieldName.toLowerCase() === wanted).map(([, v]) => v);
}

/** The first value of a header, or `undefined`; the name is compared case-insensitively. */
export function getHeader(headers: readonly HeaderField[], name: string): string | undefined {
  const wanted = name.toLowerCase();
  return headers.find(([fieldName]) => fieldName.toLowerCase() === wanted)?.[1];
}

/** Splits comma-separated list values into trimmed, non-empty, lower-cased elements. */
function listElements(values: readonly string[]): string[] {
  return values.flatMap((value) => value.split(","))
    .map((element) => element.trim().toLowerCase())
    .filter((element) => element !== "");
}

/**
 * The tokens of every `Connection` header, lower-cased (RFC 9110 §7.6.1). Treating the header as
 * a token list means `keep-alive, Upgrade` is an upgrade (ODD-17).
 */
export function connectionTokens(headers: readonly HeaderField[]): Set<string> {
  return new Set(listElements(headerValues(headers, "connection")));
}

/**
 * Hop-by-hop headers a proxy does not forward (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
 * `Proxy-Connection`), lower-case. Headers named in `Connection` are hop-by-hop as well.
 */
export const HOP_BY_HOP_HEADERS = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
] as const;

/** Whether `name` is hop-by-hop: in {@linkcode HOP_BY_HOP_HEADERS} or in `connection` tokens. */
export function isHopByHopHeader(name: string, connection?: ReadonlySet<string>): boolean {
  const lower = name.toLowerCase();
  return (HOP_BY_HOP_HEADERS as readonly string[]).includes(lower) ||
    (connection?.has(lower) ?? false);
}

/** Result of the framing decision shared by requests and responses. */
interface Framing {
  readonly headers: readonly HeaderField[];
  readonly chunked: boolean;
  readonly length: number | undefined;
  readonly mustClose: boolean;
}

/**
 * Validates Content-Length and Transfer-Encoding (RFC 9112 §6, RFC 9110 §8.6) and decides
 * whether the body is chunked or has a length. Identical repeated lengths collapse into one
 * field; a length next to chunked is removed and the connection must close (ODD-40).
 */
function decideFraming(
  headers: readonly HeaderField[],
  context: { what: string; version: string; fail: ErrorFactory },
): Framing {
  const { what, version, fail } = context;
  let length: number | undefined;
  let lengthFields = 0;
  let encodings: string[] = [];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      lengthFields++;
      const elements = value.split(",").map((element) => element.trim());
      for (const element of elements) {
        if (!/^[0-9]{1,16}$/.test(element) || Number(element) > MAX_CONTENT_LENGTH) {
          fail(
            `Cannot parse ${what} head: invalid Content-Length "${value}"`,
            "bad-content-length",
          );
        }
        const parsed = Number(element);
        if (length !== undefined && parsed !== length) {
          fail(
            `Cannot parse ${what} head: conflicting Content-Length values ${length} and ${parsed}`,
            "conflicting-content-length",
          );
        }
        length = parsed;
      }
      if (elements.length > 1) lengthFields++;
    } else if (lower === "transfer-encoding") {
      encodings = encodings.concat(value.split(",").map((element) => element.trim()));
    }
  }
  let result = headers;
  if (lengthFields > 1 && length !== undefined) {
    // Keep one field, in the place of the first one.
    let kept = false;
    result = result.flatMap((field): HeaderField[] => {
      if (field[0].toLowerCase() !== "content-length") return [field];
      if (kept) return [];
      kept = true;
      return [[field[0], String(length)]];
    });
  }
  const hasEncoding = headers.some(([name]) => name.toLowerCase() === "transfer-encoding");
  if (!hasEncoding) return { headers: result, chunked: false, length, mustClose: false };
  if (version === "HTTP/1.0") {
    fail(
      `Cannot parse ${what} head: Transfer-Encoding in an HTTP/1.0 message`,
      "bad-transfer-encoding",
    );
  }
  const codings = encodings.filter((element) => element !== "").map((c) => c.toLowerCase());
  const chunkedAt = codings.indexOf("chunked");
  if (codings.length === 0) {
    fail(`Cannot parse ${what} head: empty Transfer-Encoding`, "bad-transfer-encoding");
  }
  if (chunkedAt !== -1 && chunkedAt !== codings.length - 1) {
    fail(
      `Cannot parse ${what} head: Transfer-Encoding "${
        codings.join(", ")
      }" does not end with chunked`,
      "bad-transfer-encoding",
    );
  }
  if (codings.length !== 1 || chunkedAt !== 0) {
    fail(
      `Cannot parse ${what} head: unsupported Transfer-Encoding "${codings.join(", ")}"`,
      "unsupported-transfer-encoding",
      501,
    );
  }
  if (length === undefined) return { headers: result, chunked: true, length, mustClose: false };
  // RFC 9112 §6.3: chunked overrides Content-Length, which must be removed before forwarding,
  // and the connection must close after the message (ODD-40).
  return {
    headers: result.filter(([name]) => name.toLowerCase() !== "content-length"),
    chunked: true,
    length: undefined,
    mustClose: true,
  };
}

/**
 * Parses a request head: the exact bytes from the request line to the blank line, nothing after
 * (a HEAD message's payload, or the part {@linkcode findHeadEnd} delimits). Strict: single spaces
 * in the request line, CRLF or LF line ends (no bare CR), no obs-fold, no whitespace before a
 * colon, token names, no CTL in values, one Host (required in HTTP/1.1), a valid and unambiguous
 * Content-Length, and Transfer-Encoding only as a single `chunked`. Throws
 * {@linkcode HttpParseError} with the status to answer (400, 431, 501, 505).
 */
export function parseRequestHead(
  bytes: Uint8Array,
  options: HeadParseOptions = {},
): ParsedRequestHead {
  const fail: ErrorFactory = requestError;
  const { startLine, fields } = splitHead(bytes, options, { what: "request", status: 400, fail });
  const { start, end } = startLine;
  const line = bytes.subarray(start, end);
  // Exactly two single spaces: no part may contain one (RFC 9112 §3; no lenient whitespace).
  const firstSpace = line.indexOf(SP);
  const lastSpace = line.lastIndexOf(SP);
  let spaces = 0;
  for (let at = 0; at < line.length; at++) if (line[at] === SP) spaces++;
  if (spaces !== 2 || firstSpace === 0) {
    fail("Cannot parse request line: expected method, target and version", "bad-request-line");
  }
  for (let at = 0; at < firstSpace; at++) {
    if (!isTchar(line[at] ?? 0)) fail("Cannot parse request line: invalid method", "bad-method");
  }
  if (lastSpace === firstSpace + 1) {
    fail("Cannot parse request line: empty request-target", "bad-target");
  }
  for (let at = firstSpace + 1; at < lastSpace; at++) {
    if (!isTargetByte(line[at] ?? 0)) {
      fail("Cannot parse request line: invalid character in the request-target", "bad-target");
    }
  }
  const method = latin1Decode(line, 0, firstSpace);
  const target = latin1Decode(line, firstSpace + 1, lastSpace);
  const version = latin1Decode(line, lastSpace + 1);
  const versionMatch = VERSION_REGEXP.exec(version);
  if (versionMatch === null) {
    const digits = /^HTTP\/[0-9]\.[0-9]$/.test(version);
    fail(
      `Cannot parse request line: ${digits ? "unsupported" : "invalid"} version "${version}"`,
      digits ? "unsupported-version" : "bad-request-line",
      digits ? 505 : 400,
    );
  }
  if (versionMatch[1] !== "1") {
    fail(`Cannot parse request line: unsupported version "${version}"`, "unsupported-version", 505);
  }
  const validForm = target.startsWith("/") || isAbsoluteFormTarget(target) ||
    (target === "*" && method === "OPTIONS") ||
    (method === "CONNECT" && AUTHORITY_FORM_REGEXP.test(target));
  if (!validForm) {
    fail(`Cannot parse request line: invalid request-target form`, "bad-target");
  }
  const hosts = headerValues(fields, "host");
  if (hosts.length > 1) fail("Cannot parse request head: more than one Host", "duplicate-host");
  if (hosts.length === 0 && version !== "HTTP/1.0") {
    fail("Cannot parse request head: missing Host", "missing-host");
  }
  if (hosts[0] !== undefined && !HOST_REGEXP.test(hosts[0])) {
    fail("Cannot parse request head: invalid Host", "bad-host");
  }
  const framing = decideFraming(fields, { what: "request", version, fail });
  const head: RequestHead = { method, target, version, headers: framing.headers };
  let bodyFraming: BodyFraming;
  if (framing.chunked) bodyFraming = { kind: "chunked" };
  else if (framing.length !== undefined) bodyFraming = { kind: "length", length: framing.length };
  else bodyFraming = { kind: "none" };
  return { head, framing: bodyFraming, mustClose: framing.mustClose };
}

/**
 * Parses a response head (exact bytes, as {@linkcode parseRequestHead}). The status line is
 * `HTTP/1.x SP 3DIGIT [SP reason]` with a status of 100 to 599. The framing is `none` for an
 * answer to HEAD, 1xx, 204 and 304, else chunked, length, or read-until-close. Every failure is
 * an {@linkcode HttpParseError} with status 502 (the backend's answer is unusable, PROTO-24).
 */
export function parseResponseHead(
  bytes: Uint8Array,
  options: ResponseParseOptions = {},
): ParsedResponseHead {
  const fail: ErrorFactory = responseError;
  const { startLine, fields } = splitHead(bytes, options, { what: "response", status: 502, fail });
  const line = bytes.subarray(startLine.start, startLine.end);
  const version = latin1Decode(line, 0, Math.min(8, line.length));
  if (!VERSION_REGEXP.test(version) || version[5] !== "1" || line[8] !== SP) {
    fail(`Cannot parse status line: invalid version`, "bad-status-line");
  }
  const code = latin1Decode(line, 9, Math.min(12, line.length));
  if (!/^[1-5][0-9][0-9]$/.test(code) || (line.length > 12 && line[12] !== SP)) {
    fail(`Cannot parse status line: invalid status code`, "bad-status-line");
  }
  for (let at = 13; at < line.length; at++) {
    if (!isFieldByte(line[at] ?? 0)) {
      fail(`Cannot parse status line: invalid character in the reason`, "bad-status-line");
    }
  }
  const status = Number(code);
  const reason = latin1Decode(line, Math.min(13, line.length));
  const framing = decideFraming(fields, { what: "response", version, fail });
  const head: ResponseHead = { version, status, reason, headers: framing.headers };
  const bodiless = options.requestMethod === "HEAD" || status < 200 || status === 204 ||
    status === 304;
  let bodyFraming: BodyFraming;
  if (bodiless) bodyFraming = { kind: "none" };
  else if (framing.chunked) bodyFraming = { kind: "chunked" };
  else if (framing.length !== undefined) bodyFraming = { kind: "length", length: framing.length };
  else bodyFraming = { kind: "close" };
  return {
    head,
    framing: bodyFraming,
    mustClose: framing.mustClose || bodyFraming.kind === "close",
  };
}

function checkToken(text: string, what: string): void {
  if (!TCHAR_REGEXP.test(text)) {
    throw new TypeError(`Cannot serialize head: invalid ${what} "${text}"`);
  }
}

/** `what` is a string, or a function making it, so valid text costs no message (hot path). */
function checkText(
  text: string,
  what: string | (() => string),
  allowed: (code: number) => boolean,
): void {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code > 0xff || !allowed(code)) {
      throw new TypeError(
        `Cannot serialize head: invalid character U+${
          code.toString(16).toUpperCase().padStart(4, "0")
        } in ${typeof what === "string" ? what : what()}`,
      );
    }
  }
}

function isChunkedEncoding(values: readonly string[]): boolean {
  const codings = listElements(values);
  if (codings.length === 0) return false;
  if (codings.length !== 1 || codings[0] !== "chunked") {
    throw new TypeError(
      `Cannot serialize head: unsupported Transfer-Encoding "${codings.join(", ")}"`,
    );
  }
  return true;
}

/** Trims OWS from a value, like Go's `textproto.TrimString` does when writing headers. */
function trimValue(value: string): string {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  if (first !== SP && first !== HTAB && last !== SP && last !== HTAB) return value; // usual case
  return value.replace(/^[ \t]+|[ \t]+$/g, "");
}

/**
 * Serialises the framing header first and then every other field sorted by canonical name, one
 * line per value, values of one name in their original order (Go's `Header.Write`).
 */
function serializeFields(
  first: string,
  headers: readonly HeaderField[],
  skip: (lowerName: string) => boolean,
): string {
  const groups = new Map<string, string[]>();
  for (const [name, value] of headers) {
    checkToken(name, "header name");
    checkText(value, () => `header "${name}"`, isFieldByte);
    if (skip(name.toLowerCase())) continue;
    const canonical = canonicalHeaderName(name);
    const group = groups.get(canonical);
    if (group === undefined) groups.set(canonical, [trimValue(value)]);
    else group.push(trimValue(value));
  }
  let text = first;
  for (const name of [...groups.keys()].sort()) {
    for (const value of groups.get(name) ?? []) text += `${name}: ${value}\r\n`;
  }
  return text + "\r\n";
}

function singleContentLength(headers: readonly HeaderField[]): string | undefined {
  const lengths = listElements(headerValues(headers, "content-length"));
  if (lengths.length === 0) return undefined;
  const first = lengths[0] ?? "";
  if (!/^[0-9]+$/.test(first) || lengths.some((length) => Number(length) !== Number(first))) {
    throw new TypeError(`Cannot serialize head: invalid Content-Length "${lengths.join(", ")}"`);
  }
  return first;
}

function checkVersion(version: string): void {
  if (!/^HTTP\/1\.[0-9]$/.test(version)) {
    throw new TypeError(`Cannot serialize head: invalid version "${version}"`);
  }
}

/**
 * Serialises a request head as groom 1.3 does (PROTO-20): request line with the target verbatim,
 * `Host` (omitted for an absolute-form target), `Transfer-Encoding: chunked` when the headers
 * say chunked, then every other field (Content-Length included, Trailer dropped) sorted by
 * Go-canonical name, one line per value, then the blank line. Throws `TypeError` for a value that
 * cannot be written safely (CTL characters, invalid names, several Host fields).
 */
export function serializeRequestHead(head: RequestHead): Uint8Array {
  checkToken(head.method, "method");
  checkText(head.target, "request-target", isTargetByte);
  if (head.target === "") throw new TypeError("Cannot serialize head: empty request-target");
  checkVersion(head.version);
  const hosts = headerValues(head.headers, "host");
  if (hosts.length > 1) throw new TypeError("Cannot serialize head: more than one Host");
  const chunked = isChunkedEncoding(headerValues(head.headers, "transfer-encoding"));
  let first = `${head.method} ${head.target} ${head.version}\r\n`;
  const host = hosts[0];
  if (host !== undefined && !isAbsoluteFormTarget(head.target)) {
    checkText(host, "Host", isFieldByte);
    first += `Host: ${trimValue(host)}\r\n`;
  }
  if (chunked) first += "Transfer-Encoding: chunked\r\n";
  const text = serializeFields(
    first,
    head.headers,
    (name) =>
      name === "host" || name === "transfer-encoding" || name === "trailer" ||
      (chunked && name === "content-length"),
  );
  return latin1Encode(text);
}

/**
 * Serialises a response head as groom 1.3 does (PROTO-22): `HTTP/1.x <3-digit status> <reason>`,
 * then `Transfer-Encoding: chunked` or `Content-Length` as the headers declare, then every other
 * field (Trailer dropped) sorted by Go-canonical name, one line per value (every `Set-Cookie`
 * kept), then the blank line. Throws `TypeError` for values that cannot be written safely.
 */
export function serializeResponseHead(head: ResponseHead): Uint8Array {
  checkVersion(head.version);
  if (!Number.isInteger(head.status) || head.status < 100 || head.status > 599) {
    throw new TypeError(`Cannot serialize head: invalid status ${head.status}`);
  }
  checkText(head.reason, "reason", isFieldByte);
  const chunked = isChunkedEncoding(headerValues(head.headers, "transfer-encoding"));
  const length = chunked ? undefined : singleContentLength(head.headers);
  let first = `${head.version} ${head.status} ${head.reason}\r\n`;
  if (chunked) first += "Transfer-Encoding: chunked\r\n";
  else if (length !== undefined) first += `Content-Length: ${length}\r\n`;
  const text = serializeFields(
    first,
    head.headers,
    (name) => name === "content-length" || name === "transfer-encoding" || name === "trailer",
  );
  return latin1Encode(text);
}

/** An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Wed, 25 Nov 2026 00:24:58 GMT`. */
export function formatHttpDate(date: Date): string {
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 0 || year > 9999) {
    throw new RangeError(`Cannot format date: ${date.getTime()} is outside years 0000..9999`);
  }
  return date.toUTCString();
}

/**
 * The head of a synthetic status the agent sends as HEAD|START|END (PROTO-24):
 * `HTTP/1.1 <code> <standard reason>\r\nDate: <IMF-fixdate>\r\n\r\n`, with Node's standard
 * reason phrases (identical to Go's for the 400, 502 and 504 groom sends).
 */
export function synthesizeStatusHead(status: number, date: Date): Uint8Array {
  const reason = STATUS_CODES[status];
  if (!Number.isInteger(status) || status < 100 || status > 599 || reason === undefined) {
    throw new RangeError(`Cannot synthesize status ${status}: not a known status code`);
  }
  return latin1Encode(`HTTP/1.1 ${status} ${reason}\r\nDate: ${formatHttpDate(date)}\r\n\r\n`);
}
