/**
 * Faults and lifecycle with real processes (issue 8): a groom server process and one agent
 * process per domain, started from configuration files as users run them, a sample backend and
 * an upload recorder in this process. The agent of `localhost` is killed (SIGKILL) mid-download
 * and mid-upload, frozen (SIGSTOP) and replaced; the server is killed and restarted; the server
 * stops (SIGTERM) with requests in flight and reloads (SIGHUP) under load. Each test checks what
 * the client sees (a prompt error status or a visibly cut body, never a hang or a wrong body),
 * that the other domain (`other.localhost`, its own agent) is unaffected, that the agent comes
 * back, and what the logs say. Every wait is bounded by a deadline that fails the test.
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { patternDigest, startBackend } from "../../scripts/sample_backend.ts";
import { GroomProcess, isEvent, logRecord, ROOT } from "../_harness/groom_process.ts";
import { within } from "../_harness/deadline.ts";

const TLS = join(ROOT, "tests", "testdata", "tls");
const CA = await Deno.readTextFile(join(TLS, "ca.pem"));
const SECRET = "faults-secret-0123456789";
/** The domain whose agent suffers the faults, and the bystander. */
const VICTIM = "localhost";
const BYSTANDER = "other.localhost";

/** Records how each upload to it ended: complete (with its size) or broken. */
function startUploadRecorder() {
  const outcomes: { complete: boolean; size: number }[] = [];
  const firstBytes = Promise.withResolvers<void>();
  const ended = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, onError: () => new Response(null) },
    async (request) => {
      let size = 0;
      try {
        for await (const chunk of request.body ?? []) {
          size += chunk.length;
          firstBytes.resolve();
        }
        outcomes.push({ complete: true, size });
      } catch {
        outcomes.push({ complete: false, size });
      }
      ended.resolve();
      return new Response(`received ${size}\n`);
    },
  );
  return {
    port: server.addr.port,
    outcomes,
    firstBytes: firstBytes.promise,
    ended: ended.promise,
    close: () => server.shutdown(),
  };
}

interface World extends AsyncDisposable {
  readonly dir: string;
  readonly serverConf: string;
  server: GroomProcess;
  port: number;
  readonly agents: Map<string, GroomProcess>;
  readonly recorder: ReturnType<typeof startUploadRecorder>;
  /** Starts (or restarts) the agent process of `domain`; resolves once it is connected. */
  startAgent(domain: string): Promise<GroomProcess>;
  /** Starts a new server process on the same port; resolves once it listens. */
  restartServer(): Promise<GroomProcess>;
  /** HTTPS request to the server for `domain`. */
  fetch(domain: string, path: string, init?: RequestInit): Promise<Response>;
}

/** Counts the lines of `process` that pass `test`. */
function count(process: GroomProcess, test: (line: string) => boolean): number {
  return process.lines().filter(test).length;
}

