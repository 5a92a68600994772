/**
 * The agent's side of one exchange with a backend (AGT-9…AGT-14, PROTO-21…PROTO-27): a raw
 * HTTP/1.1 client over `Deno.connect`/`Deno.startTls` (or `node:tls` for an `insecure` target),
 * because `fetch` decodes gzip silently, merges repeated headers and cannot hand over upgraded
 * connections. The request head is rebuilt from the target (the authority never comes from the
 * client, ODD-41), body payloads are copied verbatim (they are already HTTP/1.1 wire form,
 * PROTO-21), and the response is relayed as HEAD|START right after its head arrives (ODD-8), its
 * body de-chunked in BODY messages, or as RAW messages after a `101` with the bytes that came
 * with the head forwarded first (ODD-6). Failures become the synthetic statuses of PROTO-24.
 * Backend TLS is verified unless the target says `insecure` (ODD-11).
 *
 * Keep-alive (issue 7, a deliberate change from AGT-9/AGT-14): given a `BackendPool`, an
 * exchange takes an idle connection to the same dial key and gives it back only when both
 * messages ended exactly where their framing said (request body fully written; response with
 * Content-Length, a chunked end, or no body) on HTTP/1.1 without `Connection: close`; never
 * after a `101`, an upgrade request, an EOF-delimited body, a truncation or an abort. A pooled
 * connection that ends before its first response byte is retried once on a new connection when
 * the request is idempotent and has no body; see `backend_pool.ts`.
 *
 * Idle limits: `write_timeout` bounds only the wait for the response head. Once the head is
 * relayed, a streaming body (SSE, long poll) and a raw session (WebSocket) have no idle limit
 * (ODD-8): they end when the backend ends them, when the server sends ABRT (its client left),
 * or when the tunnel closes. Each write to the backend keeps its `read_timeout` deadline, so a
 * backend that stops reading cannot hold a stream forever.
 * @module
 */

import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";
import {
  ChunkedDecoder,
  concatBytes,
  connectionTokens,
  findHeadEnd,
  Flag,
  type Frame,
  getHeader,
  type HeaderField,
  isAbsoluteFormTarget,
  MAX_HEAD_SIZE,
  MAX_READ_PAYLOAD,
  parseResponseHead,
  type RequestHead,
  serializeRequestHead,
  serializeResponseHead,
  synthesizeStatusHead,
} from "../protocol/mod.ts";
import { hostHeader, rewriteRequest, type Target } from "./targets.ts";
import { type ByteChannel, DenoChannel, NodeChannel, nodeEvent } from "./channel.ts";
import { type BackendPool, dialKey } from "./backend_pool.ts";

/**
 * First read buffer of a backend connection: holds a typical small response (head and body) in
 * one read, while a connection waiting for a slow answer or idle in the pool costs only this
 * much (a 64 KiB buffer per connection was most of the agent's memory per stream); a large body
 * grows the buffer to a full payload after two full reads (channel.ts).
 */
const BACKEND_INITIAL_READ = 4 * 1024;

/**
 * Backend reads become tunnel payloads as they are: fresh arrays (never overwritten while the
 * tunnel queues them) of one payload at most.
 */
const BACKEND_CHANNEL = {
  maxRead: MAX_READ_PAYLOAD,
  fresh: true,
  initialRead: BACKEND_INITIAL_READ,
} as const;

/**
 * Methods whose request may be sent again on a fresh connection when a reused one turns out
 * stale with no response byte (RFC 9110 §9.2.2, RFC 9112 §9.3.1: a proxy never retries a
 * non-idempotent request the backend may have received).
 */
const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * Largest backend response head accepted: the protocol's head bound (1 MiB, Go's default header
 * limit), so every head groom 1.3 relayed still passes while a peer cannot make us buffer more.
 */
export const MAX_RESPONSE_HEAD_SIZE = MAX_HEAD_SIZE;

/**
 * Most interim (1xx other than 101) responses skipped before the final one: real backends send
 * one `100 Continue` or a few `103 Early Hints`; the bound stops an endless stream of them.
 */
export const MAX_INTERIM_RESPONSES = 16;

/** The three agent timeouts that concern an exchange (DIR-5), in milliseconds. */
export interface BackendTimeouts {
  /** `connect_timeout`: TCP connect plus TLS handshake to the backend (AGT-9). */
  readonly connectTimeoutMs: number;
  /**
   * `read_timeout`: wait for each request message from the server, and deadline of each write
   * to the backend (AGT-3, AGT-12).
   */
  readonly readTimeoutMs: number;
  /** `write_timeout`: wait for the backend's response head once the request is sent (AGT-13). */
  readonly writeTimeoutMs: number;
}

