/**
 * The agent (section 9): watches its domains folder and keeps one tunnel per active domain file
 * (PROTO-1), each in its own connection task with back-off (AGT-1, ODD-34), forwarding the
 * streams the server starts to the domain's backends (AGT-2…AGT-14). Deactivating or deleting a
 * domain file closes its tunnel (DOM-9); a change of its connection settings reconnects; target
 * changes apply to new streams (DOM-10). `startAgent` is the entry point used by `main.ts` and
 * the tests; the other exports are the building blocks the integration tests replay recordings
 * through.
 *
 * @example
 * ```ts
 * await using agent = await startAgent(config, { logger });
 * await agent.whenConnected("www.domain.com");
 * ```
 * @module
 */

import {
  type AgentConfig,
  type AgentDomainConfig,
  type DomainLoadOptions,
  formatProblem,
  loadDomainConfig,
} from "../config/mod.ts";
import { type DomainEvent, DomainWatcher } from "../domains/mod.ts";
import { domainEvent, errorEvent, errorText, type Logger } from "../log/mod.ts";
import { MemoryReducer } from "../sys/mod.ts";
import type { BackendTimeouts } from "./backend.ts";
import {
  AGENT_PROTOCOLS_ENV,
  CLOSE_GOING_AWAY,
  CLOSE_NORMAL,
  type ConnectorEvent,
  type DialFunction,
  DomainConnector,
  parseAgentProtocols,
} from "./connector.ts";

export {
  BackendRequestError,
  type BackendTimeouts,
  type ExchangeOutcome,
  type ExchangeStream,
  type ForwardOptions,
  forwardRequest,
  MAX_INTERIM_RESPONSES,
  MAX_RESPONSE_HEAD_SIZE,
  planBackendRequest,
  requestPath,
  sendSyntheticStatus,
} from "./backend.ts";
export {
  adaptStream,
  runSession,
  SessionGroup,
  type SessionGroupOptions,
  type SessionOptions,
  type SessionOutcome,
  type SessionRouting,
  type SessionStream,
} from "./session.ts";
export {
  AGENT_PROTOCOLS,
  AGENT_PROTOCOLS_ENV,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  BACKOFF_RESET_AFTER_MS,
  backoffDelay,
  CLOSE_GOING_AWAY,
  CLOSE_NORMAL,
  type ConnectorEvent,
  type ConnectorOptions,
  DIAL_TIMEOUT_MS,
  type DialFunction,
  type DialPlan,
  dialPlan,
  DomainConnector,
  parseAgentProtocols,
} from "./connector.ts";
export {
  type CompiledTargets,
  compileTargets,
  hostHeader,
  pickBackend,
  rewriteRequest,
  selectTarget,
  type Target,
  type TargetConfig,
} from "./targets.ts";
export {
  connectWebSocket,
  type ConnectWebSocketOptions,
  type WebSocketConnection,
  WebSocketDialError,
} from "./ws_client.ts";

/**
 * Longest wait for streams in flight when the agent stops (ODD-33); below the CLI's 10 s stop
 * bound so tunnels still close with a status code and the stop event is logged.
 */
export const STOP_DRAIN_MS = 8_000;

/** What the agent reports besides its log lines (tests wait on these). */
export type AgentEvent =
  | ConnectorEvent
  | { readonly type: "load" | "update" | "remove"; readonly domain: string }
  | { readonly type: "invalid"; readonly domain: string; readonly error: string };

/** What the agent needs from its surroundings. */
export interface AgentDeps {
  /** The system logger (LOG-10 events). */
  readonly logger: Logger;
  /** Extra trusted roots (PEM) for the server's and the backends' certificates (tests). */
  readonly caCerts?: readonly string[];
  /** Random source of the back-off and the weighted backend choice. */
  readonly random?: () => number;
  /** Clock of the synthetic statuses' `Date`. */
  readonly now?: () => Date;
  /** Back-off wait; tests make it instant. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Dials the server; default the agent's WebSocket client. */
  readonly dial?: DialFunction;
  /** How domain files are read (macro permissions, include roots). */
  readonly loadOptions?: DomainLoadOptions;
  /** Period of the safety-net rescan of the domains folder (DOM-2); default 5 s. */
  readonly rescanMs?: number;
  /** Watch the folder for changes (default true). */
  readonly watch?: boolean;
  /** Receives every {@linkcode AgentEvent}; must not throw. */
  readonly onEvent?: (event: AgentEvent) => void;
  /**
   * Sub-protocols to offer, in order (`["groom"]` forces protocol v1). Default: the
   * `GROOM_AGENT_PROTOCOLS` environment variable when set, else `AGENT_PROTOCOLS`.
   */
  readonly protocols?: readonly string[];
}