async function startWorld(): Promise<World> {
  const dir = await Deno.makeTempDir({ prefix: "groom-faults-" });
  const backend = startBackend();
  const recorder = startUploadRecorder();
  for (const sub of ["server", ...[VICTIM, BYSTANDER].map((d) => `agent-${d}`)]) {
    await Deno.mkdir(join(dir, sub));
  }
  const serverConf = join(dir, "server.conf");
  const writeServerConf = (port: number) =>
    Deno.writeTextFile(
      serverConf,
      `groom {\n  mode = server\n  write_timeout = 5s\n  body_timeout = 5s\n` +
        `  log {\n    system = "console(output=stdout,time=no) option(level=debug)"\n` +
        `    access = "console(output=stdout,time=no,severity=no)"\n  }\n` +
        `  listen = [ "127.0.0.1:${port},${join(TLS, "localhost.pem")},${
          join(TLS, "localhost.key")
        }" ]\n  domains = "${join(dir, "server")}"\n}\n`,
    );
  await writeServerConf(0);
  for (const domain of [VICTIM, BYSTANDER]) {
    await Deno.writeTextFile(
      join(dir, "server", domain),
      `groom {\n  active = yes\n  secret = "${SECRET}"\n}\n`,
    );
  }
  const server = new GroomProcess([serverConf]);
  const line = await within(20_000, "server listen event", server.waitFor(isEvent("listen")));
  const port = Number(String(logRecord(line)?.address).split(":").pop());
  // Later server processes bind the same port, so the agents find them again.
  await writeServerConf(port);
  for (const domain of [VICTIM, BYSTANDER]) {
    await Deno.writeTextFile(
      join(dir, `agent-${domain}.conf`),
      `groom {\n  mode = agent\n  log {\n    system = "console(output=stdout,time=no) option(level=debug)"\n  }\n` +
        `  domains = "${join(dir, `agent-${domain}`)}"\n}\n`,
    );
    await Deno.writeTextFile(
      join(dir, `agent-${domain}`, domain),
      `groom {\n  active = yes\n  secret = "${SECRET}"\n  remote = "127.0.0.1:${port}"\n` +
        `  insecure = yes\n  targets {\n    active = [ upload, backend ]\n` +
        `    upload {\n      path = "^/upload$"\n      target = "http://127.0.0.1:${recorder.port}"\n    }\n` +
        `    backend {\n      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n}\n`,
    );
  }
  const client = Deno.createHttpClient({ caCerts: [CA], allowHost: true });
  const agents = new Map<string, GroomProcess>();
  const world: World = {
    dir,
    serverConf,
    server,
    port,
    agents,
    recorder,
    async startAgent(domain) {
      const agent = new GroomProcess([join(dir, `agent-${domain}.conf`)]);
      agents.set(domain, agent);
      await within(
        20_000,
        `agent of ${domain} connected`,
        agent.waitFor(isEvent("domain", { action: "connect" })),
      );
      return agent;
    },
    async restartServer() {
      const next = new GroomProcess([serverConf]);
      world.server = next;
      await within(20_000, "restarted server listens", next.waitFor(isEvent("listen")));
      return next;
    },
    fetch(domain, path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set("host", `${domain}:${port}`);
      return fetch(`https://127.0.0.1:${port}${path}`, { ...init, headers, client });
    },
    async [Symbol.asyncDispose]() {
      client.close();
      for (const agent of agents.values()) {
        agent.kill("SIGKILL");
        await agent.status();
      }
      world.server.kill("SIGKILL");
      await world.server.status();
      await backend.close();
      await recorder.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  try {
    await world.startAgent(VICTIM);
    await world.startAgent(BYSTANDER);
    for (const domain of [VICTIM, BYSTANDER]) {
      await within(
        10_000,
        `server sees ${domain}`,
        server.waitFor(isEvent("domain", { action: "connect", domain })),
      );
    }
  } catch (error) {
    await world[Symbol.asyncDispose]();
    throw error;
  }
  return world;
}

/** GET to completion; the digest of a complete body, or the error that ended it. */
async function download(
  world: World,
  domain: string,
  path: string,
): Promise<{ status?: number; bytes: number; digest?: string; error?: string }> {
  let status: number | undefined;
  let bytes = 0;
  const hash = createHash("sha256");
  try {
    const response = await world.fetch(domain, path);
    status = response.status;
    for await (const chunk of response.body ?? []) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } catch (error) {
    return { ...(status === undefined ? {} : { status }), bytes, error: String(error) };
  }
  return { ...(status === undefined ? {} : { status }), bytes, digest: hash.digest("hex") };
}

/** The bystander domain answers a 1 MiB download correctly. */
async function bystanderServes(world: World): Promise<void> {
  const result = await within(
    10_000,
    "bystander",
    download(world, BYSTANDER, "/download?size=1048576"),
  );
  assert.equal(result.digest, patternDigest(1 << 20), JSON.stringify(result));
}

/** Reads `response` until at least `bytes` arrived; returns the reader to go on. */
async function readSome(response: Response, bytes: number) {
  const reader = response.body?.getReader();
  assert.ok(reader);
  let received = 0;
  while (received < bytes) {
    const { done, value } = await reader.read();
    assert.ok(!done, "the body ended early");
    received += value.length;
  }
  return { reader, received };
}

/** Reads the rest; returns the bytes read and the error that ended the body, if any. */
async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>) {
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { received };
      received += value.length;
    }
  } catch (error) {
    return { received, error };
  }
}