/** What an exchange needs from its tunnel stream (the session adapts the tunnel's `Stream`). */
export interface ExchangeStream {
  /** Aborted once the stream is gone: ABRT from the server, tunnel closed, agent stopping. */
  readonly signal: AbortSignal;
  /**
   * The next message from the server: `"timeout"` when none came within `timeoutMs` (no limit
   * when absent), `undefined` once the stream is gone or `signal` aborted.
   */
  receive(
    options: { readonly timeoutMs?: number; readonly signal?: AbortSignal },
  ): Promise<Frame | "timeout" | undefined>;
  /**
   * Sends one message; resolves once another may follow (back-pressure), rejects once the
   * stream is gone.
   */
  send(flags: number, payload: Uint8Array): Promise<void>;
  /** Sends ABRT and ends the stream (PROTO-26, PROTO-27). */
  abort(): void;
}

/** Options of {@linkcode forwardRequest}. */
export interface ForwardOptions {
  /** The timeouts, read when the request starts (DIR-5 "request"). */
  readonly timeouts: BackendTimeouts;
  /** Extra trusted roots (PEM) for verified backend TLS, in addition to the system's. */
  readonly caCerts?: readonly string[];
  /** Random source for the weighted backend choice (AGT-6); default `Math.random`. */
  readonly random?: () => number;
  /** Clock for the `Date` of synthetic statuses; default `() => new Date()`. */
  readonly now?: () => Date;
  /**
   * Keep-alive pool of backend connections: when given, a connection is taken from it when one
   * is idle and given back after a response that leaves it reusable. Without it every request
   * gets a new connection, closed afterwards (AGT-9, AGT-14 as groom 1.3 did).
   */
  readonly pool?: BackendPool;
}

/** How an exchange ended, for logs and tests. */
export type ExchangeOutcome =
  /** A synthetic HEAD|START|END status was sent (PROTO-24); `status` says which. */
  | { readonly kind: "synthetic"; readonly status: number; readonly reason: string }
  /** The backend's response was relayed completely. */
  | { readonly kind: "relayed"; readonly status: number }
  /** The response body ended early: BODY|END then ABRT were sent (PROTO-27). */
  | { readonly kind: "truncated"; readonly status: number; readonly reason: string }
  /** A raw session (after a `101`) ended (PROTO-26). */
  | { readonly kind: "upgraded"; readonly reason: string }
  /** The stream went away (server ABRT, tunnel closed): nothing more was sent. */
  | { readonly kind: "aborted"; readonly reason: string };

/** A request head that cannot be sent to a backend; the session answers `status` (PROTO-24). */
export class BackendRequestError extends Error {
  /** Synthetic status to answer: 400 or 502. */
  readonly status: number;

  /** Creates the error with the status to answer. */
  constructor(message: string, status: number) {
    super(message);
    this.name = "BackendRequestError";
    this.status = status;
  }
}

/** Where and what to send, from {@linkcode planBackendRequest}. */
export interface BackendPlan {
  /** `http` or `https`. */
  readonly scheme: "http" | "https";
  /** Backend host to connect to (no brackets); always one the target lists (ODD-41). */
  readonly host: string;
  /** Backend port. */
  readonly port: number;
  /** Skip certificate verification (the target's `insecure`, ODD-11). */
  readonly insecure: boolean;
  /** The request method (a `HEAD` response has no body). */
  readonly method: string;
  /** The request asks for a protocol upgrade (`Connection` lists `upgrade`, ODD-17). */
  readonly upgrade: boolean;
  /** The serialised request head, request line forced to HTTP/1.1 (AGT-12). */
  readonly head: Uint8Array;
}

