import assert from "node:assert/strict";
import type { AgentDomainConfig } from "../config/mod.ts";
import { decodeFrame, Flag } from "../protocol/mod.ts";
import {
  AGENT_PROTOCOLS,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  BACKOFF_RESET_AFTER_MS,
  backoffDelay,
  CLOSE_GOING_AWAY,
  type ConnectorEvent,
  dialPlan,
  DomainConnector,
} from "./connector.ts";
import { latin1, MemoryLogger, TEST_CA, TestTunnelServer, tunnelMessage } from "./_test_helpers.ts";

const TIMEOUTS = { connectTimeoutMs: 5_000, readTimeoutMs: 5_000, writeTimeoutMs: 5_000 };

function domain(overrides: Partial<AgentDomainConfig> = {}): AgentDomainConfig {
  return {
    name: "localhost",
    active: true,
    secret: "s3cret",
    concurrency: 20,
    bodySize: 8 * 1024 * 1024,
    transaction: true,
    remote: "localhost:443",
    service: "/.well-known/groom-agent",
    insecure: false,
    targets: [],
    ...overrides,
  } as AgentDomainConfig;
}

/** Collects connector events and lets a test wait for the n-th of a type. */
class EventLog {
  readonly events: ConnectorEvent[] = [];
  #waiters: (() => void)[] = [];

  readonly push = (event: ConnectorEvent): void => {
    this.events.push(event);
    for (const waiter of this.#waiters.splice(0)) waiter();
  };

  async nth(type: ConnectorEvent["type"], count: number): Promise<void> {
    while (this.events.filter((event) => event.type === type).length < count) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/** A sleep that records the delays asked for and returns at once. */
function instantSleep(delays: number[]) {
  return (ms: number): Promise<void> => {
    delays.push(ms);
    return Promise.resolve();
  };
}

Deno.test("dialPlan() dials remote but presents the domain file name as Host and SNI (issue 3, PROTO-2, PROTO-3)", () => {
  const cases: [Partial<AgentDomainConfig>, string, string][] = [
    [
      { name: "golden.test", remote: "golden.test:62486" },
      "wss://golden.test:62486/.well-known/groom-agent",
      "golden.test:62486",
    ],
    [
      { name: "www.domain.com", remote: "127.0.0.1:8443" },
      "wss://127.0.0.1:8443/.well-known/groom-agent",
      "www.domain.com:8443",
    ],
    [
      { name: "www.domain.com", remote: "www.domain.com:443" },
      "wss://www.domain.com/.well-known/groom-agent",
      "www.domain.com:443",
    ],
    [
      { name: "a.test", remote: "[::1]:9000", service: "/agent" },
      "wss://[::1]:9000/agent",
      "a.test:9000",
    ],
  ];
  for (const [overrides, url, host] of cases) {
    const plan = dialPlan(domain(overrides));
    assert.equal(plan.url, url);
    assert.equal(plan.host, host);
    assert.equal(plan.serverName, overrides.name);
    assert.deepEqual(plan.headers, [["Authorization", "Bearer s3cret"]]);
  }
  assert.equal(cases.length, 4);
  assert.throws(() => dialPlan(domain({ remote: "user@host:1" })), TypeError);
});

Deno.test("backoffDelay() grows exponentially with full jitter up to the cap (ODD-34)", () => {
  const top = () => 0.999_999;
  const ceilings = Array.from({ length: 10 }, (_, attempt) => backoffDelay(attempt, top));
  assert.deepEqual(ceilings, [499, 999, 1999, 3999, 7999, 15_999, 31_999, 59_999, 59_999, 59_999]);
  assert.equal(backoffDelay(3, () => 0), 0);
  assert.equal(backoffDelay(1, () => 0.5), BACKOFF_INITIAL_MS);
  assert.equal(backoffDelay(1_000, top), BACKOFF_MAX_MS - 1);
});

Deno.test("DomainConnector sends Host, SNI, Authorization and the groom sub-protocol as specified (issue 3, PROTO-3)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const log = new EventLog();
  const connector = new DomainConnector({
    domain: domain({ remote: `127.0.0.1:${server.port}` }),
    timeouts: () => TIMEOUTS,
    logger: memory.logger,
    caCerts: [TEST_CA],
    onEvent: log.push,
  });
  connector.start();
  const tunnel = await server.tunnel(0);
  await log.nth("connect", 1);
  assert.deepEqual(server.serverNames, ["localhost"]);
  assert.match(tunnel.handshake.head, /^GET \/\.well-known\/groom-agent HTTP\/1\.1\r\n/);
  assert.equal(tunnel.handshake.header("host"), `localhost:${server.port}`);
  assert.equal(tunnel.handshake.header("authorization"), "Bearer s3cret");
  assert.equal(tunnel.handshake.header("sec-websocket-protocol"), AGENT_PROTOCOLS.join(", "));
  await connector.close();
  await tunnel.done;
  assert.equal(tunnel.closeCode, CLOSE_GOING_AWAY);
  const domainEvents = (await memory.records()).filter((record) => record.event === "domain");
  assert.deepEqual(domainEvents, [
    {
      action: "connect",
      domain: "localhost",
      event: "domain",
      mode: "agent",
      remote: `127.0.0.1:${server.port}`,
    },
    {
      action: "disconnect",
      domain: "localhost",
      event: "domain",
      mode: "agent",
      remote: `127.0.0.1:${server.port}`,
    },
  ]);
});

Deno.test("DomainConnector forwards a tunnelled request to the backend and back (AGT-2, PROTO-20…PROTO-23)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const backend = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await backend.accept();
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n\r\n")) {
      const count = await conn.read(buffer);
      if (count === null) break;
      text += latin1(buffer.subarray(0, count));
    }
    await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
    conn.close();
    return text;
  })();
  const connector = new DomainConnector({
    domain: domain({
      remote: `127.0.0.1:${server.port}`,
      targets: [{
        name: "default",
        target: `http://127.0.0.1:${backend.addr.port}`,
        method: "",
        path: "",
        host: "target",
        insecure: false,
      }],
    }),
    timeouts: () => TIMEOUTS,
    logger: memory.logger,
    caCerts: [TEST_CA],
  });
  try {
    connector.start();
    const tunnel = await server.tunnel(0);
    await tunnel.send(
      tunnelMessage(Flag.Head | Flag.Start, 7, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    );
    await tunnel.send(tunnelMessage(Flag.Body | Flag.End, 7));
    const messages = (await tunnel.waitMessages(2)).map((message) => decodeFrame(message.payload));
    assert.deepEqual(messages.map((frame) => [frame.kind, frame.streamId]), [["head", 7], [
      "body",
      7,
    ]]);
    assert.equal(
      latin1(messages[0]?.payload ?? new Uint8Array()),
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    );
    assert.equal(latin1(messages[1]?.payload ?? new Uint8Array()), "hello");
    assert.equal(messages[1]?.kind === "body" && messages[1].end, true);
    assert.equal(await served, `GET /x HTTP/1.1\r\nHost: 127.0.0.1:${backend.addr.port}\r\n\r\n`);
  } finally {
    await connector.close();
    backend.close();
  }
  const streamEvents = (await memory.records()).filter((record) => record.event === "stream");
  assert.deepEqual(streamEvents.map((record) => record.action), ["activate", "shutdown"]);
});

