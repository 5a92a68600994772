/**
 * The HTTPS edge: the ONLY file that opens server sockets. One listener per `listen` entry
 * (TLS-1…TLS-9) serves every request to one handler, with the certificate chosen per SNI name by
 * the entry's {@linkcode CertStore}.
 *
 * Two mechanisms, chosen by measuring (`scripts/measure_listen.ts`, README design section):
 * - `deno` (default): `Deno.listenTls` with the per-name resolver `Symbol.for("unstableSniResolver")`,
 *   served by Deno's internal `serveHttpOnListener`. Native speed, HTTP/2 by ALPN,
 *   `Deno.upgradeWebSocket`. Deno caches the resolver's answer per name for the listener's life,
 *   so a certificate change opens a new listener on the same port (`reusePort`, needs
 *   `--unstable-net`) and shuts the old one down gracefully. Requests in flight finish, but Deno's
 *   graceful shutdown closes the old listener's upgraded WebSockets (code 1001) and drops the
 *   connections still in their TLS handshake or before their first request (measured: ~17 per
 *   reload at 1 250 new connections/s, i.e. ~13 ms worth; none for keep-alive traffic).
 * - `node` (fallback when the internal API is missing or broken): `node:https` with
 *   `SNICallback`, which consults the store at every handshake, so reloads need no new listener.
 *   HTTP/1.1 only; upgrade requests get 501 because `Deno.upgradeWebSocket` cannot take a
 *   `node:tls` socket in Deno 2.9.6.
 *
 * Both: TLS 1.2 minimum (1.3 preferred by the stack), bind failures retried every second and
 * reported once per distinct error (TLS-3 with the ODD-15 fix), never fatal. Both close a
 * connection that brings no request head within `read_timeout` of being accepted, or idles
 * between keep-alive requests for `idle_timeout` (SRV-22, DIR-2; issue 8, slowloris): `node` by
 * node:http's own timeouts, `deno` by a watchdog over the sockets (conn_watchdog.ts), which needs
 * Linux and the `ffi` permission for the C library; elsewhere the `deno` mechanism reports once
 * that these deadlines are not enforced.
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import { durationValue, SERVER_SETTINGS } from "../config/mod.ts";
import { CERT_CHECK_INTERVAL_MS, type CertPair, type CertStore } from "../tls/mod.ts";
import { ConnectionWatchdog, WATCHDOG_INTERVAL_MS } from "./conn_watchdog.ts";
import { tuneListener } from "./socket_tuning.ts";

/** Wait between two bind attempts (TLS-3: the original retries every second, forever). */
export const BIND_RETRY_MS = 1_000;

/**
 * How long `close()` lets in-flight requests finish. Long enough for ordinary requests; long
 * streams are cut by the process exit that usually follows.
 */
export const CLOSE_GRACE_MS = 10_000;

/**
 * Distinct SNI names one Deno listener answers before it is replaced by a fresh one. Deno keeps
 * every name's answer for the listener's life (~1.7 KB each, measured), so a peer sending random
 * names would grow memory without bound; 50 000 names cost ~85 MB.
 */
export const MAX_SNI_NAMES = 50_000;

/** Default time from accept to a complete request head: the `read_timeout` setting's default. */
export const DEFAULT_READ_TIMEOUT_MS = durationValue(SERVER_SETTINGS.readTimeoutMs.defaultText) *
  1000;
/** Default keep-alive idle time: the `idle_timeout` setting's default. */
export const DEFAULT_IDLE_TIMEOUT_MS = durationValue(SERVER_SETTINGS.idleTimeoutMs.defaultText) *
  1000;
/**
 * How often node:http checks its connections' header and keep-alive deadlines (its default, 30 s,
 * would let a 5 s `read_timeout` run to 35 s).
 */
const NODE_CONNECTION_CHECK_MS = 1_000;

/** ALPN offered by the `deno` mechanism: HTTP/2 for browsers, HTTP/1.1 for WebSocket and agents. */
export const ALPN_HTTP2 = ["h2", "http/1.1"] as const;
/** ALPN of the original (TLS-8) and of the `node` mechanism. */
export const ALPN_HTTP1 = ["http/1.1"] as const;

