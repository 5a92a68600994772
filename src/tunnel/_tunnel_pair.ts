/**
 * Test helper (not a test): a server `Mux` and an agent `Mux` joined by an in-memory transport
 * pair, recording their events and the streams the agent accepted.
 * @module
 */

import type { TunnelLimits } from "./flow.ts";
import { MemoryTransport } from "./memory_transport.ts";
import { Mux, type StreamIdCounter, type TunnelEvent } from "./mux.ts";
import type { Stream } from "./stream.ts";

/** Options of {@linkcode tunnelPair}. */
export interface TunnelPairOptions {
  /** Server id counter. */
  readonly counter?: StreamIdCounter;
  /** Server concurrency. */
  readonly concurrency?: number;
  /** Limits of both muxes. */
  readonly limits?: Partial<TunnelLimits>;
  /** Limits of the server mux only (override `limits`). */
  readonly serverLimits?: Partial<TunnelLimits>;
  /** Clock of both muxes. */
  readonly now?: () => number;
  /** Replaces the recording `onStream` of the agent. */
  readonly onStream?: (stream: Stream) => void;
  /** Sub-protocol of both ends: `groom` (v1, the default) or `groom2` (v2). */
  readonly protocol?: string;
}

/** Both ends of a tunnel over memory. */
export interface TunnelPair {
  readonly server: Mux;
  readonly agent: Mux;
  readonly serverSide: MemoryTransport;
  readonly agentSide: MemoryTransport;
  readonly serverEvents: TunnelEvent[];
  readonly agentEvents: TunnelEvent[];
  /** Resolves with the next stream the agent accepted, in order. */
  accepted(): Promise<Stream>;
  /** Lets every scheduled delivery happen. */
  idle(): Promise<void>;
  /** Closes both muxes and waits until both transports closed. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A payload of `length` bytes, all `fill`. */
export function bytes(length: number, fill = 0x61): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

/** Creates a server and an agent mux over a memory transport pair. */
export function tunnelPair(options: TunnelPairOptions = {}): TunnelPair {
  const [serverSide, agentSide] = MemoryTransport.pair(
    options.protocol === undefined ? {} : { protocol: options.protocol },
  );
  const serverEvents: TunnelEvent[] = [];
  const agentEvents: TunnelEvent[] = [];
  const streams: Stream[] = [];
  const waiting: ((stream: Stream) => void)[] = [];
  const limits = options.limits ?? {};
  const server = new Mux(serverSide, {
    role: "server",
    ...(options.counter === undefined ? {} : { counter: options.counter }),
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    limits: { ...limits, ...options.serverLimits },
    onEvent: (event) => serverEvents.push(event),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const agent = new Mux(agentSide, {
    role: "agent",
    limits,
    onEvent: (event) => agentEvents.push(event),
    onStream: options.onStream ?? ((stream) => {
      const next = waiting.shift();
      if (next === undefined) streams.push(stream);
      else next(stream);
    }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return {
    server,
    agent,
    serverSide,
    agentSide,
    serverEvents,
    agentEvents,
    accepted() {
      const stream = streams.shift();
      if (stream !== undefined) return Promise.resolve(stream);
      return new Promise((resolve) => waiting.push(resolve));
    },
    idle: () => serverSide.idle(),
    async [Symbol.asyncDispose]() {
      server.close("test over");
      agent.close("test over");
      await Promise.all([server.closed, agent.closed]);
      await serverSide.idle();
    },
  };
}