Deno.test("agent killed (SIGKILL) mid-download: the body is cut at once, the other domain is unaffected, a new agent serves again", async () => {
  await using world = await startWorld();
  const size = 8 * 1024 * 1024;
  const response = await world.fetch(VICTIM, `/trickle?size=${size}&piece=16384&ms=10`);
  assert.equal(response.status, 200);
  const { reader, received } = await within(10_000, "first bytes", readSome(response, 16384));
  const victim = world.agents.get(VICTIM);
  victim?.kill("SIGKILL");
  const killed = performance.now();
  const rest = await within(5_000, "the cut body ends", readRest(reader));
  assert.ok(rest.error !== undefined, "a cut body must not end as complete");
  assert.ok(received + rest.received < size);
  assert.ok(performance.now() - killed < 5_000);
  await within(
    5_000,
    "server logs the disconnect",
    world.server.waitFor(isEvent("domain", { action: "disconnect", domain: VICTIM })),
  );
  await bystanderServes(world);
  // Without an agent the domain answers the stealth status, promptly.
  const refused = await world.fetch(VICTIM, "/hello");
  assert.equal(refused.status, 404);
  await refused.body?.cancel();
  // A new agent process (what a supervisor starts) is accepted at once.
  await world.startAgent(VICTIM);
  await within(
    5_000,
    "server sees the new agent",
    world.server.waitFor((line) =>
      count(world.server, isEvent("domain", { action: "connect", domain: VICTIM })) >= 2 &&
      isEvent("domain", { action: "connect", domain: VICTIM })(line)
    ),
  );
  const again = await download(world, VICTIM, "/download?size=1048576");
  assert.equal(again.digest, patternDigest(1 << 20));
  const record = world.server.lines().map(logRecord).find((r) =>
    typeof r?.path === "string" && r.path.startsWith("/trickle")
  );
  assert.equal(record?.status, 200);
  assert.ok(record?.reason, `the access record says why: ${JSON.stringify(record)}`);
});

Deno.test("agent killed (SIGKILL) mid-upload: the client gets 502 at once and the backend never sees a complete body (ODD-35)", async () => {
  await using world = await startWorld();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= 256 * 1024 * 1024) return controller.close(); // bound: never reached
      if (sent >= 1 << 20) await world.recorder.firstBytes; // the rest once the backend reads
      controller.enqueue(new Uint8Array(65536).fill(sent & 0xff));
      sent += 65536;
    },
  });
  const answer = world.fetch(VICTIM, "/upload", { method: "POST", body }).then(
    async (response) => ({ status: response.status, text: await response.text() }),
    (error) => ({ status: 0, text: String(error) }),
  );
  await within(10_000, "the backend receives the first bytes", world.recorder.firstBytes);
  world.agents.get(VICTIM)?.kill("SIGKILL");
  const killed = performance.now();
  const result = await within(5_000, "the upload is answered", answer);
  assert.equal(result.status, 502, JSON.stringify(result));
  assert.ok(performance.now() - killed < 5_000);
  await within(5_000, "the backend's request ends", world.recorder.ended);
  assert.deepEqual(world.recorder.outcomes.map((o) => o.complete), [false]);
  await bystanderServes(world);
  const record = await within(
    5_000,
    "access record",
    world.server.waitFor((line) => logRecord(line)?.path === "/upload"),
  );
  assert.equal(logRecord(record)?.status, 502);
});

Deno.test("agent frozen (SIGSTOP): a new agent takes over at once, the frozen one's client gets a prompt error", async () => {
  await using world = await startWorld();
  const frozen = world.agents.get(VICTIM);
  assert.ok(frozen);
  frozen.kill("SIGSTOP");
  try {
    const started = performance.now();
    const stuck = download(world, VICTIM, "/hello");
    await bystanderServes(world);
    // A second agent process for the same domain: the server replaces the frozen tunnel.
    await world.startAgent(VICTIM);
    const result = await within(8_000, "the stuck request is answered", stuck);
    assert.ok(
      result.status === 502 || result.status === 504,
      `stuck request: ${JSON.stringify(result)}`,
    );
    assert.ok(performance.now() - started < 8_000);
    const served = await download(world, VICTIM, "/download?size=1048576");
    assert.equal(served.digest, patternDigest(1 << 20), JSON.stringify(served));
    assert.equal(
      count(world.server, isEvent("domain", { action: "connect", domain: VICTIM })),
      2,
      world.server.output(),
    );
  } finally {
    frozen.kill("SIGKILL"); // a stopped process still dies on SIGKILL
    await frozen.status();
  }
});

Deno.test("server killed and restarted: clients in flight see the cut, both agents come back by themselves", async () => {
  await using world = await startWorld();
  const size = 8 * 1024 * 1024;
  const response = await world.fetch(VICTIM, `/trickle?size=${size}&piece=16384&ms=10`);
  const { reader } = await within(10_000, "first bytes", readSome(response, 16384));
  world.server.kill("SIGKILL");
  const rest = await within(5_000, "the cut body ends", readRest(reader));
  assert.ok(rest.error !== undefined, "a cut body must not end as complete");
  for (const agent of world.agents.values()) {
    await within(
      5_000,
      "agent logs the disconnect",
      agent.waitFor(isEvent("domain", { action: "disconnect" })),
    );
  }
  const server = await world.restartServer();
  for (const domain of [VICTIM, BYSTANDER]) {
    await within(
      15_000,
      `${domain} reconnects`,
      server.waitFor(isEvent("domain", { action: "connect", domain })),
    );
  }
  const again = await download(world, VICTIM, "/download?size=1048576");
  assert.equal(again.digest, patternDigest(1 << 20));
  await bystanderServes(world);
});