/** A running agent. */
export interface AgentHandle extends AsyncDisposable {
  /**
   * Applies a reloaded main configuration (SIGHUP, CLI-10): timeouts for new streams, and the
   * domains folder, which is scanned again at once (every file re-read).
   */
  reload(config: AgentConfig): Promise<void>;
  /** Scans the domains folder now; resolves when the scan is done. */
  scan(): Promise<void>;
  /** Whether the tunnel of `domain` is up. */
  isConnected(domain: string): boolean;
  /**
   * Resolves when the tunnel of `domain` is up (at once if it is); rejects with the signal's
   * reason, or when the agent closes first.
   */
  whenConnected(domain: string, options?: { readonly signal?: AbortSignal }): Promise<void>;
  /** Names of the domains that have a connection task (active domains). */
  readonly domains: readonly string[];
  /** Closes every tunnel with status 1001, stops every task and waits for them. */
  close(): Promise<void>;
}

interface Waiter {
  readonly domain: string;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/** The running agent behind {@linkcode AgentHandle}. */
class Agent implements AgentHandle {
  readonly #deps: AgentDeps;
  #config: AgentConfig;
  readonly #watcher: DomainWatcher<AgentDomainConfig>;
  readonly #connectors = new Map<string, DomainConnector>();
  /** Connectors being closed, by domain: a new task for the name waits for the old one. */
  readonly #closing = new Map<string, Promise<void>>();
  readonly #starting = new Set<Promise<void>>();
  #waiters: Waiter[] = [];
  #closed = false;
  readonly #protocols: readonly string[] | undefined;
  /** Gives the memory of a load back once the agent falls quiet (issue 7). */
  readonly #reducer = new MemoryReducer();

