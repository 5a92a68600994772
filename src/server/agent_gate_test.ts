import assert from "node:assert/strict";
import { readServerDomainConfig } from "../config/mod.ts";
import { checkAgent, selectSubprotocol } from "./agent_gate.ts";
import { createDomain, type ServerDomain } from "./registry.ts";

function domain(tree: Record<string, unknown>): ServerDomain {
  const { config } = readServerDomainConfig({ tree: { groom: tree } as never }, {
    name: "app.example",
  });
  return createDomain(config);
}

const GOOD_HEADERS = {
  authorization: "Bearer s3cret-agent",
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-protocol": "groom",
};

Deno.test("checkAgent() applies PROTO-7's checks in order with their statuses and reasons", async () => {
  const domains: Record<string, ServerDomain> = {
    "app.example": domain({ active: "yes", secret: "s3cret-agent" }),
    "off.example": domain({ active: "no", secret: "s3cret-agent" }),
    "net.example": domain({ active: "yes", secret: "s3cret-agent", networks: ["10.0.0.0/8"] }),
  };
  const table: [string, Record<string, string | undefined>, string, unknown][] = [
    ["app.example", { authorization: undefined }, "GET", [
      404,
      "agent authentication not provided",
    ]],
    ["app.example", { authorization: "bearer s3cret-agent" }, "GET", [
      404,
      "agent authentication not provided",
    ]],
    ["nope.example", {}, "GET", [404, "unknown domain"]],
    ["off.example", {}, "GET", [404, "inactive domain"]],
    ["app.example", { authorization: "Bearer wrong" }, "GET", [
      404,
      "invalid agent authentication",
    ]],
    ["net.example", {}, "GET", [404, "agent connection from unauthorized network"]],
    ["app.example", { upgrade: "h2c" }, "GET", [404, "websocket upgrade failed"]],
    ["app.example", {}, "POST", [405, undefined]],
    ["app.example", { "sec-websocket-version": "8" }, "GET", [400, undefined]],
    ["app.example", { "sec-websocket-protocol": "chat" }, "GET", [400, undefined]],
    ["app.example", {}, "GET", "ok"],
  ];
  for (const [name, changes, method, expected] of table) {
    const headers = new Headers();
    for (const [key, value] of Object.entries({ ...GOOD_HEADERS, ...changes })) {
      if (value !== undefined) headers.set(key, value);
    }
    const verdict = await checkAgent({ method, headers, peer: "192.0.2.1", name }, {
      lookup: (n) => domains[n],
      unavailable: 404,
    });
    const got = verdict.ok ? "ok" : [verdict.status, verdict.reason];
    assert.deepEqual(got, expected, `${name} ${JSON.stringify(changes)} ${method}`);
  }
});

Deno.test("checkAgent() lets an authenticated agent replace a connected one (no lock-out, ODD-3)", async () => {
  const target = domain({ active: "yes", secret: "s3cret-agent" });
  target.tunnel = { remote: "192.0.2.9:1", protocol: "groom", close() {} };
  const verdict = await checkAgent(
    { method: "GET", headers: new Headers(GOOD_HEADERS), peer: "192.0.2.1", name: "app.example" },
    { lookup: () => target, unavailable: 404 },
  );
  assert.ok(verdict.ok && verdict.replaces && verdict.protocol === "groom");
});

Deno.test("selectSubprotocol() splits on commas and spaces and keeps our preference (PROTO-8)", () => {
  assert.equal(selectSubprotocol("chat, groom"), "groom");
  assert.equal(selectSubprotocol("groom2 ,groom", ["groom2", "groom"]), "groom2");
  assert.equal(selectSubprotocol("chat"), undefined);
  assert.equal(selectSubprotocol(null), undefined);
});
