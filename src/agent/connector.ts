/**
 * One task per active agent domain (AGT-1 with ODD-34 fixed): dial `wss://<remote><service>`,
 * run the tunnel until it closes, then dial again after an exponential back-off with full
 * jitter, independently of every other domain. The domain the agent registers is its domain
 * file's name (issue 3): TCP and TLS go to `remote`, while the `Host` header is
 * `<file name>:<remote port>` and the TLS server name is the file name, so a `remote` of
 * `127.0.0.1:8443` works without DNS tricks and a groom 1.3 server still sees the Host it
 * expects (with the default `remote`, both are exactly groom 1.3's). A change of `secret`,
 * `remote`, `service` or `insecure` reconnects with the new values (ODD-12 spirit); target and
 * concurrency changes apply to streams that start later (DOM-10).
 * @module
 */

import type { AgentDomainConfig } from "../config/mod.ts";
import { domainEvent, errorEvent, errorText, type Logger } from "../log/mod.ts";
import { Subprotocol } from "../protocol/mod.ts";
import { Mux, type Stream, type TunnelEvent } from "../tunnel/mod.ts";
import { type BackendTimeouts } from "./backend.ts";
import { adaptStream, SessionGroup, type SessionOptions, type SessionRouting } from "./session.ts";
import { compileTargets } from "./targets.ts";
import {
  connectWebSocket,
  type ConnectWebSocketOptions,
  type WebSocketConnection,
} from "./ws_client.ts";

/**
 * Sub-protocols the agent offers, in order of preference: protocol v2 (`groom2`, flow control,
 * issue 6), which a groom-for-Deno server picks, then v1 (`groom`), which a groom 1.3 server picks
 * (it selects the last offer equal to `groom`, PROTO-8).
 */
export const AGENT_PROTOCOLS: readonly string[] = [Subprotocol.V2, Subprotocol.V1];

/**
 * Environment variable that overrides the offered sub-protocols, e.g. `GROOM_AGENT_PROTOCOLS=groom`
 * forces protocol v1 against a v2 server (interoperability tests of issue 6).
 */
export const AGENT_PROTOCOLS_ENV = "GROOM_AGENT_PROTOCOLS";

/**
 * Parses a list of sub-protocols to offer (`groom2, groom`, `groom`): separated by commas or
 * spaces, each one of {@linkcode AGENT_PROTOCOLS}, at least one.
 *
 * @throws {TypeError} naming the unknown sub-protocol, or when the list is empty.
 */
export function parseAgentProtocols(value: string): readonly string[] {
  const protocols = value.split(/[,\s]+/).filter((piece) => piece !== "");
  const unknown = protocols.find((protocol) => !AGENT_PROTOCOLS.includes(protocol));
  if (unknown !== undefined || protocols.length === 0) {
    throw new TypeError(
      `Cannot use ${AGENT_PROTOCOLS_ENV}="${value}": ${
        unknown === undefined ? "no sub-protocol given" : `unknown sub-protocol "${unknown}"`
      } (known: ${AGENT_PROTOCOLS.join(", ")})`,
    );
  }
  return [...new Set(protocols)];
}

/** The dial budget: connect, TLS, request and answer (PROTO-2). */
export const DIAL_TIMEOUT_MS = 10_000;

/** First back-off ceiling after a failure: short, so a restarted server is found at once. */
export const BACKOFF_INITIAL_MS = 500;

/** Largest back-off ceiling: a server down for long is still retried every minute or less. */
export const BACKOFF_MAX_MS = 60_000;

/**
 * A tunnel that lived this long counts as healthy: the back-off starts again from
 * {@linkcode BACKOFF_INITIAL_MS} after it closes. Shorter-lived tunnels keep growing the delay,
 * so a server that accepts and drops at once is not hammered.
 */
export const BACKOFF_RESET_AFTER_MS = 30_000;

/** Close code when the agent stops (RFC 6455 §7.4.1: going away). */
export const CLOSE_GOING_AWAY = 1001;

/** Close code when the domain is deactivated or its connection settings change (normal closure). */
export const CLOSE_NORMAL = 1000;

/**
 * The delay before reconnection attempt `attempt` (0 for the first retry): "full jitter",
 * uniform in [0, min({@linkcode BACKOFF_MAX_MS}, {@linkcode BACKOFF_INITIAL_MS} × 2^attempt)),
 * so agents that lost the same server do not come back in lock-step.
 *
 * @param random returns a number in [0, 1), like `Math.random`.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.min(Math.max(random(), 0), 1) * ceiling);
}

/** The dial parameters of a domain (PROTO-2, PROTO-3, issue 3). */
export interface DialPlan {
  /** `wss://<remote><service>`. */
  readonly url: string;
  /** `Host` header: `<domain file name>:<remote port>`. */
  readonly host: string;
  /** TLS server name (SNI and verification): the domain file name. */
  readonly serverName: string;
  /** `Authorization: Bearer <secret>`. */
  readonly headers: readonly (readonly [string, string])[];
  /** Skip the server certificate check (DIR-6 `insecure`). */
  readonly insecure: boolean;
}

