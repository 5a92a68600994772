/**
 * The clients of `deno task bench`, each run as its own process (so a client's work never shares
 * an event loop with another client or with the bench's sampling): bulk downloads and uploads
 * with SHA-256 checks, back-to-back downloads, a latency probe (sequential small requests, time to
 * first byte and to last byte), WebSocket echo, many held slow requests, and a built-in load
 * generator used when neither `wrk` nor `autocannon` is available. Usage:
 * `deno run -A scripts/bench/client.ts '<json job>'`; prints one JSON result line on stdout.
 * Every HTTP request goes to `origin` with `Host: host` (the groom domain) over HTTP/1.1, as
 * `wrk` does, trusting the test CA.
 * @module
 */

import { createHash } from "node:crypto";
import { patternBytes } from "../sample_backend.ts";

/** The pattern repeats every 251 bytes, see `scripts/sample_backend.ts`. */
const PATTERN_PERIOD = 251;
/** Piece size used to build and hash pattern bytes. */
const PIECE = 1 << 20;

/** Where requests go. */
export interface Target {
  /** `https://127.0.0.1:PORT` */
  readonly origin: string;
  /** Host header value (`localhost:PORT`). */
  readonly host: string;
}

/** One job for a client process. */
export type ClientJob =
  | Target & { readonly op: "download"; readonly size: number; readonly parallel: number }
  | Target & { readonly op: "upload"; readonly size: number }
  | Target & { readonly op: "loop"; readonly size: number; readonly seconds: number }
  | Target & { readonly op: "probe"; readonly size: number; readonly count: number }
  | Target & { readonly op: "hold"; readonly count: number }
  | Target & {
    readonly op: "load";
    readonly path: string;
    readonly connections: number;
    readonly seconds: number;
  }
  | {
    readonly op: "ws";
    /** `wss://localhost:PORT/ws` */
    readonly url: string;
    readonly size: number;
    readonly window: number;
    readonly seconds: number;
  };

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly count: number;
}

/** The percentiles of `samples` (milliseconds), nearest rank. */
export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) =>
    sorted.length === 0
      ? 0
      : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), count: sorted.length };
}

/** SHA-256 hex of the first `size` pattern bytes, computed from one period (fast). */
export function patternSha256(size: number): string {
  const period = patternBytes(0, PIECE + PATTERN_PERIOD);
  const hash = createHash("sha256");
  for (let offset = 0; offset < size; offset += PIECE) {
    const start = offset % PATTERN_PERIOD;
    hash.update(period.subarray(start, start + Math.min(PIECE, size - offset)));
  }
  return hash.digest("hex");
}

function patternBuffer(size: number): Uint8Array<ArrayBuffer> {
  const period = patternBytes(0, PIECE + PATTERN_PERIOD);
  const out = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += PIECE) {
    const start = offset % PATTERN_PERIOD;
    out.set(period.subarray(start, start + Math.min(PIECE, size - offset)), offset);
  }
  return out;
}

function httpClient(): Deno.HttpClient {
  const ca = Deno.readTextFileSync(new URL("../../tests/testdata/tls/ca.pem", import.meta.url));
  return Deno.createHttpClient({ caCerts: [ca], allowHost: true, http2: false });
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** One GET whose body is read (and hashed when `hash`); throws on non-2xx. */
async function fetchBody(
  client: Deno.HttpClient,
  target: Target,
  path: string,
  hash?: ReturnType<typeof createHash>,
  onHead?: () => void,
): Promise<{ bytes: number; ttfbMs: number; totalMs: number }> {
  const start = performance.now();
  const response = await fetch(target.origin + path, { client, headers: { host: target.host } });
  const ttfbMs = performance.now() - start;
  onHead?.();
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`status ${response.status}`);
  }
  let bytes = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      bytes += chunk.length;
      hash?.update(chunk);
    }
  }
  return { bytes, ttfbMs, totalMs: performance.now() - start };
}

