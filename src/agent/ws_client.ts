/**
 * The agent's RFC 6455 WebSocket client (PROTO-1…PROTO-14), written on raw sockets because Deno's
 * `WebSocket` cannot skip certificate verification per connection, hides the handshake bytes and
 * has no back-pressure. It sends the original agent's handshake byte for byte (PROTO-3), checks
 * the answer (PROTO-5), masks and fragments what it sends (PROTO-11), enforces the receive limits
 * (PROTO-12), keeps the tunnel alive (PROTO-13) and closes as the original does (PROTO-14).
 * Verified TLS and plain TCP use `Deno.connect`/`Deno.startTls` (fastest path); `insecure` uses
 * `node:tls` with `rejectUnauthorized: false`, the only public per-connection opt-out.
 * @module
 */

import { createHash } from "node:crypto";
import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";
import {
  applyMask,
  closePayload,
  concatBytes,
  isValidCloseCode,
  MAX_CONTROL_PAYLOAD,
  Opcode,
} from "../protocol/mod.ts";
import { IPPROTO_TCP, SocketCalls, TCP_NOTSENT_LOWAT, UNSENT_LIMIT_BYTES } from "../sys/mod.ts";
import type { CloseInfo, MessageTransport } from "../tunnel/mod.ts";
import { type ByteChannel, DenoChannel, NodeChannel, nodeEvent } from "./channel.ts";

/** A connected client WebSocket. */
export interface WebSocketConnection extends MessageTransport {
  /** Resolves with the same value passed to `onClose`, after the socket is closed. */
  readonly closed: Promise<CloseInfo>;
}

/** An HTTP proxy reached with `CONNECT` before TLS (PROTO-4). */
export interface ProxyOptions {
  /** Proxy host name or IP literal. */
  readonly hostname: string;
  /** Proxy port. */
  readonly port: number;
  /** Value of the `Proxy-Authorization` header, e.g. `basic dXNlcjpwdw==`. */
  readonly authorization?: string;
}

/**
 * The proxy to use for `url` from the standard environment variables (PROTO-4), Go-style:
 * `HTTPS_PROXY`/`https_proxy` for `wss:` (`HTTP_PROXY`/`http_proxy` for `ws:`), scheme `http://`
 * assumed when missing, credentials sent as `Proxy-Authorization: basic …`; never for `localhost`
 * or loopback addresses, nor for hosts matched by `NO_PROXY`/`no_proxy` (`*`, names matching
 * themselves and their sub-domains, `.name` or `*.name` sub-domains only, IPs, CIDRs, `:port`).
 *
 * @param env reads one environment variable, e.g. `(name) => Deno.env.get(name)`.
 * @throws {TypeError} when the proxy variable is not a usable `http://` URL.
 */