/** The ways a listener can be served. */
export const ListenMechanism = { Deno: "deno", Node: "node" } as const;
/** One of {@linkcode ListenMechanism}. */
export type ListenMechanism = typeof ListenMechanism[keyof typeof ListenMechanism];

/** What to listen on. */
export interface ListenEntry {
  /** Address to bind; "" means every interface (IPv6 and IPv4 when the host has both). */
  readonly hostname: string;
  /** TCP port; 0 picks a free one (see `addr`). */
  readonly port: number;
  /** The listener's certificates. */
  readonly store: CertStore;
}

/** Connection facts given to the handler with each request. */
export interface RequestInfo {
  /** The peer, read before any upgrade; IPv4-mapped IPv6 addresses are given as IPv4. */
  readonly remoteAddr: Deno.NetAddr;
  /** The SNI name, when the mechanism can tell (only `node`). */
  readonly serverName?: string;
}

/** Serves one request. It should not throw; a throw is reported and answered 500. */
export type RequestHandler = (
  request: Request,
  info: RequestInfo,
) => Response | Promise<Response>;

/** Options of {@linkcode startListener}. */
export interface ListenOptions {
  /** Aborting closes the listener (like `close()`). */
  signal?: AbortSignal;
  /** Bind and serve failures (once per distinct message while retrying), handler throws. */
  onError?: (error: Error) => void;
  /** Called once, when the listener is first bound. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Called after a certificate change was put in service (a new listener for `deno`). */
  onReload?: (addr: Deno.NetAddr) => void;
  /** Force a mechanism; default: `deno` when {@linkcode detectListenMechanism} finds it. */
  mechanism?: ListenMechanism;
  /** Offer HTTP/2 by ALPN (`deno` only). Default true. */
  http2?: boolean;
  /** Period of the certificate file check, default {@linkcode CERT_CHECK_INTERVAL_MS}. */
  certCheckIntervalMs?: number;
  /** Wait between bind attempts, default {@linkcode BIND_RETRY_MS}. */
  bindRetryMs?: number;
  /** Drain bound of `close()`, default {@linkcode CLOSE_GRACE_MS}. */
  closeGraceMs?: number;
  /**
   * Longest time from accept to a complete request head (`read_timeout`, SRV-22), default
   * {@linkcode DEFAULT_READ_TIMEOUT_MS}; covers silent connections and stalled TLS handshakes.
   */
  readTimeoutMs?: number;
  /** Longest keep-alive idle time (`idle_timeout`), default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}. */
  idleTimeoutMs?: number;
  /** Period of the `deno` mechanism's connection check, default {@linkcode WATCHDOG_INTERVAL_MS}. */
  watchdogIntervalMs?: number;
}

/** A running listener. */
export interface ListenerHandle extends AsyncDisposable {
  /** The bound address (the real port when 0 was asked). */
  readonly addr: Deno.NetAddr;
  /** The mechanism in use. */
  readonly mechanism: ListenMechanism;
  /** Settles when the listener is closed and drained (or the drain bound passed). */
  readonly finished: Promise<void>;
  /**
   * Connections the `deno` mechanism cut for `read_timeout` or `idle_timeout` so far (counted, not
   * logged: a slowloris flood must not flood the log); always 0 for `node`, which cuts its own.
   */
  readonly timeoutCuts: number;
  /** Stops accepting, lets in-flight requests finish up to the drain bound. */
  close(): Promise<void>;
}

/** The part of Deno's internal HTTP server object that is used. */
interface InternalHttpServer {
  readonly finished: Promise<void>;
  shutdown(): Promise<void>;
  unref(): void;
}

/** `Deno[Deno.internal].serveHttpOnListener` of Deno 2.9.6. */
type ServeHttpOnListener = (
  listener: Deno.Listener,
  signal: AbortSignal | undefined,
  handler: (
    request: Request,
    info: Partial<Deno.ServeHandlerInfo<Deno.NetAddr>> & { remoteAddr: Deno.NetAddr },
  ) => Promise<Response>,
  onError: (error: unknown) => Response,
  onListen: (scheme: string) => void,
) => InternalHttpServer;