Deno.test("DomainConnector reconnects after the server closes the tunnel, and resets the back-off after a long-lived tunnel (AGT-1, ODD-34)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const delays: number[] = [];
  const log = new EventLog();
  let clock = 0;
  const connector = new DomainConnector({
    domain: domain({ remote: `127.0.0.1:${server.port}` }),
    timeouts: () => TIMEOUTS,
    logger: memory.logger,
    caCerts: [TEST_CA],
    random: () => 0.999_999,
    sleep: instantSleep(delays),
    monotonicNow: () => clock,
    onEvent: log.push,
  });
  try {
    connector.start();
    const first = await server.tunnel(0);
    await log.nth("connect", 1);
    await first.close(1000); // Short-lived: the back-off grows.
    const second = await server.tunnel(1);
    await log.nth("connect", 2);
    clock += BACKOFF_RESET_AFTER_MS; // This one lives long enough: the back-off restarts.
    await second.close(1000);
    await server.tunnel(2);
    await log.nth("connect", 3);
    assert.deepEqual(delays, [499, 499]);
    assert.deepEqual(log.events.map((event) => event.type), [
      "connect",
      "disconnect",
      "connect",
      "disconnect",
      "connect",
    ]);
  } finally {
    await connector.close();
  }
});

Deno.test("DomainConnector backs off exponentially and logs one WARN per failed dial with the PROTO-5 text (AGT-1)", async () => {
  await using server = new TestTunnelServer();
  server.policy = { refuse: 404 };
  await using memory = new MemoryLogger();
  const delays: number[] = [];
  const enough = Promise.withResolvers<void>();
  const connector = new DomainConnector({
    domain: domain({ remote: `127.0.0.1:${server.port}` }),
    timeouts: () => TIMEOUTS,
    logger: memory.logger,
    caCerts: [TEST_CA],
    random: () => 0.999_999,
    sleep: (ms, signal) => {
      delays.push(ms);
      if (delays.length < 5) return Promise.resolve();
      enough.resolve();
      return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
    },
  });
  connector.start();
  await enough.promise;
  await connector.close();
  assert.deepEqual(delays, [499, 999, 1999, 3999, 7999]);
  assert.equal(server.handshakes.length, 5);
  const errors = (await memory.records()).filter((record) => record.event === "error");
  assert.equal(errors.length, 5);
  assert.deepEqual(errors[0], {
    domain: "localhost",
    error: "websocket: invalid protocol upgrade (status 404)",
    event: "error",
    mode: "agent",
    remote: `127.0.0.1:${server.port}`,
  });
});

Deno.test("DomainConnector reconnects with a new secret at once; a target change keeps the tunnel (ODD-12, DOM-10)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const delays: number[] = [];
  const base = domain({ remote: `127.0.0.1:${server.port}` });
  const connector = new DomainConnector({
    domain: base,
    timeouts: () => TIMEOUTS,
    logger: memory.logger,
    caCerts: [TEST_CA],
    sleep: instantSleep(delays),
  });
  try {
    connector.start();
    const first = await server.tunnel(0);
    connector.update({
      ...base,
      targets: [{
        name: "t",
        target: "http://127.0.0.1:1",
        method: "",
        path: "",
        host: "target",
        insecure: false,
      }],
    });
    assert.equal(first.ended, false);
    connector.update({ ...base, secret: "rotated" });
    const second = await server.tunnel(1);
    await first.done;
    assert.equal(second.handshake.header("authorization"), "Bearer rotated");
    assert.deepEqual(delays, [], "no back-off before dialling with the new settings");
  } finally {
    await connector.close();
  }
});
