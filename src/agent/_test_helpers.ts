/**
 * Test helpers of the agent folder: an in-memory tunnel stream for the exchange and session tests
 * (the test plays the server: it queues request messages and reads what the agent sends; the
 * backend side of those tests always uses real sockets, so this is not a network mock but one
 * tunnel stream), and a logger whose lines the test can read.
 * @module
 */

import { concatBytes, encodeRawMessage } from "../protocol/mod.ts";

export { concatBytes };
import { createHash } from "node:crypto";
import { type Logger, openLogger } from "../log/mod.ts";
import { decodeFrame, describeFlags, Flag, type Frame } from "../protocol/mod.ts";
import type { SessionStream } from "./session.ts";

/** One message the agent sent. */
export interface SentMessage {
  /** The flags byte. */
  readonly flags: number;
  /** The payload. */
  readonly payload: Uint8Array;
}

/** Builds the decoded frame for `flags` and `payload` on stream 1. */
export function frameOf(flags: number, payload: Uint8Array | string = new Uint8Array(0)): Frame {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const message = new Uint8Array(bytes.length + 4);
  message.set(bytes);
  message[bytes.length] = flags;
  message[bytes.length + 3] = 1;
  return decodeFrame(message);
}

/** A {@linkcode SessionStream} driven by the test. */
export class TestStream implements SessionStream {
  /** The stream id. */
  readonly id: number;
  /** Whether `finish()` was called. */
  finished = false;
  readonly #controller = new AbortController();
  readonly #inbox: Frame[] = [];
  #inboxWaiter: (() => void) | undefined;
  readonly sent: SentMessage[] = [];
  #sentWaiters: { count: number; resolve: () => void }[] = [];
  /** Number of `receive()` calls that timed out. */
  timeouts = 0;
  readonly #timedOut = Promise.withResolvers<void>();

  /** Resolves when a `receive()` call first times out. */
  get timedOut(): Promise<void> {
    return this.#timedOut.promise;
  }

  /** Creates stream `id` (default 1). */
  constructor(id = 1) {
    this.id = id;
  }

  /** Aborted when the test plays a server ABRT or the agent aborts. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Queues a message from the server. */
  push(flags: number, payload: Uint8Array | string = new Uint8Array(0)): void {
    this.#inbox.push(frameOf(flags, payload));
    this.#inboxWaiter?.();
  }

  /** Plays an ABRT from the server (or a tunnel loss): the stream is gone. */
  serverAbort(): void {
    this.#controller.abort(new Error("ABRT from the server"));
    this.#inboxWaiter?.();
  }

  async receive(
    options: { readonly timeoutMs?: number; readonly signal?: AbortSignal },
  ): Promise<Frame | "timeout" | undefined> {
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const wake = (): void => this.#inboxWaiter?.();
    options.signal?.addEventListener("abort", wake);
    try {
      for (;;) {
        if (this.signal.aborted || options.signal?.aborted) return undefined;
        const next = this.#inbox.shift();
        if (next !== undefined) return next;
        if (timedOut) {
          this.timeouts++;
          this.#timedOut.resolve();
          return "timeout";
        }
        const { promise, resolve } = Promise.withResolvers<void>();
        this.#inboxWaiter = resolve;
        if (options.timeoutMs !== undefined && timer === undefined) {
          timer = setTimeout(() => {
            timedOut = true;
            resolve();
          }, options.timeoutMs);
        }
        await promise;
        this.#inboxWaiter = undefined;
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", wake);
    }
  }

  send(flags: number, payload: Uint8Array): Promise<void> {
    if (this.signal.aborted) return Promise.reject(new Error("stream closed"));
    this.sent.push({ flags, payload: payload.slice() });
    this.#notify();
    return Promise.resolve();
  }

  abort(): void {
    if (this.signal.aborted) return;
    this.sent.push({ flags: Flag.Abort, payload: new Uint8Array(0) });
    this.#controller.abort(new Error("aborted by the agent"));
    this.#notify();
  }

  finish(): void {
    this.finished = true;
    if (!this.signal.aborted) this.#controller.abort(new Error("finished"));
  }

  /** Resolves once at least `count` messages were sent. */
  waitSent(count: number): Promise<void> {
    if (this.sent.length >= count) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#sentWaiters.push({ count, resolve });
    return promise;
  }

  #notify(): void {
    const ready = this.#sentWaiters.filter((waiter) => this.sent.length >= waiter.count);
    this.#sentWaiters = this.#sentWaiters.filter((waiter) => this.sent.length < waiter.count);
    for (const waiter of ready) waiter.resolve();
  }

  /** The sent messages as `FLAGS len` strings, e.g. `HEAD|START len=65`. */
  describe(): string[] {
    return this.sent.map((message) =>
      `${describeFlags(message.flags)} len=${message.payload.length}`
    );
  }
}

/** Latin-1 text of bytes (heads are Latin-1). */
export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