const PERCENT_REGEXP = /%([0-9A-Fa-f]{2})|%/g;
/** A percent escape or a non-ASCII byte (Latin-1 char of a UTF-8 sequence): decode the path. */
const NEEDS_DECODING_REGEXP = /[%\u0080-\uffff]/;
const AUTHORITY_PREFIX_REGEXP = /^[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^/?#]*/;

/**
 * The percent-decoded path of a request-target, without the query, as targets match it
 * (AGT-4): origin form `/a%20b?q` → `/a b`; absolute form → its path (`/` when empty);
 * `*` → `*`; authority form → empty. Invalid UTF-8 decodes with replacement characters.
 *
 * @returns `undefined` for a malformed percent escape (the session answers 400, as Go did).
 */
export function requestPath(target: string): string | undefined {
  let path: string;
  if (target === "*") return "*";
  if (target.startsWith("/")) path = target;
  else if (isAbsoluteFormTarget(target)) {
    path = target.replace(AUTHORITY_PREFIX_REGEXP, "");
    if (path === target) path = "";
    if (path === "" || path.startsWith("?")) path = "/" + path;
  } else return "";
  const query = path.indexOf("?");
  if (query >= 0) path = path.slice(0, query);
  // Usual case: nothing to decode (no escape, ASCII only), the path is its own decoding.
  if (!NEEDS_DECODING_REGEXP.test(path)) return path;
  // The parser's strings hold one character per byte (Latin-1), so char codes are the bytes.
  const bytes: number[] = [];
  let bad = false;
  let last = 0;
  for (const match of path.matchAll(PERCENT_REGEXP)) {
    for (let i = last; i < match.index; i++) bytes.push(path.charCodeAt(i) & 0xff);
    if (match[1] === undefined) bad = true;
    else bytes.push(Number.parseInt(match[1], 16));
    last = match.index + match[0].length;
  }
  if (bad) return undefined;
  for (let i = last; i < path.length; i++) bytes.push(path.charCodeAt(i) & 0xff);
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * The origin form of an absolute-form target (`http://h/p?q` → `/p?q`), so the backend never
 * sees an authority chosen by the client (ODD-41).
 */
function originForm(target: string): string {
  if (!isAbsoluteFormTarget(target)) return target;
  const rest = target.replace(AUTHORITY_PREFIX_REGEXP, "");
  if (rest === target) return "/";
  return rest.startsWith("/") ? rest : "/" + rest;
}

/** Headers that a `Connection` token must never remove: they decide the message framing. */
const FRAMING_HEADERS = new Set(["host", "content-length", "transfer-encoding"]);

/** Hop-by-hop request headers not forwarded (RFC 9110 §7.6.1); `upgrade` kept for upgrades. */
const DROPPED_REQUEST_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);

/**
 * The header fields sent to the backend (AGT-10, AGT-11 with ODD-17 fixed): `Host` by the
 * target's rule, hop-by-hop fields and those named in `Connection` removed, except that an
 * upgrade keeps `Upgrade` and sends `Connection: Upgrade`. Framing fields always stay.
 */
function backendHeaders(
  headers: readonly HeaderField[],
  host: string | undefined,
  upgrade: boolean,
): HeaderField[] {
  const named = connectionTokens(headers);
  const out: HeaderField[] = [];
  if (host !== undefined) out.push(["Host", host]);
  for (const field of headers) {
    const lower = field[0].toLowerCase();
    if (lower === "host") continue;
    if (upgrade && lower === "upgrade") {
      out.push(field);
      continue;
    }
    if (DROPPED_REQUEST_HEADERS.has(lower)) continue;
    if (named.has(lower) && !FRAMING_HEADERS.has(lower)) continue;
    out.push(field);
  }
  if (upgrade) out.push(["Connection", "Upgrade"]);
  return out;
}

/**
 * Whether a request asks for a protocol upgrade: `Connection` lists the token `upgrade`
 * (ODD-17: a token list, not an exact value) and an `Upgrade` header is present.
 */
export function isUpgradeRequest(headers: readonly HeaderField[]): boolean {
  return connectionTokens(headers).has("upgrade") && getHeader(headers, "upgrade") !== undefined;
}

/**
 * Builds what to send to the backend for a request routed to `target` (AGT-7…AGT-12): the
 * chosen backend, and the request head with the rewritten request-target (never an authority
 * from the client: an absolute-form target is reduced to its origin form, ODD-41), the `Host`
 * of AGT-10, hop-by-hop fields removed (AGT-11, ODD-17) and the version forced to HTTP/1.1.
 *
 * @throws {BackendRequestError} with status 400 for a target whose path cannot be decoded or a
 *   `CONNECT`, and 502 for a head that cannot be serialised.
 */
export function planBackendRequest(
  head: RequestHead,
  target: Target,
  options: {
    readonly random?: () => number;
    /** `requestPath(head.target)` when the caller has it already (it chose the target by it). */
    readonly path?: string;
  } = {},
): BackendPlan {
  if (head.method === "CONNECT") {
    throw new BackendRequestError("Cannot forward a CONNECT request to a backend", 400);
  }
  const path = options.path ?? requestPath(head.target);
  if (path === undefined) {
    throw new BackendRequestError(`Cannot decode the request path of "${head.target}"`, 400);
  }
  const rewritten = rewriteRequest(
    target,
    { target: head.target, path },
    options.random === undefined ? {} : { random: options.random },
  );
  const upgrade = isUpgradeRequest(head.headers);
  const host = hostHeader(target, {
    clientHost: getHeader(head.headers, "host"),
    backendHostPort: rewritten.backendHostPort,
  });
  let bytes: Uint8Array;
  try {
    bytes = serializeRequestHead({
      method: head.method,
      target: originForm(rewritten.requestTarget),
      version: "HTTP/1.1",
      headers: backendHeaders(head.headers, host, upgrade),
    });
  } catch (error) {
    throw new BackendRequestError(`Cannot build the backend request: ${messageOf(error)}`, 502);
  }
  return {
    scheme: rewritten.scheme,
    host: rewritten.backendHost,
    port: rewritten.port,
    insecure: target.insecure,
    method: head.method,
    upgrade,
    head: bytes,
  };
}

// ---- the backend connection --------------------------------------------------------------------

/** A deadline passed while reading from or writing to the backend. */
class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeadlineError";
  }
}

