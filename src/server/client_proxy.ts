/**
 * One client request through an agent tunnel (SRV-3…SRV-23, PROTO-20…PROTO-29): the request head
 * is re-serialised with groom's forwarding headers and sent as HEAD|START, the body streams behind
 * it as BODY messages of up to 64 KiB (client reads batched, re-chunked when the client sent no
 * length), and the agent's answer comes back as a `Response`: whole bytes when a small
 * Content-Length body is complete in the turn its head arrived (Deno's fast path, issue 7),
 * else streamed. Every failure yields a real status (ODD-1: never an empty 200),
 * `body_size` is enforced while streaming (ODD-2), a vanished uploader aborts the stream instead
 * of completing a truncated body (ODD-35), and streamed responses have no idle limit once their
 * head arrived (ODD-8): SSE and long polls live as long as both ends want.
 * @module
 */

import {
  concatBytes,
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
import { clearImmediate, setImmediate } from "node:timers";
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
  /**
   * The request target (path and query) when the router already parsed the URL, so the proxy
   * does not parse it again (issue 7: a URL parse is a measurable share of a small request).
   */
  readonly target?: string;
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

/**
 * Largest Content-Length body the server collects before answering, to hand Deno the whole body
 * as bytes instead of a `ReadableStream` (issue 7: a streamed body costs about a third of the
 * server's CPU for a small answer). 64 KiB is one largest agent message (PROTO-23), so most such
 * answers arrive in a single BODY|END; larger ones stream, where that cost is small beside the
 * transfer itself. The body is only awaited until the end of the event-loop turn that delivered
 * the head: the agent sends a small body right behind its head, and Deno hands over every
 * tunnel message already received in one turn (measured: 98 % of the bench's small answers), so
 * the head of a slower body is never held back.
 */
export const FULL_BODY_MAX_BYTES = 65_536;

/**
 * Largest request body payload per BODY message (PROTO-21): several client reads (TLS gives
 * 16 KiB each) are batched up to this, so an upload takes a quarter of the messages, sends and
 * backend writes. 65 524 data bytes keep a re-chunked message within 65 536 bytes, as groom 1.3
 * peers expect.
 */
export const UPLOAD_BATCH_BYTES = MAX_BODY_PAYLOAD;

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
  return websocketUpgrade(
    headers.get("connection") ?? undefined,
    headers.get("upgrade") ?? undefined,
  );
}

/** {@linkcode isWebSocketUpgrade} from the two header values. */
function websocketUpgrade(connection: string | undefined, upgrade: string | undefined): boolean {
  if (connection === undefined || upgrade === undefined) return false;
  return upgrade.trim().toLowerCase() === "websocket" &&
    connection.toLowerCase().split(",").some((token) => token.trim() === "upgrade");
}

/** The request head forwarded to the agent (PROTO-20 with SRV-9's changes). */
export function forwardedRequestHead(
  request: Request,
  client: ClientInfo,
  domain: ServerDomain,
  id: string,
  auth: ClientAuth = { stripAuthorization: false },
): { head: Uint8Array; chunked: boolean; received: number } {
  // One pass over the headers (each `Headers.get()` is another scan): what the forwarding
  // decisions need is noted on the way, Connection/Upgrade kept aside until we know whether the
  // request is an upgrade.
  let url: URL | undefined;
  const target = client.target ?? targetOf(url ??= new URL(request.url));
  const fields: HeaderField[] = [];
  let host: string | undefined;
  let length: string | undefined;
  let offered: string | undefined;
  let connection: string | undefined;
  let upgradeValue: string | undefined;
  let received = request.method.length + target.length + 13;
  for (const [name, value] of request.headers) {
    received += name.length + value.length + 4;
    switch (name) {
      case "host":
        host = value;
        continue;
      case "content-length":
        length = value;
        continue;
      case "x-forwarded-for":
        offered = value;
        continue;
      case "connection":
        connection = value;
        continue;
      case "upgrade":
        upgradeValue = value;
        continue;
      case "authorization":
        if (auth.stripAuthorization) continue; // groom's own Basic login
        break;
      case "cookie": {
        // groom's session cookie stays here; a header left empty is dropped (ODD-18).
        const rest = withoutCookie(value, SESSION_COOKIE);
        if (rest !== undefined) fields.push([name, rest]);
        continue;
      }
    }
    if (DROPPED_REQUEST_HEADERS.has(name)) continue;
    fields.push([name, value]);
  }
  // HTTP/2 requests carry the authority in the URL, not in a Host header.
  const headers: HeaderField[] = [["Host", host ?? (url ??= new URL(request.url)).host]];
  const chunked = request.body !== null && length === undefined;
  if (chunked) headers.push(["Transfer-Encoding", "chunked"]);
  else if (length !== undefined) headers.push(["Content-Length", length]);
  for (const field of fields) headers.push(field);
  if (websocketUpgrade(connection, upgradeValue)) {
    if (connection !== undefined) headers.push(["connection", connection]);
    if (upgradeValue !== undefined) headers.push(["upgrade", upgradeValue]);
  }
  const peer = client.remoteAddr.hostname;
  const chain = offered?.trim() ?? "";
  // SRV-9 with ODD-24 fixed: a trusted forwarder's chain is kept and the peer appended.
  const forwardedFor = chain !== "" && !domain.forwarders.isEmpty &&
      domain.forwarders.matches(peer)
    ? `${chain}, ${peer}`
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
    target,
    version: "HTTP/1.1",
    headers,
  });
  return { head, chunked, received: received + 2 };
}

