/**
 * The tunnel's view of one binary-message channel (a WebSocket): a sink that queues messages
 * without blocking and reports how much it has queued, so the tunnel can apply its own
 * back-pressure (Deno's `WebSocket.send()` has none, architecture note §7), plus two callbacks.
 * Implemented by `websocket_transport.ts` (a standard `WebSocket`, the server side), by the agent's
 * own client and by `memory_transport.ts` (tests).
 * @module
 */

/** Why a transport ended. */
export interface CloseInfo {
  /** Status code of the close frame received or sent, when there was one with a code. */
  readonly code?: number;
  /** Close reason, or a short description of the local cause. */
  readonly reason: string;
  /** Set when the connection ended abnormally (network, protocol, timeout). */
  readonly error?: Error;
}

/** One binary-message channel (a WebSocket) as the tunnel sees it. */
export interface MessageTransport {
  /**
   * Queues one binary message; never blocks and never throws. Empty messages and sends after
   * close are ignored.
   */
  send(message: Uint8Array): void;
  /** Bytes accepted by `send()` and not yet written to the socket. */
  readonly bufferedAmount: number;
  /** Resolves when `bufferedAmount <= threshold`, or when the transport closed. */
  drained(threshold: number): Promise<void>;
  /** Closes deliberately (PROTO-14); without a code the close frame carries no status. */
  close(code?: number, reason?: string): void;
  /** Called with each received binary message. */
  onMessage: ((message: Uint8Array) => void) | null;
  /**
   * Called once when the transport closed, for any reason. Implementations call it before they
   * resolve pending `drained()` promises, so a waiting sender sees the closed state.
   */
  onClose: ((info: CloseInfo) => void) | null;
  /** The negotiated sub-protocol: `groom` (protocol v1), later also `groom2`. */
  readonly protocol: string;
}
