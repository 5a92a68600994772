/**
 * The server mode of groom: HTTPS listeners with SNI certificates, the agent endpoint, the domain
 * registry kept current from the domains folder, and client requests multiplexed over each
 * domain's agent tunnel. `startServer` returns a handle; `main.ts` and the tests are its callers.
 * @module
 */

import {
  compilePattern,
  domainDefaults,
  loadDomainConfig,
  type LoadOptions,
  type ServerConfig,
  type ServerDomainConfig,
} from "../config/mod.ts";
import { type DomainEvent, DomainWatcher } from "../domains/mod.ts";
import {
  accessEvent,
  domainEvent,
  errorEvent,
  listenEvent,
  listenFailedEvent,
  type Logger,
  streamEvent,
} from "../log/mod.ts";
import { MemoryReducer } from "../sys/mod.ts";
import { CertStore } from "../tls/mod.ts";
import { Mux, type TunnelEvent, WebSocketTransport } from "../tunnel/mod.ts";
import { createSessionSealer, FailureBudget, sessionKey } from "../acl/mod.ts";
import { checkAgent } from "./agent_gate.ts";
import { authenticateClient, type ClientAuth } from "./client_auth.ts";
import { type AccessEntry, type ClientInfo, proxyRequest } from "./client_proxy.ts";
import { route, type RouterContext } from "./handler.ts";
import { type ListenerHandle, startListener } from "./listen.ts";
import {
  type AttachedTunnel,
  createDomain,
  type ServerDomain,
  tunnelInvalidation,
  updateDomain,
} from "./registry.ts";
import { relayWebSocket } from "./websocket_relay.ts";

export { canonicalPath, splitHost } from "./handler.ts";
export {
  detectListenMechanism,
  type ListenerHandle,
  ListenMechanism,
  type RequestHandler,
  startListener,
} from "./listen.ts";
export { SUPPORTED_SUBPROTOCOLS } from "./agent_gate.ts";

/**
 * Idle limit of an agent tunnel in seconds: Deno pings an idle WebSocket and closes it when no
 * pong comes back in time. groom 1.3's server closes after 30 s without any byte (PROTO-13).
 */
export const AGENT_IDLE_TIMEOUT_S = 30;
/** Close code sent to an agent whose tunnel is replaced or no longer authorised. */
export const CLOSE_POLICY = 1008;
/** Close code sent to agents when the server stops. */
export const CLOSE_GOING_AWAY = 1001;
/**
 * Longest wait for requests in flight when the server stops; below the CLI's 10 s stop bound so
 * the tunnels are still closed with a status code and the stop event is logged.
 */
export const DRAIN_GRACE_MS = 8_000;
/** How often the drain checks for open streams (the tunnel has no "idle" event). */
const DRAIN_POLL_MS = 25;

/** A connected agent tunnel on the server. */
export interface ServerTunnel extends AttachedTunnel {
  readonly mux: Mux;
}

/** What the server needs from its caller. */
export interface ServerDeps {
  /** System logger. */
  readonly logger: Logger;
  /** Access logger (SRV-20). */
  readonly accessLogger: Logger;
  /** How domain files are read (macro permissions). */
  readonly loadOptions?: LoadOptions;
  /** Current time, for time ranges. */
  readonly now?: () => Date;
}

/** A running server. */
export interface ServerHandle extends AsyncDisposable {
  /** The bound listeners, in `listen` order (port 0 resolved). */
  readonly listeners: readonly { readonly hostname: string; readonly port: number }[];
  /** The domain of that name, if loaded. */
  domain(name: string): ServerDomain<ServerTunnel> | undefined;
  /** Resolves when the domain has an agent tunnel (for tests and readiness checks). */
  whenConnected(name: string): Promise<void>;
  /** Rescans the domains folder now. */
  rescan(): Promise<void>;
  /** Applies reloadable settings (CLI-10). */
  reload(config: ServerConfig): void;
  /** Stops listening, closes tunnels, waits for the domain watcher. */
  close(): Promise<void>;
}

function addressText(address: { hostname: string; port: number }): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}

