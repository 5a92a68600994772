import assert from "node:assert/strict";
import { join } from "node:path";
import type { AgentConfig } from "../config/mod.ts";
import { type AgentEvent, CLOSE_GOING_AWAY, CLOSE_NORMAL, startAgent } from "./mod.ts";
import { MemoryLogger, TEST_CA, TestTunnelServer } from "./_test_helpers.ts";

function agentConfig(domains: string): AgentConfig {
  return {
    mode: "agent",
    connectTimeoutMs: 5_000,
    readTimeoutMs: 10_000,
    writeTimeoutMs: 20_000,
    domains,
    logSystem: "console(output=stdout)",
    logAccess: "",
  } as AgentConfig;
}

function domainFile(
  options: { active: boolean; secret: string; port: number; insecure?: boolean },
): string {
  return `groom
{
    active = ${options.active ? "true" : "false"}
    insecure = ${options.insecure ? "true" : "false"}
    secret = "${options.secret}"
    remote = "127.0.0.1:${options.port}"
    targets
    {
        active = [ default ]
        default
        {
            target = "http://127.0.0.1:9"
        }
    }
}
`;
}

Deno.test("startAgent() keeps one tunnel per active domain file and follows the folder (PROTO-1, DOM-9, DOM-10, ODD-12)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const folder = await Deno.makeTempDir();
  const events: AgentEvent[] = [];
  try {
    const file = join(folder, "localhost");
    await Deno.writeTextFile(
      file,
      domainFile({ active: true, secret: "first", port: server.port }),
    );
    await Deno.writeTextFile(
      join(folder, "idle.localhost"),
      domainFile({ active: false, secret: "x", port: server.port }),
    );
    await Deno.writeTextFile(join(folder, "broken.localhost"), "groom {\n  active = \n");
    await using agent = await startAgent(agentConfig(folder), {
      logger: memory.logger,
      caCerts: [TEST_CA],
      watch: false,
      rescanMs: 3_600_000,
      sleep: () => Promise.resolve(),
      onEvent: (event) => events.push(event),
    });
    await agent.whenConnected("localhost");
    assert.deepEqual(agent.domains, ["localhost"], "inactive and broken files open no tunnel");
    const first = await server.tunnel(0);
    assert.equal(first.handshake.header("authorization"), "Bearer first");

    // ODD-12 spirit: a new secret reconnects with it.
    await Deno.writeTextFile(
      file,
      domainFile({ active: true, secret: "second!", port: server.port }),
    );
    await agent.scan();
    const second = await server.tunnel(1);
    await first.done;
    assert.equal(first.closeCode, CLOSE_NORMAL);
    assert.equal(second.handshake.header("authorization"), "Bearer second!");
    await agent.whenConnected("localhost");

    // DOM-9: deactivating the domain closes its tunnel.
    await Deno.writeTextFile(
      file,
      domainFile({ active: false, secret: "second!", port: server.port }),
    );
    await agent.scan();
    await second.done;
    assert.equal(second.closeCode, CLOSE_NORMAL);
    assert.deepEqual(agent.domains, []);

    // Reactivated, then deleted: a new tunnel, then closed again.
    await Deno.writeTextFile(
      file,
      domainFile({ active: true, secret: "third", port: server.port }),
    );
    await agent.scan();
    const third = await server.tunnel(2);
    await agent.whenConnected("localhost");
    await Deno.remove(file);
    await agent.scan();
    await third.done;
    assert.equal(agent.isConnected("localhost"), false);

    await Deno.writeTextFile(
      file,
      domainFile({ active: true, secret: "fourth", port: server.port }),
    );
    await agent.scan();
    const fourth = await server.tunnel(3);
    await agent.whenConnected("localhost");
    await agent.close();
    await fourth.done;
    assert.equal(fourth.closeCode, CLOSE_GOING_AWAY);
    await assert.rejects(agent.whenConnected("localhost"));
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
  const records = await memory.records();
  const broken = records.find((record) =>
    record.event === "error" && String(record.domain).endsWith("broken.localhost")
  );
  assert.match(String(broken?.error), /^configuration syntax error: /);
  const actions = records.filter((record) =>
    record.event === "domain" && record.domain === "localhost"
  )
    .map((record) => record.action);
  assert.deepEqual(actions, [
    "load",
    "connect",
    "update",
    "disconnect",
    "connect",
    "update",
    "disconnect",
    "update",
    "connect",
    "disconnect",
    "load",
    "connect",
    "disconnect",
  ]);
  assert.ok(
    events.some((event) => event.type === "invalid" && event.domain === "broken.localhost"),
  );
});

Deno.test("AgentHandle.reload() moves to a new domains folder: old tunnels close, new ones open (CLI-10, DOM-1)", async () => {
  await using server = new TestTunnelServer();
  await using memory = new MemoryLogger();
  const before = await Deno.makeTempDir();
  const after = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      join(before, "localhost"),
      domainFile({ active: true, secret: "old", port: server.port }),
    );
    await Deno.writeTextFile(
      join(after, "other.localhost"),
      // The test certificate does not cover other.localhost: skip the check (DIR-6 insecure).
      domainFile({ active: true, secret: "new", port: server.port, insecure: true }),
    );
    await using agent = await startAgent(agentConfig(before), {
      logger: memory.logger,
      caCerts: [TEST_CA],
      watch: false,
      rescanMs: 3_600_000,
    });
    await agent.whenConnected("localhost");
    const old = await server.tunnel(0);
    await agent.reload(agentConfig(after));
    await old.done;
    await agent.whenConnected("other.localhost");
    assert.deepEqual(agent.domains, ["other.localhost"]);
    const fresh = await server.tunnel(1);
    assert.equal(fresh.handshake.header("host"), `other.localhost:${server.port}`);
    assert.equal(fresh.handshake.header("authorization"), "Bearer new");
  } finally {
    await Deno.remove(before, { recursive: true });
    await Deno.remove(after, { recursive: true });
  }
});
