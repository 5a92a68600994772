/**
 * One tunnelled stream on the agent (AGT-2…AGT-4): wait for the request head (`read_timeout`,
 * AGT-3), parse it strictly (400 when it cannot be parsed), choose the target (502 when none
 * matches), and hand the exchange to `backend.ts`. A {@linkcode SessionGroup} runs the sessions
 * of one tunnel: it enforces the domain's `concurrency` (ODD-4: beyond it a stream is answered
 * with the synthetic 502 the README promises), logs the DEBUG stream events (LOG-10) and lets
 * the tunnel's owner wait for every session. Nothing throws out of a session.
 * @module
 */

import { type Frame, HttpParseError, parseRequestHead } from "../protocol/mod.ts";
import { type Logger, streamEvent } from "../log/mod.ts";
import type { Stream } from "../tunnel/mod.ts";
import {
  type BackendTimeouts,
  type ExchangeOutcome,
  type ExchangeStream,
  forwardRequest,
  requestPath,
  sendSyntheticStatus,
} from "./backend.ts";
import { BackendPool } from "./backend_pool.ts";
import { selectTarget, type Target } from "./targets.ts";

/** A tunnel stream as a session uses it. */
export interface SessionStream extends ExchangeStream {
  /** The stream id (PROTO-17), for the log events. */
  readonly id: number;
  /** Ends the stream locally without a message (PROTO-18). */
  finish(): void;
}

/**
 * A tunnel `Stream` as a session sees it: a read timeout becomes `"timeout"`, the end of the
 * stream (finished, aborted by either side, tunnel closed) becomes `undefined`.
 */
export function adaptStream(stream: Stream): SessionStream {
  return {
    id: stream.id,
    get signal() {
      return stream.signal;
    },
    async receive(options) {
      try {
        return (await stream.read(options)) ?? undefined;
      } catch (error) {
        if (error instanceof DOMException && error.name === "TimeoutError") return "timeout";
        return undefined;
      }
    },
    send: (flags, payload) => stream.send(flags, payload),
    abort: () => stream.abort(),
    finish: () => stream.finish(),
  };
}

/**
 * The routing a stream uses, captured when it starts: a domain update applies to streams that
 * start later, while streams in flight keep the targets they started with (DOM-10).
 */
export interface SessionRouting {
  /** The domain name (the domain file's name), for the log events. */
  readonly domain: string;
  /** The compiled targets, in `targets.active` order (AGT-4). */
  readonly targets: readonly Target[];
  /** The domain's `concurrency`: most streams served at once (ODD-4). */
  readonly concurrency: number;
}

/** What a session needs besides its stream and routing. */
export interface SessionOptions {
  /** The agent's timeouts, read when the stream starts (DIR-5). */
  readonly timeouts: BackendTimeouts;
  /** Receives the DEBUG stream events; none when absent. */
  readonly logger?: Logger;
  /** Extra trusted roots (PEM) for backend TLS (tests). */
  readonly caCerts?: readonly string[];
  /** Random source for the weighted backend choice (AGT-6). */
  readonly random?: () => number;
  /** Clock of the synthetic statuses' `Date`. */
  readonly now?: () => Date;
  /** Keep-alive pool of backend connections; none: a new connection per request (AGT-9). */
  readonly pool?: BackendPool;
}

/** How a session ended. */
export type SessionOutcome =
  | ExchangeOutcome
  /** No request head came within `read_timeout` (or the stream went away first). */
  | { readonly kind: "no-head"; readonly reason: string };

/**
 * Runs one stream: the request head is `first` when the tunnel hands it over with the stream,
 * else the first message read. Always ends the stream (`finish()`, or ABRT already sent) and
 * never throws.
 */
export async function runSession(
  stream: SessionStream,
  routing: SessionRouting,
  options: SessionOptions & { readonly first?: Frame },
): Promise<SessionOutcome> {
  try {
    return await serve(stream, routing, options);
  } catch (error) {
    // Defensive: backend.ts never throws; a bug must not take the tunnel down.
    stream.abort();
    return { kind: "aborted", reason: error instanceof Error ? error.message : String(error) };
  } finally {
    stream.finish();
  }
}

