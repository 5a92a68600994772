/**
 * The agent's byte streams, to the server (under its WebSocket client) and to backends: a Deno
 * connection, or a `node:tls` socket where a connection must skip certificate verification (Deno
 * has no per-connection opt-out). One small interface so both users read and write alike.
 * @module
 */

import type * as nodeNet from "node:net";

/** A byte stream. */
export interface ByteChannel {
  /** Next bytes, at most the channel's `maxRead`, or `null` at end of stream or after close. */
  read(): Promise<Uint8Array | null>;
  /** Resolves once every byte was handed to the socket. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes at once; pending reads end and writes reject. Idempotent. */
  close(): void;
  /**
   * The connection goes idle (a backend pool keeps it): a read buffer grown for a large body
   * is dropped, so an idle connection costs only the smallest buffer.
   */
  relax(): void;
}

/** How a channel hands out what it read. */
export interface ChannelOptions {
  /** Largest array one `read()` returns. */
  readonly maxRead: number;
  /**
   * `true`: every read is a fresh array the caller may keep (the backend relays reads as tunnel
   * payloads). `false`: a Deno read is a view of the channel's buffer, valid until the next read
   * (the WebSocket decoder copies what it keeps), which saves a copy per read.
   */
  readonly fresh: boolean;
  /**
   * Fresh channels only: size of the first read buffer. A read that fills the buffer hands the
   * buffer itself to the caller (no copy) and the next buffer is larger, up to `maxRead`, so a
   * large body reaches full-size reads after two reads while a connection waiting for a small
   * answer (or idle in a pool) holds only this much. Default `maxRead`.
   */
  readonly initialRead?: number;
}

/** Growth factor of a fresh channel's read buffer after a read that filled it. */
const READ_GROWTH = 4;

/** A channel over a `Deno.Conn` (TCP, or TLS with verification). */
export class DenoChannel implements ByteChannel {
  readonly #conn: Deno.Conn;
  readonly #fresh: boolean;
  readonly #maxRead: number;
  readonly #initialRead: number;
  /** Size of the next read buffer (fresh channels grow it after full reads). */
  #readSize: number;
  /** The read buffer; `undefined` once handed to a caller (fresh channels allocate anew). */
  #buffer: Uint8Array | undefined;
  #closed = false;

  /** Wraps `conn`. */
  constructor(conn: Deno.Conn, options: ChannelOptions) {
    this.#conn = conn;
    this.#fresh = options.fresh;
    this.#maxRead = options.maxRead;
    this.#initialRead = options.fresh
      ? Math.min(options.initialRead ?? options.maxRead, options.maxRead)
      : options.maxRead;
    this.#readSize = this.#initialRead;
  }

  /** See {@linkcode ByteChannel.read}. */
  async read(): Promise<Uint8Array | null> {
    if (this.#closed) return null;
    const buffer = this.#buffer ?? new Uint8Array(this.#readSize);
    this.#buffer = buffer;
    let count: number | null;
    try {
      count = await this.#conn.read(buffer);
    } catch (error) {
      if (this.#closed) return null;
      throw error;
    }
    if (count === null) return null;
    if (!this.#fresh) return buffer.subarray(0, count);
    if (count < buffer.length) return buffer.slice(0, count);
    // A full read: the buffer itself goes to the caller, never written again (it may sit in
    // the tunnel's send queue); the next read gets a new, larger one.
    this.#buffer = undefined;
    this.#readSize = Math.min(this.#readSize * READ_GROWTH, this.#maxRead);
    return buffer;
  }

  /** See {@linkcode ByteChannel.write}. */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  /** See {@linkcode ByteChannel.relax}. */
  relax(): void {
    if (!this.#fresh || this.#readSize === this.#initialRead) return;
    this.#readSize = this.#initialRead;
    this.#buffer = undefined;
  }

  /** See {@linkcode ByteChannel.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = undefined;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/** A channel over a `node:net`/`node:tls` socket (the per-connection `insecure` opt-out). */
export class NodeChannel implements ByteChannel {
  readonly #socket: nodeNet.Socket;
  readonly #chunks: AsyncIterator<Uint8Array>;
  readonly #maxRead: number;
  #pending: Uint8Array | undefined;
  #closed = false;

  /** Wraps `socket`. Node hands out a new buffer per chunk, so reads are always fresh. */
  constructor(socket: nodeNet.Socket, options: ChannelOptions) {
    this.#socket = socket;
    this.#maxRead = options.maxRead;
    // Errors also reach the iterator; this listener only keeps them from being "unhandled".
    socket.on("error", () => {});
    this.#chunks = socket[Symbol.asyncIterator]();
  }

  /** See {@linkcode ByteChannel.read}. */
  async read(): Promise<Uint8Array | null> {
    let chunk = this.#pending;
    this.#pending = undefined;
    if (chunk === undefined) {
      if (this.#closed) return null;
      try {
        const next = await this.#chunks.next();
        if (next.done === true) return null;
        const value = next.value;
        chunk = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      } catch (error) {
        if (this.#closed) return null;
        throw error;
      }
    }
    if (chunk.length > this.#maxRead) {
      this.#pending = chunk.subarray(this.#maxRead);
      return chunk.subarray(0, this.#maxRead);
    }
    return chunk;
  }

  /** See {@linkcode ByteChannel.write}. */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** See {@linkcode ByteChannel.relax}: Node allocates per chunk, nothing to drop. */
  relax(): void {}

  /** See {@linkcode ByteChannel.close}. */
  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }
}

/**
 * Waits for `event` on a node socket (`connect`, `secureConnect`), rejecting on `error`, on
 * `close` (with `closedMessage`) and on abort, including a signal aborted already.
 */
export function nodeEvent(
  socket: nodeNet.Socket,
  event: string,
  signal: AbortSignal,
  closedMessage = "connection closed",
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      socket.off(event, onEvent);
      socket.off("error", onError);
      socket.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
    };
    const onEvent = (): void => {
      cleanup();
      resolve();
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(closedMessage));
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal.reason);
    };
    socket.on(event, onEvent);
    socket.on("error", onError);
    socket.on("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
  });
}