/** The option key of `Deno.listenTls` that takes a per-SNI-name certificate resolver. */
const SNI_RESOLVER = Symbol.for("unstableSniResolver");

/**
 * Finds Deno's internal `serveHttpOnListener` and checks that the SNI resolver symbol is the one
 * Deno reads; `undefined` when this Deno lacks them (then the `node` mechanism is used).
 */
function internalServe(): ServeHttpOnListener | undefined {
  const key: unknown = Reflect.get(Deno, "internal");
  if (typeof key !== "symbol") return undefined;
  const internals: unknown = Reflect.get(Deno, key);
  if (internals === null || typeof internals !== "object") return undefined;
  const serve: unknown = Reflect.get(internals, "serveHttpOnListener");
  const resolverSymbol: unknown = Reflect.get(internals, "resolverSymbol");
  if (typeof serve !== "function" || serve.length < 5) return undefined;
  if (resolverSymbol !== SNI_RESOLVER) return undefined;
  return serve as ServeHttpOnListener;
}

/** The start-up self-check: `deno` when Deno's internal SNI serving API is present, else `node`. */
export function detectListenMechanism(): ListenMechanism {
  return internalServe() === undefined ? ListenMechanism.Node : ListenMechanism.Deno;
}

/** True when `reusePort` may be used (the process runs with `--unstable-net`). */
export function canReusePort(): boolean {
  return typeof Reflect.get(Deno, "listenDatagram") === "function";
}

/**
 * Starts an HTTPS listener and resolves once it is bound. Bind failures (port in use, no
 * permission) are reported through `onError`, once per distinct message, and retried every
 * `bindRetryMs` until they succeed or `signal` aborts (then it rejects with the abort reason).
 * The store is loaded first when nothing loaded it yet, and checked every `certCheckIntervalMs`.
 */
export async function startListener(
  entry: ListenEntry,
  handler: RequestHandler,
  options: ListenOptions = {},
): Promise<ListenerHandle> {
  if (!entry.store.refreshed) await entry.store.refresh();
  const serve = internalServe();
  const mechanism = options.mechanism ?? (serve ? ListenMechanism.Deno : ListenMechanism.Node);
  if (mechanism === ListenMechanism.Deno) {
    if (serve === undefined) {
      throw new TypeError("Cannot use the deno listen mechanism: Deno's internal API is missing");
    }
    const listener = new DenoListener(entry, handler, options, serve);
    try {
      await listener.start();
      return listener;
    } catch (error) {
      // A TypeError here means the internal API changed shape; fall back rather than fail.
      if (!(error instanceof TypeError) || options.mechanism !== undefined) throw error;
      options.onError?.(
        new Error(`Cannot serve with Deno's SNI resolver (${error.message}): using node:https`),
      );
    }
  }
  const listener = new NodeListener(entry, handler, options);
  await listener.start();
  return listener;
}

/** Shared lifecycle: bind retry with once-per-message reports, store watching, close. */
abstract class BaseListener implements ListenerHandle {
  abstract readonly mechanism: ListenMechanism;
  protected readonly entry: ListenEntry;
  protected readonly handler: RequestHandler;
  protected readonly options: ListenOptions;
  protected readonly lifetime = new AbortController();
  protected closing = false;
  #addr: Deno.NetAddr | undefined;
  #finished = Promise.withResolvers<void>();
  #closePromise: Promise<void> | undefined;
  #watching: Promise<void> | undefined;
  #onAbort = () => void this.close();

  constructor(entry: ListenEntry, handler: RequestHandler, options: ListenOptions) {
    this.entry = entry;
    this.handler = handler;
    this.options = options;
    // The drain may be cut short by the bound; nobody has to await `finished`.
    this.#finished.promise.catch(() => {});
  }