/** A logger at DEBUG level whose records the test reads with {@linkcode MemoryLogger.records}. */
export class MemoryLogger implements AsyncDisposable {
  readonly logger: Logger;
  #text = "";

  constructor() {
    const decoder = new TextDecoder();
    this.logger = openLogger("console(output=stdout,time=no,colors=no) option(level=debug)", {
      stdout: {
        write: (bytes: Uint8Array) => {
          this.#text += decoder.decode(bytes);
          return Promise.resolve(bytes.length);
        },
      },
    });
  }

  /** Every record logged so far, parsed from the JSON part of each line. */
  async records(): Promise<Record<string, unknown>[]> {
    await this.logger.flush();
    return this.#text.split("\n").filter((line) => line.includes("{")).map((line) =>
      JSON.parse(line.slice(line.indexOf("{"))) as Record<string, unknown>
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.logger.close();
  }
}

const TLS_DIR = new URL("../../tests/testdata/tls/", import.meta.url);
/** The test CA (PEM). */
export const TEST_CA = Deno.readTextFileSync(new URL("ca.pem", TLS_DIR));
/** The `localhost` certificate (PEM), signed by {@linkcode TEST_CA}. */
export const TEST_CERT = Deno.readTextFileSync(new URL("localhost.pem", TLS_DIR));
/** The key of {@linkcode TEST_CERT}. */
export const TEST_KEY = Deno.readTextFileSync(new URL("localhost.key", TLS_DIR));

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** One accepted handshake of a {@linkcode TestTunnelServer}. */
export interface RecordedHandshake {
  /** The request head as received, `\r\n` line ends. */
  readonly head: string;
  /** A header's value (first one; name case-insensitive). */
  header(name: string): string | undefined;
}

/** How a {@linkcode TestTunnelServer} answers a handshake. */
export type HandshakePolicy = "accept" | { readonly refuse: number };

/** One WebSocket message received from the agent (opcode and unmasked payload). */
export interface ClientMessage {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** A server side of one tunnel: raw WebSocket frames over TLS. */
export class TestTunnel {
  readonly handshake: RecordedHandshake;
  readonly #conn: Deno.Conn;
  #buffer: Uint8Array;
  readonly messages: ClientMessage[] = [];
  #waiters: (() => void)[] = [];
  #ended = false;
  readonly done: Promise<void>;

  constructor(conn: Deno.Conn, handshake: RecordedHandshake, rest: Uint8Array) {
    this.#conn = conn;
    this.handshake = handshake;
    this.#buffer = rest;
    this.done = this.#readLoop();
  }

  /** Whether the agent's side has ended (close frame or EOF). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Sends one binary message (unmasked, as a server does). */
  async send(message: Uint8Array): Promise<void> {
    await this.#write(0x82, message);
  }

  /** Sends a close frame with `code` and closes the connection. */
  async close(code?: number): Promise<void> {
    const payload = code === undefined
      ? new Uint8Array(0)
      : new Uint8Array([code >> 8, code & 0xff]);
    try {
      await this.#write(0x88, payload);
    } catch {
      // The agent closed first.
    }
    this.abort();
    await this.done;
  }

