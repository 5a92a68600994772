/**
 * Tunnel faults (issue 8): the agent's tunnel runs through a TCP relay that either goes silent
 * (half-open: nothing closes, nothing arrives, as when a NAT entry vanishes) or is cut. The agent
 * of the domain under test runs with short keep-alive timings so the test stays quick; another
 * domain of the same server runs beside it untouched. For each fault: the client in flight gets a
 * prompt error status or a visibly cut body, the other domain is unaffected, the agent comes back
 * by itself and the logs say what happened.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { patternDigest, startBackend } from "../../scripts/sample_backend.ts";
import { type AgentDomainConfig, loadDomainConfig } from "../../src/config/mod.ts";
import { type ConnectorEvent, DomainConnector } from "../../src/agent/mod.ts";
import { openLogger } from "../../src/log/mod.ts";
import { startRelay } from "../_harness/relay.ts";
import { CA_PEM, LogLines, SECRET, startStack } from "../_harness/stack.ts";
import { createHash } from "node:crypto";

/** The domain whose tunnel goes through the relay. */
const DOMAIN = "relayed.localhost";
/** Keep-alive of the relayed agent: ping after 200 ms of silence, give up after 1 s. */
const KEEPALIVE = { pingIntervalMs: 200, idleTimeoutMs: 1_000 };

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Fetches through the stack's server for `host`; never throws (an error is a value). */
async function attempt(
  stack: Stack,
  path: string,
  host = DOMAIN,
): Promise<{ status?: number; digest?: string; bytes: number; error?: string }> {
  let status: number | undefined;
  let bytes = 0;
  const hash = createHash("sha256");
  try {
    const response = await stack.fetch(path, { headers: { host: `${host}:${stack.port}` } });
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

/**
 * A stack (server with `localhost` and its agent), plus the domain {@linkcode DOMAIN} whose agent
 * (a connector with short keep-alive timings) dials the server through a relay.
 */
async function withRelayedDomain(
  run: (context: {
    stack: Stack;
    relay: ReturnType<typeof startRelay>;
    events: ConnectorEvent[];
    connected: (count: number) => Promise<void>;
    agentLog: LogLines;
  }) => Promise<void>,
): Promise<void> {
  await using stack = await startStack({ server: { write_timeout: "5s" } });
  await using backend = startBackend();
  await using relay = startRelay({ hostname: "127.0.0.1", port: stack.port });
  await Deno.writeTextFile(
    join(stack.serverDomains, DOMAIN),
    `groom {\n  active = yes\n  secret = "${SECRET}"\n}\n`,
  );
  await stack.server.rescan();
  const file = join(stack.dir, DOMAIN);
  await Deno.writeTextFile(
    file,
    // insecure: the test certificate's *.localhost does not cover a name under it for rustls.
    `groom {\n  active = yes\n  secret = "${SECRET}"\n  remote = "127.0.0.1:${relay.port}"\n` +
      `  insecure = yes\n` +
      `  targets {\n    active = [ backend ]\n    backend {\n` +
      `      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n}\n`,
  );
  const loaded = await loadDomainConfig(file, "agent");
  const domain: AgentDomainConfig = { ...loaded.config, name: DOMAIN };
  const events: ConnectorEvent[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const agentLog = new LogLines();
  const connector = new DomainConnector({
    domain,
    timeouts: () => ({ connectTimeoutMs: 5_000, readTimeoutMs: 10_000, writeTimeoutMs: 20_000 }),
    logger: openLogger("console(output=stdout,time=no)", { stdout: agentLog, stderr: agentLog }),
    caCerts: [CA_PEM],
    webSocket: KEEPALIVE,
    // The reconnection is what is tested, not the back-off: dial again at once.
    sleep: () => Promise.resolve(),
    onEvent: (event) => {
      events.push(event);
      const connects = events.filter((e) => e.type === "connect").length;
      for (const waiter of [...waiters]) {
        if (connects >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    },
  });
  const connected = (count: number): Promise<void> => {
    if (events.filter((e) => e.type === "connect").length >= count) return Promise.resolve();
    return new Promise((resolve) => waiters.push({ count, resolve }));
  };
  connector.start();
  try {
    await connected(1);
    await stack.server.whenConnected(DOMAIN);
    await run({ stack, relay, events, connected, agentLog });
  } finally {
    await connector.close();
  }
}

Deno.test("a half-open tunnel: the client in flight gets a prompt 502/504, the other domain is untouched, the agent comes back (PROTO-13)", async () => {
  await withRelayedDomain(async ({ stack, relay, events, connected, agentLog }) => {
    assert.equal((await attempt(stack, "/hello")).status, 200);
    assert.equal(relay.silence(), 1); // the tunnel's TCP connection now swallows everything
    const started = performance.now();
    const inFlight = attempt(stack, "/slow?ms=200");
    // The other domain of the same server is served at full speed meanwhile.
    for (let i = 0; i < 5; i++) {
      const other = await attempt(stack, "/hello", "localhost");
      assert.equal(other.status, 200);
    }
    const lost = await inFlight;
    const elapsed = performance.now() - started;
    assert.ok(
      lost.status === 502 || lost.status === 504,
      `in-flight request: ${JSON.stringify(lost)}`,
    );
    assert.ok(elapsed < 7_000, `answered after ${elapsed} ms`);
    // The agent noticed the silence by itself and dialled again through the relay.
    await connected(2);
    assert.ok(relay.accepted >= 2);
    const disconnect = events.find((event) => event.type === "disconnect");
    assert.ok(disconnect, "a disconnect event");
    assert.ok(agentLog.records().some((r) => r.action === "disconnect"), agentLog.lines.join("\n"));
    await stack.server.whenConnected(DOMAIN);
    const back = await attempt(stack, "/hello");
    assert.equal(back.status, 200, JSON.stringify(back));
    // The server logged the replacement of the stale tunnel.
    const connects = stack.serverLog.records().filter((r) =>
      r.event === "domain" && r.action === "connect" && r.domain === DOMAIN
    );
    assert.equal(connects.length, 2);
  });
});

Deno.test("a tunnel cut mid-download: the client sees a cut body, never a complete one, and the agent redials (PROTO-14, DOM-11)", async () => {
  await withRelayedDomain(async ({ stack, relay, connected }) => {
    const size = 4 * 1024 * 1024;
    const response = await stack.fetch(`/trickle?size=${size}&piece=65536&ms=20`, {
      headers: { host: `${DOMAIN}:${stack.port}` },
    });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    let bytes = 0;
    let error: unknown;
    const hash = createHash("sha256");
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        bytes += value.length;
        if (bytes >= 65536 && relay.open > 0) relay.cut();
      }
    } catch (caught) {
      error = caught;
    }
    assert.ok(error !== undefined, `${bytes} of ${size} bytes arrived as a complete body`);
    assert.ok(bytes < size);
    await connected(2);
    await stack.server.whenConnected(DOMAIN);
    const again = await attempt(stack, `/download?size=${1 << 20}`);
    assert.equal(again.digest, patternDigest(1 << 20));
    await stack.accessLog.waitFor((r) =>
      r.domain === DOMAIN && String(r.path).startsWith("/trickle")
    );
    const record = stack.accessLog.records().find((r) => String(r.path).startsWith("/trickle"));
    assert.equal(record?.status, 200);
    assert.ok(record?.reason, `the access record says why: ${JSON.stringify(record)}`);
  });
});
