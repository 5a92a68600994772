/**
 * One client request through an agent tunnel (SRV-3…SRV-23, PROTO-20…PROTO-29): the request head
 * is re-serialised with groom's forwarding headers and sent as HEAD|START, the body streams behind
 * it as BODY messages (re-chunked when the client sent no length), and the agent's answer comes
 * back as a streamed `Response`. Every failure yields a real status (ODD-1: never an empty 200),
 * `body_size` is enforced while streaming (ODD-2), a vanished uploader aborts the stream instead
 * of completing a truncated body (ODD-35), and streamed responses have no idle limit once their
 * head arrived (ODD-8): SSE and long polls live as long as both ends want.
 * @module
 */

import {
  encodeChunk,
  encodeLastChunk,
  Flag,
  type Frame,
  type HeaderField,
  HttpParseError,
  MAX_BODY_PAYLOAD,
  parseResponseHead,
  type ResponseHead,
  serializeRequestHead,
} from "../protocol/mod.ts";
import { SESSION_COOKIE, withoutCookie } from "../acl/mod.ts";
import type { ClientAuth } from "./client_auth.ts";
import type { ServerDomain } from "./registry.ts";

/** What the proxy needs of a tunnel stream. */
export interface ProxyStream {
  /** Stream id, for logs. */
  readonly id: number;
  /** Sends one message on this stream, waiting while the tunnel is congested. */
  send(flags: number, payload: Uint8Array): Promise<void>;
  /** The next message for this stream, `null` once it ended; rejects on timeout or abort. */
  read(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Frame | null>;
  /** Sends ABRT (once) and forgets the stream. */
  abort(reason: string): void;
  /** Forgets the stream after a normal end, without a message (PROTO-18). */
  finish(): void;
}

/** The client side of one request, captured before anything else reads the request. */
export interface ClientInfo {
  /** TCP peer address. */
  readonly remoteAddr: { readonly hostname: string; readonly port: number };
  /** Domain name from Host, lower-cased, port removed (SRV-3). */
  readonly name: string;
  /** Port from Host, `443` when absent (SRV-3: the Host header's, not the listener's). */
  readonly port: string;
  /** Arrival time, ms since the epoch. */
  readonly start: number;
  /** Arrival, `performance.now()` ms, for durations. */
  readonly startMark: number;
}

/** A finished request, for the access log (SRV-20). */
export interface AccessEntry {
  readonly id: string;
  readonly status: number;
  readonly in: number;
  readonly out: number;
  readonly reason?: string;
}

/** The services the proxy uses. */
export interface ProxyDeps {
  /** Opens a stream on the domain's tunnel; `undefined` at the concurrency cap (SRV-11). */
  open(domain: ServerDomain): ProxyStream | undefined;
  /** `write_timeout`: longest wait for each message until the response head (SRV-14). */
  readonly writeTimeoutMs: number;
  /** Longest pause between two pieces of an upload (ODD-21: no whole-body deadline). */
  readonly bodyIdleTimeoutMs: number;
  /** `headers_size`: largest forwarded request head (SRV-22). */
  readonly headersSize: number;
  /** Writes the access record. */
  access(request: Request, client: ClientInfo, entry: AccessEntry): void;
  /** Handles a WebSocket upgrade the backend accepted (UPGD head). */
  upgrade?(
    request: Request,
    head: ResponseHead,
    stream: ProxyStream,
    finish: (entry: Omit<AccessEntry, "id">) => void,
  ): Response;
}

/** groom 1.3 starts every `out` count at 52 (SRV-20, ODD-32); kept for log compatibility. */
const OUT_BASE = 52;

/**
 * How long the end of a response body without Content-Length waits for an ABRT right behind its
 * BODY|END. An agent whose backend cut the body sends BODY|END, then ABRT (PROTO-27, groom 1.3's
 * wire behaviour); seen alone, the END would complete a chunked answer and the client would take
 * a truncated body for a whole one. Both messages leave the agent together, so a few milliseconds
 * suffice; the cost is that delay on the terminating chunk of such answers.
 */
export const TRUNCATION_CHECK_MS = 5;

/** Response headers never copied to the client: hop-by-hop (RFC 9110 §7.6.1) and framing. */
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);

