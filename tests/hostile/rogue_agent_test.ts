/**
 * A rogue agent with a valid secret (issue 8, hostile input): after a correct handshake it sends
 * malformed messages, messages for streams that do not exist, answers for streams never opened,
 * oversized messages, floods, and broken answers to real requests. The server must drop or refuse
 * each one, keep the rogue's own tunnel usable where the protocol allows, never let a client see
 * a wrong body, keep its other domains (`localhost` with a real agent) serving, and log what
 * happened without flooding the log.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeRawMessage, Flag, MAX_MESSAGE_SIZE, windowFrame } from "../../src/protocol/mod.ts";
import { connectRogueAgent, rawHttps, type Received, type RogueTunnel } from "../_harness/rogue.ts";
import { CA_PEM, SECRET, startStack } from "../_harness/stack.ts";
import { within } from "../_harness/deadline.ts";

/** The domain the rogue agent holds. */
const ROGUE = "rogue.localhost";

type Stack = Awaited<ReturnType<typeof startStack>>;

const text = (value: string) => new TextEncoder().encode(value);

/** A stack plus the domain {@linkcode ROGUE}, held by a rogue agent. */
async function withRogue(
  run: (stack: Stack, rogue: RogueTunnel) => Promise<void>,
  protocols: readonly string[] = ["groom"],
): Promise<void> {
  await using stack = await startStack({ server: { write_timeout: "5s" } });
  await Deno.writeTextFile(
    join(stack.serverDomains, ROGUE),
    `groom {\n  active = yes\n  secret = "${SECRET}"\n}\n`,
  );
  await stack.server.rescan();
  const rogue = await connectRogueAgent({
    port: stack.port,
    domain: ROGUE,
    secret: SECRET,
    caCerts: [CA_PEM],
    protocols,
  });
  try {
    await within(5_000, "the rogue's tunnel", stack.server.whenConnected(ROGUE));
    await run(stack, rogue);
  } finally {
    rogue.close();
    await rogue.closed;
  }
}

/** A request to the rogue's domain; never throws (an error is a value). */
async function ask(
  stack: Stack,
  path = "/",
): Promise<{ status?: number; body: string; error?: string }> {
  let status: number | undefined;
  let body = "";
  try {
    const response = await stack.fetch(path, { headers: { host: `${ROGUE}:${stack.port}` } });
    status = response.status;
    body = await response.text();
  } catch (error) {
    return { ...(status === undefined ? {} : { status }), body, error: String(error) };
  }
  return { ...(status === undefined ? {} : { status }), body };
}

/** The next request head the server sends to the rogue (HEAD|START). */
async function nextRequest(rogue: RogueTunnel, claimed: Set<Received>): Promise<number> {
  const head = await rogue.next((m) => m.kind === "head", { claimed, timeoutMs: 5_000 });
  return head.kind === "head" ? head.streamId : -1;
}