export function proxyFromEnvironment(
  url: string | URL,
  env: (name: string) => string | undefined,
): ProxyOptions | undefined {
  const target = new URL(url);
  const secure = target.protocol === "wss:" || target.protocol === "https:";
  const read = (name: string): string =>
    (env(name.toUpperCase()) || env(name.toLowerCase()) || "").trim();
  const proxyText = read(secure ? "https_proxy" : "http_proxy");
  if (proxyText === "") return undefined;
  const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const port = target.port === "" ? (secure ? 443 : 80) : Number.parseInt(target.port, 10);
  if (hostname === "localhost" || isLoopback(hostname)) return undefined;
  if (matchesNoProxy(read("no_proxy"), hostname, port)) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(proxyText.includes("://") ? proxyText : `http://${proxyText}`);
  } catch {
    throw new TypeError(`Cannot use proxy "${proxyText}": invalid URL`);
  }
  if (proxy.protocol !== "http:") {
    throw new TypeError(`Cannot use proxy "${proxyText}": only http:// proxies are supported`);
  }
  const credentials = proxy.username === "" && proxy.password === ""
    ? undefined
    : `basic ${
      btoa(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`)
    }`;
  return {
    hostname: proxy.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: proxy.port === "" ? 80 : Number.parseInt(proxy.port, 10),
    ...(credentials === undefined ? {} : { authorization: credentials }),
  };
}

function isLoopback(hostname: string): boolean {
  if (nodeNet.isIPv4(hostname)) return hostname.startsWith("127.");
  return hostname === "::1";
}

function matchesNoProxy(noProxy: string, hostname: string, port: number): boolean {
  for (const rawEntry of noProxy.split(",")) {
    let entry = rawEntry.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    if (entry.includes("/")) {
      const [address = "", bits = ""] = entry.split("/");
      const family = nodeNet.isIPv6(address) ? "ipv6" : "ipv4";
      const hostFamily = nodeNet.isIPv6(hostname) ? "ipv6" : nodeNet.isIPv4(hostname) ? "ipv4" : "";
      if (hostFamily !== family || nodeNet.isIP(address) === 0) continue;
      const list = new nodeNet.BlockList();
      try {
        list.addSubnet(address, Number.parseInt(bits, 10), family);
      } catch {
        continue;
      }
      if (list.check(hostname, family)) return true;
      continue;
    }
    const portMatch = /^(.*):([0-9]+)$/.exec(entry);
    if (portMatch !== null && !(entry.includes("::") && !entry.startsWith("["))) {
      if (Number.parseInt(portMatch[2] ?? "", 10) !== port) continue;
      entry = portMatch[1] ?? "";
    }
    entry = entry.replace(/^\[(.*)\]$/, "$1");
    if (entry.startsWith("*.")) entry = entry.slice(1);
    if (entry.startsWith(".")) {
      if (hostname.endsWith(entry)) return true;
    } else if (hostname === entry || hostname.endsWith(`.${entry}`)) {
      return true;
    }
  }
  return false;
}

/** Options of {@linkcode connectWebSocket}. */
export interface ConnectWebSocketOptions {
  /** Host header value; default: the URL's host (PROTO-3 sends the `remote` value verbatim). */
  readonly host?: string;
  /** TLS server name (SNI and verification); default: the URL's host name. */
  readonly serverName?: string;
  /** Extra handshake headers, e.g. `[["Authorization", "Bearer …"]]`. */
  readonly headers?: readonly (readonly [string, string])[];
  /** Sub-protocols offered, in order. */
  readonly protocols: readonly string[];
  /** Skip verification of the server's certificate. */
  readonly insecure?: boolean;
  /** Extra trusted root certificates (PEM). */
  readonly caCerts?: readonly string[];
  /** Handshake budget in ms (PROTO-2); default {@linkcode HANDSHAKE_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Aborts the handshake, and later closes the connection. */
  readonly signal?: AbortSignal;
  /** Reach the server through this HTTP proxy (PROTO-4). */
  readonly proxy?: ProxyOptions;
  /** Silence after which a ping is sent; default {@linkcode PING_INTERVAL_MS}. */
  readonly pingIntervalMs?: number;
  /** Silence after which the connection is closed; default {@linkcode IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
  /** Deadline of each socket write; default {@linkcode WRITE_TIMEOUT_MS}. */
  readonly writeTimeoutMs?: number;
}

/** The handshake's time budget (PROTO-2): connect+TLS+request, then the response head. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest response head accepted (handshake and proxy); a peer cannot make us buffer more. */
export const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** Largest message accepted; more closes with 1009 (PROTO-12). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Payload size of the frames a long message is cut into (PROTO-11). */
export const FRAGMENT_BYTES = 65_536;
/** Agent keep-alive: ping after this much silence (PROTO-13, P = 15 s). */
export const PING_INTERVAL_MS = 15_000;
/** Agent keep-alive: close after this much silence (PROTO-13, I = 45 s). */
export const IDLE_TIMEOUT_MS = 45_000;
/** Deadline of each socket write; a failed or late write closes the tunnel (PROTO-13). */
export const WRITE_TIMEOUT_MS = 10_000;
/** How long a closing side waits for its close frame to be written ("closes TCP at once"). */
export const CLOSE_FLUSH_TIMEOUT_MS = 1_000;
/** Frames are coalesced into socket writes of about this size: fewer writes, bounded copies. */
const WRITE_BATCH_BYTES = 256 * 1024;
/** Size of the read buffer of the Deno socket path. */
const READ_BUFFER_BYTES = 128 * 1024;
/** The tunnel socket: large reads, handed to the WebSocket decoder as views (it copies). */
const TUNNEL_CHANNEL = { maxRead: READ_BUFFER_BYTES, fresh: false } as const;
/** Random bytes fetched at once for masks (4 per frame); one getRandomValues per 1024 frames. */
const MASK_POOL_BYTES = 4096;
/** RFC 6455 §1.3 magic appended to the key for `Sec-WebSocket-Accept`. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** The first/legacy sub-protocol assumed when the server selects none (PROTO-5). */
const LEGACY_PROTOCOL = "groom";
/** Header names the handshake sets itself. */
const RESERVED_HEADERS = [
  "host",
  "connection",
  "upgrade",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
];
const TOKEN_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE_REGEXP = /^[^\0\r\n]*$/;
const STATUS_LINE_REGEXP = /^HTTP\/1\.[01] ([0-9]{3})(?: .*)?$/;
const EMPTY = new Uint8Array(0);

/** The handshake failed; `message` follows PROTO-5 (`websocket: …`). */
export class WebSocketDialError extends Error {
  /** HTTP status of the refused upgrade, when the server answered. */
  readonly status: number | undefined;

  /** Creates the error; `message` already carries the `websocket: ` prefix. */
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "WebSocketDialError";
    this.status = options.status;
  }
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2): base64(SHA-1(key+GUID)). */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
}

/** 16 random bytes with the UUID-v4 version/variant bits set, base64 (PROTO-3). */
function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  return btoa(String.fromCharCode(...bytes));
}

/** Go's `CanonicalMIMEHeaderKey`: `sec-websocket-key` → `Sec-Websocket-Key`. */
function canonicalHeaderName(name: string): string {
  if (!TOKEN_REGEXP.test(name)) return name;
  return name.toLowerCase().replace(
    /(^|-)([a-z])/g,
    (_, dash: string, letter: string) => dash + letter.toUpperCase(),
  );
}

/** Parts of the upgrade request, see {@linkcode buildHandshakeRequest}. */
export interface HandshakeRequest {
  /** Request-target: path and query. */
  readonly path: string;
  /** Host header value. */
  readonly host: string;
  /** `Sec-WebSocket-Key` value. */
  readonly key: string;
  /** Offered sub-protocols. */
  readonly protocols: readonly string[];
  /** Extra headers; a `User-Agent` entry replaces the default `uws`. */
  readonly headers?: readonly (readonly [string, string])[];
}

/**
 * The upgrade request exactly as the original agent writes it (PROTO-3): request line, `Host`,
 * `User-Agent`, then every other header sorted by canonical name.
 *
 * @throws {TypeError} when a header name or value is invalid or reserved for the handshake.
 */
export function buildHandshakeRequest(request: HandshakeRequest): string {
  let userAgent = "uws";
  const headers: [string, string][] = [];
  for (const [name, value] of request.headers ?? []) {
    if (!TOKEN_REGEXP.test(name) || !FIELD_VALUE_REGEXP.test(value)) {
      throw new TypeError(`Cannot send header "${name}": invalid name or value`);
    }
    if (RESERVED_HEADERS.includes(name.toLowerCase())) {
      throw new TypeError(`Cannot send header "${name}": it is set by the handshake`);
    }
    if (name.toLowerCase() === "user-agent") userAgent = value;
    else headers.push([canonicalHeaderName(name), value]);
  }
  for (const value of [request.host, request.path, ...request.protocols]) {
    if (!FIELD_VALUE_REGEXP.test(value) || value.includes(" ")) {
      throw new TypeError(`Cannot send handshake value "${value}": invalid characters`);
    }
  }
  headers.push(
    ["Connection", "Upgrade"],
    ["Sec-Websocket-Key", request.key],
    ["Sec-Websocket-Version", "13"],
    ["Upgrade", "websocket"],
  );
  if (request.protocols.length > 0) {
    headers.push(["Sec-Websocket-Protocol", request.protocols.join(", ")]);
  }
  // Stable sort: repeated names keep their order, as Go's Header.Write does.
  headers.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let text =
    `GET ${request.path} HTTP/1.1\r\nHost: ${request.host}\r\nUser-Agent: ${userAgent}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  return text + "\r\n";
}