async function download(job: Extract<ClientJob, { op: "download" }>) {
  const expected = patternSha256(job.size);
  using client = httpClient();
  const start = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: job.parallel }, async () => {
      const hash = createHash("sha256");
      const result = await fetchBody(client, job, `/bytes?size=${job.size}`, hash);
      if (result.bytes !== job.size) throw new Error(`got ${result.bytes} of ${job.size} bytes`);
      if (hash.digest("hex") !== expected) throw new Error("SHA-256 mismatch");
      return result;
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const errors = results.flatMap((r) => r.status === "rejected" ? [describe(r.reason)] : []);
  const bytes = job.size * (results.length - errors.length);
  return { bytes, seconds, mbps: bytes / 1e6 / seconds, errors };
}

async function upload(job: Extract<ClientJob, { op: "upload" }>) {
  const body = patternBuffer(job.size);
  const expected = createHash("sha256").update(body).digest("hex");
  using client = httpClient();
  const errors: string[] = [];
  const start = performance.now();
  try {
    const response = await fetch(job.origin + "/digest", {
      method: "POST",
      body,
      client,
      headers: { host: job.host, "content-type": "application/octet-stream" },
    });
    const text = await response.text();
    if (!response.ok) errors.push(`status ${response.status}`);
    else {
      const answer = JSON.parse(text) as { size: number; sha256: string };
      if (answer.size !== job.size || answer.sha256 !== expected) {
        errors.push(`digest mismatch: ${text}`);
      }
    }
  } catch (error) {
    errors.push(describe(error));
  }
  const seconds = (performance.now() - start) / 1000;
  return { bytes: job.size, seconds, mbps: job.size / 1e6 / seconds, errors };
}

/** Downloads back to back until `seconds` pass or stdin closes (the bench's "stop"). */
async function loop(job: Extract<ClientJob, { op: "loop" }>) {
  using client = httpClient();
  const stop = AbortSignal.any([AbortSignal.timeout(job.seconds * 1000), stdinClosed()]);
  const errors: string[] = [];
  let bytes = 0;
  let downloads = 0;
  const start = performance.now();
  while (!stop.aborted) {
    try {
      const result = await fetchBody(client, job, `/bytes?size=${job.size}`, undefined, () => {
        if (downloads === 0) console.log("started"); // the bench starts its probe now
      });
      if (result.bytes !== job.size) errors.push(`got ${result.bytes} of ${job.size} bytes`);
      bytes += result.bytes;
      downloads++;
    } catch (error) {
      errors.push(describe(error));
      break;
    }
  }
  const seconds = (performance.now() - start) / 1000;
  return { bytes, downloads, seconds, mbps: bytes / 1e6 / seconds, errors };
}

/** Sequential small requests on one keep-alive connection: latency and time to first byte. */
async function probe(job: Extract<ClientJob, { op: "probe" }>) {
  using client = httpClient();
  const latency: number[] = [];
  const ttfb: number[] = [];
  const errors: string[] = [];
  for (let i = 0; i < job.count; i++) {
    try {
      const result = await fetchBody(client, job, `/bytes?size=${job.size}`);
      latency.push(result.totalMs);
      ttfb.push(result.ttfbMs);
    } catch (error) {
      errors.push(describe(error));
      if (errors.length > 10) break;
    }
  }
  return { latency: percentiles(latency), ttfb: percentiles(ttfb), errors };
}

/** Opens `count` requests to `/never`, prints `open`, aborts them all when stdin closes. */
async function hold(job: Extract<ClientJob, { op: "hold" }>) {
  using client = httpClient();
  const controller = new AbortController();
  const errors: string[] = [];
  let answered = 0;
  const requests = Array.from({ length: job.count }, () =>
    fetch(job.origin + "/never", {
      client,
      headers: { host: job.host },
      signal: controller.signal,
    }).then(async (response) => {
      answered++;
      errors.push(`answered early: status ${response.status}`);
      await response.body?.cancel();
    }, (error) => {
      if (!controller.signal.aborted) errors.push(describe(error));
    }));
  console.log("open");
  await new Promise<void>((resolve) => stdinClosed().addEventListener("abort", () => resolve()));
  controller.abort();
  await Promise.all(requests);
  return { count: job.count, answered, errors: errors.slice(0, 10), errorCount: errors.length };
}