/**
 * Where and how a domain dials (PROTO-2, issue 3): TCP/TLS to `remote`, `Host` =
 * `<name>:<remote port>` (443 when `remote` has none), SNI = `name`, the secret as a bearer token.
 *
 * @throws {TypeError} when `remote` and `service` do not form a valid URL.
 */
export function dialPlan(
  domain: Pick<AgentDomainConfig, "name" | "remote" | "service" | "secret" | "insecure">,
): DialPlan {
  const url = new URL(`wss://${domain.remote}${domain.service}`);
  if (url.host === "" || url.username !== "" || url.password !== "") {
    throw new TypeError(`Cannot dial "${domain.remote}": remote must be host:port`);
  }
  const port = url.port === "" ? "443" : url.port;
  const name = domain.name.toLowerCase();
  const hostName = name.includes(":") ? `[${name}]` : name;
  return {
    url: url.href,
    host: `${hostName}:${port}`,
    serverName: name,
    headers: [["Authorization", `Bearer ${domain.secret}`]],
    insecure: domain.insecure,
  };
}

/** Whether two configurations dial differently (so a live tunnel must reconnect). */
function dialChanged(a: AgentDomainConfig, b: AgentDomainConfig): boolean {
  return a.secret !== b.secret || a.remote !== b.remote || a.service !== b.service ||
    a.insecure !== b.insecure;
}

/** What a connector reports, besides its log lines. */
export type ConnectorEvent =
  | { readonly type: "connect"; readonly domain: string; readonly remote: string }
  | {
    readonly type: "disconnect";
    readonly domain: string;
    readonly remote: string;
    /** Why the tunnel closed. */
    readonly reason: string;
  }
  | {
    readonly type: "error";
    readonly domain: string;
    readonly remote: string;
    /** PROTO-5 text, e.g. `websocket: invalid protocol upgrade (status 404)`. */
    readonly error: string;
    /** Delay before the next attempt. */
    readonly retryInMs: number;
  };

/** The dial function (defaults to the agent's WebSocket client). */
export type DialFunction = (
  url: string,
  options: ConnectWebSocketOptions,
) => Promise<WebSocketConnection>;

/** Options of a {@linkcode DomainConnector}. */
export interface ConnectorOptions {
  /** The domain's settings as loaded; `update()` replaces them. */
  readonly domain: AgentDomainConfig;
  /** The agent's timeouts, read when each stream starts (DIR-5 "request"). */
  readonly timeouts: () => BackendTimeouts;
  /** The system logger (connect, disconnect and error events; DEBUG stream events). */
  readonly logger: Logger;
  /** Extra trusted roots (PEM) for the server and backend certificates (tests). */
  readonly caCerts?: readonly string[];
  /** Random source of the back-off and the weighted backend choice. */
  readonly random?: () => number;
  /** Waits `ms` or until `signal` aborts; never rejects. Tests make it instant. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Monotonic clock in ms, for {@linkcode BACKOFF_RESET_AFTER_MS}; default `performance.now`. */
  readonly monotonicNow?: () => number;
  /** Clock of the synthetic statuses' `Date`. */
  readonly now?: () => Date;
  /** Dials the server; default {@linkcode connectWebSocket}. */
  readonly dial?: DialFunction;
  /** Extra WebSocket options (keep-alive timings in tests). */
  readonly webSocket?: Partial<Pick<ConnectWebSocketOptions, "pingIntervalMs" | "idleTimeoutMs">>;
  /** Receives the connector's events; must not throw. */
  readonly onEvent?: (event: ConnectorEvent) => void;
  /** Sub-protocols offered, in order; default {@linkcode AGENT_PROTOCOLS}. */
  readonly protocols?: readonly string[];
  /** Called for each new stream (the agent's memory reducer counts them); must be cheap. */
  readonly onStream?: () => void;
}

/** Waits `ms` or until `signal` aborts. */
function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Keeps one domain's tunnel up: dials, runs a `Mux` (role agent) whose streams become sessions,
 * and reconnects with back-off. Start it with {@linkcode start}; {@linkcode close} stops it.
 */
export class DomainConnector {
  readonly #options: ConnectorOptions;
  #domain: AgentDomainConfig;
  #routing: SessionRouting;
  /** Aborted by `close()`: stops everything. */
  readonly #stop = new AbortController();
  /** Aborted to cut a back-off wait or a dial short when the dial settings change. */
  #redial = new AbortController();
  #task: Promise<void> | undefined;
  #connection: WebSocketConnection | undefined;
  #closeCode: { code: number; reason: string } = { code: CLOSE_NORMAL, reason: "" };
  /** Sessions of the live tunnel, for a draining stop. */
  #group: SessionGroup | undefined;
  /** Set while a stop drains: new streams are refused. */
  #draining = false;
  /** Why the last dial failed. */
  #lastError: unknown;