  get addr(): Deno.NetAddr {
    if (this.#addr === undefined) throw new Error("Cannot read addr: the listener is not bound");
    return this.#addr;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  get timeoutCuts(): number {
    return 0;
  }

  /** Binds (with retry), then starts the certificate check. */
  async start(): Promise<void> {
    const signal = this.options.signal;
    signal?.throwIfAborted();
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    try {
      this.#addr = await this.bindWithRetry(() => this.bindFirst());
    } catch (error) {
      signal?.removeEventListener("abort", this.#onAbort);
      this.lifetime.abort();
      throw error;
    }
    this.#watching = this.entry.store.watch({
      signal: this.lifetime.signal,
      intervalMs: this.options.certCheckIntervalMs ?? CERT_CHECK_INTERVAL_MS,
    });
    this.options.onListen?.(this.#addr);
  }

  /** Binds for the first time; returns the bound address. */
  protected abstract bindFirst(): Promise<Deno.NetAddr>;

  /** Stops accepting; resolves when in-flight work ended. */
  protected abstract drainAll(): Promise<void>;

  /** Gives up on connections still open after the drain bound. */
  protected abstract abandon(): void;

  /** Calls `bind` until it succeeds, reporting each distinct failure once; stops on close. */
  protected async bindWithRetry<T>(bind: () => T | Promise<T>): Promise<T> {
    const signal = AbortSignal.any(
      this.options.signal ? [this.lifetime.signal, this.options.signal] : [this.lifetime.signal],
    );
    let reported = "";
    for (;;) {
      signal.throwIfAborted();
      try {
        return await bind();
      } catch (error) {
        const failure = asError(error);
        if (failure instanceof TypeError) throw failure; // a programming error, not the network
        if (failure.message !== reported) {
          reported = failure.message;
          const where = `${
            this.entry.hostname === "" ? "*" : this.entry.hostname
          }:${this.entry.port}`;
          this.report(
            new Error(`Cannot listen on ${where}: ${failure.message}`, { cause: failure }),
          );
        }
      }
      await delay(this.options.bindRetryMs ?? BIND_RETRY_MS, undefined, { signal });
    }
  }

  /** Waits one retry delay; rejects when the listener closes meanwhile. */
  protected async pause(): Promise<void> {
    await delay(this.options.bindRetryMs ?? BIND_RETRY_MS, undefined, {
      signal: this.lifetime.signal,
    });
  }

  /** Reports an error to `onError`, never throwing. */
  protected report(error: Error): void {
    try {
      this.options.onError?.(error);
    } catch {
      // a reporting callback must not break the listener
    }
  }

  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.closing = true;
    this.options.signal?.removeEventListener("abort", this.#onAbort);
    this.lifetime.abort();
    await this.#watching;
    const drained = this.drainAll().then(() => false);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.options.closeGraceMs ?? CLOSE_GRACE_MS);
    });
    const timedOut = await Promise.race([drained, expired]);
    clearTimeout(timer);
    if (timedOut) {
      this.abandon();
      this.report(
        new Error(
          `Listener ${formatAddr(this.#addr)} still has open connections after the ${
            this.options.closeGraceMs ?? CLOSE_GRACE_MS
          } ms drain bound`,
        ),
      );
    }
    this.#finished.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One Deno listener with its HTTP server (one per certificate generation). */
interface Generation {
  readonly server: InternalHttpServer;
  readonly addr: Deno.NetAddr;
  readonly names: Set<string>;
}

/** Why a Deno listener is replaced: certificate change, unexpected stop, too many SNI names. */
type RelistenReason = "reload" | "restart" | "recycle";

/** The `deno` mechanism: native TLS with the SNI resolver, new listener per certificate change. */
class DenoListener extends BaseListener {
  readonly mechanism = ListenMechanism.Deno;
  #serve: ServeHttpOnListener;
  #reusePort = canReusePort();
  #current: Generation | undefined;
  #draining = new Set<Promise<void>>();
  #drainingServers = new Set<InternalHttpServer>();
  #relistening: Promise<void> | undefined;
  #pending = new Set<RelistenReason>();
  #lastStop = "";
  #unsubscribe: (() => void) | undefined;
  #watchdog: ConnectionWatchdog | undefined;

  constructor(
    entry: ListenEntry,
    handler: RequestHandler,
    options: ListenOptions,
    serve: ServeHttpOnListener,
  ) {
    super(entry, handler, options);
    this.#serve = serve;
  }

