/**
 * A raw TCP server on 127.0.0.1 (port 0) for tests that need byte-exact backends: each accepted
 * connection runs `serve`, whose errors are ignored (the peer went away), and is closed after it.
 * `close()` stops accepting and waits for every connection's handler.
 * @module
 */

/** A running raw server. */
export interface RawServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts a raw TCP server running `serve` for each connection. */
export function serveRawTcp(serve: (conn: Deno.Conn) => Promise<void>): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const running = new Set<Promise<void>>();
  const handle = async (conn: Deno.Conn) => {
    try {
      await serve(conn);
    } catch {
      // The peer went away.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const task = handle(conn).finally(() => running.delete(task));
        running.add(task);
      }
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
      await Promise.all(running);
    },
  };
}
