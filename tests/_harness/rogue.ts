/**
 * Hostile peers for the security tests: a rogue client (raw bytes over TLS, read back as raw
 * bytes), a rogue agent (a valid secret, then any bytes it likes, over the agent's own WebSocket
 * client) and a rogue server (a TLS WebSocket endpoint that accepts the agent's handshake, then
 * sends whatever the test wants). The tunnel peers speak raw tunnel
 * messages: `sendRaw()` sends any bytes as one binary message, `send()` encodes a frame, and the
 * messages received are decoded with the negotiated protocol version (undecodable ones are kept
 * as `malformed`). Nothing here interprets the protocol: the tests decide what is hostile.
 * @module
 */

import { connectWebSocket } from "../../src/agent/mod.ts";
import {
  decodeFrame,
  encodeFrame,
  protocolVersion,
  type TunnelFrame,
} from "../../src/protocol/mod.ts";
import { type CloseInfo, type MessageTransport, WebSocketTransport } from "../../src/tunnel/mod.ts";

/** A received message: a decoded frame, or the bytes of one that did not decode. */
export type Received = TunnelFrame | { readonly kind: "malformed"; readonly bytes: Uint8Array };

/** One end of a tunnel driven by a test. */
export class RogueTunnel implements AsyncDisposable {
  /** The negotiated sub-protocol. */
  readonly protocol: string;
  /** Every message received so far, in order. */
  readonly received: Received[] = [];
  /** Resolves when the tunnel closed, with the close information. */
  readonly closed: Promise<CloseInfo>;
  readonly #transport: MessageTransport;
  #waiters: { test: (message: Received) => boolean; resolve: (message: Received) => void }[] = [];
  #isClosed = false;