Deno.test({
  name:
    "server SIGTERM: in-flight requests finish, new requests are refused, exit 0 with a stop event within the bound (ODD-33)",
}, async () => {
  await using world = await startWorld();
  const server = world.server;
  const short = download(world, VICTIM, "/slow?ms=1500");
  const long = download(world, BYSTANDER, "/slow?ms=3000");
  // Both requests have reached the server once it logged their streams (DEBUG activate).
  await within(
    5_000,
    "two streams",
    server.waitFor(() => count(server, isEvent("stream", { action: "activate" })) >= 2),
  );
  server.kill("SIGTERM");
  const whole = {
    status: 200,
    bytes: "slow answer\n".length,
    digest: createHash("sha256").update("slow answer\n").digest("hex"),
  };
  const first = await within(5_000, "the short request", short);
  assert.deepEqual(first, whole, "the whole answer, not only its head");
  // The long one is still in flight, so the process is alive; yet it takes no new request: the
  // listener stays open while draining (closing it would end the agent tunnels), answering 503.
  const refused = await download(world, VICTIM, "/hello");
  assert.equal(refused.status, 503, JSON.stringify(refused));
  const second = await within(5_000, "the long request", long);
  assert.deepEqual(second, whole);
  const status = await within(12_000, "the server exits", server.status());
  assert.equal(status.code, 0);
  assert.ok(server.lines().some(isEvent("stop", { signal: "SIGTERM" })), server.output());
});

Deno.test("server SIGTERM with a request that never ends: exit within the drain bound", async () => {
  await using world = await startWorld();
  const server = world.server;
  const never = download(world, VICTIM, "/never");
  await within(5_000, "stream", server.waitFor(isEvent("stream", { action: "activate" })));
  const stopped = performance.now();
  server.kill("SIGTERM");
  const status = await within(15_000, "the server exits", server.status());
  assert.equal(status.code, 0);
  assert.ok(performance.now() - stopped < 13_000);
  const result = await within(5_000, "the endless request ends", never);
  assert.ok(result.error !== undefined || result.status !== 200, JSON.stringify(result));
});

Deno.test({
  name: "agent SIGTERM: streams in flight finish before the agent exits (ODD-33)",
}, async () => {
  await using world = await startWorld();
  const agent = world.agents.get(VICTIM);
  assert.ok(agent);
  const inFlight = download(world, VICTIM, "/slow?ms=1500");
  await within(5_000, "stream", agent.waitFor(isEvent("stream", { action: "activate" })));
  agent.kill("SIGTERM");
  const result = await within(8_000, "the request in flight", inFlight);
  // The whole answer, not only its head: a stop must not cut the body off (found by issue 7 work).
  const answer = "slow answer\n";
  assert.deepEqual(result, {
    status: 200,
    bytes: answer.length,
    digest: createHash("sha256").update(answer).digest("hex"),
  });
  assert.equal((await within(12_000, "the agent exits", agent.status())).code, 0);
  assert.ok(agent.lines().some(isEvent("stop", { signal: "SIGTERM" })), agent.output());
});

Deno.test("SIGHUP reload of server and agents under load loses nothing (CLI-10)", async () => {
  await using world = await startWorld();
  const total = 120;
  let next = 0;
  const failures: string[] = [];
  const worker = async () => {
    while (next < total) {
      const index = next++;
      const domain = index % 2 === 0 ? VICTIM : BYSTANDER;
      const size = 1000 + (index * 7919) % 300_000;
      const result = await download(world, domain, `/download?size=${size}`);
      if (result.digest !== patternDigest(size)) {
        failures.push(`${index}: ${JSON.stringify(result)}`);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 6 }, worker));
  for (let round = 1; round <= 4; round++) {
    world.server.kill("SIGHUP");
    for (const agent of world.agents.values()) agent.kill("SIGHUP");
    await within(
      10_000,
      `server reload ${round}`,
      world.server.waitFor(() => count(world.server, isEvent("reload")) >= round),
    );
    for (const agent of world.agents.values()) {
      await within(
        10_000,
        `agent reload ${round}`,
        agent.waitFor(() => count(agent, isEvent("reload")) >= round),
      );
    }
  }
  await within(60_000, "the load", load);
  assert.deepEqual(failures, []);
  assert.equal(
    count(world.server, isEvent("domain", { action: "disconnect" })),
    0,
    world.server.output(),
  );
});