  protected bindFirst(): Promise<Deno.NetAddr> {
    const { port } = this.entry;
    if (this.#reusePort && port !== 0) {
      // With SO_REUSEPORT a second groom on the same port would bind silently and share the
      // traffic; a plain bind first makes "address in use" visible.
      probePort(listenHostname(this.entry.hostname), port);
    }
    const generation = this.#bind(port);
    this.#current = generation;
    this.#unsubscribe = this.entry.store.subscribe(() => this.#relisten("reload"));
    // One watchdog for the address, across listener generations (they share the port).
    this.#watchdog = ConnectionWatchdog.start({
      local: generation.addr,
      readTimeoutMs: this.options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS,
      idleTimeoutMs: this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      intervalMs: this.options.watchdogIntervalMs ?? WATCHDOG_INTERVAL_MS,
    });
    if (this.#watchdog === undefined) {
      this.report(
        new Error(
          "Cannot enforce read_timeout and idle_timeout: per-connection timeouts need Linux and the ffi permission",
        ),
      );
    }
    return Promise.resolve(generation.addr);
  }

  override get timeoutCuts(): number {
    return this.#watchdog?.cuts ?? 0;
  }

  #bind(port: number): Generation {
    const names = new Set<string>();
    let recycled = false;
    const resolver = (name: string): CertPair => {
      if (!names.has(name)) {
        names.add(name);
        if (names.size > MAX_SNI_NAMES && !recycled) {
          recycled = true;
          this.report(new Error(`Listener saw over ${MAX_SNI_NAMES} SNI names: replacing it`));
          this.#relisten("recycle");
        }
      }
      const pair = this.entry.store.select(name === "" ? undefined : name);
      if (pair === undefined) throw new Error(`No certificate for server name "${name}"`);
      return pair;
    };
    const listener = listenTlsWithResolver({
      hostname: this.entry.hostname,
      port,
      reusePort: this.#reusePort,
      alpnProtocols: [...(this.options.http2 === false ? ALPN_HTTP1 : ALPN_HTTP2)],
      resolver,
    });
    // Nagle off (~40 ms stalls otherwise) and unsent data bounded for every accepted connection.
    tuneListener((listener.addr as Deno.NetAddr).port);
    const handler = this.handler;
    const server = this.#serve(
      listener,
      undefined,
      (request, info) => {
        // Read before the handler runs: after Deno.upgradeWebSocket it throws "Request closed".
        const remoteAddr = plainAddr(info.remoteAddr);
        const ticket = this.#watchdog?.begin(remoteAddr);
        if (ticket === undefined) return Promise.resolve(handler(request, { remoteAddr }));
        // Without `completed` the request counts as in flight for good: never cut, never wrong.
        info.completed?.then(ticket.finish, ticket.finish);
        const answer = Promise.resolve(handler(request, { remoteAddr }));
        answer.then((response) => {
          if (response.status === 101) ticket.upgrade();
        }, () => {});
        return answer;
      },
      (error) => {
        this.report(asError(error));
        return new Response(null, { status: 500 });
      },
      () => {},
    );
    const generation: Generation = { server, addr: plainAddr(listener.addr), names };
    server.finished.then(
      () => this.#ended(generation, undefined),
      (error) => this.#ended(generation, asError(error)),
    );
    return generation;
  }

  /**
   * A server stopped on its own (accept failed, e.g. "too many open files"): rebind after the
   * retry delay, reporting each distinct failure once (TLS-3, ODD-15).
   */
  #ended(generation: Generation, error: Error | undefined): void {
    if (generation !== this.#current || this.closing) return;
    this.#current = undefined;
    const message = `Listener ${formatAddr(generation.addr)} stopped: ${
      error?.message ?? "closed"
    }`;
    if (message !== this.#lastStop) {
      this.#lastStop = message;
      this.report(new Error(message, { cause: error }));
    }
    this.#relisten("restart");
  }

  /** Puts a new listener in service; serialised, and requests made meanwhile are merged. */
  #relisten(reason: RelistenReason): void {
    if (this.closing) return;
    this.#pending.add(reason);
    this.#relistening ??= this.#relistenLoop().finally(() => {
      this.#relistening = undefined;
    });
  }

  async #relistenLoop(): Promise<void> {
    const port = this.addr.port;
    while (this.#pending.size > 0 && !this.closing) {
      const reasons = new Set(this.#pending);
      this.#pending.clear();
      const old = this.#current;
      if (!this.#reusePort && old) {
        this.#current = undefined;
        this.#drain(old); // the port is free once the old socket closes; the retry covers the gap
      }
      let next: Generation;
      try {
        if (reasons.has("restart")) await this.pause();
        next = await this.bindWithRetry(() => this.#bind(port));
      } catch {
        return; // closed while waiting
      }
      if (this.closing) {
        this.#drain(next);
        return;
      }
      this.#current = next;
      if (this.#reusePort && old) this.#drain(old);
      if (reasons.has("reload")) this.options.onReload?.(next.addr);
    }
  }

  #drain(generation: Generation): void {
    this.#drainingServers.add(generation.server);
    const drained = generation.server.shutdown().catch(() => {}).finally(() => {
      this.#draining.delete(drained);
      this.#drainingServers.delete(generation.server);
    });
    this.#draining.add(drained);
  }

  protected async drainAll(): Promise<void> {
    this.#unsubscribe?.();
    await this.#relistening;
    if (this.#current) this.#drain(this.#current);
    this.#current = undefined;
    await Promise.all(this.#draining);
    this.#watchdog?.close();
  }

  protected abandon(): void {
    for (const server of this.#drainingServers) server.unref();
    this.#watchdog?.close();
  }
}

/** The `node` mechanism: `node:https` with `SNICallback`; per-handshake selection, HTTP/1.1. */
class NodeListener extends BaseListener {
  readonly mechanism = ListenMechanism.Node;
  #server: https.Server | undefined;
  #contexts = new WeakMap<CertPair, SecureContext>();
  #unsubscribe: (() => void) | undefined;

  protected async bindFirst(): Promise<Deno.NetAddr> {
    const readTimeoutMs = this.options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    const server = https.createServer({
      minVersion: "TLSv1.2",
      ALPNProtocols: [...ALPN_HTTP1],
      // SRV-22, DIR-2: head within read_timeout (handshake included), keep-alive idle limit; no
      // whole-request limit, bodies have body_timeout (ODD-21).
      handshakeTimeout: readTimeoutMs,
      headersTimeout: readTimeoutMs,
      keepAliveTimeout: this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      requestTimeout: 0,
      connectionsCheckingInterval: NODE_CONNECTION_CHECK_MS,
      SNICallback: (name, callback) => {
        const pair = this.entry.store.select(name === "" ? undefined : name);
        if (pair === undefined) {
          callback(new Error(`No certificate for server name "${name}"`), undefined);
          return;
        }
        let context = this.#contexts.get(pair);
        if (context === undefined) {
          context = createSecureContext({ cert: pair.cert, key: pair.key });
          this.#contexts.set(pair, context);
        }
        callback(null, context);
      },
    }, (request, response) => void this.#serveRequest(request, response));
    server.on("upgrade", (_request: IncomingMessage, socket: { end(data: string): void }) => {
      socket.end("HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    });
    server.on("tlsClientError", () => {}); // failed handshakes are the peer's problem
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        server.off("listening", onListening);
        reject(error);
      };
      const onListening = () => {
        server.off("error", onError);
        resolve();
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen({ host: listenHostname(this.entry.hostname), port: this.entry.port });
    });
    server.on("error", (error: Error) => this.report(error));
    this.#server = server;
    const address = server.address();
    if (address === null || typeof address === "string") {
      throw new Error("Cannot read the node:https server address");
    }
    this.#unsubscribe = this.entry.store.subscribe(() => this.options.onReload?.(this.addr));
    return plainAddr({ transport: "tcp", hostname: address.address, port: address.port });
  }

  async #serveRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const aborted = new AbortController();
    response.on("close", () => aborted.abort());
    const socket = request.socket as TLSSocket & { servername?: unknown };
    const serverName = socket.servername;
    const info: RequestInfo = {
      remoteAddr: plainAddr({
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      }),
      ...(typeof serverName === "string" && serverName !== "" ? { serverName } : {}),
    };
    let webRequest: Request;
    try {
      webRequest = toWebRequest(request, aborted.signal);
    } catch {
      response.writeHead(400, { connection: "close" }).end(); // e.g. a Host that is no authority
      return;
    }
    let answer: Response;
    try {
      answer = await this.handler(webRequest, info);
    } catch (error) {
      this.report(asError(error));
      answer = new Response(null, { status: 500 });
    }
    await writeWebResponse(answer, response, aborted.signal);
  }

  protected async drainAll(): Promise<void> {
    this.#unsubscribe?.();
    const server = this.#server;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await closed;
  }

  protected abandon(): void {
    this.#server?.closeAllConnections();
  }
}

/** A `node:http` request as a web `Request` (body streamed, aborted with the connection). */
function toWebRequest(request: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  const raw = request.rawHeaders;
  for (let index = 0; index + 1 < raw.length; index += 2) {
    headers.append(raw[index] ?? "", raw[index + 1] ?? "");
  }
  const method = request.method ?? "GET";
  const url = new URL(request.url ?? "/", `https://${request.headers.host ?? "localhost"}`);
  const body = method === "GET" || method === "HEAD"
    ? null
    : Readable.toWeb(request) as unknown as ReadableStream<Uint8Array>;
  return new Request(url, { method, headers, body, signal, duplex: "half" } as RequestInit);
}

/** Writes a web `Response` to a `node:http` response, honouring backpressure. */
async function writeWebResponse(
  answer: Response,
  response: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of answer.headers) {
    if (name !== "set-cookie") headers[name] = value;
  }
  const cookies = answer.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  if (answer.statusText === "") response.writeHead(answer.status, headers);
  else response.writeHead(answer.status, answer.statusText, headers);
  if (answer.body === null) {
    response.end();
    return;
  }
  const reader = answer.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || signal.aborted) break;
      if (!response.write(value)) {
        await new Promise<void>((resolve) => {
          const resume = () => {
            response.off("drain", resume);
            response.off("close", resume);
            resolve();
          };
          response.on("drain", resume);
          response.on("close", resume);
        });
      }
    }
  } catch {
    // the response body failed or the client left: nothing more can be sent
  } finally {
    reader.cancel().catch(() => {});
    response.end();
  }
}