  /** Creates the connector of `options.domain`; nothing happens before {@linkcode start}. */
  constructor(options: ConnectorOptions) {
    this.#options = options;
    this.#domain = options.domain;
    this.#routing = this.#compile(options.domain);
  }

  /** The domain's name (its file name). */
  get name(): string {
    return this.#domain.name;
  }

  /** Whether the tunnel is up. */
  get connected(): boolean {
    return this.#connection !== undefined;
  }

  /** Starts the connection task (once). */
  start(): void {
    this.#task ??= this.#run().catch((error) => {
      // #run handles its failures; this only guards against a bug ending the task silently.
      this.#options.logger.emit(
        errorEvent({ domain: this.name, error, mode: "agent", remote: this.#domain.remote }),
      );
    });
  }

  /**
   * Applies a new version of the domain file. Routing (targets, concurrency) applies to streams
   * that start from now on (DOM-10); a change of `secret`, `remote`, `service` or `insecure`
   * closes the live tunnel and dials again at once with the new values.
   */
  update(domain: AgentDomainConfig): void {
    const previous = this.#domain;
    this.#domain = domain;
    this.#routing = this.#compile(domain);
    if (!dialChanged(previous, domain)) return;
    this.#redial.abort();
    this.#connection?.close(CLOSE_NORMAL, "domain settings changed");
  }

  /**
   * Stops the task: closes the tunnel with `code` (default {@linkcode CLOSE_GOING_AWAY}), shuts
   * its streams (DOM-11), and resolves once the task and every session have ended.
   */
  async close(code = CLOSE_GOING_AWAY, reason = "agent stopping", drainMs = 0): Promise<void> {
    // A stopping agent first lets the streams in flight finish (ODD-33), refusing new ones.
    const group = this.#group;
    if (drainMs > 0 && group !== undefined && !this.#stop.signal.aborted) {
      this.#draining = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        group.settled(),
        new Promise((resolve) => timer = setTimeout(resolve, drainMs)),
      ]);
      clearTimeout(timer);
    }
    if (!this.#stop.signal.aborted) {
      this.#closeCode = { code, reason };
      this.#stop.abort();
      this.#redial.abort();
      this.#connection?.close(code, reason);
    }
    await this.#task;
  }

  #compile(domain: AgentDomainConfig): SessionRouting {
    const { targets, problems } = compileTargets(domain.targets);
    for (const problem of problems) {
      this.#options.logger.emit(
        errorEvent({ domain: domain.name, error: problem, mode: "agent" }),
      );
    }
    return { domain: domain.name, targets, concurrency: domain.concurrency };
  }

  #emit(event: ConnectorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A listener's failure must not stop the connection task.
    }
  }

  async #run(): Promise<void> {
    const random = this.#options.random ?? Math.random;
    const sleep = this.#options.sleep ?? defaultSleep;
    const monotonicNow = this.#options.monotonicNow ?? (() => performance.now());
    let attempt = 0;
    while (!this.#stop.signal.aborted) {
      if (this.#redial.signal.aborted) this.#redial = new AbortController();
      const redial = this.#redial.signal;
      const domain = this.#domain;
      const connection = await this.#dial(domain, redial);
      if (this.#stop.signal.aborted) {
        connection?.close(this.#closeCode.code, this.#closeCode.reason);
        if (connection !== undefined) await connection.closed;
        break;
      }
      if (connection === undefined) {
        if (redial.aborted) {
          attempt = 0; // New settings: try them at once.
          continue;
        }
        const delay = backoffDelay(attempt++, random);
        this.#reportFailure(domain, this.#lastError, delay);
        await sleep(delay, AbortSignal.any([this.#stop.signal, this.#redial.signal]));
        if (this.#redial.signal.aborted) attempt = 0;
        continue;
      }
      const started = monotonicNow();
      await this.#serve(domain, connection);
      if (this.#stop.signal.aborted) break;
      if (this.#redial.signal.aborted || monotonicNow() - started >= BACKOFF_RESET_AFTER_MS) {
        attempt = 0;
      }
      if (this.#redial.signal.aborted) continue; // Settings changed: dial again at once.
      const delay = backoffDelay(attempt++, random);
      await sleep(delay, AbortSignal.any([this.#stop.signal, this.#redial.signal]));
      if (this.#redial.signal.aborted) attempt = 0;
    }
  }

  /** One dial attempt; `undefined` on failure (the error is kept in `#lastError`). */
  async #dial(
    domain: AgentDomainConfig,
    redial: AbortSignal,
  ): Promise<WebSocketConnection | undefined> {
    const dial = this.#options.dial ?? connectWebSocket;
    // The client keeps its signal to close the connection later (without a status code), so it
    // gets one that only covers the dial; close() and update() close the tunnel with a code.
    const dialing = new AbortController();
    const cancel = (): void => dialing.abort(new Error("dial cancelled"));
    const watched = AbortSignal.any([this.#stop.signal, redial]);
    watched.addEventListener("abort", cancel, { once: true });
    if (watched.aborted) cancel();
    try {
      const plan = dialPlan(domain);
      return await dial(plan.url, {
        host: plan.host,
        serverName: plan.serverName,
        headers: plan.headers,
        protocols: this.#options.protocols ?? AGENT_PROTOCOLS,
        insecure: plan.insecure,
        timeoutMs: DIAL_TIMEOUT_MS,
        signal: dialing.signal,
        ...(this.#options.caCerts === undefined ? {} : { caCerts: this.#options.caCerts }),
        ...this.#options.webSocket,
      });
    } catch (error) {
      this.#lastError = error;
      return undefined;
    } finally {
      watched.removeEventListener("abort", cancel);
    }
  }

  /** One WARN error event per failed attempt, with the PROTO-5 text (AGT-1). */
  #reportFailure(domain: AgentDomainConfig, error: unknown, retryInMs: number): void {
    this.#options.logger.emit(
      errorEvent({ domain: domain.name, error, mode: "agent", remote: domain.remote }),
    );
    this.#emit({
      type: "error",
      domain: domain.name,
      remote: domain.remote,
      error: errorText(error),
      retryInMs,
    });
  }

  /** Runs the tunnel until it closes and every session has ended. */
  async #serve(domain: AgentDomainConfig, connection: WebSocketConnection): Promise<void> {
    const logger = this.#options.logger;
    const group = new SessionGroup({ sessionOptions: () => this.#sessionOptions() });
    this.#group = group;
    // Built synchronously after the dial: the client delivers nothing before a handler is set.
    const mux = new Mux(connection, {
      role: "agent",
      onStream: (stream: Stream) => {
        this.#options.onStream?.();
        if (this.#draining) stream.abort("agent stopping");
        else group.start(adaptStream(stream), this.#routing);
      },
      onEvent: (event: TunnelEvent) => this.#tunnelEvent(domain, event),
    });
    this.#connection = connection;
    logger.emit(
      domainEvent({ action: "connect", domain: domain.name, mode: "agent", remote: domain.remote }),
    );
    // The protocol version in force (issue 6), as the server logs it.
    logger.info({
      event: "tunnel",
      mode: "agent",
      domain: domain.name,
      remote: domain.remote,
      protocol: mux.protocol,
    });
    this.#emit({ type: "connect", domain: domain.name, remote: domain.remote });
    // A close requested while the dial was finishing.
    if (this.#stop.signal.aborted) connection.close(this.#closeCode.code, this.#closeCode.reason);
    else if (this.#redial.signal.aborted) connection.close(CLOSE_NORMAL, "domain settings changed");
    const info = await mux.closed;
    this.#connection = undefined;
    this.#group = undefined;
    await connection.closed;
    await group.settled();
    logger.emit(
      domainEvent({
        action: "disconnect",
        domain: domain.name,
        mode: "agent",
        remote: domain.remote,
      }),
    );
    this.#emit({
      type: "disconnect",
      domain: domain.name,
      remote: domain.remote,
      reason: info.reason,
    });
  }

  #sessionOptions(): SessionOptions {
    const options = this.#options;
    return {
      timeouts: options.timeouts(),
      logger: options.logger,
      ...(options.caCerts === undefined ? {} : { caCerts: options.caCerts }),
      ...(options.random === undefined ? {} : { random: options.random }),
      ...(options.now === undefined ? {} : { now: options.now }),
    };
  }

  /** Tunnel trouble worth a line: malformed messages and aborted lagging streams. */
  #tunnelEvent(domain: AgentDomainConfig, event: TunnelEvent): void {
    let error: string | undefined;
    if (event.event === "malformed") {
      error = `Dropped a malformed tunnel message: ${event.error}`;
    } else if (event.event === "overflow") {
      error = event.scope === "window" || event.scope === "credit"
        ? `Aborted stream ${event.stream}: the server broke the flow control (${event.scope})`
        : `Aborted stream ${event.stream}: more than ${event.limit} bytes queued`;
    } else if (event.event === "callback-error") {
      error = `Aborted stream ${event.stream}: ${errorText(event.error)}`;
    }
    if (error === undefined) return;
    this.#options.logger.emit(
      errorEvent({ domain: domain.name, error, mode: "agent", remote: domain.remote }),
    );
  }
}