/** The built-in load generator: `connections` sequential request loops for `seconds`. */
async function load(job: Extract<ClientJob, { op: "load" }>) {
  using client = httpClient();
  const latency: number[] = [];
  const errors: string[] = [];
  let non2xx = 0;
  let bytes = 0;
  const end = performance.now() + job.seconds * 1000;
  const start = performance.now();
  await Promise.all(Array.from({ length: job.connections }, async () => {
    while (performance.now() < end) {
      const begin = performance.now();
      try {
        const response = await fetch(job.origin + job.path, {
          client,
          headers: { host: job.host },
        });
        const body = await response.arrayBuffer();
        bytes += body.byteLength;
        if (response.status < 200 || response.status > 299) non2xx++;
        latency.push(performance.now() - begin);
      } catch (error) {
        errors.push(describe(error));
        if (errors.length > 100) return;
      }
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  return {
    requests: latency.length,
    seconds,
    rps: latency.length / seconds,
    latency: percentiles(latency),
    non2xx,
    errors: errors.length,
    firstErrors: errors.slice(0, 5),
    bytes,
  };
}

/** WebSocket echo with `window` messages in flight: echoed messages per second. */
async function ws(job: Extract<ClientJob, { op: "ws" }>) {
  using client = httpClient();
  const socket = new WebSocket(job.url, { client });
  socket.binaryType = "arraybuffer";
  const errors: string[] = [];
  const message = patternBytes(0, job.size);
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (event) => reject(new Error((event as ErrorEvent).message || "ws error"));
  });
  const { promise, resolve } = Promise.withResolvers<void>();
  let sent = 0;
  let echoed = 0;
  let stopping = false;
  const start = performance.now();
  const end = start + job.seconds * 1000;
  socket.onmessage = (event) => {
    const data = event.data as ArrayBuffer;
    if (data.byteLength !== job.size) errors.push(`echo of ${data.byteLength} bytes`);
    echoed++;
    if (performance.now() >= end) stopping = true;
    if (!stopping) {
      socket.send(message);
      sent++;
    } else if (echoed === sent) resolve();
  };
  socket.onerror = (event) => {
    errors.push((event as ErrorEvent).message || "ws error");
    resolve();
  };
  socket.onclose = () => resolve();
  for (let i = 0; i < job.window; i++) {
    socket.send(message);
    sent++;
  }
  await promise;
  const seconds = (performance.now() - start) / 1000;
  socket.close();
  return {
    messages: echoed,
    seconds,
    messagesPerSecond: echoed / seconds,
    mbps: (echoed * job.size) / 1e6 / seconds,
    errors: errors.slice(0, 10),
  };
}

function stdinClosed(): AbortSignal {
  const controller = new AbortController();
  (async () => {
    try {
      for await (const _ of Deno.stdin.readable) { /* the bench writes nothing */ }
    } catch {
      // Closed abruptly: same meaning.
    }
    controller.abort();
  })();
  return controller.signal;
}

/** Runs one job and returns its JSON result. */
export function runJob(job: ClientJob): Promise<unknown> {
  switch (job.op) {
    case "download":
      return download(job);
    case "upload":
      return upload(job);
    case "loop":
      return loop(job);
    case "probe":
      return probe(job);
    case "hold":
      return hold(job);
    case "load":
      return load(job);
    case "ws":
      return ws(job);
  }
}

if (import.meta.main) {
  const job = JSON.parse(Deno.args[0] ?? "{}") as ClientJob;
  try {
    const result = await runJob(job);
    console.log(JSON.stringify(result));
    Deno.exit(0);
  } catch (error) {
    console.log(JSON.stringify({ errors: [describe(error)] }));
    Deno.exit(1);
  }
}