/** Options of {@linkcode listenTlsWithResolver}. */
interface ResolverListenOptions {
  hostname: string;
  port: number;
  reusePort: boolean;
  alpnProtocols: string[];
  resolver: (serverName: string) => CertPair;
}

/** `Deno.listenTls` with the SNI resolver; "" binds every interface (`::`, else `0.0.0.0`). */
function listenTlsWithResolver(options: ResolverListenOptions): Deno.TlsListener {
  const open = (hostname: string) =>
    Deno.listenTls(
      {
        hostname,
        port: options.port,
        alpnProtocols: options.alpnProtocols,
        ...(options.reusePort ? { reusePort: true } : {}),
        [SNI_RESOLVER]: options.resolver,
      } as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    );
  if (options.hostname !== "") return open(options.hostname);
  try {
    return open("::");
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof TypeError) throw error;
    return open("0.0.0.0"); // a host without IPv6
  }
}

/** Throws `AddrInUse` when something already listens on the port (without SO_REUSEPORT). */
function probePort(hostname: string, port: number): void {
  let probe: Deno.Listener;
  try {
    probe = Deno.listen({ hostname: hostname === "" ? "0.0.0.0" : hostname, port });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw error;
    return; // other problems show up in the real bind
  }
  probe.close();
}

/** "" (every interface) in the form node and the probe accept. */
function listenHostname(hostname: string): string {
  return hostname === "" ? "::" : hostname;
}

/** A plain copy of an address, IPv4-mapped IPv6 (`::ffff:1.2.3.4`) written as IPv4. */
function plainAddr(addr: Deno.Addr): Deno.NetAddr {
  if (addr.transport !== "tcp" && addr.transport !== "udp") {
    return { transport: "tcp", hostname: "", port: 0 };
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr.hostname);
  return { transport: "tcp", hostname: mapped?.[1] ?? addr.hostname, port: addr.port };
}

function formatAddr(addr: Deno.NetAddr | undefined): string {
  if (addr === undefined) return "(unbound)";
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
