/**
 * Client access control through a real server and agent (issue #4): credentials, the session
 * cookie in both directions, networks, trusted forwarders, and the agent failure budget.
 * @module
 */

import assert from "node:assert/strict";
import { SESSION_COOKIE } from "../../src/acl/mod.ts";
import * as net from "node:net";
import * as tls from "node:tls";
import { CA_PEM, SECRET, startStack } from "../_harness/stack.ts";

const basic = (login: string, password: string) => `Basic ${btoa(`${login}:${password}`)}`;
const CREDENTIALS = '  clients {\n    banner = "Private area"\n' +
  '    credentials = [ "alice:wonder:land", "bob:$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1" ]\n  }';

function sessionCookie(response: Response): string {
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  assert.ok(cookie, "a session cookie is set");
  assert.match(cookie, /; Secure; HttpOnly; SameSite=Lax$/);
  return cookie.split(";")[0] ?? "";
}

Deno.test("Basic credentials: 401 with the banner, then a session cookie that replaces them (SRV-8, ODD-10)", async () => {
  await using stack = await startStack({ serverDomain: CREDENTIALS });
  const none = await stack.fetch("/hello");
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), 'Basic realm="Private area"');
  await none.body?.cancel();

  const wrong = await stack.fetch("/hello", { headers: { authorization: basic("alice", "nope") } });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();

  // A password containing ':' works (ODD-19); Authorization is not forwarded to the backend.
  const good = await stack.fetch("/headers", {
    headers: { authorization: basic("alice", "wonder:land"), cookie: "theme=dark" },
  });
  assert.equal(good.status, 200);
  const seen = await good.json();
  assert.equal(seen.authorization, undefined);
  assert.equal(seen.cookie, "theme=dark");
  const cookie = sessionCookie(good);

  // The cookie alone is enough; groom's cookie never reaches the backend (ODD-18).
  const again = await stack.fetch("/headers", { headers: { cookie: `${cookie}; theme=dark` } });
  assert.equal(again.status, 200);
  assert.equal((await again.json()).cookie, "theme=dark");

  // A $6$ entry works too.
  const bob = await stack.fetch("/hello", { headers: { authorization: basic("bob", "s3cret") } });
  assert.equal(bob.status, 200);
  await bob.body?.cancel();

  const reasons = stack.accessLog.records().filter((r) => r.status === 401).map((r) => r.reason);
  assert.deepEqual(reasons, ["credentials required", "invalid credentials"]);
});

Deno.test("a tampered or revoked session cookie is refused (ODD-10)", async () => {
  await using stack = await startStack({ serverDomain: CREDENTIALS });
  const login = await stack.fetch("/hello", {
    headers: { authorization: basic("alice", "wonder:land") },
  });
  await login.body?.cancel();
  const cookie = sessionCookie(login);
  const [name, value] = cookie.split("=") as [string, string];
  const tampered = `${name}=${value.slice(0, -3)}${value.endsWith("A") ? "BBB" : "AAA"}`;
  const refused = await stack.fetch("/hello", { headers: { cookie: tampered } });
  assert.equal(refused.status, 401);
  await refused.body?.cancel();

  // (A token is bound to its domain: see src/acl/session_test.ts.)

  // Changing alice's credential ends her sessions at the next reload.
  await stack.writeServerDomain(
    `groom {\n  active = yes\n  secret = "${SECRET}"\n` +
      `  clients {\n    credentials = [ "alice:changed" ]\n  }\n}\n`,
  );
  await stack.server.rescan();
  const revoked = await stack.fetch("/hello", { headers: { cookie } });
  assert.equal(revoked.status, 401);
  await revoked.body?.cancel();
});

Deno.test("repeated bad credentials spend the source's budget; a good login is then refused unchecked (issue #4)", async () => {
  await using stack = await startStack({ serverDomain: CREDENTIALS });
  for (let i = 0; i < 10; i++) {
    const response = await stack.fetch("/hello", {
      headers: { authorization: basic("alice", `x${i}`) },
    });
    assert.equal(response.status, 401);
    await response.body?.cancel();
  }
  const blocked = await stack.fetch("/hello", {
    headers: { authorization: basic("alice", "wonder:land") },
  });
  assert.equal(blocked.status, 401);
  await blocked.body?.cancel();
  const last = stack.accessLog.records().at(-1);
  assert.equal(last?.reason, "too many authentication failures");
});

Deno.test("a trusted forwarder's X-Forwarded-For is kept and the peer appended (SRV-9, ODD-24)", async () => {
  await using stack = await startStack({ serverDomain: '  forward = [ "127.0.0.0/8" ]' });
  const seen =
    await (await stack.fetch("/headers", { headers: { "x-forwarded-for": "198.51.100.4" } }))
      .json();
  assert.equal(seen["x-forwarded-for"], "198.51.100.4, 127.0.0.1");
});