  /** Takes over `transport` (its callbacks). */
  constructor(transport: MessageTransport, protocol = transport.protocol) {
    this.#transport = transport;
    this.protocol = protocol;
    const version = protocolVersion(protocol);
    const { promise, resolve } = Promise.withResolvers<CloseInfo>();
    this.closed = promise;
    transport.onMessage = (bytes) => {
      let message: Received;
      try {
        message = decodeFrame(bytes, version);
      } catch {
        message = { kind: "malformed", bytes: bytes.slice() };
      }
      this.received.push(message);
      for (const waiter of [...this.#waiters]) {
        if (waiter.test(message)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(message);
          return; // one waiter per message
        }
      }
    };
    transport.onClose = (info) => {
      this.#isClosed = true;
      resolve(info);
    };
  }

  /** Whether the tunnel has closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Bytes queued for sending and not yet written. */
  get bufferedAmount(): number {
    return this.#transport.bufferedAmount;
  }

  /** Sends any bytes as one binary message. */
  sendRaw(bytes: Uint8Array): void {
    this.#transport.send(bytes);
  }

  /** Sends one well-formed frame. */
  send(frame: TunnelFrame): void {
    this.#transport.send(encodeFrame(frame));
  }

  /** Resolves when at most `threshold` bytes are still queued for sending. */
  drained(threshold = 0): Promise<void> {
    return this.#transport.drained(threshold);
  }

  /**
   * The first message received from now on (or already received and not yet claimed by another
   * call) that passes `test`. Rejects when the tunnel closes first or after `timeoutMs`.
   */
  next(
    test: (message: Received) => boolean = () => true,
    options: { timeoutMs?: number; claimed?: Set<Received> } = {},
  ): Promise<Received> {
    const claimed = options.claimed;
    const seen = this.received.find((message) => !claimed?.has(message) && test(message));
    if (seen !== undefined) {
      claimed?.add(seen);
      return Promise.resolve(seen);
    }
    if (this.#isClosed) return Promise.reject(new Error("Cannot wait: the tunnel is closed"));
    const { promise, resolve, reject } = Promise.withResolvers<Received>();
    const timeoutMs = options.timeoutMs ?? 10_000;
    const waiter = {
      test,
      resolve: (message: Received) => {
        clearTimeout(timer);
        claimed?.add(message);
        resolve(message);
      },
    };
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((other) => other !== waiter);
      reject(new Error(`No matching tunnel message within ${timeoutMs} ms`));
    }, timeoutMs);
    this.#waiters.push(waiter);
    this.closed.then(() => {
      if (!this.#waiters.includes(waiter)) return;
      this.#waiters = this.#waiters.filter((other) => other !== waiter);
      clearTimeout(timer);
      reject(new Error("The tunnel closed while waiting for a message"));
    });
    return promise;
  }

  /** Closes the tunnel (with `code` when given). */
  close(code?: number, reason?: string): void {
    this.#transport.close(code, reason);
  }

  /** Closes the tunnel and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }
}

/** Options of {@linkcode connectRogueAgent}. */
export interface RogueAgentOptions {
  /** The server's HTTPS port on 127.0.0.1. */
  readonly port: number;
  /** The domain to register (the Host header). */
  readonly domain: string;
  /** TLS server name; default `localhost` (the test certificate's name). */
  readonly serverName?: string;
  /** The bearer secret. */
  readonly secret: string;
  /** Trusted roots for the server certificate. */
  readonly caCerts: readonly string[];
  /** Sub-protocols offered; default `["groom"]` (protocol v1, no credit to respect). */
  readonly protocols?: readonly string[];
  /** The agent endpoint path; default groom's. */
  readonly service?: string;
}

/** Connects to a server as the agent of `domain` and hands the tunnel to the test. */
export async function connectRogueAgent(options: RogueAgentOptions): Promise<RogueTunnel> {
  const connection = await connectWebSocket(
    `wss://127.0.0.1:${options.port}${options.service ?? "/.well-known/groom-agent"}`,
    {
      host: `${options.domain}:${options.port}`,
      serverName: options.serverName ?? "localhost",
      headers: [["Authorization", `Bearer ${options.secret}`]],
      protocols: options.protocols ?? ["groom"],
      caCerts: options.caCerts,
    },
  );
  return new RogueTunnel(connection);
}

/** What a rogue server saw of an agent's handshake. */
export interface Handshake {
  readonly host: string | null;
  readonly authorization: string | null;
  readonly protocols: string | null;
}

/** A rogue server: a TLS WebSocket endpoint that hands every agent tunnel to the test. */
export interface RogueServer extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** The handshakes seen so far. */
  readonly handshakes: readonly Handshake[];
  /** Resolves with the `index`-th tunnel (0 = the first ever accepted). */
  tunnel(index: number): Promise<RogueTunnel>;
  /** Stops listening and closes every tunnel. */
  close(): Promise<void>;
}

/** Options of {@linkcode startRogueServer}. */
export interface RogueServerOptions {
  /** Certificate and key (PEM) of the TLS listener. */
  readonly cert: string;
  readonly key: string;
  /** Sub-protocol to select; default `groom` (v1). */
  readonly protocol?: string;
}

/** Starts a rogue server on 127.0.0.1 with an OS-chosen port. */
export function startRogueServer(options: RogueServerOptions): RogueServer {
  const protocol = options.protocol ?? "groom";
  const tunnels: RogueTunnel[] = [];
  const handshakes: Handshake[] = [];
  const waiters: { index: number; resolve: (tunnel: RogueTunnel) => void }[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: options.cert,
    key: options.key,
    onListen() {},
    onError() {
      return new Response(null, { status: 500 });
    },
  }, (request) => {
    handshakes.push({
      host: request.headers.get("host"),
      authorization: request.headers.get("authorization"),
      protocols: request.headers.get("sec-websocket-protocol"),
    });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response(null, { status: 404 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
    const tunnel = new RogueTunnel(new WebSocketTransport(socket, { protocol }), protocol);
    tunnels.push(tunnel);
    for (const waiter of [...waiters]) {
      if (waiter.index < tunnels.length) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(tunnels[waiter.index] as RogueTunnel);
      }
    }
    return response;
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    closing ??= (async () => {
      for (const tunnel of tunnels) tunnel.close();
      await Promise.all(tunnels.map((tunnel) => tunnel.closed));
      await server.shutdown();
    })();
  return {
    port: server.addr.port,
    handshakes,
    tunnel(index) {
      const ready = tunnels[index];
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve) => waiters.push({ index, resolve }));
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** What a rogue client read back. */
export interface RawExchange {
  /** Everything received, decoded as Latin-1 (one character per byte). */
  readonly text: string;
  /** Whether the server closed the connection (else the read deadline ended the wait). */
  readonly closed: boolean;
  /** Milliseconds from the first write to the end of the wait. */
  readonly elapsedMs: number;
}

/** Options of {@linkcode rawHttps}. */
export interface RawHttpsOptions {
  /** The server's port on 127.0.0.1. */
  readonly port: number;
  /** Trusted roots for the server certificate. */
  readonly caCerts: readonly string[];
  /** TLS server name; default `localhost`. */
  readonly serverName?: string;
  /** Stop waiting after this long without the connection closing; default 3 000 ms. */
  readonly deadlineMs?: number;
  /** Stop reading once the text received passes this test (the connection stays open). */
  readonly until?: (text: string) => boolean;
}

/**
 * A rogue client: opens a TLS connection (HTTP/1.1 by ALPN), writes `pieces` in order (a piece
 * may be a function that waits, e.g. for a slow sender), then reads until the server closes,
 * `until` passes or the deadline passes. Never throws for network errors: a reset reads as closed.
 */
export async function rawHttps(
  options: RawHttpsOptions,
  pieces: readonly (string | Uint8Array | (() => Promise<void>))[],
): Promise<RawExchange> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: options.port,
    caCerts: [...options.caCerts],
    alpnProtocols: ["http/1.1"],
    serverName: options.serverName ?? "localhost",
  } as Deno.ConnectTlsOptions);
  const started = performance.now();
  let text = "";
  let closed = false;
  let closing = false;
  const reading = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const count = await conn.read(buffer);
        if (count === null) {
          closed = true;
          return;
        }
        for (let i = 0; i < count; i++) text += String.fromCharCode(buffer[i] ?? 0);
        if (options.until?.(text)) return;
      }
    } catch {
      closed = !closing; // our own close at the deadline is not the server's
    }
  })();
  try {
    for (const piece of pieces) {
      if (typeof piece === "function") await piece();
      else await writeAll(conn, typeof piece === "string" ? latin1Bytes(piece) : piece);
    }
  } catch {
    // The server closed while we were writing: what it answered is still read.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, options.deadlineMs ?? 3_000);
  });
  await Promise.race([reading, deadline]);
  clearTimeout(timer);
  const elapsedMs = performance.now() - started;
  closing = true;
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  await reading;
  return { text, closed, elapsedMs };
}

/** Bytes of a Latin-1 string (one byte per character), so tests can write any byte. */
export function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
