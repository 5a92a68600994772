/** Tests of the configuration loaders on real files (CLI-8, CLI-9, DOM-3). @module */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfSyntaxError,
  DEFAULT_DOMAIN_DEFAULTS,
  domainDefaults,
  formatProblem,
  loadDomainConfig,
  loadMainConfig,
} from "./mod.ts";

const REPOSITORY = fileURLToPath(new URL("../../", import.meta.url));

/** Runs `body` with a fresh temporary folder, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "groom_config_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadMainConfig() loads conf/server.conf as a working server configuration", async () => {
  const path = join(REPOSITORY, "conf/server.conf");
  const result = await loadMainConfig(path, { cwd: REPOSITORY });
  assert.deepEqual(result.problems.map(formatProblem), []);
  assert.equal(result.mode, "server");
  assert.equal(result.agent, undefined);
  const server = result.server;
  assert.ok(server);
  assert.equal(server.domains, "conf/server");
  assert.equal(server.listen.length, 1);
  const [listener] = server.listen;
  assert.equal(listener?.hostname, "127.0.0.1");
  assert.equal(listener?.port, 8443);
  // Paths are used as written, relative to the folder groom is started from (the repository).
  for (const certificate of listener?.certificates ?? []) {
    assert.ok((await Deno.stat(join(REPOSITORY, certificate.cert))).isFile);
    assert.ok((await Deno.stat(join(REPOSITORY, certificate.key))).isFile);
  }
  assert.ok((await Deno.stat(join(REPOSITORY, server.domains))).isDirectory);
  assert.match(result.document.hash, /^[0-9a-f]{40}$/);
  assert.deepEqual(domainDefaults(server), DEFAULT_DOMAIN_DEFAULTS);
});

Deno.test("loadMainConfig() loads conf/agent.conf as an agent configuration", async () => {
  const result = await loadMainConfig(join(REPOSITORY, "conf/agent.conf"), { cwd: REPOSITORY });
  assert.deepEqual(result.problems.map(formatProblem), []);
  assert.equal(result.mode, "agent");
  assert.equal(result.server, undefined);
  assert.equal(result.agent?.domains, "conf/agent");
  assert.equal(result.agent?.connectTimeoutMs, 5000);
});

Deno.test("loadMainConfig() exposes a bogus mode and reads neither side (CLI-9)", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bogus.conf");
    await Deno.writeTextFile(path, "groom {\n    mode = proxy\n}\n");
    const result = await loadMainConfig(path);
    assert.equal(result.mode, "proxy");
    assert.equal(result.server, undefined);
    assert.equal(result.agent, undefined);
  });
});

Deno.test("loadMainConfig() positions problems in the file they come from", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "server.conf");
    await Deno.writeTextFile(
      path,
      [
        "groom {",
        "    mode = server",
        '    listen = [ "*:8443,cert.pem,key.pem" ]',
        "    idle_timeout = 2h",
        "    read_timout = 10s",
        '    service = "agent"',
        "}",
        "",
      ].join("\n"),
    );
    const result = await loadMainConfig(path);
    assert.equal(result.server?.idleTimeoutMs, 60000);
    assert.deepEqual(
      result.problems.map((problem) => [
        problem.severity,
        problem.key,
        problem.position?.file.endsWith("server.conf"),
        problem.position?.line,
      ]),
      [
        ["warning", "groom.idle_timeout", true, 4],
        ["warning", "groom.read_timout", true, 5],
        ["error", "groom.service", true, 6],
      ],
    );
  });
});

Deno.test("loadMainConfig() rejects a syntax error with ConfSyntaxError (CLI-8)", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "broken.conf");
    await Deno.writeTextFile(path, 'groom {\n    mode = "server\n}\n');
    await assert.rejects(loadMainConfig(path), ConfSyntaxError);
  });
});

Deno.test("loadDomainConfig() names the domain after the file and inherits main defaults (DOM-3)", async () => {
  const server = await loadDomainConfig(join(REPOSITORY, "conf/server/www.domain.com"), "server", {
    defaults: { bodySize: 65536, transaction: false },
  });
  assert.deepEqual(server.problems.map(formatProblem), []);
  assert.equal(server.config.name, "www.domain.com");
  assert.equal(server.config.active, false);
  assert.equal(server.config.bodySize, 65536);
  assert.equal(server.config.transaction, false);
  const agent = await loadDomainConfig(join(REPOSITORY, "conf/agent/www.domain.com"), "agent");
  assert.deepEqual(agent.problems.map(formatProblem), []);
  assert.equal(agent.config.name, "www.domain.com");
  assert.equal(agent.config.remote, "www.domain.com:443");
  assert.deepEqual(agent.config.targets, []);
});

Deno.test("loadDomainConfig() reads a missing domain file as an inactive domain (DOM-3)", async () => {
  await withTempDir(async (dir) => {
    const result = await loadDomainConfig(join(dir, "gone.example.com"), "agent");
    assert.equal(result.config.name, "gone.example.com");
    assert.equal(result.config.active, false);
    assert.equal(result.config.remote, "gone.example.com:443");
  });
});

Deno.test("loadDomainConfig() reports dropped targets with their positions (DIR-6)", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "app.example.com");
    await Deno.writeTextFile(
      path,
      [
        "groom {",
        "    active = yes",
        '    secret = "s3cret"',
        "    targets {",
        '        active = [ "api", "web" ]',
        "        api {",
        '            target = "ftp://10.0.0.1"',
        "        }",
        "        web {",
        '            target = "http://127.0.0.1:8080"',
        "        }",
        "    }",
        "}",
        "",
      ].join("\n"),
    );
    const result = await loadDomainConfig(path, "agent");
    assert.deepEqual(result.config.targets.map((target) => target.name), ["web"]);
    assert.equal(result.problems.length, 1);
    assert.equal(result.problems[0]?.severity, "error");
    assert.equal(result.problems[0]?.key, "groom.targets.api.target");
    assert.equal(result.problems[0]?.position?.line, 7);
  });
});