  constructor(config: AgentConfig, deps: AgentDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#protocols = deps.protocols ?? protocolsFromEnvironment();
    this.#watcher = new DomainWatcher<AgentDomainConfig>({
      folder: () => this.#config.domains,
      load: async (file) => {
        const loaded = await loadDomainConfig(file.path, "agent", deps.loadOptions);
        for (const problem of loaded.problems) {
          deps.logger.emit(
            errorEvent({
              domain: file.path,
              error: formatProblem(problem),
              mode: "agent",
            }),
          );
        }
        // The watcher's lower-cased file name is the domain's name everywhere (DOM-3, ODD-13).
        return { config: { ...loaded.config, name: file.name }, hash: loaded.document.hash };
      },
      onEvent: (event) => this.#domainEvent(event),
      ...(deps.rescanMs === undefined ? {} : { rescanMs: deps.rescanMs }),
      ...(deps.watch === undefined ? {} : { watch: deps.watch }),
    });
  }

  get domains(): readonly string[] {
    return [...this.#connectors.keys()];
  }

  start(): Promise<void> {
    return this.#watcher.start();
  }

  async reload(config: AgentConfig): Promise<void> {
    if (this.#closed) return;
    this.#config = config;
    this.#watcher.invalidate();
    await this.#watcher.scan();
  }

  scan(): Promise<void> {
    return this.#watcher.scan();
  }

  isConnected(domain: string): boolean {
    return this.#connectors.get(domain.toLowerCase())?.connected ?? false;
  }

  whenConnected(domain: string, options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.isConnected(domain)) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error("Cannot wait: the agent is closed"));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onAbort = (): void => {
      this.#waiters = this.#waiters.filter((waiter) => waiter !== entry);
      reject(signal?.reason);
    };
    const entry: Waiter = {
      domain: domain.toLowerCase(),
      resolve: () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      reject: (reason) => {
        signal?.removeEventListener("abort", onAbort);
        reject(reason);
      },
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#waiters.push(entry);
    return promise;
  }

  async close(): Promise<void> {
    if (this.#closed) {
      await Promise.all([...this.#closing.values()]);
      return;
    }
    this.#closed = true;
    this.#reducer[Symbol.dispose]();
    await this.#watcher.close();
    await Promise.all([...this.#starting]);
    for (const [name, connector] of this.#connectors) {
      this.#retire(name, connector, CLOSE_GOING_AWAY, "agent stopping", STOP_DRAIN_MS);
    }
    const error = new Error("Cannot wait: the agent is closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    await Promise.all([...this.#closing.values()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #emit(event: AgentEvent): void {
    try {
      this.#deps.onEvent?.(event);
    } catch {
      // A listener's failure must not disturb the agent.
    }
  }

  #timeouts(): BackendTimeouts {
    const { connectTimeoutMs, readTimeoutMs, writeTimeoutMs } = this.#config;
    return { connectTimeoutMs, readTimeoutMs, writeTimeoutMs };
  }

  #domainEvent(event: DomainEvent<AgentDomainConfig>): void {
    const logger = this.#deps.logger;
    switch (event.type) {
      case "load":
      case "update": {
        logger.emit(domainEvent({ action: event.type, domain: event.name, mode: "agent" }));
        this.#emit({ type: event.type, domain: event.name });
        this.#apply(event.name, event.config);
        return;
      }
      case "remove": {
        this.#emit({ type: "remove", domain: event.name });
        const connector = this.#connectors.get(event.name);
        if (connector !== undefined) {
          this.#retire(event.name, connector, CLOSE_NORMAL, "domain file removed");
        }
        return;
      }
      case "error": {
        const text = event.error instanceof SyntaxError
          ? `configuration syntax error: ${event.error.message}`
          : errorText(event.error);
        logger.emit(errorEvent({ domain: event.path, error: text, mode: "agent" }));
        this.#emit({ type: "invalid", domain: event.name, error: text });
        return;
      }
      case "invalid":
        logger.emit(errorEvent({ domain: event.path, error: event.reason, mode: "agent" }));
        return;
      case "folder-error":
        logger.emit(
          errorEvent({ domain: event.folder, error: event.error, mode: "agent" }),
        );
        return;
    }
  }

  /** Starts, updates or stops the connection task of a (re)loaded domain (DOM-9, DOM-10). */
  #apply(name: string, config: AgentDomainConfig): void {
    if (this.#closed) return;
    const connector = this.#connectors.get(name);
    if (!config.active) {
      if (connector !== undefined) this.#retire(name, connector, CLOSE_NORMAL, "domain inactive");
      return;
    }
    if (connector !== undefined) {
      connector.update(config);
      return;
    }
    const created = new DomainConnector({
      domain: config,
      timeouts: () => this.#timeouts(),
      logger: this.#deps.logger,
      onEvent: (event) => this.#connectorEvent(event),
      onStream: () => this.#reducer.touch(),
      ...this.#optional(),
    });
    this.#connectors.set(name, created);
    const previous = this.#closing.get(name);
    if (previous === undefined) {
      created.start();
      return;
    }
    // The old tunnel of this name must be gone first: a server allows one agent per domain.
    const starting = previous.then(() => {
      if (this.#connectors.get(name) === created && !this.#closed) created.start();
    });
    const tracked = starting.finally(() => this.#starting.delete(tracked));
    this.#starting.add(tracked);
  }

  #optional(): Partial<
    Pick<
      ConstructorParameters<typeof DomainConnector>[0],
      "caCerts" | "random" | "now" | "sleep" | "dial" | "protocols"
    >
  > {
    const { caCerts, random, now, sleep, dial } = this.#deps;
    return {
      ...(caCerts === undefined ? {} : { caCerts }),
      ...(random === undefined ? {} : { random }),
      ...(now === undefined ? {} : { now }),
      ...(sleep === undefined ? {} : { sleep }),
      ...(dial === undefined ? {} : { dial }),
      ...(this.#protocols === undefined ? {} : { protocols: this.#protocols }),
    };
  }

  #retire(
    name: string,
    connector: DomainConnector,
    code: number,
    reason: string,
    drainMs = 0,
  ): void {
    if (this.#connectors.get(name) === connector) this.#connectors.delete(name);
    const previous = this.#closing.get(name) ?? Promise.resolve();
    const closing = previous.then(() => connector.close(code, reason, drainMs)).finally(() => {
      if (this.#closing.get(name) === closing) this.#closing.delete(name);
    });
    this.#closing.set(name, closing);
  }

  #connectorEvent(event: ConnectorEvent): void {
    if (event.type === "connect") {
      const ready = this.#waiters.filter((waiter) => waiter.domain === event.domain);
      this.#waiters = this.#waiters.filter((waiter) => waiter.domain !== event.domain);
      for (const waiter of ready) waiter.resolve();
    }
    this.#emit(event);
  }
}

/**
 * The sub-protocols `GROOM_AGENT_PROTOCOLS` asks for, or `undefined` when it is unset or the
 * environment may not be read. Throws `TypeError` for a value `parseAgentProtocols` refuses.
 */
function protocolsFromEnvironment(): readonly string[] | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get(AGENT_PROTOCOLS_ENV);
  } catch {
    return undefined; // No --allow-env: the default offer.
  }
  return value === undefined ? undefined : parseAgentProtocols(value);
}

/**
 * Starts the agent: scans `config.domains` (DOM-2) and opens a tunnel for every active domain
 * file, then keeps watching the folder. Resolves once the first scan is done (tunnels are still
 * being dialled; use `whenConnected`).
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<AgentHandle> {
  const agent = new Agent(config, deps);
  try {
    await agent.start();
  } catch (error) {
    await agent.close();
    throw error;
  }
  return agent;
}