  /** Drops the connection without a close frame. */
  abort(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Resolves once `count` data messages (binary) arrived, or the agent's side ended. */
  async waitMessages(count: number): Promise<ClientMessage[]> {
    for (;;) {
      const data = this.messages.filter((message) => message.opcode === 0x2);
      if (data.length >= count || this.#ended) return data;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The close frame's code the agent sent, if any. */
  get closeCode(): number | undefined {
    const close = this.messages.find((message) => message.opcode === 0x8);
    if (close === undefined || close.payload.length < 2) return undefined;
    return ((close.payload[0] ?? 0) << 8) | (close.payload[1] ?? 0);
  }

  async #write(first: number, payload: Uint8Array): Promise<void> {
    const length = payload.length;
    const header = length < 126
      ? [first, length]
      : length < 65_536
      ? [first, 126, length >> 8, length & 0xff]
      : [
        first,
        127,
        0,
        0,
        0,
        0,
        (length >>> 24) & 0xff,
        (length >> 16) & 0xff,
        (length >> 8) & 0xff,
        length & 0xff,
      ];
    const frame = concatBytes([new Uint8Array(header), payload]);
    let offset = 0;
    while (offset < frame.length) offset += await this.#conn.write(frame.subarray(offset));
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(65_536);
    try {
      for (;;) {
        while (this.#parse()) { /* one frame parsed */ }
        if (this.#ended) break;
        const count = await this.#conn.read(chunk);
        if (count === null) break;
        this.#buffer = concatBytes([this.#buffer, chunk.slice(0, count)]);
      }
    } catch {
      // Reset or closed locally.
    }
    this.#ended = true;
    this.#wake();
  }

  /** Parses one masked frame from the buffer; `false` when incomplete. */
  #parse(): boolean {
    const bytes = this.#buffer;
    if (bytes.length < 2) return false;
    const opcode = (bytes[0] ?? 0) & 0x0f;
    let length = (bytes[1] ?? 0) & 0x7f;
    let at = 2;
    if (length === 126) {
      if (bytes.length < 4) return false;
      length = ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
      at = 4;
    } else if (length === 127) {
      if (bytes.length < 10) return false;
      length = 0;
      for (let i = 2; i < 10; i++) length = length * 256 + (bytes[i] ?? 0);
      at = 10;
    }
    if (bytes.length < at + 4 + length) return false;
    const mask = bytes.subarray(at, at + 4);
    const payload = bytes.slice(at + 4, at + 4 + length).map((byte, i) =>
      byte ^ (mask[i % 4] ?? 0)
    );
    this.#buffer = bytes.slice(at + 4 + length);
    if (opcode === 0x9) {
      void this.#write(0x8a, payload).catch(() => {});
      return true;
    }
    this.messages.push({ opcode, payload });
    if (opcode === 0x8) this.#ended = true;
    this.#wake();
    return !this.#ended;
  }
}

/**
 * A minimal groom server for agent tests: TLS with the `localhost` test certificate on
 * 127.0.0.1:0 (recording the SNI names asked for), the handshake recorded and answered by
 * `policy` (101 with `groom`, or a refusal status), then raw WebSocket frames.
 */
export class TestTunnelServer implements AsyncDisposable {
  readonly #listener: Deno.TlsListener;
  /** SNI names the TLS layer was asked for (once per distinct name). */
  readonly serverNames: string[] = [];
  /** Every handshake, in order (refused ones too). */
  readonly handshakes: RecordedHandshake[] = [];
  /** Accepted tunnels, in order. */
  readonly tunnels: TestTunnel[] = [];
  policy: HandshakePolicy = "accept";
  #waiters: (() => void)[] = [];
  readonly #accepting: Promise<void>;
  readonly #tasks = new Set<Promise<void>>();

  constructor() {
    this.#listener = Deno.listenTls(
      {
        hostname: "127.0.0.1",
        port: 0,
        cert: TEST_CERT,
        key: TEST_KEY,
        [Symbol.for("unstableSniResolver")]: (name: string) => {
          this.serverNames.push(name);
          return { cert: TEST_CERT, key: TEST_KEY };
        },
      } as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    );
    this.#accepting = this.#accept();
  }

  /** The listening port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Resolves with tunnel number `index` (0-based) once it is accepted. */
  async tunnel(index: number): Promise<TestTunnel> {
    for (;;) {
      const tunnel = this.tunnels[index];
      if (tunnel !== undefined) return tunnel;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Resolves once `count` handshakes (accepted or refused) were received. */
  async waitHandshakes(count: number): Promise<void> {
    while (this.handshakes.length < count) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const task = this.#handshake(conn).catch(() => {
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        });
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    } catch {
      // Listener closed.
    }
  }

  async #handshake(conn: Deno.Conn): Promise<void> {
    let buffered: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(16_384);
    let end = -1;
    while (end < 0) {
      const count = await conn.read(chunk);
      if (count === null) throw new Error("EOF during the handshake");
      buffered = concatBytes([buffered, chunk.slice(0, count)]);
      end = latin1(buffered).indexOf("\r\n\r\n");
    }
    const head = latin1(buffered.subarray(0, end + 4));
    const handshake: RecordedHandshake = {
      head,
      header(name: string) {
        const wanted = name.toLowerCase() + ":";
        const line = head.split("\r\n").find((l) => l.toLowerCase().startsWith(wanted));
        return line?.slice(wanted.length).trim();
      },
    };
    this.handshakes.push(handshake);
    const policy = this.policy;
    if (policy !== "accept") {
      await conn.write(new TextEncoder().encode(
        `HTTP/1.1 ${policy.refuse} Refused\r\nContent-Length: 0\r\n\r\n`,
      ));
      conn.close();
      this.#wake();
      return;
    }
    const accept = createHash("sha1").update(
      (handshake.header("sec-websocket-key") ?? "") + WEBSOCKET_GUID,
    ).digest("base64");
    await conn.write(new TextEncoder().encode(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" +
        `Sec-Websocket-Accept: ${accept}\r\nSec-Websocket-Protocol: groom\r\n` +
        "Upgrade: websocket\r\n\r\n",
    ));
    const tunnel = new TestTunnel(conn, handshake, buffered.slice(end + 4));
    this.tunnels.push(tunnel);
    this.#wake();
    await tunnel.done;
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Closes the listener and every tunnel, and waits for them. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const tunnel of this.tunnels) tunnel.abort();
    await Promise.all([...this.#tasks]);
  }
}

/** A tunnel message: payload, flags, 3-byte stream id (PROTO-15), legal or not. */
export const tunnelMessage = encodeRawMessage;