/**
 * Request headers groom replaces or must not forward: framing is redone by the serialiser,
 * forwarding headers are rewritten (SRV-9), `Expect` is answered here, and headers meant for
 * this hop only are dropped (a reverse proxy does not forward Proxy-Authorization).
 */
const DROPPED_REQUEST_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "expect",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "te",
  "trailer",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-proto",
  "x-transaction-id",
  "sec-websocket-extensions", // WebSocket frames are re-framed by the server: no compression
]);

/** Bodiless answers (RFC 9110 §6.4.1). */
function nullBodyStatus(status: number): boolean {
  return status === 101 || status === 204 || status === 205 || status === 304;
}

/** Whether the request asks for a WebSocket (the only upgrade groom can relay, see ODD-17). */
export function isWebSocketUpgrade(headers: Headers): boolean {
  const connection = (headers.get("connection") ?? "").toLowerCase().split(",").map((t) =>
    t.trim()
  );
  return connection.includes("upgrade") &&
    (headers.get("upgrade") ?? "").trim().toLowerCase() === "websocket";
}

/** The request head forwarded to the agent (PROTO-20 with SRV-9's changes). */
export function forwardedRequestHead(
  request: Request,
  client: ClientInfo,
  domain: ServerDomain,
  id: string,
  auth: ClientAuth = { stripAuthorization: false },
): { head: Uint8Array; chunked: boolean } {
  const url = new URL(request.url);
  // HTTP/2 requests carry the authority in the URL, not in a Host header.
  const headers: HeaderField[] = [["Host", request.headers.get("host") ?? url.host]];
  const upgrade = isWebSocketUpgrade(request.headers);
  const length = request.headers.get("content-length");
  const chunked = request.body !== null && length === null;
  if (chunked) headers.push(["Transfer-Encoding", "chunked"]);
  else if (length !== null) headers.push(["Content-Length", length]);
  for (const [name, value] of request.headers) {
    if (DROPPED_REQUEST_HEADERS.has(name)) continue;
    if (!upgrade && (name === "connection" || name === "upgrade")) continue;
    if (name === "authorization" && auth.stripAuthorization) continue; // groom's own Basic login
    if (name === "cookie") {
      // groom's session cookie stays here; a header left empty is dropped (ODD-18).
      const rest = withoutCookie(value, SESSION_COOKIE);
      if (rest !== undefined) headers.push([name, rest]);
      continue;
    }
    headers.push([name, value]);
  }
  const peer = client.remoteAddr.hostname;
  const offered = request.headers.get("x-forwarded-for")?.trim() ?? "";
  // SRV-9 with ODD-24 fixed: a trusted forwarder's chain is kept and the peer appended.
  const forwardedFor = offered !== "" && !domain.forwarders.isEmpty &&
      domain.forwarders.matches(peer)
    ? `${offered}, ${peer}`
    : peer;
  headers.push(
    ["X-Forwarded-For", forwardedFor],
    ["X-Forwarded-Host", client.name],
    ["X-Forwarded-Port", client.port],
    ["X-Forwarded-Proto", "https"],
    ["X-Transaction-Id", id],
  );
  const head = serializeRequestHead({
    method: request.method,
    target: url.pathname + url.search,
    version: "HTTP/1.1",
    headers,
  });
  return { head, chunked };
}

/** Length of the request head as the client sent it, for `in` (SRV-20). */
function receivedHeadLength(request: Request): number {
  const url = new URL(request.url);
  let length = request.method.length + url.pathname.length + url.search.length + 13;
  for (const [name, value] of request.headers) length += name.length + value.length + 4;
  return length + 2;
}

