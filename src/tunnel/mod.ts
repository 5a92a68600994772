/**
 * Multiplexing one agent WebSocket into streams, shared by the server and the agent
 * (PROTO-10…PROTO-19, DOM-11): a {@linkcode Mux} per tunnel over a {@linkcode MessageTransport},
 * {@linkcode Stream}s with bounded receive queues, per-read timeouts and back-pressured sends,
 * flow control by protocol version (v2 credit windows and a fair scheduler, issue 6), the adapter
 * for a standard `WebSocket`, and an in-memory transport pair for tests.
 * @module
 */

export type { CloseInfo, MessageTransport } from "./transport.ts";
export {
  DRAIN_POLL_MS,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from "./websocket_transport.ts";
export { MemoryTransport, type MemoryTransportOptions } from "./memory_transport.ts";
export {
  DEFAULT_TUNNEL_LIMITS,
  type FlowViolation,
  GROWTH_STALL_MS,
  HIGH_WATER,
  INITIAL_WINDOW,
  LOW_WATER,
  MAX_STREAM_QUEUE_BYTES,
  MAX_TUNNEL_QUEUE_BYTES,
  MAX_TUNNEL_WINDOW,
  MAX_WINDOW,
  messageCost,
  QUEUE_ENTRY_OVERHEAD,
  SCHEDULER_QUANTUM,
  type TunnelLimits,
  type WindowState,
} from "./flow.ts";
export { type ReadOptions, type Stream, StreamClosedError, type StreamEnd } from "./stream.ts";
export {
  Mux,
  type MuxOptions,
  type MuxStats,
  REPORT_BURST,
  REPORT_INTERVAL_MS,
  type StreamIdCounter,
  TunnelClosedError,
  type TunnelEvent,
} from "./mux.ts";