/** A parsed HTTP/1.x response head. */
interface ResponseHead {
  readonly status: number;
  /** Lower-cased names; repeated headers keep every value. */
  readonly headers: Map<string, string[]>;
}

function parseResponseHead(bytes: Uint8Array): ResponseHead | undefined {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  const lines = text.split("\r\n");
  const status = STATUS_LINE_REGEXP.exec(lines[0] ?? "");
  if (status === null) return undefined;
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0 || !TOKEN_REGEXP.test(line.slice(0, colon))) return undefined;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const values = headers.get(name);
    if (values === undefined) headers.set(name, [value]);
    else values.push(value);
  }
  return { status: Number.parseInt(status[1] ?? "0", 10), headers };
}

/** Checks the upgrade answer (PROTO-5) and returns the sub-protocol in use. */
function checkUpgrade(head: ResponseHead, key: string, protocols: readonly string[]): string {
  if (head.status !== 101) {
    throw new WebSocketDialError(`websocket: invalid protocol upgrade (status ${head.status})`, {
      status: head.status,
    });
  }
  const refuse = (detail: string): never => {
    throw new WebSocketDialError(`websocket: invalid protocol upgrade (status 101): ${detail}`, {
      status: 101,
    });
  };
  const get = (name: string): string => (head.headers.get(name) ?? []).join(", ");
  const connection = get("connection").toLowerCase().split(",").map((token) => token.trim());
  if (!connection.includes("upgrade")) refuse("no Connection: upgrade");
  if (get("upgrade").toLowerCase() !== "websocket") refuse("no Upgrade: websocket");
  if (get("sec-websocket-accept") !== acceptKey(key)) refuse("wrong Sec-WebSocket-Accept");
  const selected = get("sec-websocket-protocol");
  if (selected === "") {
    return protocols.includes(LEGACY_PROTOCOL) ? LEGACY_PROTOCOL : protocols[0] ?? "";
  }
  if (!protocols.includes(selected)) refuse(`sub-protocol "${selected}" was not offered`);
  return selected;
}

function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(from, 3); i < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

/** Reads one HTTP response head (bounded); returns it and the bytes that followed it. */
async function readHead(
  read: () => Promise<Uint8Array | null>,
): Promise<{ head: ResponseHead; rest: Uint8Array }> {
  let buffered: Uint8Array = EMPTY;
  for (;;) {
    const chunk = await read();
    if (chunk === null) throw new WebSocketDialError("websocket: unexpected EOF");
    const scanFrom = buffered.length;
    buffered = concatBytes([buffered, chunk]);
    const end = headEnd(buffered, scanFrom - 3);
    if (end < 0 && buffered.length <= MAX_RESPONSE_HEAD_BYTES) continue;
    if (end < 0 || end > MAX_RESPONSE_HEAD_BYTES) {
      throw new WebSocketDialError(
        `websocket: response head larger than ${MAX_RESPONSE_HEAD_BYTES} bytes`,
      );
    }
    const head = parseResponseHead(buffered.subarray(0, end - 4));
    if (head === undefined) throw new WebSocketDialError("websocket: malformed HTTP response");
    return { head, rest: buffered.slice(end) };
  }
}

function connectRequest(hostPort: string, proxy: ProxyOptions): string {
  const authorization = proxy.authorization === undefined
    ? ""
    : `Proxy-Authorization: ${proxy.authorization}\r\n`;
  return `CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\n${authorization}\r\n`;
}