/** Streams the request body to the agent; resolves with the outcome. */
async function pumpBody(
  request: Request,
  stream: ProxyStream,
  chunked: boolean,
  limits: { bodySize: number; idleMs: number },
  counters: { in: number },
): Promise<"done" | "too-large" | "client-gone" | "tunnel-gone"> {
  if (request.body === null) {
    await stream.send(Flag.Body | Flag.End, new Uint8Array(0));
    return "done";
  }
  const reader = request.body.getReader();
  let total = 0;
  try {
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), limits.idleMs);
      });
      let next: ReadableStreamReadResult<Uint8Array> | "idle";
      try {
        next = await Promise.race([reader.read(), idle]);
      } catch {
        return "client-gone";
      } finally {
        clearTimeout(timer);
      }
      if (next === "idle") return "client-gone";
      if (next.done) break;
      const data = next.value;
      total += data.length;
      counters.in += data.length;
      if (total > limits.bodySize) return "too-large";
      for (let offset = 0; offset < data.length; offset += MAX_BODY_PAYLOAD) {
        const piece = data.subarray(offset, offset + MAX_BODY_PAYLOAD);
        await stream.send(Flag.Body, chunked ? encodeChunk(piece) : piece);
      }
    }
    await stream.send(Flag.Body | Flag.End, chunked ? encodeLastChunk() : new Uint8Array(0));
    return "done";
  } catch {
    return "tunnel-gone";
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Proxies one client request over the domain's tunnel and returns the response to send. The
 * caller has already checked availability and client ACLs.
 */
export async function proxyRequest(
  request: Request,
  client: ClientInfo,
  domain: ServerDomain,
  deps: ProxyDeps & { readonly auth?: ClientAuth },
): Promise<Response> {
  const id = crypto.randomUUID();
  const transaction: HeadersInit = domain.config.transaction ? { "x-transaction-id": id } : {};
  const counters = { in: receivedHeadLength(request), out: OUT_BASE };
  const fail = (status: number, reason: string): Response => {
    deps.access(request, client, { id, status, in: counters.in, out: counters.out, reason });
    return new Response(null, { status, headers: transaction });
  };

  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > domain.config.bodySize) {
    return fail(413, "request body larger than body_size");
  }
  let forwarded: { head: Uint8Array; chunked: boolean };
  try {
    forwarded = forwardedRequestHead(request, client, domain, id, deps.auth);
  } catch (error) {
    return fail(400, `cannot forward request head: ${(error as Error).message}`);
  }
  if (forwarded.head.length > deps.headersSize) return fail(431, "request head too large");

  const stream = deps.open(domain);
  if (stream === undefined) {
    deps.access(request, client, { id, status: 429, in: counters.in, out: counters.out });
    return new Response(null, { status: 429, headers: transaction });
  }
  try {
    await stream.send(Flag.Head | Flag.Start, forwarded.head);
  } catch (error) {
    stream.abort("send failed");
    return fail(502, (error as Error).message || "disconnected"); // SRV-13
  }

  // The upload runs beside the wait for the answer; a failed upload aborts the stream, which
  // ends the wait below, and its outcome decides the status.
  let uploadOutcome: Awaited<ReturnType<typeof pumpBody>> | undefined;
  pumpBody(request, stream, forwarded.chunked, {
    bodySize: domain.config.bodySize,
    idleMs: deps.bodyIdleTimeoutMs,
  }, counters).then((outcome) => {
    uploadOutcome = outcome;
    if (outcome !== "done") stream.abort(outcome); // ODD-35: never a truncated body as complete
  });
  const uploadFailure = (): Response | undefined => {
    if (uploadOutcome === undefined || uploadOutcome === "done") return undefined;
    if (uploadOutcome === "too-large") return fail(413, "request body larger than body_size");
    return fail(
      502,
      uploadOutcome === "client-gone" ? "client went away during upload" : "tunnel closed",
    );
  };

  // Wait for the response head, one write_timeout per message (SRV-14).
  let frame: Frame | null;
  try {
    frame = await stream.read({ signal: request.signal, timeoutMs: deps.writeTimeoutMs });
  } catch (error) {
    const failed = uploadFailure();
    if (failed) return failed;
    stream.abort("no response");
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    return timedOut ? fail(504, "agent did not answer in time") : fail(502, describe(error));
  }
  if (frame === null || frame.kind !== "head") {
    const failed = uploadFailure();
    if (failed) return failed;
    stream.abort("no response head");
    return fail(502, frame === null ? "agent aborted the stream" : "agent sent data before a head");
  }

  let parsed: ReturnType<typeof parseResponseHead>;
  try {
    parsed = parseResponseHead(frame.payload, { requestMethod: request.method });
  } catch (error) {
    stream.abort("bad response head");
    return fail(502, error instanceof HttpParseError ? error.message : describe(error));
  }
  counters.out += frame.payload.length;
  const head = parsed.head;

  if (frame.upgrade) {
    if (deps.upgrade === undefined || !isWebSocketUpgrade(request.headers) || head.status !== 101) {
      stream.abort("unsupported upgrade");
      return fail(502, "backend upgraded to a protocol groom cannot relay");
    }
    return deps.upgrade(
      request,
      head,
      stream,
      (entry) => deps.access(request, client, { id, ...entry }),
    );
  }

  const headers = new Headers(transaction);
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (DROPPED_RESPONSE_HEADERS.has(lower)) continue;
    // A backend may not set groom's session cookie (ODD-18: the real name, not "groom").
    if (lower === "set-cookie" && value.trimStart().startsWith(`${SESSION_COOKIE}=`)) continue;
    headers.append(name, value); // every value kept (ODD-16)
  }
  if (deps.auth?.setCookie) headers.append("set-cookie", deps.auth.setCookie);
  const status = head.status;
  let logged = false;
  // One access record per request: the client may go away (cancel) while a read is pending.
  const finished = (entry: { status: number; reason?: string }) => {
    if (logged) return;
    logged = true;
    deps.access(request, client, { id, in: counters.in, out: counters.out, ...entry });
  };

  if (frame.end || nullBodyStatus(status) || request.method === "HEAD") {
    if (frame.end) {
      stream.finish();
      finished({ status });
    } else {
      drainToEnd(stream, deps.writeTimeoutMs).then((reason) =>
        finished(reason === undefined ? { status } : { status, reason })
      );
    }
    return new Response(null, { status, statusText: head.reason, headers });
  }

  const length = parsed.framing.kind === "length" ? parsed.framing.length : undefined;
  const bodyStart = counters.out;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: Frame | null;
      try {
        // No timeout once the head is here (ODD-8): a stream lives while both ends want it;
        // the tunnel's keep-alive and the client's disconnect (cancel() below) end it. Not
        // request.signal: Deno aborts it once the handler has returned its response.
        next = await stream.read();
      } catch (error) {
        stream.abort("client gone");
        finished({ status, reason: describe(error) });
        controller.error(error);
        return;
      }
      if (next === null || next.kind !== "body") {
        stream.abort("stream ended early");
        finished({
          status,
          reason: next === null ? "agent aborted the stream" : "unexpected message",
        });
        controller.error(new Error("response truncated"));
        return;
      }
      if (next.payload.length > 0) {
        counters.out += next.payload.length;
        controller.enqueue(next.payload);
      }
      if (next.end) {
        // A Content-Length answer shows its own truncation (and Deno cuts the connection for
        // it); only an answer without one needs to look for the ABRT behind the END.
        const truncated = length === undefined
          ? await abortFollows(stream)
          : counters.out - bodyStart < length;
        if (logged) return; // the client went away meanwhile (cancel)
        if (truncated) {
          stream.abort("truncated body");
          finished({
            status,
            reason: length === undefined
              ? "agent reported a truncated body"
              : "body truncated: shorter than its Content-Length",
          });
          controller.error(new Error("response truncated"));
          return;
        }
        stream.finish();
        finished({ status });
        controller.close();
      }
    },
    cancel() {
      stream.abort("client gone");
      finished({ status, reason: "client went away" });
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status, statusText: head.reason, headers });
}

/**
 * Whether the agent aborts the stream right after its BODY|END (PROTO-27: a backend body cut
 * short). Nothing else may follow an END, so anything but an ABRT within
 * {@linkcode TRUNCATION_CHECK_MS} means the body is complete.
 */
async function abortFollows(stream: ProxyStream): Promise<boolean> {
  try {
    return await stream.read({ timeoutMs: TRUNCATION_CHECK_MS }) === null;
  } catch {
    return false; // timed out: the normal case; or the tunnel closed after a complete body
  }
}

/** Reads a bodiless answer's trailing messages until END, so the stream is released cleanly. */
async function drainToEnd(stream: ProxyStream, timeoutMs: number): Promise<string | undefined> {
  try {
    while (true) {
      const next = await stream.read({ timeoutMs });
      if (next === null) return "agent aborted the stream";
      if ((next.kind === "body" || next.kind === "head") && next.end) {
        stream.finish();
        return undefined;
      }
    }
  } catch (error) {
    stream.abort("no end of response");
    return describe(error);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
