/**
 * The backend of `deno task bench`, run as its own process so it never shares an event loop with
 * the load: one handler served twice, over plain HTTP (the agent's target) and over HTTPS with the
 * test certificate (the "direct" reference, so the ratio compares like with like: a client that
 * pays for TLS either way). Routes: `/bytes?size=N` (deterministic bytes, the pattern of
 * `scripts/sample_backend.ts`, served from a precomputed period so the backend costs no CPU per
 * byte), `/digest` (POST → `{size, sha256}`), `/ws` (WebSocket echo), `/never` (answers only when
 * the client goes away), `/stats` (how many `/never` requests are waiting). Prints one JSON line
 * `{"plain":PORT,"tls":PORT}` and runs until SIGTERM or stdin closes.
 * @module
 */

import { digestResponse, patternBytes } from "../sample_backend.ts";

/** The pattern repeats every 251 bytes ((i * 31 + 7) mod 251). */
const PATTERN_PERIOD = 251;
/** Body pieces of `/bytes`: big enough that per-piece costs vanish, small enough to stream. */
const PIECE_SIZE = 256 * 1024;

/** Builds the request handler; `waiting` counts the `/never` requests in flight. */
export function benchHandler(): { handler: Deno.ServeHandler; waiting: () => number } {
  const period = patternBytes(0, PIECE_SIZE + PATTERN_PERIOD);
  let never = 0;
  const handler: Deno.ServeHandler = (request) => {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/bytes": {
        const size = Number(url.searchParams.get("size") ?? "0");
        if (size <= PIECE_SIZE) {
          return new Response(period.slice(0, size), {
            headers: { "content-type": "application/octet-stream" },
          });
        }
        let offset = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (offset >= size) return controller.close();
            const length = Math.min(PIECE_SIZE, size - offset);
            const start = offset % PATTERN_PERIOD;
            controller.enqueue(period.slice(start, start + length));
            offset += length;
          },
        });
        return new Response(body, {
          headers: { "content-length": String(size), "content-type": "application/octet-stream" },
        });
      }
      case "/digest":
        return digestResponse(request);
      case "/ws": {
        const { socket, response } = Deno.upgradeWebSocket(request);
        socket.binaryType = "arraybuffer";
        socket.onmessage = (event) => socket.send(event.data);
        socket.onerror = () => {};
        return response;
      }
      case "/never":
        never++;
        return new Promise<Response>((resolve) => {
          request.signal.addEventListener("abort", () => {
            never--;
            resolve(new Response(null));
          });
        });
      case "/stats":
        return Response.json({ never });
      default:
        return new Response("not found", { status: 404 });
    }
  };
  return { handler, waiting: () => never };
}

if (import.meta.main) {
  const tls = new URL("../../tests/testdata/tls/", import.meta.url);
  const { handler } = benchHandler();
  const quiet = { onListen() {} };
  const plain = Deno.serve({ hostname: "127.0.0.1", port: 0, ...quiet }, handler);
  const secure = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(new URL("localhost.pem", tls)),
    key: await Deno.readTextFile(new URL("localhost.key", tls)),
    ...quiet,
  }, handler);
  console.log(JSON.stringify({ plain: plain.addr.port, tls: secure.addr.port }));
  const stop = async () => {
    await Promise.allSettled([plain.shutdown(), secure.shutdown()]);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  // The parent closing our stdin (or dying) ends us too: no orphaned backend.
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* ignore */ }
    await stop();
  })();
}