function checkProxyAnswer(answer: { head: ResponseHead; rest: Uint8Array }): void {
  if (answer.head.status !== 200 || answer.rest.length > 0) {
    throw new WebSocketDialError("websocket: proxy connection error", {
      status: answer.head.status,
    });
  }
}

/** Where to connect and how, resolved from the URL and options. */
interface DialPlan {
  readonly hostname: string;
  readonly port: number;
  readonly tls: boolean;
  readonly serverName: string;
  readonly insecure: boolean;
  readonly caCerts: readonly string[];
  readonly proxy: ProxyOptions | undefined;
}

function hostPortOf(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Bounds the unsent data of this process's socket of local port `port` to `UNSENT_LIMIT_BYTES`
 * (Linux, best effort): the tunnel's scheduler, not the kernel's send buffer, then decides which
 * stream's message goes next (issue 6).
 */
function limitUnsent(port: number): void {
  const calls = SocketCalls.open();
  if (calls === undefined) return;
  try {
    for (const socket of calls.probe(port).sockets) {
      if (!socket.listening) {
        calls.setIntOption(socket.fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, UNSENT_LIMIT_BYTES);
      }
    }
  } finally {
    calls.close();
  }
}

/** Verified TLS or plain TCP through Deno's own sockets. */
async function dialDeno(plan: DialPlan, signal: AbortSignal): Promise<ByteChannel> {
  const first = plan.proxy ?? plan;
  let conn: Deno.Conn;
  try {
    const tcp = await Deno.connect({ hostname: first.hostname, port: first.port, signal });
    // Deno leaves Nagle on: a small message written while the previous one is unacknowledged
    // then waits for the server's delayed ACK, ~40 ms (measured, issue 6). Tunnel messages are
    // often small (heads, short bodies), so Nagle is off.
    tcp.setNoDelay(true);
    limitUnsent((tcp.localAddr as Deno.NetAddr).port);
    conn = tcp;
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new WebSocketDialError(
      `websocket: dial tcp ${hostPortOf(first.hostname, first.port)}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  const onAbort = (): void => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    if (plan.proxy !== undefined) {
      const plain = new DenoChannel(conn, TUNNEL_CHANNEL);
      await plain.write(
        new TextEncoder().encode(connectRequest(hostPortOf(plan.hostname, plan.port), plan.proxy)),
      );
      checkProxyAnswer(await readHead(() => plain.read()));
    }
    if (!plan.tls) return new DenoChannel(conn, TUNNEL_CHANNEL);
    const tlsConn = await Deno.startTls(conn as Deno.TcpConn, {
      hostname: plan.serverName,
      caCerts: [...plan.caCerts],
    });
    conn = tlsConn;
    try {
      await tlsConn.handshake();
    } catch (error) {
      throw new WebSocketDialError(`websocket: tls: ${messageOf(error)}`, { cause: error });
    }
    return new DenoChannel(tlsConn, TUNNEL_CHANNEL);
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Closed by the abort listener.
    }
    if (signal.aborted) throw signal.reason;
    if (error instanceof WebSocketDialError) throw error;
    throw new WebSocketDialError(`websocket: ${messageOf(error)}`, { cause: error });
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Reads a proxy's answer from a node socket without consuming bytes past its head. */
function nodeProxyAnswer(
  socket: nodeNet.Socket,
  signal: AbortSignal,
): Promise<{ head: ResponseHead; rest: Uint8Array }> {
  const chunks: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  let failure: unknown;
  const onData = (chunk: Uint8Array): void => {
    chunks.push(chunk);
    wake?.();
  };
  const onStop = (error?: unknown): void => {
    failure = error ?? new WebSocketDialError("websocket: unexpected EOF");
    wake?.();
  };
  socket.on("data", onData);
  socket.on("error", onStop);
  socket.on("end", onStop);
  signal.addEventListener("abort", onStop, { once: true });
  const read = async (): Promise<Uint8Array | null> => {
    while (chunks.length === 0 && failure === undefined) {
      await new Promise<void>((resolve) => (wake = resolve));
    }
    const chunk = chunks.shift();
    if (chunk !== undefined) return chunk;
    throw failure;
  };
  return readHead(read).finally(() => {
    socket.pause();
    socket.off("data", onData);
    socket.off("error", onStop);
    socket.off("end", onStop);
    signal.removeEventListener("abort", onStop);
  });
}

/** TLS without certificate verification through `node:tls` (`insecure`). */
async function dialNode(plan: DialPlan, signal: AbortSignal): Promise<ByteChannel> {
  let raw: nodeNet.Socket | undefined;
  let socket: nodeNet.Socket | undefined;
  const dialTarget = plan.proxy ?? plan;
  try {
    if (plan.proxy !== undefined) {
      raw = nodeNet.connect({ host: plan.proxy.hostname, port: plan.proxy.port });
      await nodeEvent(raw, "connect", signal);
      raw.write(connectRequest(hostPortOf(plan.hostname, plan.port), plan.proxy));
      checkProxyAnswer(await nodeProxyAnswer(raw, signal));
    }
    const options: nodeTls.ConnectionOptions = {
      rejectUnauthorized: false,
      ...(raw === undefined ? { host: plan.hostname, port: plan.port } : { socket: raw }),
      ...(nodeNet.isIP(plan.serverName) === 0 ? { servername: plan.serverName } : {}),
    };
    socket = nodeTls.connect(options);
    await nodeEvent(socket, "secureConnect", signal);
    if (socket.localPort !== undefined) limitUnsent(socket.localPort);
    return new NodeChannel(socket, TUNNEL_CHANNEL);
  } catch (error) {
    socket?.destroy();
    raw?.destroy();
    if (signal.aborted) throw signal.reason;
    if (error instanceof WebSocketDialError) throw error;
    const code = (error as { syscall?: unknown }).syscall;
    const where = code === "connect" || code === "getaddrinfo"
      ? `dial tcp ${hostPortOf(dialTarget.hostname, dialTarget.port)}`
      : "tls";
    throw new WebSocketDialError(`websocket: ${where}: ${messageOf(error)}`, { cause: error });
  }
}

/** Races `promise` with the signal; on abort rejects with its reason. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Opens a WebSocket to a `wss:` (or `ws:`) URL: connect (optionally through a proxy), TLS, the
 * PROTO-3 request, the PROTO-5 checks, within the PROTO-2 budget.
 *
 * @throws {WebSocketDialError} with a PROTO-5 message (`websocket: invalid protocol upgrade
 *   (status 404)`, `websocket: dial tcp …`, `websocket: tls: …`, timeout, abort).
 * @throws {TypeError} for a URL that is not `ws:`/`wss:` or an invalid header.
 */
export async function connectWebSocket(
  url: string | URL,
  options: ConnectWebSocketOptions,
): Promise<WebSocketConnection> {
  const parsed = new URL(url);
  if (parsed.protocol !== "wss:" && parsed.protocol !== "ws:") {
    throw new TypeError(`Cannot connect to "${parsed.href}": not a ws: or wss: URL`);
  }
  const tls = parsed.protocol === "wss:";
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const plan: DialPlan = {
    hostname,
    port: parsed.port === "" ? (tls ? 443 : 80) : Number.parseInt(parsed.port, 10),
    tls,
    serverName: options.serverName ?? hostname,
    insecure: options.insecure ?? false,
    caCerts: options.caCerts ?? [],
    proxy: options.proxy,
  };
  const key = newKey();
  const request = new TextEncoder().encode(buildHandshakeRequest({
    path: parsed.pathname + parsed.search,
    host: options.host ?? parsed.host,
    key,
    protocols: options.protocols,
    ...(options.headers === undefined ? {} : { headers: options.headers }),
  }));
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const controller = new AbortController();
  const timeout = (): void =>
    controller.abort(
      new WebSocketDialError(`websocket: handshake timed out after ${timeoutMs} ms`),
    );
  let timer = setTimeout(timeout, timeoutMs);
  const onAbort = (): void => controller.abort(new WebSocketDialError("websocket: aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted === true) onAbort();
  let channel: ByteChannel | undefined;
  try {
    const signal = controller.signal;
    channel = await (plan.tls && plan.insecure ? dialNode(plan, signal) : dialDeno(plan, signal));
    const open = channel;
    await abortable(open.write(request), signal);
    clearTimeout(timer);
    timer = setTimeout(timeout, timeoutMs);
    const answer = await abortable(readHead(() => open.read()), signal);
    const protocol = checkUpgrade(answer.head, key, options.protocols);
    return new ClientConnection(open, protocol, answer.rest, options);
  } catch (error) {
    channel?.close();
    if (controller.signal.aborted && controller.signal.reason instanceof WebSocketDialError) {
      throw controller.signal.reason;
    }
    if (error instanceof WebSocketDialError) throw error;
    throw new WebSocketDialError(`websocket: ${messageOf(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** XORs `bytes[start, end)` with the 4-byte mask stored at `bytes[start-4, start)`. */
function maskInPlace(bytes: Uint8Array, start: number, end: number): void {
  applyMask(bytes.subarray(start, end), bytes.subarray(start - 4, start));
}

function frameHeaderSize(length: number): number {
  return 6 + (length < 126 ? 0 : length < 65_536 ? 2 : 8);
}

/** A data message waiting to be written. */
interface Pending {
  readonly bytes: Uint8Array;
}

/** What a written message's slot in the queue holds until the queue is compacted. */
const SENT: Pending = { bytes: EMPTY };

class ClientConnection implements WebSocketConnection {
  onMessage: ((message: Uint8Array) => void) | null = null;
  onClose: ((info: CloseInfo) => void) | null = null;
  readonly protocol: string;
  readonly closed: Promise<CloseInfo>;

  #channel: ByteChannel;
  #state: "open" | "closing" | "closed" = "open";
  #resolveClosed: (info: CloseInfo) => void;
  #signal: AbortSignal | undefined;
  #onAbort = (): void => this.close();

  // Sending.
  #queue: Pending[] = [];
  #queueHead = 0;
  #queueOffset = 0;
  #control: Uint8Array[] = [];
  /** A local close's frame, written after the data queued before it (RFC 6455 §5.5.1). */
  #closeAfterData: Uint8Array | undefined;
  #buffered = 0;
  #drainWaiters: { threshold: number; resolve: () => void }[] = [];
  #pumping = false;
  #pumpDone: Promise<void> = Promise.resolve();
  #maskPool = new Uint8Array(MASK_POOL_BYTES);
  #maskOffset = MASK_POOL_BYTES;
  #writeTimeoutMs: number;

  // Receiving.
  #header = new Uint8Array(14);
  #headerFilled = 0;
  #headerNeeded = 2;
  #frame: Uint8Array | null = null;
  #frameFilled = 0;
  #frameOpcode = 0;
  #frameFin = false;
  #fragments: Uint8Array[] = [];
  #messageOpcode = 0;
  #messageSize = 0;
  #readDone: Promise<void>;
  #textDecoder = new TextDecoder("utf-8", { fatal: true });

  // Keep-alive.
  #lastReceived = performance.now();
  #pingIntervalMs: number;
  #idleTimeoutMs: number;
  #keepAliveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    channel: ByteChannel,
    protocol: string,
    leftover: Uint8Array,
    options: ConnectWebSocketOptions,
  ) {
    this.#channel = channel;
    this.protocol = protocol;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
    this.#pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    const { promise, resolve } = Promise.withResolvers<CloseInfo>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#armKeepAlive(this.#pingIntervalMs);
    this.#readDone = this.#readLoop(leftover);
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  send(message: Uint8Array): void {
    if (this.#state !== "open" || message.length === 0) return;
    this.#queue.push({ bytes: message });
    this.#buffered += message.length;
    this.#kick();
  }

  drained(threshold: number): Promise<void> {
    if (this.#state !== "open" || this.#buffered <= threshold) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push({ threshold, resolve });
    return promise;
  }

  close(code?: number, reason = ""): void {
    // A local close delivers what was sent before it (a stopping agent's last BODY|END, ODD-33),
    // within the flush bound; only failures drop unsent data.
    if (code === undefined || !isValidCloseCode(code)) {
      this.#terminate({ reason }, EMPTY, true);
    } else {
      this.#terminate({ code, reason }, closePayload(code, reason), true);
    }
  }

  // ---- receiving ---------------------------------------------------------------------------

  async #readLoop(leftover: Uint8Array): Promise<void> {
    // Let the caller of connectWebSocket() install its handlers before anything is delivered.
    await new Promise((resolve) => setTimeout(resolve, 0));
    try {
      if (leftover.length > 0) this.#receive(leftover);
      while (this.#state === "open") {
        const chunk = await this.#channel.read();
        if (chunk === null) {
          this.#terminate({
            reason: "connection closed",
            error: new Error("websocket: connection closed without a close frame"),
          });
          break;
        }
        this.#receive(chunk);
      }
    } catch (error) {
      this.#terminate({
        reason: "read failed",
        error: new Error(`websocket: ${messageOf(error)}`, { cause: error }),
      });
    }
  }

  #receive(chunk: Uint8Array): void {
    this.#lastReceived = performance.now();
    let position = 0;
    const length = chunk.length;
    while (position < length && this.#state === "open") {
      const frame = this.#frame;
      if (frame === null) {
        while (this.#headerFilled < this.#headerNeeded && position < length) {
          this.#header[this.#headerFilled++] = chunk[position++] ?? 0;
          if (this.#headerFilled === 2) {
            const second = this.#header[1] ?? 0;
            const length7 = second & 0x7f;
            this.#headerNeeded = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) +
              ((second & 0x80) !== 0 ? 4 : 0);
          }
        }
        if (this.#headerFilled < this.#headerNeeded) return;
        this.#startFrame();
      } else {
        const take = Math.min(frame.length - this.#frameFilled, length - position);
        frame.set(chunk.subarray(position, position + take), this.#frameFilled);
        position += take;
        this.#frameFilled += take;
        if (this.#frameFilled === frame.length) this.#endFrame();
      }
    }
  }

  #startFrame(): void {
    const header = this.#header;
    const first = header[0] ?? 0;
    const second = header[1] ?? 0;
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    const length7 = second & 0x7f;
    let length = length7;
    if (length7 === 126) {
      length = ((header[2] ?? 0) << 8) | (header[3] ?? 0);
    } else if (length7 === 127) {
      const view = new DataView(header.buffer, header.byteOffset + 2, 8);
      const high = view.getUint32(0);
      if (high >= 0x80000000) return this.#fail(1002, "invalid frame length");
      length = high * 2 ** 32 + view.getUint32(4);
    }
    this.#headerFilled = 0;
    this.#headerNeeded = 2;
    if ((second & 0x80) !== 0) return this.#fail(1002, "masked frame from the server");
    if ((first & 0x70) !== 0) return this.#fail(1002, "reserved bits set");
    if (opcode >= 0x8) {
      if (opcode !== Opcode.Close && opcode !== Opcode.Ping && opcode !== Opcode.Pong) {
        return this.#fail(1002, `unknown opcode ${opcode}`);
      }
      if (!fin) return this.#fail(1002, "fragmented control frame");
      if (length > MAX_CONTROL_PAYLOAD) return this.#fail(1009, "control frame too large");
    } else {
      if (opcode !== Opcode.Continuation && opcode !== Opcode.Text && opcode !== Opcode.Binary) {
        return this.#fail(1002, `unknown opcode ${opcode}`);
      }
      if (opcode === Opcode.Continuation && this.#messageOpcode === 0) {
        return this.#fail(1002, "continuation frame without a message");
      }
      if (opcode !== Opcode.Continuation && this.#messageOpcode !== 0) {
        return this.#fail(1002, "new message inside a fragmented message");
      }
      if (length === 0) return this.#fail(1009, "empty data frame");
      if (this.#messageSize + length > MAX_MESSAGE_BYTES) {
        return this.#fail(1009, `message larger than ${MAX_MESSAGE_BYTES} bytes`);
      }
      if (opcode !== Opcode.Continuation) this.#messageOpcode = opcode;
      this.#messageSize += length;
    }
    this.#frameOpcode = opcode;
    this.#frameFin = fin;
    this.#frame = new Uint8Array(length);
    this.#frameFilled = 0;
    if (length === 0) this.#endFrame();
  }

  #endFrame(): void {
    const payload = this.#frame ?? EMPTY;
    this.#frame = null;
    switch (this.#frameOpcode) {
      case Opcode.Close:
        return this.#onCloseFrame(payload);
      case Opcode.Ping:
        this.#control.push(this.#encodeControl(Opcode.Pong, payload));
        return this.#kick();
      case Opcode.Pong:
        return;
    }
    this.#fragments.push(payload);
    if (!this.#frameFin) return;
    const fragments = this.#fragments;
    const opcode = this.#messageOpcode;
    const size = this.#messageSize;
    this.#fragments = [];
    this.#messageOpcode = 0;
    this.#messageSize = 0;
    let message = fragments[0] ?? EMPTY;
    if (fragments.length > 1) {
      message = new Uint8Array(size);
      let offset = 0;
      for (const fragment of fragments) {
        message.set(fragment, offset);
        offset += fragment.length;
      }
    }
    if (opcode === Opcode.Text) {
      // Text carries no tunnel traffic: validated, then dropped (PROTO-10).
      try {
        this.#textDecoder.decode(message);
      } catch {
        this.#fail(1007, "invalid UTF-8 in a text message");
      }
      return;
    }
    const handler = this.onMessage;
    if (handler === null) return;
    try {
      handler(message);
    } catch (error) {
      this.#terminate(
        {
          code: 1011,
          reason: "message handler failed",
          error: error instanceof Error ? error : new Error(String(error)),
        },
        closePayload(1011),
      );
    }
  }

  #onCloseFrame(payload: Uint8Array): void {
    if (payload.length === 0) return this.#terminate({ reason: "" }, EMPTY);
    if (payload.length === 1) return this.#fail(1002, "invalid close frame");
    const code = ((payload[0] ?? 0) << 8) | (payload[1] ?? 0);
    if (!isValidCloseCode(code)) return this.#fail(1002, `invalid close code ${code}`);
    let reason: string;
    try {
      reason = this.#textDecoder.decode(payload.subarray(2));
    } catch {
      return this.#fail(1007, "invalid UTF-8 in the close reason");
    }
    // PROTO-14: answer with a close frame echoing the code.
    this.#terminate({ code, reason }, closePayload(code));
  }

  #fail(code: number, reason: string): void {
    this.#terminate({ code, reason, error: new Error(`websocket: ${reason}`) }, closePayload(code));
  }

  // ---- sending -----------------------------------------------------------------------------

  #nextMask(): number {
    if (this.#maskOffset >= MASK_POOL_BYTES) {
      crypto.getRandomValues(this.#maskPool);
      this.#maskOffset = 0;
    }
    const offset = this.#maskOffset;
    this.#maskOffset += 4;
    return offset;
  }

  /** Writes a masked frame header at `at`; returns where the payload starts. */
  #writeHeader(
    bytes: Uint8Array,
    at: number,
    opcode: number,
    fin: boolean,
    length: number,
  ): number {
    let position = at;
    bytes[position++] = (fin ? 0x80 : 0) | opcode;
    if (length < 126) {
      bytes[position++] = 0x80 | length;
    } else if (length < 65_536) {
      bytes[position++] = 0x80 | 126;
      bytes[position++] = length >> 8;
      bytes[position++] = length & 0xff;
    } else {
      bytes[position++] = 0x80 | 127;
      new DataView(bytes.buffer, bytes.byteOffset + position, 8).setUint32(4, length);
      position += 8;
    }
    const mask = this.#nextMask();
    bytes.set(this.#maskPool.subarray(mask, mask + 4), position);
    return position + 4;
  }

  #encodeControl(opcode: number, payload: Uint8Array): Uint8Array {
    const bytes = new Uint8Array(frameHeaderSize(payload.length) + payload.length);
    const start = this.#writeHeader(bytes, 0, opcode, true, payload.length);
    bytes.set(payload, start);
    maskInPlace(bytes, start, bytes.length);
    return bytes;
  }

  /** Control frames first, then data frames up to about WRITE_BATCH_BYTES, in one buffer. */
  #nextBatch(): { bytes: Uint8Array; dataBytes: number } | undefined {
    if (this.#closeAfterData !== undefined && this.#queueHead >= this.#queue.length) {
      this.#control.push(this.#closeAfterData); // the data queued before the close went out
      this.#closeAfterData = undefined;
    }
    const control = this.#control;
    if (control.length === 0 && this.#queueHead >= this.#queue.length) return undefined;
    let size = 0;
    for (const frame of control) size += frame.length;
    const plan: { message: Uint8Array; offset: number; length: number }[] = [];
    let dataBytes = 0;
    while (this.#queueHead < this.#queue.length && dataBytes < WRITE_BATCH_BYTES) {
      const message = this.#queue[this.#queueHead]?.bytes ?? EMPTY;
      const offset = this.#queueOffset;
      const length = Math.min(FRAGMENT_BYTES, message.length - offset);
      plan.push({ message, offset, length });
      size += frameHeaderSize(length) + length;
      dataBytes += length;
      this.#queueOffset += length;
      if (this.#queueOffset >= message.length) {
        // Let go of the message now: its bytes are copied into this batch. Keeping sent entries
        // until a compaction held up to 1,024 messages (64 MiB) per tunnel after a download.
        this.#queue[this.#queueHead] = SENT;
        this.#queueHead++;
        this.#queueOffset = 0;
      }
    }
    if (this.#queueHead >= this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    const bytes = new Uint8Array(size);
    let position = 0;
    for (const frame of control) {
      bytes.set(frame, position);
      position += frame.length;
    }
    this.#control = [];
    for (const { message, offset, length } of plan) {
      const opcode = offset === 0 ? Opcode.Binary : Opcode.Continuation;
      const fin = offset + length === message.length;
      const start = this.#writeHeader(bytes, position, opcode, fin, length);
      bytes.set(message.subarray(offset, offset + length), start);
      maskInPlace(bytes, start, start + length);
      position = start + length;
    }
    return { bytes, dataBytes };
  }

  #kick(): void {
    if (this.#pumping || this.#state === "closed") return;
    this.#pumping = true;
    this.#pumpDone = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const batch = this.#nextBatch();
        if (batch === undefined) break;
        await this.#write(batch.bytes);
        if (batch.dataBytes > 0 && this.#state === "open") {
          this.#buffered -= batch.dataBytes;
          this.#notifyDrained();
        }
      }
    } catch (error) {
      this.#terminate({
        reason: "write failed",
        error: new Error(`websocket: ${messageOf(error)}`, { cause: error }),
      });
    } finally {
      this.#pumping = false;
    }
  }

  async #write(bytes: Uint8Array): Promise<void> {
    const timer = setTimeout(() =>
      this.#terminate({
        reason: "write timeout",
        error: new Error(`websocket: write timed out after ${this.#writeTimeoutMs} ms`),
      }), this.#writeTimeoutMs);
    try {
      await this.#channel.write(bytes);
    } finally {
      clearTimeout(timer);
    }
  }

  #notifyDrained(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiting: { threshold: number; resolve: () => void }[] = [];
    for (const waiter of this.#drainWaiters) {
      if (this.#buffered <= waiter.threshold) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#drainWaiters = waiting;
  }

  // ---- keep-alive and closing --------------------------------------------------------------

  #armKeepAlive(delay: number): void {
    this.#keepAliveTimer = setTimeout(() => this.#keepAlive(), Math.max(delay, 1));
  }

  #keepAlive(): void {
    if (this.#state !== "open") return;
    const silent = performance.now() - this.#lastReceived;
    if (silent >= this.#idleTimeoutMs) {
      // PROTO-13/14: a deliberate close, without status code.
      this.#terminate({
        reason: "idle timeout",
        error: new Error(`websocket: nothing received for ${this.#idleTimeoutMs} ms`),
      }, EMPTY);
    } else if (silent >= this.#pingIntervalMs) {
      this.#control.push(this.#encodeControl(Opcode.Ping, EMPTY));
      this.#kick();
      this.#armKeepAlive(Math.min(this.#pingIntervalMs, this.#idleTimeoutMs - silent));
    } else {
      this.#armKeepAlive(this.#pingIntervalMs - silent);
    }
  }

  /**
   * Starts closing once: drops unsent data (unless `keepData`: then it goes out before the close
   * frame), releases waiters, writes `closeFrame` when given (bounded by CLOSE_FLUSH_TIMEOUT_MS),
   * closes the socket, then reports `info`.
   */
  #terminate(info: CloseInfo, closeFrame?: Uint8Array, keepData = false): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    clearTimeout(this.#keepAliveTimer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    if (!keepData) {
      this.#queue = [];
      this.#queueHead = 0;
      this.#queueOffset = 0;
    }
    this.#buffered = 0;
    this.#fragments = [];
    for (const waiter of this.#drainWaiters) waiter.resolve();
    this.#drainWaiters = [];
    if (closeFrame !== undefined) {
      const frame = this.#encodeControl(Opcode.Close, closeFrame);
      if (keepData) this.#closeAfterData = frame;
      else this.#control.push(frame);
    }
    void this.#finish(info, closeFrame !== undefined);
  }

  async #finish(info: CloseInfo, flush: boolean): Promise<void> {
    if (flush) {
      this.#kick();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS);
      });
      await Promise.race([this.#pumpDone, timeout]);
      clearTimeout(timer);
    }
    this.#channel.close();
    // Both loops end once the socket is closed; the bound only guards against a runtime that
    // never settles a cancelled operation.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([this.#readDone, this.#pumpDone]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    this.#state = "closed";
    try {
      this.onClose?.(info);
    } catch {
      // A failing close handler has nobody left to tell.
    }
    this.#resolveClosed(info);
  }
}