async function serve(
  stream: SessionStream,
  routing: SessionRouting,
  options: SessionOptions & { readonly first?: Frame },
): Promise<SessionOutcome> {
  const now = (): Date => options.now?.() ?? new Date();
  let first = options.first;
  while (first === undefined) {
    const message = await stream.receive({ timeoutMs: options.timeouts.readTimeoutMs });
    if (message === undefined) return { kind: "no-head", reason: "stream closed" };
    if (message === "timeout") {
      return {
        kind: "no-head",
        reason: `No request head within ${options.timeouts.readTimeoutMs} ms`,
      };
    }
    if (message.kind === "abort") return { kind: "no-head", reason: "stream aborted" };
    if (message.kind === "head") first = message;
  }
  if (first.kind !== "head") return { kind: "no-head", reason: "the first message is not a head" };
  let parsed;
  try {
    parsed = parseRequestHead(first.payload);
  } catch (error) {
    if (!(error instanceof HttpParseError)) throw error;
    await sendSyntheticStatus(stream, 400, now());
    return { kind: "synthetic", status: 400, reason: error.message };
  }
  const head = parsed.head;
  const path = requestPath(head.target);
  if (path === undefined) {
    await sendSyntheticStatus(stream, 400, now());
    return { kind: "synthetic", status: 400, reason: "Cannot decode the request path" };
  }
  const target = selectTarget(routing.targets, head.method, path);
  if (target === undefined) {
    await sendSyntheticStatus(stream, 502, now());
    return { kind: "synthetic", status: 502, reason: "No target matches the request" };
  }
  return await forwardRequest(stream, { head, target, path }, {
    timeouts: options.timeouts,
    ...(options.caCerts === undefined ? {} : { caCerts: options.caCerts }),
    ...(options.random === undefined ? {} : { random: options.random }),
    now,
    ...(options.pool === undefined ? {} : { pool: options.pool }),
  });
}

/** Options of a {@linkcode SessionGroup}. */
export interface SessionGroupOptions {
  /** What each session needs; asked when a stream starts, so a reload applies to new streams. */
  readonly sessionOptions: () => SessionOptions;
  /** Called with each session's outcome (tests, diagnostics); must not throw. */
  readonly onOutcome?: (stream: number, outcome: SessionOutcome) => void;
  /**
   * Keep-alive pool of backend connections for the sessions (issue 7): a pool owned by the
   * caller (not closed by the group), `false` for a new connection per request as groom 1.3 did
   * (AGT-9), or absent: the group keeps its own pool and closes it in {@linkcode
   * SessionGroup.settled}. A `pool` in the session options wins over this one.
   */
  readonly pool?: BackendPool | false;
}

/**
 * The sessions of one tunnel. {@linkcode start} runs a session for a new stream, or answers the
 * synthetic 502 at once when `routing.concurrency` sessions are already active (ODD-4).
 */
export class SessionGroup {
  readonly #options: SessionGroupOptions;
  readonly #running = new Set<Promise<void>>();
  readonly #refusals = new Set<Promise<void>>();
  readonly #pool: BackendPool | undefined;
  /** Whether the group made `#pool` (and so closes it). */
  readonly #ownsPool: boolean;

  /** Creates an empty group. */
  constructor(options: SessionGroupOptions) {
    this.#options = options;
    this.#ownsPool = options.pool === undefined;
    this.#pool = options.pool === undefined
      ? new BackendPool()
      : options.pool === false
      ? undefined
      : options.pool;
  }

  /** Number of sessions running. */
  get active(): number {
    return this.#running.size;
  }

  /** Starts the session of a new stream with the routing in force now (DOM-10). */
  start(stream: SessionStream, routing: SessionRouting, first?: Frame): void {
    const given = this.#options.sessionOptions();
    const options = given.pool === undefined && this.#pool !== undefined
      ? { ...given, pool: this.#pool }
      : given;
    const logger = options.logger;
    if (this.#running.size >= routing.concurrency) {
      const refused = (async () => {
        await sendSyntheticStatus(stream, 502, options.now?.() ?? new Date());
        stream.finish();
        this.#report(stream.id, {
          kind: "synthetic",
          status: 502,
          reason: `More than ${routing.concurrency} streams at once`,
        });
      })();
      // Refusals are not sessions: they do not count against the cap, but close() awaits them.
      this.#track(refused);
      return;
    }
    logger?.emit(
      streamEvent({ action: "activate", domain: routing.domain, mode: "agent", stream: stream.id }),
    );
    const session = (async () => {
      const outcome = await runSession(stream, routing, {
        ...options,
        ...(first === undefined ? {} : { first }),
      });
      logger?.emit(
        streamEvent({
          action: "shutdown",
          domain: routing.domain,
          mode: "agent",
          stream: stream.id,
        }),
      );
      this.#report(stream.id, outcome);
    })();
    this.#track(session, true);
  }

  /**
   * Resolves once every session started so far has ended; then the group's own pool is closed
   * (its idle backend connections with it): the tunnel's owner waits here when the tunnel is
   * gone or the agent stops, and a session started later gets a new connection per request.
   */
  async settled(): Promise<void> {
    while (this.#running.size > 0 || this.#refusals.size > 0) {
      await Promise.all([...this.#running, ...this.#refusals]);
    }
    if (this.#ownsPool) this.#pool?.close();
  }

  #track(task: Promise<void>, counted = false): void {
    const set = counted ? this.#running : this.#refusals;
    const tracked = task.catch(() => {}).finally(() => set.delete(tracked));
    set.add(tracked);
  }

  #report(stream: number, outcome: SessionOutcome): void {
    try {
      this.#options.onOutcome?.(stream, outcome);
    } catch {
      // A listener's failure must not end the session's bookkeeping.
    }
  }
}