/** The rogue answers stream `id` properly with `body`. */
function answer(rogue: RogueTunnel, id: number, body: string): void {
  rogue.send({
    kind: "head",
    streamId: id,
    upgrade: false,
    end: false,
    payload: text(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`),
  });
  rogue.send({ kind: "body", streamId: id, end: true, payload: text(body) });
}

/** The real domain `localhost` (a real agent) answers correctly and promptly. */
async function bystanderServes(stack: Stack): Promise<void> {
  const response = await within(3_000, "localhost", stack.fetch("/hello"));
  assert.equal(await response.text(), "hello from the backend\n");
}

Deno.test("malformed messages from an agent are dropped and logged (rate-limited); the tunnel keeps working (PROTO-10/15/16)", async () => {
  await withRogue(async (stack, rogue) => {
    const junk = [
      new Uint8Array(0), // never sent (empty messages are skipped), harmless
      new Uint8Array([1]),
      new Uint8Array([1, 2, 3]),
      encodeRawMessage(0x10, 1, "x"), // the v2 window flag in v1
      encodeRawMessage(Flag.Head, 1, "x"), // HEAD without START
      encodeRawMessage(Flag.Body | Flag.Raw, 1, "x"),
      encodeRawMessage(Flag.Abort, 1, "payload"), // ABRT with a payload
      encodeRawMessage(0xff, 0xffffff, ""),
    ];
    for (let round = 0; round < 20; round++) for (const bytes of junk) rogue.sendRaw(bytes);
    const claimed = new Set<Received>();
    const pending = ask(stack, "/after-junk");
    answer(rogue, await nextRequest(rogue, claimed), "still here");
    assert.deepEqual(await pending, { status: 200, body: "still here" });
    const warnings = stack.serverLog.records().filter((r) => r.event === "tunnel-malformed");
    assert.ok(warnings.length >= 1, "malformed messages are logged");
    assert.ok(warnings.length <= 10, `${warnings.length} log lines for 140 bad messages`);
    await bystanderServes(stack);
  });
});

Deno.test("answers for streams never opened and messages for unknown streams are dropped; clients get only their own answer (PROTO-17)", async () => {
  await withRogue(async (stack, rogue) => {
    // Answers pushed before any request, for every id the server is about to use, and more.
    for (let id = 0; id < 64; id++) {
      rogue.send({
        kind: "head",
        streamId: id,
        upgrade: false,
        end: false,
        payload: text("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"),
      });
      rogue.send({ kind: "body", streamId: id, end: true, payload: text("INJECTED") });
      rogue.send({ kind: "raw", streamId: id, end: false, payload: text("RAW") });
      rogue.send({ kind: "abort", streamId: id, payload: new Uint8Array(0) });
    }
    const claimed = new Set<Received>();
    for (let i = 0; i < 3; i++) {
      const pending = ask(stack, `/own-${i}`);
      const id = await nextRequest(rogue, claimed);
      answer(rogue, id, `own answer ${i}`);
      assert.deepEqual(await pending, { status: 200, body: `own answer ${i}` });
    }
    assert.ok(stack.serverLog.records().some((r) => r.event === "tunnel-dropped"));
    await bystanderServes(stack);
  });
});

Deno.test("broken answers to real requests give the client 502, never a wrong body (SRV-13…SRV-18, ODD-1)", async () => {
  const cases: { name: string; reply: (rogue: RogueTunnel, id: number) => void }[] = [
    {
      name: "garbage head",
      reply: (rogue, id) =>
        rogue.send({
          kind: "head",
          streamId: id,
          upgrade: false,
          end: true,
          payload: text("NOT HTTP\r\n\r\n"),
        }),
    },
    {
      name: "body before head",
      reply: (rogue, id) =>
        rogue.send({ kind: "body", streamId: id, end: true, payload: text("early") }),
    },
    {
      name: "abort",
      reply: (rogue, id) => rogue.send({ kind: "abort", streamId: id, payload: new Uint8Array(0) }),
    },
    {
      name: "upgrade for a plain request",
      reply: (rogue, id) =>
        rogue.send({
          kind: "head",
          streamId: id,
          upgrade: true,
          end: false,
          payload: text(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
          ),
        }),
    },
    {
      name: "NUL in a header value",
      reply: (rogue, id) =>
        rogue.send({
          kind: "head",
          streamId: id,
          upgrade: false,
          end: true,
          payload: text("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n"),
        }),
    },
    {
      name: "two Content-Length values",
      reply: (rogue, id) =>
        rogue.send({
          kind: "head",
          streamId: id,
          upgrade: false,
          end: true,
          payload: text("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        }),
    },
  ];
  await withRogue(async (stack, rogue) => {
    const claimed = new Set<Received>();
    for (const { name, reply } of cases) {
      const pending = ask(stack, "/broken");
      reply(rogue, await nextRequest(rogue, claimed));
      const result = await within(7_000, name, pending);
      assert.equal(result.status, 502, `${name}: ${JSON.stringify(result)}`);
      assert.equal(result.body, "", name);
    }
    // Silence: the client gets 504 after write_timeout (5 s here), not a hang.
    const silent = ask(stack, "/silent");
    await nextRequest(rogue, claimed);
    const started = performance.now();
    assert.equal((await within(8_000, "silence", silent)).status, 504);
    assert.ok(performance.now() - started < 7_000);
    await bystanderServes(stack);
  });
});

Deno.test("an answer longer or shorter than its Content-Length never desynchronises the client's connection (response splitting)", async () => {
  await withRogue(async (stack, rogue) => {
    const claimed = new Set<Received>();
    // Raw HTTP/1.1 keep-alive: two requests on one connection. The first answer announces 5
    // bytes and carries a whole fake response after them; the second must be the rogue's real
    // second answer, never the fake one.
    const fake = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Fake: 1\r\n\r\nEVIL";
    const served = (async () => {
      const first = await nextRequest(rogue, claimed);
      rogue.send({
        kind: "head",
        streamId: first,
        upgrade: false,
        end: false,
        payload: text("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
      });
      rogue.send({ kind: "body", streamId: first, end: true, payload: text(`hello${fake}`) });
      const second = await nextRequest(rogue, claimed);
      answer(rogue, second, "second");
    })();
    const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: ${ROGUE}\r\n\r\n`;
    // Pipelined: the server answers them in order on the one connection.
    const exchange = await rawHttps({
      port: stack.port,
      caCerts: [CA_PEM],
      deadlineMs: 4_000,
      until: (received) => received.includes("second") || received.includes("EVIL"),
    }, [request("/one") + request("/two")]);
    await within(5_000, "the rogue answered both", served);
    assert.ok(!exchange.text.includes("X-Fake"), exchange.text);
    assert.match(exchange.text, /\r\n\r\nhelloHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nsecond$/);
    assert.ok(!exchange.text.includes("EVIL"), exchange.text);
    // A body shorter than announced ends in an error (here: the connection closes), not a hang.
    const short = ask(stack, "/short");
    const id = await nextRequest(rogue, claimed);
    rogue.send({
      kind: "head",
      streamId: id,
      upgrade: false,
      end: false,
      payload: text("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
    });
    rogue.send({ kind: "body", streamId: id, end: true, payload: text("tiny") });
    const result = await within(5_000, "short body", short);
    assert.ok(result.error !== undefined, JSON.stringify(result));
  });
});

Deno.test("an oversized message closes the rogue's tunnel; the server and its other domains carry on (PROTO-12)", async () => {
  await withRogue(async (stack, rogue) => {
    const disconnected = stack.serverLog.waitFor((r) =>
      r.event === "domain" && r.action === "disconnect" && r.domain === ROGUE
    );
    rogue.sendRaw(encodeRawMessage(Flag.Body, 1, new Uint8Array(MAX_MESSAGE_SIZE))); // 4 MiB + 4 bytes
    await within(5_000, "the tunnel closes", rogue.closed);
    await within(5_000, "the disconnect is logged", disconnected);
    const refused = await ask(stack);
    assert.equal(refused.status, 404); // no agent: stealth status
    await bystanderServes(stack);
  });
});

Deno.test("a flood of messages from an agent neither stalls the server nor floods its log", async () => {
  await withRogue(async (stack, rogue) => {
    const before = stack.serverLog.lines.length;
    let sent = 0;
    const flood = (async () => {
      for (let batch = 0; batch < 50; batch++) {
        for (let i = 0; i < 1000; i++) {
          rogue.sendRaw(encodeRawMessage(Flag.Body, 100_000 + i, "x")); // unknown streams
          rogue.sendRaw(new Uint8Array([9, 9])); // malformed
          sent += 2;
        }
        await rogue.drained(1 << 20);
      }
    })();
    // While the flood runs, the other domain answers promptly.
    for (let i = 0; i < 5; i++) await bystanderServes(stack);
    await within(30_000, "the flood", flood);
    const claimed = new Set<Received>();
    const pending = ask(stack, "/after-flood");
    answer(
      rogue,
      await within(10_000, "request after the flood", nextRequest(rogue, claimed)),
      "ok",
    );
    assert.deepEqual(await pending, { status: 200, body: "ok" });
    const logged = stack.serverLog.lines.length - before;
    assert.equal(sent, 100_000);
    assert.ok(logged < 100, `${logged} log lines for ${sent} bad messages`);
  });
});

Deno.test("protocol v2: credit granted beyond 2^31 - 1 aborts that stream only; grants for unknown streams are ignored (issue 6)", async () => {
  await withRogue(async (stack, rogue) => {
    assert.equal(rogue.protocol, "groom2");
    const claimed = new Set<Received>();
    for (let id = 0; id < 32; id++) rogue.send(windowFrame(5000 + id, 2 ** 31 - 1));
    const victim = ask(stack, "/credit");
    const id = await nextRequest(rogue, claimed);
    rogue.send(windowFrame(id, 2 ** 31 - 1));
    rogue.send(windowFrame(id, 2 ** 31 - 1));
    const result = await within(7_000, "the abused stream", victim);
    assert.equal(result.status, 502, JSON.stringify(result));
    const pending = ask(stack, "/fine");
    answer(rogue, await nextRequest(rogue, claimed), "fine");
    assert.deepEqual(await pending, { status: 200, body: "fine" });
  }, ["groom2"]);
});

Deno.test("a WebSocket whose tunnel stream ends right after the 101 is closed at once, never left hanging (SRV-19, PROTO-26)", async () => {
  const endings: [
    string,
    (rogue: RogueTunnel, id: number, opened: Promise<void>) => Promise<void>,
  ][] = [
    ["ABRT right after the 101", (rogue, id) => {
      rogue.send({ kind: "abort", streamId: id, payload: new Uint8Array(0) });
      return Promise.resolve();
    }],
    ["ABRT once the client is open", async (rogue, id, opened) => {
      await opened;
      rogue.send({ kind: "abort", streamId: id, payload: new Uint8Array(0) });
    }],
    ["RAW|END right after the 101", (rogue, id) => {
      rogue.send({ kind: "raw", streamId: id, end: true, payload: new Uint8Array(0) });
      return Promise.resolve();
    }],
  ];
  for (const [name, ending] of endings) {
    await withRogue(async (stack, rogue) => {
      const client = Deno.createHttpClient({ caCerts: [CA_PEM], allowHost: true });
      try {
        const socket = new WebSocket(`wss://127.0.0.1:${stack.port}/ws`, {
          client,
          headers: { host: `${ROGUE}:${stack.port}` },
        } as never);
        socket.onerror = () => {};
        const opened = new Promise<void>((resolve) => socket.onopen = () => resolve());
        const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());
        const head = await rogue.next((m) => m.kind === "head", { timeoutMs: 5_000 });
        const request = head.kind === "head" ? new TextDecoder().decode(head.payload) : "";
        const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1] ?? "";
        const digest = await crypto.subtle.digest(
          "SHA-1",
          text(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`),
        );
        const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
        const id = head.kind === "head" ? head.streamId : 0;
        rogue.send({
          kind: "head",
          streamId: id,
          upgrade: true,
          end: false,
          payload: text(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
              `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
          ),
        });
        await ending(rogue, id, opened);
        await within(3_000, `${name}: the client's WebSocket closes`, closed);
      } finally {
        client.close();
      }
    });
  }
});