Deno.test("clients outside clients.networks get the stealth status and a 403 access record (SRV-6)", async () => {
  await using stack = await startStack({
    serverDomain: '  clients {\n    networks = [ "10.0.0.0/8" ]\n  }',
  });
  const response = await stack.fetch("/hello");
  assert.equal(response.status, 404);
  await response.body?.cancel();
  const record = stack.accessLog.records().at(-1);
  assert.equal(record?.status, 403);
  assert.equal(record?.reason, "unauthorized network");
});

/** One agent handshake from `localAddress`; resolves with the answer's status code. */
function agentHandshake(port: number, localAddress: string, secret: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const tcp = net.connect({ host: "127.0.0.1", port, localAddress });
    const socket = tls.connect({ socket: tcp, servername: "localhost", ca: CA_PEM });
    socket.once("secureConnect", () => {
      socket.write(
        `GET /.well-known/groom-agent HTTP/1.1\r\nHost: localhost:${port}\r\n` +
          `Authorization: Bearer ${secret}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Protocol: groom\r\n\r\n",
      );
    });
    let head = "";
    socket.on("data", (data: Uint8Array) => {
      head += new TextDecoder().decode(data);
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (match) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.once("error", reject);
  });
}

Deno.test("bad agent secrets from one address spend its budget without locking out the real agent (issue #4)", async () => {
  await using stack = await startStack();
  for (let i = 0; i < 10; i++) {
    assert.equal(await agentHandshake(stack.port, "127.0.0.2", "wrong"), 404);
  }
  // Now even the right secret from that address is refused, unchecked…
  assert.equal(await agentHandshake(stack.port, "127.0.0.2", SECRET), 404);
  // …while the real agent's address still gets through (and replaces the tunnel at once).
  assert.equal(await agentHandshake(stack.port, "127.0.0.1", SECRET), 101);
  assert.ok(
    stack.serverLog.lines.some((line) => line.includes("too many agent authentication failures")),
  );
});

Deno.test("an expired session cookie is refused and Basic is asked again (ODD-10, session_lifetime)", async () => {
  let clock = Date.parse("2026-11-25T12:00:00Z");
  await using stack = await startStack({ serverDomain: CREDENTIALS, now: () => new Date(clock) });
  const login = await stack.fetch("/hello", {
    headers: { authorization: basic("alice", "wonder:land") },
  });
  await login.body?.cancel();
  const cookie = sessionCookie(login);
  clock += 19 * 60_000; // within the default 20 minutes
  const fresh = await stack.fetch("/hello", { headers: { cookie } });
  assert.equal(fresh.status, 200);
  await fresh.body?.cancel();
  clock += 2 * 60_000; // past them
  const expired = await stack.fetch("/hello", { headers: { cookie } });
  assert.equal(expired.status, 401);
  await expired.body?.cancel();
});

Deno.test("a session cookie of one domain is refused by another domain of the same server (ODD-10)", async () => {
  await using stack = await startStack({ serverDomain: CREDENTIALS });
  // A second domain, served by a second tunnel of the same agent.
  await Deno.writeTextFile(
    `${stack.serverDomains}/other.localhost`,
    `groom {\n  active = yes\n  secret = "${SECRET}"\n${CREDENTIALS}\n}\n`,
  );
  await stack.server.rescan();
  // rustls refuses the test certificate's *.localhost for other.localhost (a wildcard right under
  // a top-level name), so this tunnel skips verification; the client side is unchanged.
  const agentDomain = await Deno.readTextFile(`${stack.dir}/agent-domains/localhost`);
  await Deno.writeTextFile(
    `${stack.dir}/agent-domains/other.localhost`,
    agentDomain.replace("groom {\n", "groom {\n  insecure = yes\n"),
  );
  await stack.agent.scan();
  await stack.server.whenConnected("other.localhost");
  const login = await stack.fetch("/hello", {
    headers: { authorization: basic("alice", "wonder:land") },
  });
  await login.body?.cancel();
  const cookie = sessionCookie(login);
  const other = { host: `other.localhost:${stack.port}` };
  const withCookie = await stack.fetch("/hello", { headers: { cookie, ...other } });
  assert.equal(withCookie.status, 401); // the domain is connected: refused for the cookie alone
  await withCookie.body?.cancel();
  const withBasic = await stack.fetch("/hello", {
    headers: { authorization: basic("alice", "wonder:land"), ...other },
  });
  assert.equal(withBasic.status, 200); // the same user logs in there on its own
  await withBasic.body?.cancel();
});