/** The origin-form request target of `url`: path and query. */
function targetOf(url: URL): string {
  return url.pathname + url.search;
}

/** Length of the request head as the client sent it, for `in` (SRV-20). */
function receivedHeadLength(request: Request, client: ClientInfo): number {
  const target = client.target ?? targetOf(new URL(request.url));
  let length = request.method.length + target.length + 13;
  for (const [name, value] of request.headers) length += name.length + value.length + 4;
  return length + 2;
}

/** Outcome of an upload. */
type UploadOutcome = "done" | "too-large" | "client-gone" | "tunnel-gone";

/**
 * Streams the request body to the agent; resolves with the outcome. Reads are batched into BODY
 * messages of up to {@linkcode UPLOAD_BATCH_BYTES}: data that is already there (the next read
 * completes within the same turn of the event loop: 97 % of 16 KiB TLS reads of a fast upload,
 * measured) joins the batch, so a fast upload travels in full messages while a trickle is still
 * forwarded as soon as it pauses (PROTO-21: each BODY stays HTTP/1.1 wire form, one chunk per
 * message when re-chunked). One message may be in flight while the next batch is read, so
 * reading goes on while flow control waits for credit.
 */
async function pumpBody(
  source: ReadableStream<Uint8Array>,
  stream: ProxyStream,
  chunked: boolean,
  limits: { bodySize: number; idleMs: number },
  counters: { in: number },
): Promise<UploadOutcome> {
  const reader = source.getReader();
  const idle = new IdleWatch(limits.idleMs);
  let total = 0;
  let batch: Uint8Array | undefined;
  let filled = 0;
  let inFlight: Promise<void> | undefined;
  /** Sends `payload`, after the previous message was handed over (one in flight at a time). */
  const send = async (flags: number, payload: Uint8Array): Promise<void> => {
    if (inFlight !== undefined) await inFlight;
    inFlight = stream.send(flags, payload);
    // Awaited by the next send or at the end; a rejection left behind (the stream was aborted
    // for another reason) must not surface as unhandled.
    inFlight.catch(() => {});
  };
  const flush = async (): Promise<void> => {
    if (batch === undefined || filled === 0) return;
    const data = batch.subarray(0, filled);
    batch = undefined; // handed over: the next batch gets a fresh buffer
    filled = 0;
    await send(Flag.Body, chunked ? encodeChunk(data) : data);
  };
  try {
    while (true) {
      const reading = reader.read();
      let next: ReadableStreamReadResult<Uint8Array> | "idle" | "pause";
      try {
        // A partial batch goes out when no more data is there right now.
        next = await idle.race(reading, filled > 0);
      } catch {
        return "client-gone";
      }
      if (next === "pause") {
        await flush();
        try {
          next = await idle.race(reading, false);
        } catch {
          return "client-gone";
        }
      }
      if (next === "idle" || next === "pause") return "client-gone";
      if (next.done) break;
      const data = next.value;
      total += data.length;
      counters.in += data.length;
      if (total > limits.bodySize) return "too-large";
      let offset = 0;
      while (offset < data.length) {
        if (filled === 0 && data.length - offset >= UPLOAD_BATCH_BYTES) {
          // A whole message's worth: sent as it is, no copy.
          const piece = data.subarray(offset, offset + UPLOAD_BATCH_BYTES);
          offset += piece.length;
          await send(Flag.Body, chunked ? encodeChunk(piece) : piece);
          continue;
        }
        batch ??= new Uint8Array(UPLOAD_BATCH_BYTES);
        const take = Math.min(UPLOAD_BATCH_BYTES - filled, data.length - offset);
        batch.set(data.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === UPLOAD_BATCH_BYTES) await flush();
      }
    }
    await flush();
    await send(Flag.Body | Flag.End, chunked ? encodeLastChunk() : new Uint8Array(0));
    await inFlight;
    return "done";
  } catch {
    return "tunnel-gone";
  } finally {
    idle.stop();
    reader.cancel().catch(() => {});
  }
}