/** Where to connect and how. */
interface DialOptions {
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
  readonly insecure: boolean;
  readonly caCerts: readonly string[];
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

function hostPortOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Connects to a backend within `timeoutMs` (AGT-9): TCP, then TLS verified against the system
 * roots plus `caCerts` with SNI = the backend host, or, for an `insecure` target, TLS through
 * `node:tls` without verification (the only per-connection opt-out Deno offers).
 */
async function dialBackend(options: DialOptions): Promise<ByteChannel> {
  const where = hostPortOf(options.host, options.port);
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DeadlineError(`connect timed out after ${options.timeoutMs} ms`)),
    options.timeoutMs,
  );
  const onAbort = (): void => controller.abort(options.signal.reason);
  options.signal.addEventListener("abort", onAbort, { once: true });
  if (options.signal.aborted) onAbort();
  try {
    if (options.scheme === "https" && options.insecure) {
      return await dialInsecure(options, controller.signal);
    }
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({
        hostname: options.host,
        port: options.port,
        signal: controller.signal,
      });
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason;
      throw new Error(`dial tcp ${where}: ${messageOf(error)}`, { cause: error });
    }
    // Each relayed message is one write: Nagle's algorithm would only hold a request body's
    // writes back until the backend's delayed ACK (40 ms on Linux) after the head.
    (conn as Deno.TcpConn).setNoDelay(true);
    if (options.scheme === "http") return new DenoChannel(conn, BACKEND_CHANNEL);
    let current: Deno.Conn = conn;
    const closeOnAbort = (): void => {
      try {
        current.close();
      } catch {
        // Already closed.
      }
    };
    controller.signal.addEventListener("abort", closeOnAbort, { once: true });
    try {
      const tlsConn = await Deno.startTls(conn as Deno.TcpConn, {
        hostname: options.host,
        caCerts: [...options.caCerts],
      });
      current = tlsConn;
      if (controller.signal.aborted) throw controller.signal.reason;
      await tlsConn.handshake();
      return new DenoChannel(tlsConn, BACKEND_CHANNEL);
    } catch (error) {
      closeOnAbort();
      if (controller.signal.aborted) throw controller.signal.reason;
      throw new Error(`tls ${where}: ${messageOf(error)}`, { cause: error });
    } finally {
      controller.signal.removeEventListener("abort", closeOnAbort);
    }
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener("abort", onAbort);
  }
}

