/**
 * The sample backend of `deno task demo` and the tunnel tests: plain HTTP on 127.0.0.1, port 0, with
 * the behaviours a tunnel must carry: echo, uploads with digests, large deterministic downloads,
 * chunked answers, SSE, WebSocket echo, a gzip-encoded body, repeated headers, slow answers
 * (/slow, /never) and slow downloads (/trickle) for the fault tests.
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

/** Deterministic bytes: byte i is (i * 31 + 7) mod 251, so any slice can be checked. */
export function patternBytes(offset: number, length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 31 + 7) % 251;
  return out;
}

/** SHA-256 hex of the pattern bytes `[0, size)`, computed in pieces. */
export function patternDigest(size: number): string {
  const hash = createHash("sha256");
  for (let offset = 0; offset < size; offset += 1 << 20) {
    hash.update(patternBytes(offset, Math.min(1 << 20, size - offset)));
  }
  return hash.digest("hex");
}

/** The gzip body the backend serves at /gzip (and its plain text). */
export const GZIP_TEXT = "groom carries this body compressed, byte for byte.\n".repeat(40);
/** The exact gzip bytes served at /gzip. */
export const GZIP_BODY: Uint8Array<ArrayBuffer> = new Uint8Array(
  gzipSync(new TextEncoder().encode(GZIP_TEXT)),
);

/** `/digest`: reads the whole request body and answers `{size, sha256}` of what arrived. */
export async function digestResponse(request: Request): Promise<Response> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of request.body ?? []) {
    hash.update(chunk);
    size += chunk.length;
  }
  return Response.json({ size, sha256: hash.digest("hex") });
}

/** A running sample backend. */
export interface Backend extends AsyncDisposable {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the sample backend. */
export function startBackend(): Backend {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/hello":
        return new Response("hello from the backend\n", {
          headers: { "content-type": "text/plain" },
        });
      case "/headers":
        return Response.json(Object.fromEntries(request.headers));
      case "/echo":
        return new Response(request.body, {
          headers: { "x-method": request.method, "x-url": url.pathname + url.search },
        });
      case "/digest":
        return digestResponse(request);
      case "/download": {
        const size = Number(url.searchParams.get("size") ?? "0");
        const chunked = url.searchParams.has("chunked");
        let offset = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (offset >= size) return controller.close();
            const length = Math.min(256 * 1024, size - offset);
            controller.enqueue(patternBytes(offset, length));
            offset += length;
          },
        });
        const headers: Record<string, string> = chunked ? {} : { "content-length": String(size) };
        return new Response(body, { headers });
      }
      case "/sse": {
        let n = 0;
        let timer: ReturnType<typeof setInterval> | undefined;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(`data: event ${n++}\n\n`));
            timer = setInterval(() => {
              try {
                controller.enqueue(new TextEncoder().encode(`data: event ${n++}\n\n`));
              } catch {
                clearInterval(timer);
              }
            }, 50);
          },
          cancel() {
            clearInterval(timer);
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      case "/ws": {
        const { socket, response } = Deno.upgradeWebSocket(request);
        socket.onmessage = (event) => socket.send(event.data);
        socket.onerror = () => {};
        return response;
      }
      case "/gzip":
        return new Response(GZIP_BODY, {
          headers: { "content-encoding": "gzip", "content-type": "text/plain" },
        });
      case "/multi": {
        const headers = new Headers();
        headers.append("set-cookie", "a=1; Path=/");
        headers.append("set-cookie", "b=2; Path=/; HttpOnly");
        headers.append("link", "</a>; rel=preload");
        headers.append("link", "</b>; rel=preload");
        return new Response("multi", { headers });
      }
      case "/status":
        return new Response(null, { status: Number(url.searchParams.get("code") ?? "204") });
      case "/slow": {
        // Answers after `ms` milliseconds (a slow backend), unless the request goes away first.
        const ms = Number(url.searchParams.get("ms") ?? "1000");
        return new Promise<Response>((resolve) => {
          const timer = setTimeout(() => resolve(new Response("slow answer\n")), ms);
          request.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve(new Response(null, { status: 499 }));
          });
        });
      }
      case "/trickle": {
        // A download that takes its time: `size` pattern bytes in pieces of `piece` every `ms`.
        const size = Number(url.searchParams.get("size") ?? "65536");
        const piece = Math.max(1, Number(url.searchParams.get("piece") ?? "1024"));
        const ms = Number(url.searchParams.get("ms") ?? "50");
        let offset = 0;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (offset >= size) return controller.close();
            return new Promise<void>((resolve) => {
              timer = setTimeout(() => {
                const length = Math.min(piece, size - offset);
                controller.enqueue(patternBytes(offset, length));
                offset += length;
                resolve();
              }, offset === 0 ? 0 : ms);
            });
          },
          cancel() {
            clearTimeout(timer);
          },
        });
        return new Response(body, { headers: { "content-length": String(size) } });
      }
      case "/never":
        return new Promise<Response>((resolve) => {
          request.signal.addEventListener("abort", () => resolve(new Response(null)));
        });
      default:
        return new Response("not found", { status: 404 });
    }
  });
  let closing: Promise<void> | undefined;
  const close = () => closing ??= server.shutdown();
  return { port: server.addr.port, close, [Symbol.asyncDispose]: close };
}