/**
 * The upload's idle limit (ODD-21: a pause, not the whole body) with one timer for the whole
 * upload instead of one per read: the timer is re-armed for the rest of the limit when it fires
 * after progress.
 */
class IdleWatch {
  readonly #limitMs: number;
  #last = performance.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: ((value: "idle") => void) | undefined;

  constructor(limitMs: number) {
    this.#limitMs = limitMs;
  }

  /**
   * The read's result, or `"idle"` when the limit passes first; with `pause`, `"pause"` when the
   * read is not done within this turn of the event loop (more data is not there yet).
   */
  race<T>(reading: Promise<T>, pause: boolean): Promise<T | "idle" | "pause"> {
    this.#last = performance.now(); // the pause is counted from here, not from a tunnel wait
    this.#arm();
    const { promise, resolve, reject } = Promise.withResolvers<T | "idle" | "pause">();
    const turn = pause ? setImmediate(() => resolve("pause")) : undefined;
    this.#wake = resolve;
    reading.then((value) => {
      if (turn !== undefined) clearImmediate(turn);
      resolve(value);
    }, (error) => {
      if (turn !== undefined) clearImmediate(turn);
      reject(error);
    });
    return promise;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake = undefined;
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const due = this.#last + this.#limitMs - performance.now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (performance.now() - this.#last >= this.#limitMs) this.#wake?.("idle");
      else this.#arm();
    }, Math.max(0, due));
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
  // `in` starts with the head's length, which the forwarding pass below measures (SRV-20).
  const counters = { in: 0, out: OUT_BASE };
  const fail = (status: number, reason: string): Response => {
    deps.access(request, client, { id, status, in: counters.in, out: counters.out, reason });
    return new Response(null, { status, headers: transaction });
  };

  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > domain.config.bodySize) {
    counters.in = receivedHeadLength(request, client);
    return fail(413, "request body larger than body_size");
  }
  let forwarded: ReturnType<typeof forwardedRequestHead>;
  try {
    forwarded = forwardedRequestHead(request, client, domain, id, deps.auth);
  } catch (error) {
    counters.in = receivedHeadLength(request, client);
    return fail(400, `cannot forward request head: ${(error as Error).message}`);
  }
  counters.in = forwarded.received;
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
  let uploadOutcome: UploadOutcome | undefined;
  const uploaded = (outcome: UploadOutcome): void => {
    uploadOutcome = outcome;
    if (outcome !== "done") stream.abort(outcome); // ODD-35: never a truncated body as complete
  };
  if (request.body === null) {
    // A bodiless request's whole body is one empty BODY|END (PROTO-21).
    stream.send(Flag.Body | Flag.End, new Uint8Array(0)).then(
      () => uploaded("done"),
      () => uploaded("tunnel-gone"),
    );
  } else {
    pumpBody(request.body, stream, forwarded.chunked, {
      bodySize: domain.config.bodySize,
      idleMs: deps.bodyIdleTimeoutMs,
    }, counters).then(uploaded);
  }
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

  // A list, not a `Headers`: the `Response` builds its own header list from it, and filling a
  // `Headers` first would validate and copy every field twice (issue 7).
  const headers: [string, string][] = domain.config.transaction ? [["x-transaction-id", id]] : [];
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (DROPPED_RESPONSE_HEADERS.has(lower)) continue;
    // A backend may not set groom's session cookie (ODD-18: the real name, not "groom").
    if (lower === "set-cookie" && value.trimStart().startsWith(`${SESSION_COOKIE}=`)) continue;
    headers.push([name, value]); // every value kept (ODD-16)
  }
  if (deps.auth?.setCookie) headers.push(["set-cookie", deps.auth.setCookie]);
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
  // Issue 7: a small Content-Length body is collected before answering, so Deno gets the whole
  // answer as bytes (its fast path) instead of a stream. Whatever is not a complete, exact body
  // (a pause, an ABRT, a short or long END, a closed tunnel) hands over to the streamed answer
  // below, which then behaves exactly as if it had read those messages itself.
  const prefix: Uint8Array[] = [];
  let carried: Outcome<Frame | null> | { readonly pending: Promise<Frame | null> } | undefined;
  if (length !== undefined && length <= FULL_BODY_MAX_BYTES) {
    let collected = 0;
    while (true) {
      const reading = stream.read();
      const got = await withinTurn(reading);
      if (got === undefined) {
        carried = { pending: reading }; // not there yet: the streamed answer reads it
        break;
      }
      if ("error" in got) {
        carried = got;
        break;
      }
      const next = got.value;
      if (next === null || next.kind !== "body" || collected + next.payload.length > length) {
        carried = got;
        break;
      }
      if (next.end && collected + next.payload.length < length) {
        carried = got; // short of its Content-Length: truncated, below
        break;
      }
      if (next.payload.length > 0) {
        collected += next.payload.length;
        counters.out += next.payload.length;
        prefix.push(next.payload);
      }
      if (collected === length) {
        // Complete by its length; an END still to come is read behind the answer, as for a
        // bodiless one (the body's bytes are the client's whatever happens to the stream now).
        if (next.end) {
          stream.finish();
          finished({ status });
        } else {
          drainToEnd(stream, deps.writeTimeoutMs).then((reason) =>
            finished(reason === undefined ? { status } : { status, reason })
          );
        }
        return new Response(concatBytes(prefix, length) as Uint8Array<ArrayBuffer>, {
          status,
          statusText: head.reason,
          headers,
        });
      }
    }
  }

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (prefix.length > 0) {
        for (const chunk of prefix.splice(0)) controller.enqueue(chunk);
        return;
      }
      let next: Frame | null;
      try {
        // No timeout once the head is here (ODD-8): a stream lives while both ends want it;
        // the tunnel's keep-alive and the client's disconnect (cancel() below) end it. Not
        // request.signal: Deno aborts it once the handler has returned its response.
        if (carried === undefined) next = await stream.read();
        else if ("pending" in carried) next = await carried.pending;
        else if ("error" in carried) {
          // The stream failed while the body was being collected. SRV-18: the head arrived, so
          // the client gets it and then a cut body, as when it streams; Deno writes the head
          // only if the body fails after a turn of the event loop (measured with HTTP/2).
          await new Promise((resolve) => setTimeout(resolve, 0));
          throw carried.error;
        } else next = carried.value;
      } catch (error) {
        carried = undefined;
        stream.abort("client gone");
        finished({ status, reason: describe(error) });
        controller.error(error);
        return;
      }
      carried = undefined;
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

/** How a promise settled. */
type Outcome<T> = { readonly value: T } | { readonly error: unknown };

/**
 * How `promise` settles if it does within this turn of the event loop (before `setImmediate`
 * callbacks run), else `undefined`; `promise` goes on either way.
 */
function withinTurn<T>(promise: Promise<T>): Promise<Outcome<T> | undefined> {
  return new Promise((resolve) => {
    const turn = setImmediate(() => resolve(undefined));
    promise.then((value) => {
      clearImmediate(turn);
      resolve({ value });
    }, (error) => {
      clearImmediate(turn);
      resolve({ error });
    });
  });
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