/** TLS without certificate verification (`insecure` targets, ODD-11), SNI = backend host name. */
async function dialInsecure(options: DialOptions, signal: AbortSignal): Promise<ByteChannel> {
  const socket = nodeTls.connect({
    host: options.host,
    port: options.port,
    rejectUnauthorized: false,
    ...(nodeNet.isIP(options.host) === 0 ? { servername: options.host } : {}),
  });
  socket.setNoDelay(true); // See dialBackend.
  try {
    await nodeEvent(socket, "secureConnect", signal, "connection closed during the TLS handshake");
  } catch (error) {
    socket.destroy();
    if (signal.aborted) throw signal.reason;
    throw new Error(`dial ${hostPortOf(options.host, options.port)}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  return new NodeChannel(socket, BACKEND_CHANNEL);
}

/**
 * A backend connection with deadlines: a write that outlives its deadline, or a read while the
 * head deadline is armed, closes the connection (Go-style deadlines), and the error says so.
 */
class BackendConnection {
  readonly #channel: ByteChannel;
  #closed = false;
  #readDeadlineHit = false;
  /** A response byte arrived (a stale pooled connection ends before its first byte). */
  received = false;
  #readTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(channel: ByteChannel) {
    this.#channel = channel;
  }

  /** Whether the read deadline closed the connection. */
  get readDeadlineHit(): boolean {
    return this.#readDeadlineHit;
  }

  /** Arms the read deadline: after `ms`, the connection is closed and reads end. */
  armReadDeadline(ms: number): void {
    if (this.#closed || this.#readTimer !== undefined) return;
    this.#readTimer = setTimeout(() => {
      this.#readDeadlineHit = true;
      this.close();
    }, ms);
  }

  /** Disarms the read deadline. */
  clearReadDeadline(): void {
    clearTimeout(this.#readTimer);
    this.#readTimer = undefined;
  }

  /** Next bytes, or `null` at end of stream (or once closed). */
  read(): Promise<Uint8Array | null> {
    return this.#channel.read();
  }

  /**
   * Writes all of `bytes` within `timeoutMs`; past it, closes the connection and throws. Writing
   * nothing always succeeds (a body-less upload never touches the connection).
   */
  async write(bytes: Uint8Array, timeoutMs: number): Promise<void> {
    if (bytes.length === 0) return;
    if (this.#closed) throw new Error("connection closed");
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      this.close();
    }, timeoutMs);
    try {
      await this.#channel.write(bytes);
    } catch (error) {
      if (late) throw new DeadlineError(`write timed out after ${timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes at once. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.clearReadDeadline();
    this.#channel.close();
  }

  /**
   * Gives up the channel without closing it (it goes back to the pool): this object then acts
   * as closed. `undefined` when the connection was closed already.
   */
  detach(): ByteChannel | undefined {
    if (this.#closed) return undefined;
    this.#closed = true;
    this.clearReadDeadline();
    return this.#channel;
  }
}

// ---- the exchange ------------------------------------------------------------------------------

/** The response head as read, with the bytes that followed it. */
interface HeadRead {
  readonly bytes: Uint8Array;
  readonly rest: Uint8Array;
}

/** Reads one response head (bounded), starting with the bytes already `initial`ly read. */
async function readHead(
  connection: BackendConnection,
  initial: Uint8Array,
): Promise<HeadRead | "eof" | "too-large"> {
  let buffered = initial;
  for (;;) {
    const end = findHeadEnd(buffered);
    if (end >= 0) {
      if (end > MAX_RESPONSE_HEAD_SIZE) return "too-large";
      // A view, not a copy: reads are fresh arrays nobody writes again (channel.ts).
      return { bytes: buffered.subarray(0, end), rest: buffered.subarray(end) };
    }
    if (buffered.length > MAX_RESPONSE_HEAD_SIZE) return "too-large";
    const chunk = await connection.read();
    if (chunk === null) return "eof";
    connection.received = true;
    buffered = concatBytes([buffered, chunk]);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reason of an exchange's internal stop signal: a string, because `abort()` without a reason
 * builds a `DOMException` with a stack trace on every call (7 % of the agent's busy time for
 * small requests); nobody reads this reason.
 */
const EXCHANGE_DONE = "exchange done";

/** Sent when the stream is gone; the exchange stops without sending anything more. */
class StreamGone extends Error {
  constructor() {
    super("stream closed");
    this.name = "StreamGone";
  }
}

/**
 * One exchange: plan, connect, send the request, relay the response. Never throws; every path
 * ends in one {@linkcode ExchangeOutcome}, and the backend connection is always closed (AGT-14).
 */
class Exchange {
  readonly #stream: ExchangeStream;
  readonly #options: ForwardOptions;
  readonly #timeouts: BackendTimeouts;
  /** Stops the upload loop (response done, stream gone). */
  readonly #stop = new AbortController();
  #connection: BackendConnection | undefined;
  #headSent = false;
  #headReceived = false;
  /** The upload loop has ended (the head deadline then runs, AGT-13). */
  #uploadEnded = false;
  /** Every request body byte was written to the backend. */
  #uploadComplete = false;
  /** The final response allows keep-alive: HTTP/1.1, no `Connection: close`, not EOF-delimited. */
  #keepAlive = false;
  /** The response body ended exactly where its framing said, with no byte beyond it. */
  #cleanEnd = false;

  constructor(stream: ExchangeStream, options: ForwardOptions) {
    this.#stream = stream;
    this.#options = options;
    this.#timeouts = options.timeouts;
  }

  async run(head: RequestHead, target: Target, path?: string): Promise<ExchangeOutcome> {
    const onGone = (): void => {
      this.#stop.abort(EXCHANGE_DONE);
      this.#connection?.close();
    };
    this.#stream.signal.addEventListener("abort", onGone, { once: true });
    try {
      if (this.#stream.signal.aborted) return { kind: "aborted", reason: "stream closed" };
      return await this.#run(head, target, path);
    } catch (error) {
      if (error instanceof StreamGone || this.#stream.signal.aborted) {
        return { kind: "aborted", reason: "stream closed" };
      }
      // Unexpected: answer if nothing was sent yet, else abort the stream.
      if (!this.#headSent) return await this.#synthetic(502, messageOf(error));
      this.#stream.abort();
      return { kind: "aborted", reason: messageOf(error) };
    } finally {
      this.#stop.abort(EXCHANGE_DONE);
      this.#connection?.close();
      this.#stream.signal.removeEventListener("abort", onGone);
    }
  }

  async #run(head: RequestHead, target: Target, path?: string): Promise<ExchangeOutcome> {
    let plan: BackendPlan;
    try {
      plan = planBackendRequest(head, target, {
        ...(this.#options.random === undefined ? {} : { random: this.#options.random }),
        ...(path === undefined ? {} : { path }),
      });
    } catch (error) {
      const status = error instanceof BackendRequestError ? error.status : 502;
      return await this.#synthetic(status, messageOf(error));
    }
    const pool = this.#options.pool;
    const key = pool === undefined ? "" : dialKey({
      scheme: plan.scheme,
      host: plan.host,
      port: plan.port,
      insecure: plan.insecure,
      serverName: plan.host,
    });
    const request = parseRequestFraming(head);
    const bodiless = request.kind === "none" || (request.kind === "length" && request.length === 0);
    this.#uploadComplete = bodiless;
    // A stale pooled connection (closed by the backend while idle) is retried once on a new one
    // when nothing can be lost or done twice: no response byte came, and the request is
    // idempotent and has no body bytes (the upload of a body-less request never writes, so it
    // survives the switch). A request whose head could not even be written is always retried:
    // the backend cannot have seen it and no body byte was taken from the stream yet.
    const replayable = bodiless && IDEMPOTENT_METHODS.has(plan.method);
    let takeIdle = pool !== undefined;
    let upload: Promise<void> | undefined;
    try {
      for (;;) {
        const opened = await this.#open(plan, takeIdle ? key : undefined);
        if (!("connection" in opened)) return opened;
        const { connection, reused } = opened;
        takeIdle = false;
        this.#connection = connection;
        if (this.#stream.signal.aborted) throw new StreamGone();
        try {
          await connection.write(plan.head, this.#timeouts.readTimeoutMs);
        } catch (error) {
          if (this.#stream.signal.aborted) throw new StreamGone();
          if (reused && upload === undefined) {
            connection.close();
            continue;
          }
          return await this.#synthetic(502, `Cannot write to the backend: ${messageOf(error)}`);
        }
        if (upload === undefined) {
          // The upload runs beside the response: a backend may answer before the body ends.
          upload = this.#upload(connection, request);
          // The head deadline (write_timeout) starts once the request is sent or abandoned.
          upload.then(() => {
            this.#uploadEnded = true;
            if (!this.#headReceived) {
              this.#connection?.armReadDeadline(this.#timeouts.writeTimeoutMs);
            }
          });
        } else if (this.#uploadEnded) connection.armReadDeadline(this.#timeouts.writeTimeoutMs);
        const outcome = await this.#relayResponse(connection, plan, upload, reused && replayable);
        if (outcome !== "stale") return outcome;
        connection.close();
      }
    } finally {
      this.#stop.abort(EXCHANGE_DONE);
      const connection = this.#connection;
      const reusable = pool !== undefined && this.#keepAlive && this.#cleanEnd &&
        this.#uploadComplete && !this.#stream.signal.aborted;
      if (!reusable) connection?.close();
      await upload;
      if (reusable && connection !== undefined) {
        this.#connection = undefined;
        const channel = connection.detach();
        if (channel !== undefined) pool.release(key, channel);
      }
    }
  }

  /**
   * A connection for `plan`: an idle one from the pool when `key` is given and one is there,
   * else a new one (AGT-9); a dial failure becomes the synthetic 502.
   */
  async #open(
    plan: BackendPlan,
    key: string | undefined,
  ): Promise<{ connection: BackendConnection; reused: boolean } | ExchangeOutcome> {
    if (key !== undefined) {
      const pooled = this.#options.pool?.acquire(key);
      if (pooled !== undefined) {
        return { connection: new BackendConnection(pooled.channel), reused: true };
      }
    }
    let channel: ByteChannel;
    try {
      channel = await dialBackend({
        scheme: plan.scheme,
        host: plan.host,
        port: plan.port,
        insecure: plan.insecure,
        caCerts: this.#options.caCerts ?? [],
        timeoutMs: this.#timeouts.connectTimeoutMs,
        signal: this.#stream.signal,
      });
    } catch (error) {
      if (this.#stream.signal.aborted) throw new StreamGone();
      return await this.#synthetic(502, messageOf(error));
    }
    return { connection: new BackendConnection(channel), reused: false };
  }

  /**
   * Copies the request body payloads to the backend verbatim (PROTO-21), each write with the
   * `read_timeout` deadline (AGT-12), each message awaited at most `read_timeout` (AGT-3). The
   * framing is checked as bytes pass so a peer can never make body bytes read as a new request
   * (ODD-40): data beyond a Content-Length, or after the last chunk, is not written.
   */
  async #upload(connection: BackendConnection, request: RequestFraming): Promise<void> {
    try {
      await this.#uploadBody(connection, request);
    } catch {
      // A stream that fails to deliver ends the upload; the response side decides the outcome.
    }
  }

  async #uploadBody(connection: BackendConnection, request: RequestFraming): Promise<void> {
    const decoder = request.kind === "chunked" ? new ChunkedDecoder() : undefined;
    let remaining = request.kind === "length" ? request.length : 0;
    let done = request.kind === "none" || (request.kind === "length" && remaining === 0);
    for (;;) {
      if (this.#stop.signal.aborted) return;
      const message = await this.#stream.receive({
        timeoutMs: this.#timeouts.readTimeoutMs,
        signal: this.#stop.signal,
      });
      // AGT-12: a gap longer than read_timeout ends the upload; the response is read anyway.
      if (message === undefined || message === "timeout") return;
      if (message.kind === "abort") return;
      if (message.kind !== "body") continue;
      let bytes = message.payload;
      if (done) bytes = bytes.subarray(0, 0);
      else if (decoder !== undefined) {
        try {
          const result = decoder.decode(bytes);
          bytes = bytes.subarray(0, result.consumed);
          done = result.done;
        } catch {
          connection.close(); // A malformed body from the server: the backend must not see more.
          return;
        }
      } else if (request.kind === "length") {
        bytes = bytes.subarray(0, Math.min(bytes.length, remaining));
        remaining -= bytes.length;
        done = remaining === 0;
      }
      try {
        await connection.write(bytes, this.#timeouts.readTimeoutMs);
      } catch {
        return; // The response side sees the closed or failed connection (502 if no head yet).
      }
      if (done) this.#uploadComplete = true;
      if (message.end) return;
    }
  }

  /**
   * Reads the response head (skipping interim 1xx) and relays the response. `"stale"`: the
   * connection ended (EOF or error) before its first byte and `retryStale` allows another try.
   */
  async #relayResponse(
    connection: BackendConnection,
    plan: BackendPlan,
    upload: Promise<void>,
    retryStale: boolean,
  ): Promise<ExchangeOutcome | "stale"> {
    let rest: Uint8Array = new Uint8Array(0);
    for (let interim = 0;; interim++) {
      let read: HeadRead | "eof" | "too-large";
      try {
        read = await readHead(connection, rest);
      } catch (error) {
        if (this.#isStale(connection, retryStale)) return "stale";
        throw error;
      }
      if (this.#stream.signal.aborted) throw new StreamGone();
      if (read === "eof") {
        if (this.#isStale(connection, retryStale)) return "stale";
        if (connection.readDeadlineHit) {
          return await this.#synthetic(
            504,
            `No response head within ${this.#timeouts.writeTimeoutMs} ms`,
          );
        }
        return await this.#synthetic(502, "The backend closed the connection before a response");
      }
      if (read === "too-large") {
        return await this.#synthetic(
          502,
          `The backend's response head exceeds ${MAX_RESPONSE_HEAD_SIZE} bytes`,
        );
      }
      let parsed;
      try {
        parsed = parseResponseHead(read.bytes, { requestMethod: plan.method });
      } catch (error) {
        return await this.#synthetic(502, messageOf(error));
      }
      rest = read.rest;
      const status = parsed.head.status;
      if (status >= 100 && status < 200 && status !== 101) {
        if (interim >= MAX_INTERIM_RESPONSES) {
          return await this.#synthetic(502, "Too many interim responses from the backend");
        }
        continue;
      }
      this.#headReceived = true;
      connection.clearReadDeadline();
      if (status === 101 && !plan.upgrade) {
        return await this.#synthetic(502, "The backend switched protocols without an upgrade");
      }
      let headBytes: Uint8Array;
      try {
        headBytes = serializeResponseHead(parsed.head);
      } catch (error) {
        return await this.#synthetic(502, messageOf(error));
      }
      // Keep-alive only on HTTP/1.1 (a 1.0 backend's keep-alive is not negotiated: it is
      // treated as closing), without `Connection: close`, with a known body end, never a 101
      // nor after an upgrade request the backend declined (some close after it).
      this.#keepAlive = status !== 101 && !plan.upgrade && !parsed.mustClose &&
        parsed.head.version === "HTTP/1.1" &&
        !connectionTokens(parsed.head.headers).has("close");
      if (status === 101) {
        await this.#send(Flag.Head | Flag.Start | Flag.Upgrade, headBytes);
        await this.#send(Flag.Body | Flag.End, new Uint8Array(0));
        return await this.#relayRaw(connection, rest, upload);
      }
      // ODD-8: the head goes out at once, not after the first body read.
      await this.#send(Flag.Head | Flag.Start, headBytes);
      return await this.#relayBody(connection, parsed.framing, rest, status);
    }
  }

  /** Whether a failed first head read is a stale pooled connection worth one more try. */
  #isStale(connection: BackendConnection, retryStale: boolean): boolean {
    return retryStale && !connection.received && !connection.readDeadlineHit &&
      !this.#stream.signal.aborted;
  }

  /** Relays the response body de-chunked (PROTO-23) in BODY messages ending with BODY|END. */
  async #relayBody(
    connection: BackendConnection,
    framing: ReturnType<typeof parseResponseHead>["framing"],
    initial: Uint8Array,
    status: number,
  ): Promise<ExchangeOutcome> {
    if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) {
      await this.#send(Flag.Body | Flag.End, new Uint8Array(0));
      this.#cleanEnd = initial.length === 0;
      return { kind: "relayed", status };
    }
    const decoder = framing.kind === "chunked" ? new ChunkedDecoder() : undefined;
    let remaining = framing.kind === "length" ? framing.length : Number.POSITIVE_INFINITY;
    let chunk: Uint8Array | null = initial.length > 0 ? initial : null;
    let first = initial.length > 0;
    for (;;) {
      if (!first) {
        try {
          chunk = await connection.read();
        } catch (error) {
          return await this.#truncate(status, messageOf(error));
        }
      }
      first = false;
      if (this.#stream.signal.aborted) throw new StreamGone();
      if (chunk === null) {
        if (framing.kind === "close") {
          await this.#send(Flag.Body | Flag.End, new Uint8Array(0));
          return { kind: "relayed", status };
        }
        return await this.#truncate(status, "The backend closed the connection mid-body");
      }
      let data: Uint8Array;
      let end = false;
      let surplus: boolean;
      if (decoder !== undefined) {
        let result;
        try {
          result = decoder.decode(chunk);
        } catch (error) {
          return await this.#truncate(status, messageOf(error));
        }
        data = concatBytes(result.data);
        end = result.done;
        surplus = result.consumed < chunk.length;
      } else {
        data = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
        remaining -= data.length;
        end = remaining === 0;
        surplus = data.length < chunk.length;
      }
      if (end) {
        await this.#send(Flag.Body | Flag.End, data);
        // Bytes beyond the body (a pipelining backend, a wrong length) make it unusable.
        this.#cleanEnd = framing.kind !== "close" && !surplus;
        return { kind: "relayed", status };
      }
      if (data.length > 0) await this.#send(Flag.Body, data);
    }
  }

  /** Premature end of the body: BODY|END, then ABRT (PROTO-27). */
  async #truncate(status: number, reason: string): Promise<ExchangeOutcome> {
    await this.#send(Flag.Body | Flag.End, new Uint8Array(0));
    this.#stream.abort();
    return { kind: "truncated", status, reason };
  }

  /**
   * Raw relay after a `101` (PROTO-25): the bytes that came with the head first (ODD-6), then
   * every backend read as a RAW message and every RAW payload from the server written to the
   * backend. When the backend's side ends: RAW|END, then ABRT, then close (PROTO-26). When the
   * server aborts: close at once. No idle limit (ODD-8).
   */
  async #relayRaw(
    connection: BackendConnection,
    initial: Uint8Array,
    upload: Promise<void>,
  ): Promise<ExchangeOutcome> {
    const toBackend = this.#rawToBackend(connection, upload);
    try {
      if (initial.length > 0) await this.#send(Flag.Raw, initial);
      for (;;) {
        let chunk: Uint8Array | null;
        try {
          chunk = await connection.read();
        } catch {
          chunk = null;
        }
        if (this.#stream.signal.aborted) throw new StreamGone();
        if (chunk === null) break;
        await this.#send(Flag.Raw, chunk);
      }
      await this.#send(Flag.Raw | Flag.End, new Uint8Array(0));
      this.#stream.abort();
      return { kind: "upgraded", reason: "backend closed" };
    } finally {
      this.#stop.abort(EXCHANGE_DONE);
      connection.close();
      await toBackend;
    }
  }

  /** Writes the server's RAW payloads to the backend until the stream or the connection ends. */
  async #rawToBackend(connection: BackendConnection, upload: Promise<void>): Promise<void> {
    await upload; // Only one reader of the stream at a time.
    for (;;) {
      if (this.#stop.signal.aborted) return;
      const message = await this.#stream.receive({ signal: this.#stop.signal })
        .catch(() => undefined);
      if (message === undefined || message === "timeout" || message.kind === "abort") {
        connection.close();
        return;
      }
      if (message.kind !== "raw") continue;
      try {
        await connection.write(message.payload, this.#timeouts.readTimeoutMs);
      } catch {
        connection.close(); // The backend read side then ends: RAW|END + ABRT go out.
        return;
      }
      // RAW|END is not acted upon (PROTO-26): the ABRT that follows ends the stream.
    }
  }

  async #send(flags: number, payload: Uint8Array): Promise<void> {
    if (this.#stream.signal.aborted) throw new StreamGone();
    if ((flags & Flag.Head) !== 0) this.#headSent = true;
    try {
      await this.#stream.send(flags, payload);
    } catch {
      throw new StreamGone();
    }
  }

  /** Sends a synthetic status (PROTO-24) as HEAD|START|END. */
  async #synthetic(status: number, reason: string): Promise<ExchangeOutcome> {
    if (this.#headSent || this.#stream.signal.aborted) {
      return { kind: "aborted", reason };
    }
    const now = this.#options.now?.() ?? new Date();
    await this.#send(Flag.Head | Flag.Start | Flag.End, synthesizeStatusHead(status, now))
      .catch(() => {});
    return { kind: "synthetic", status, reason };
  }
}

/** The request body framing, as the session's parser decided it. */
type RequestFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" };

/** Body framing of a parsed request head (RFC 9112 §6.3), from its fields only (ODD-40). */
function parseRequestFraming(head: RequestHead): RequestFraming {
  const encoding = getHeader(head.headers, "transfer-encoding");
  if (encoding !== undefined) return { kind: "chunked" };
  const length = getHeader(head.headers, "content-length");
  if (length !== undefined) return { kind: "length", length: Number(length) };
  return { kind: "none" };
}

/**
 * Forwards one request to the backend of `target` and relays the answer on `stream`
 * (AGT-9…AGT-14). `head` is the request head as parsed from the server's HEAD message (its
 * framing fields validated by `parseRequestHead`). Never throws: failures before a response
 * head become synthetic statuses (PROTO-24: 400, 502, 504), later ones end the stream with
 * ABRT. The backend connection is closed when the exchange ends (AGT-14), or given back to
 * `options.pool` when it may serve another request (issue 7); an ABRT from the server closes
 * it at once.
 */
export function forwardRequest(
  stream: ExchangeStream,
  request: {
    readonly head: RequestHead;
    readonly target: Target;
    /** `requestPath(head.target)`, when the caller computed it to choose the target. */
    readonly path?: string;
  },
  options: ForwardOptions,
): Promise<ExchangeOutcome> {
  return new Exchange(stream, options).run(request.head, request.target, request.path);
}

/**
 * Sends a synthetic status as HEAD|START|END (PROTO-24): `HTTP/1.1 <code> <reason>` with a
 * `Date` header and nothing else. Never throws (a stream already gone is ignored).
 */
export async function sendSyntheticStatus(
  stream: Pick<ExchangeStream, "send">,
  status: number,
  now: Date = new Date(),
): Promise<void> {
  try {
    await stream.send(Flag.Head | Flag.Start | Flag.End, synthesizeStatusHead(status, now));
  } catch {
    // The stream is gone: nobody is waiting for the answer.
  }
}
