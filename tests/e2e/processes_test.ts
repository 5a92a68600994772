/**
 * groom as users run it: a server process and an agent process started from configuration files,
 * a sample backend, real TLS, OS-chosen ports; readiness read from the log lines (issue 3).
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startBackend } from "../../scripts/sample_backend.ts";
import { GroomProcess, isEvent, logRecord, ROOT } from "../_harness/groom_process.ts";

const TLS = join(ROOT, "tests", "testdata", "tls");
const CA = await Deno.readTextFile(join(TLS, "ca.pem"));
const SECRET = "e2e-secret-0123456789";

interface Setup {
  dir: string;
  serverConf: string;
  agentConf: string;
  agentDomains: string;
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "groom-e2e-" });
  for (const sub of ["server", "agent"]) await Deno.mkdir(join(dir, sub));
  const serverConf = join(dir, "server.conf");
  await Deno.writeTextFile(
    serverConf,
    `groom\n{\n    mode = server\n    log\n    {\n        system = "console(output=stdout,time=no)"\n` +
      `        access = "console(output=stdout,time=no,severity=no)"\n    }\n` +
      `    listen = [ "127.0.0.1:0,${join(TLS, "localhost.pem")},${
        join(TLS, "localhost.key")
      }" ]\n` +
      `    domains = "${join(dir, "server")}"\n}\n`,
  );
  await Deno.writeTextFile(
    join(dir, "server", "localhost"),
    `groom\n{\n    active = yes\n    secret = "${SECRET}"\n}\n`,
  );
  const agentConf = join(dir, "agent.conf");
  await Deno.writeTextFile(
    agentConf,
    `groom\n{\n    mode = agent\n    log\n    {\n        system = "console(output=stdout,time=no)"\n    }\n` +
      `    domains = "${join(dir, "agent")}"\n}\n`,
  );
  return { dir, serverConf, agentConf, agentDomains: join(dir, "agent") };
}

async function writeAgentDomain(setup: Setup, serverPort: number, backendPort: number) {
  await Deno.writeTextFile(
    join(setup.agentDomains, "localhost"),
    `groom\n{\n    active = yes\n    secret = "${SECRET}"\n    remote = "127.0.0.1:${serverPort}"\n` +
      `    insecure = yes\n    targets\n    {\n        active = [ backend ]\n` +
      `        backend\n        {\n            target = "http://127.0.0.1:${backendPort}"\n        }\n` +
      `    }\n}\n`,
  );
}

async function listenPort(server: GroomProcess): Promise<number> {
  const line = await server.waitFor(isEvent("listen"));
  return Number(String(logRecord(line)?.address).split(":").pop());
}

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const client = Deno.createHttpClient({ caCerts: [CA], allowHost: true });
  try {
    const response = await fetch(`https://127.0.0.1:${port}${path}`, {
      client,
      headers: { host: `localhost:${port}` },
    });
    return { status: response.status, text: await response.text() };
  } finally {
    client.close();
  }
}

Deno.test("server and agent processes proxy a request; SIGHUP reloads; SIGTERM stops with a stop event", async () => {
  const s = await setup();
  await using backend = startBackend();
  try {
    const server = new GroomProcess([s.serverConf]);
    let agent: GroomProcess | undefined;
    try {
      const port = await listenPort(server);
      await writeAgentDomain(s, port, backend.port);
      agent = new GroomProcess([s.agentConf]);
      await agent.waitFor(isEvent("domain", { action: "connect" }));
      await server.waitFor(isEvent("domain", { action: "connect" }));
      const response = await get(port, "/hello");
      assert.equal(response.status, 200, server.output());
      assert.equal(response.text, "hello from the backend\n");
      const access = await server.waitFor((line) => logRecord(line)?.path === "/hello");
      assert.equal(logRecord(access)?.status, 200);

      server.kill("SIGHUP");
      await server.waitFor(isEvent("reload"));
      server.kill("SIGTERM");
      assert.equal((await server.status()).code, 0);
      assert.ok(server.lines().some(isEvent("stop")), server.output());
      await agent.waitFor(isEvent("domain", { action: "disconnect" }));

      // The agent comes back by itself when a server listens again on that port.
      await Deno.writeTextFile(
        s.serverConf,
        (await Deno.readTextFile(s.serverConf)).replace("127.0.0.1:0,", `127.0.0.1:${port},`),
      );
      await using again = new GroomProcess([s.serverConf]);
      await again.waitFor(isEvent("domain", { action: "connect" }));
      assert.equal((await get(port, "/hello")).status, 200, again.output());
    } finally {
      await agent?.[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
    }
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});