/** Starts a server from its configuration. */
export async function startServer(
  initial: ServerConfig,
  deps: ServerDeps,
): Promise<ServerHandle> {
  let config = initial;
  const { logger, accessLogger } = deps;
  const now = deps.now ?? (() => new Date());
  const domains = new Map<string, ServerDomain<ServerTunnel>>();
  const waiters = new Map<string, (() => void)[]>();
  const mode = "server";

  const notifyConnected = (name: string): void => {
    for (const resolve of waiters.get(name) ?? []) resolve();
    waiters.delete(name);
  };

  const onTunnelEvent = (domain: string) => (event: TunnelEvent): void => {
    if (event.event === "stream") {
      if (logger.enabled("debug")) {
        logger.emit(streamEvent({ action: event.action, domain, mode, stream: event.stream }));
      }
    } else if (event.event === "callback-error") {
      logger.warn({ event: "error", mode, domain, error: String(event.error) });
    } else {
      logger.warn({ ...event, mode, domain, event: `tunnel-${event.event}` });
    }
  };

  const onDomainEvent = (event: DomainEvent<ServerDomainConfig>): void => {
    switch (event.type) {
      case "load":
        domains.set(event.name, createDomain<ServerTunnel>(event.config));
        logger.emit(domainEvent({ action: "load", domain: event.name, mode }));
        break;
      case "update": {
        const domain = domains.get(event.name);
        if (domain === undefined) break;
        updateDomain(domain, event.config);
        logger.emit(domainEvent({ action: "update", domain: event.name, mode }));
        const why = tunnelInvalidation(event.previous, event.config);
        if (why !== undefined) domain.tunnel?.close(CLOSE_POLICY, why);
        break;
      }
      case "remove": {
        const domain = domains.get(event.name);
        domains.delete(event.name);
        domain?.tunnel?.close(CLOSE_POLICY, "domain removed");
        logger.info({ action: "remove", domain: event.name, event: "domain", mode });
        break;
      }
      case "error":
        logger.emit(errorEvent({
          domain: event.path,
          error: `configuration syntax error: ${event.error.message}`,
          mode,
        }));
        break;
      case "invalid":
        logger.emit(errorEvent({ domain: event.path, error: event.reason, mode }));
        break;
      case "folder-error":
        logger.emit(errorEvent({ domain: event.folder, error: event.error, mode }));
        break;
    }
  };

  const watcher = new DomainWatcher<ServerDomainConfig>({
    folder: () => config.domains,
    load: async (file) => {
      const defaults = domainDefaults(config);
      const result = await loadDomainConfig(file.path, "server", {
        ...deps.loadOptions,
        defaults,
      });
      for (const problem of result.problems) {
        logger.warn({ event: "config", mode, domain: file.name, problem: problem.message });
      }
      return {
        config: result.config,
        hash: `${result.document.hash}:${defaults.bodySize}:${defaults.transaction}`,
      };
    },
    onEvent: onDomainEvent,
  });

  const access = (request: Request, client: ClientInfo, entry: AccessEntry): void => {
    // Without an access log nothing is built (the URL parse and the record cost per request).
    if (!accessLogger.enabled("info")) return;
    const url = new URL(request.url);
    accessLogger.emit(accessEvent({
      start: client.start,
      durationMicros: (performance.now() - client.startMark) * 1000,
      domain: client.name,
      id: entry.id,
      method: request.method,
      remote: addressText(client.remoteAddr),
      status: entry.status,
      in: entry.in,
      out: entry.out,
      path: safeDecode(url.pathname),
      query: url.search.slice(1),
      ...(entry.reason ? { reason: entry.reason } : {}),
      userAgent: request.headers.get("user-agent"),
      referer: request.headers.get("referer"),
      range: request.headers.get("range"),
    }));
  };

  const acceptAgent = async (request: Request, client: ClientInfo): Promise<Response> => {
    const remote = addressText(client.remoteAddr);
    const peer = client.remoteAddr.hostname;
    if (agentFailures.blocked(peer)) {
      // Refused unchecked until the window passes; other addresses (the real agent) unaffected.
      return new Response(null, { status: config.unavailable });
    }
    const verdict = await checkAgent({
      method: request.method,
      headers: request.headers,
      peer: client.remoteAddr.hostname,
      name: client.name,
    }, { lookup: (name) => domains.get(name), unavailable: config.unavailable });
    if (!verdict.ok) {
      if (verdict.reason === "invalid agent authentication" && agentFailures.fail(peer)) {
        logger.warn({
          event: "error",
          mode,
          domain: client.name,
          remote,
          error: "too many agent authentication failures: address refused for a while",
        });
      }
      if (verdict.reason) {
        logger.emit(errorEvent({ domain: client.name, remote, error: verdict.reason, mode }));
      }
      return new Response(null, {
        status: verdict.status,
        ...(verdict.headers ? { headers: verdict.headers } : {}),
      });
    }
    agentFailures.succeed(peer);
    const domain = verdict.domain as ServerDomain<ServerTunnel>;
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, {
        protocol: verdict.protocol,
        idleTimeout: AGENT_IDLE_TIMEOUT_S,
      });
    } catch (error) {
      logger.emit(errorEvent({ domain: domain.name, remote, error, mode }));
      return new Response(null, { status: 400 });
    }
    const transport = new WebSocketTransport(upgraded.socket, { protocol: verdict.protocol });
    upgraded.socket.addEventListener("open", () => {
      // A new authenticated agent replaces a stale or half-open tunnel at once (issue 3 #7).
      domain.tunnel?.close(CLOSE_POLICY, "replaced by a new agent connection");
      const mux = new Mux(transport, {
        role: "server",
        counter: domain.ids,
        onEvent: onTunnelEvent(domain.name),
      });
      const tunnel: ServerTunnel = {
        remote,
        protocol: verdict.protocol,
        mux,
        close: (code, reason) => {
          mux.close(reason);
          transport.close(code, reason);
        },
      };
      domain.tunnel = tunnel;
      logger.emit(domainEvent({ action: "connect", domain: domain.name, mode, remote }));
      logger.info({
        event: "tunnel",
        mode,
        domain: domain.name,
        remote,
        protocol: verdict.protocol,
      });
      notifyConnected(domain.name);
      mux.closed.then(() => {
        if (domain.tunnel === tunnel) domain.tunnel = undefined;
        logger.emit(domainEvent({ action: "disconnect", domain: domain.name, mode, remote }));
      });
    });
    return upgraded.response;
  };

  const sealer = createSessionSealer(sessionKey(config.sessionKey), () => now().getTime());
  const clientFailures = new FailureBudget();
  const agentFailures = new FailureBudget();
  // The services every request uses, built once: the timeouts are read per request through
  // getters, so a reload (CLI-10) applies to the next request.
  const open = (target: ServerDomain) => {
    const tunnel = (target as ServerDomain<ServerTunnel>).tunnel;
    if (tunnel === undefined || tunnel.mux.size >= target.config.concurrency) {
      return undefined;
    }
    return tunnel.mux.open();
  };
  const upgrade = relayWebSocket;
  const proxyDeps = {
    open,
    get writeTimeoutMs() {
      return config.writeTimeoutMs;
    },
    get bodyIdleTimeoutMs() {
      return config.bodyTimeoutMs;
    },
    get headersSize() {
      return config.headersSize;
    },
    access,
    upgrade,
  };
  const proxy = (request: Request, client: ClientInfo, domain: ServerDomain, auth: ClientAuth) =>
    proxyRequest(request, client, domain, { ...proxyDeps, auth });

  const sessionOptions = {
    sealer,
    budget: clientFailures,
    get lifetimeMs() {
      return config.sessionLifetimeMs;
    },
    now: () => now().getTime(),
  };
  const routerContext: RouterContext = {
    service: () => config.service,
    unavailable: () => config.unavailable,
    logDisconnected: () => config.logDisconnected,
    lookup: (name) => domains.get(name),
    agent: acceptAgent,
    authenticate: (request, client, domain) =>
      authenticateClient(request, client.remoteAddr.hostname, domain, sessionOptions),
    proxy,
    refused: (request, client, status, reason) =>
      access(request, client, { id: crypto.randomUUID(), status, in: 0, out: 52, reason }),
    now,
  };
  let stopping = false;
  // Gives the memory of a load back once the server falls quiet (issue 7).
  const reducer = new MemoryReducer();
  const handler = (request: Request, info: { remoteAddr: Deno.NetAddr }): Promise<Response> => {
    reducer.touch();
    // While draining (ODD-33) no new work is taken; the client may retry another server.
    if (stopping) {
      return Promise.resolve(
        new Response(null, { status: 503, headers: { connection: "close", "retry-after": "1" } }),
      );
    }
    return route(request, info.remoteAddr, routerContext);
  };

  const listeners: ListenerHandle[] = [];
  try {
    await watcher.start();
    for (const entry of config.listen) {
      const store = new CertStore(entry.certificates, {
        compile: (pattern) => compilePattern(pattern),
        onEvent: (event) =>
          event.type === "certificate-failed"
            ? logger.warn({ ...event, event: "certificate", mode })
            : logger.info({ ...event, event: "certificate", mode }),
      });
      const listener = await startListener(
        { hostname: entry.hostname, port: entry.port, store },
        handler,
        {
          // `when: "start"` settings (CLI-10): a reload does not change them.
          readTimeoutMs: config.readTimeoutMs,
          idleTimeoutMs: config.idleTimeoutMs,
          onError: (error) =>
            logger.emit(listenFailedEvent({ listen: entry.address, error, mode })),
          // groom 1.3's listen event, plus the bound `address` (the real port when 0 was asked).
          onListen: (addr) => {
            const event = listenEvent({
              listen: entry.address,
              certificates: entry.certificatesText,
              mode,
            });
            logger.info({ ...event.record, address: addressText(addr) });
          },
        },
      );
      listeners.push(listener);
    }
  } catch (error) {
    reducer[Symbol.dispose](); // startup aborted: nothing else will
    throw error;
  }

  const close = async (): Promise<void> => {
    // Drain first (ODD-33): closing the listeners would close the agent tunnels (Deno's shutdown
    // ends upgraded WebSockets), so requests in flight finish over them before that.
    stopping = true;
    const deadline = performance.now() + DRAIN_GRACE_MS;
    const busy = () => [...domains.values()].some((domain) => (domain.tunnel?.mux.size ?? 0) > 0);
    while (busy() && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    await Promise.all(listeners.map((listener) => listener.close()));
    for (const domain of domains.values()) {
      domain.tunnel?.close(CLOSE_GOING_AWAY, "server stopping");
    }
    await watcher.close();
    reducer[Symbol.dispose]();
  };
  return {
    listeners: listeners.map((listener) => listener.addr),
    domain: (name) => domains.get(name),
    whenConnected(name) {
      if (domains.get(name)?.tunnel) return Promise.resolve();
      return new Promise((resolve) => {
        const list = waiters.get(name) ?? [];
        list.push(resolve);
        waiters.set(name, list);
      });
    },
    rescan: () => watcher.scan(),
    reload(next) {
      config = next;
      watcher.invalidate();
      watcher.scan();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
