import assert from "node:assert/strict";
import { readServerDomainConfig } from "../config/mod.ts";
import { canonicalPath, route, type RouterContext, splitHost } from "./handler.ts";
import { createDomain, type ServerDomain } from "./registry.ts";

Deno.test("splitHost() separates name and port, 443 by default, brackets kept (SRV-3, ODD-13)", () => {
  const table: [string, { name: string; port: string }][] = [
    ["www.domain.com", { name: "www.domain.com", port: "443" }],
    ["WWW.Domain.com:8443", { name: "www.domain.com", port: "8443" }],
    ["[::1]", { name: "[::1]", port: "443" }],
    ["[::1]:9443", { name: "[::1]", port: "9443" }],
    ["localhost:", { name: "localhost", port: "443" }],
  ];
  for (const [host, expected] of table) assert.deepEqual(splitHost(host), expected, host);
});

Deno.test("canonicalPath() cleans //, /./ and /../ as Go's router does before 301 (SRV-1)", () => {
  const table: [string, string | undefined][] = [
    ["/a/b", undefined],
    ["/", undefined],
    ["/a/", undefined],
    ["/a//b", "/a/b"],
    ["/a/./b", "/a/b"],
    ["/a/../b", "/b"],
    ["/../x", "/x"],
    ["/a/.", "/a/"],
    ["/a/b/..", "/a/"],
    ["//", "/"],
  ];
  for (const [path, expected] of table) assert.equal(canonicalPath(path), expected, path);
});

function context(domains: Record<string, ServerDomain>, log: string[]): RouterContext {
  return {
    service: () => "/.well-known/groom-agent",
    unavailable: () => 503,
    logDisconnected: () => true,
    lookup: (name) => domains[name],
    agent: () => Promise.resolve(new Response("agent")),
    authenticate: (_request, _client, domain) =>
      Promise.resolve(
        domain.config.clientsCredentials.length === 0
          ? { ok: true, stripAuthorization: false }
          : { ok: false, status: 401, reason: "credentials required", realm: "private" },
      ),
    proxy: () => Promise.resolve(new Response("proxied")),
    refused: (_request, _client, status, reason) => log.push(`${status} ${reason}`),
    now: () => new Date("2026-11-25T12:00:00Z"),
  };
}

function domain(tree: Record<string, unknown>, connected: boolean): ServerDomain {
  const { config } = readServerDomainConfig(
    { tree: { groom: { secret: "x", ...tree } } as never },
    { name: "app.example" },
  );
  const value = createDomain(config);
  if (connected) value.tunnel = { remote: "", protocol: "groom", close() {} };
  return value;
}

const PEER = { hostname: "192.0.2.1", port: 1234 };

Deno.test("route() answers `unavailable` for unknown, inactive and agent-less domains, logging 404 (SRV-5, SRV-21)", async () => {
  const log: string[] = [];
  const ctx = context({
    "inactive.example": domain({ active: "no" }, true),
    "idle.example": domain({ active: "yes" }, false),
  }, log);
  for (const host of ["unknown.example", "inactive.example", "idle.example"]) {
    const response = await route(new Request(`https://${host}/`), PEER, ctx);
    assert.equal(response.status, 503, host);
  }
  assert.deepEqual(log, Array(3).fill("404 disconnected domain"));
});

Deno.test("route() refuses clients outside networks or time ranges with `unavailable`, logging 403, then asks for credentials (SRV-6…SRV-8)", async () => {
  const log: string[] = [];
  const ctx = context({
    "net.example": domain({ active: "yes", clients: { networks: ["10.0.0.0/8"] } }, true),
    "time.example": domain({ active: "yes", clients: { ranges: ["00:00-01:00"] } }, true),
    "open.example": domain({ active: "yes" }, true),
    "auth.example": domain({ active: "yes", clients: { credentials: ["a:b"] } }, true),
  }, log);
  assert.equal((await route(new Request("https://net.example/"), PEER, ctx)).status, 503);
  assert.equal((await route(new Request("https://time.example/"), PEER, ctx)).status, 503);
  assert.equal(
    await (await route(new Request("https://open.example/"), PEER, ctx)).text(),
    "proxied",
  );
  const refused = await route(new Request("https://auth.example/"), PEER, ctx);
  assert.equal(refused.status, 401); // a real 401, not stealthed (SRV-21)
  assert.equal(refused.headers.get("www-authenticate"), 'Basic realm="private"');
  assert.deepEqual(log, [
    "403 unauthorized network",
    "403 unauthorized timerange",
    "401 credentials required", // every ACL decision is logged (issue #4)
  ]);
});

Deno.test("route() sends the service path to the agent endpoint whatever the Host and redirects non-canonical paths (SRV-1)", async () => {
  const ctx = context({}, []);
  const agent = await route(
    new Request("https://anything.example/.well-known/groom-agent"),
    PEER,
    ctx,
  );
  assert.equal(await agent.text(), "agent");
  const redirect = await route(new Request("https://a.example/x//y?q=1"), PEER, ctx);
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get("location"), "/x/y?q=1");
});
