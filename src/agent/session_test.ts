import assert from "node:assert/strict";
import { Flag } from "../protocol/mod.ts";
import type { BackendTimeouts } from "./backend.ts";
import { runSession, SessionGroup, type SessionOutcome, type SessionRouting } from "./session.ts";
import { compileTargets } from "./targets.ts";
import { latin1, MemoryLogger, TestStream } from "./_test_helpers.ts";

const TIMEOUTS: BackendTimeouts = {
  connectTimeoutMs: 5_000,
  readTimeoutMs: 5_000,
  writeTimeoutMs: 5_000,
};
const NOW = () => new Date("2026-11-25T00:24:58Z");
const encoder = new TextEncoder();

function routing(targets: { name: string; target: string; path?: string }[] = []): SessionRouting {
  const compiled = compileTargets(targets);
  assert.deepEqual(compiled.problems, []);
  return { domain: "golden.test", targets: compiled.targets, concurrency: 20 };
}

/** A backend answering every connection with `200 OK` and body "ok" until closed. */
function okBackend(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      connections.push(
        (async () => {
          const buffer = new Uint8Array(4096);
          let text = "";
          while (!text.includes("\r\n\r\n")) {
            const count = await conn.read(buffer);
            if (count === null) break;
            text += latin1(buffer.subarray(0, count));
          }
          await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
          conn.close();
        })().catch(() => {}),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
      await Promise.all(connections);
    },
  };
}

Deno.test("runSession() answers an unparsable request head with the synthetic 400 (AGT-3, PROTO-24)", async () => {
  const stream = new TestStream(11);
  stream.push(Flag.Head | Flag.Start, "THIS IS NOT HTTP\r\n\r\n");
  const outcome = await runSession(stream, routing(), { timeouts: TIMEOUTS, now: NOW });
  assert.equal(outcome.kind, "synthetic");
  assert.deepEqual(stream.sent.map((message) => message.flags), [0xc1]);
  assert.equal(
    latin1(stream.sent[0]?.payload ?? new Uint8Array()),
    "HTTP/1.1 400 Bad Request\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n",
  );
  assert.equal(stream.finished, true);
});

Deno.test("runSession() answers the synthetic 502 when no target matches, also with no targets at all (AGT-4)", async () => {
  for (
    const targets of [[], [{ name: "api", target: "http://127.0.0.1:1", path: "^/api/" }]]
  ) {
    const stream = new TestStream();
    stream.push(Flag.Head | Flag.Start, "GET /other HTTP/1.1\r\nHost: h\r\n\r\n");
    stream.push(Flag.Body | Flag.End);
    const outcome = await runSession(stream, routing(targets), { timeouts: TIMEOUTS, now: NOW });
    assert.equal(outcome.kind === "synthetic" && outcome.status, 502);
    assert.equal(
      latin1(stream.sent[0]?.payload ?? new Uint8Array()),
      "HTTP/1.1 502 Bad Gateway\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n",
    );
  }
});

Deno.test("runSession() ends quietly when no request head comes within read_timeout (AGT-3)", async () => {
  const stream = new TestStream();
  const outcome = await runSession(stream, routing(), {
    timeouts: { ...TIMEOUTS, readTimeoutMs: 20 },
  });
  assert.equal(outcome.kind, "no-head");
  assert.equal(stream.sent.length, 0);
  assert.equal(stream.finished, true);
});

Deno.test("runSession() routes by the first matching target in order (AGT-4) and relays the answer", async () => {
  const backend = okBackend();
  try {
    const stream = new TestStream();
    stream.push(Flag.Head | Flag.Start, "GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n");
    stream.push(Flag.Body | Flag.End);
    const outcome = await runSession(
      stream,
      routing([
        { name: "down", target: "http://127.0.0.1:1", path: "^/down" },
        { name: "api", target: `http://127.0.0.1:${backend.port}`, path: "^/api/" },
        { name: "default", target: "http://127.0.0.1:1" },
      ]),
      { timeouts: TIMEOUTS },
    );
    assert.deepEqual(outcome, { kind: "relayed", status: 200 });
    assert.deepEqual(stream.describe(), ["HEAD|START len=38", "BODY|END len=2"]);
  } finally {
    await backend.close();
  }
});

Deno.test("SessionGroup answers 502 beyond the domain's concurrency and logs stream events (ODD-4, LOG-10)", async () => {
  await using memory = new MemoryLogger();
  const outcomes: [number, SessionOutcome][] = [];
  const group = new SessionGroup({
    sessionOptions: () => ({ timeouts: TIMEOUTS, logger: memory.logger, now: NOW }),
    onOutcome: (id, outcome) => outcomes.push([id, outcome]),
  });
  const route = { ...routing(), concurrency: 2 };
  const waiting = [new TestStream(1), new TestStream(2)];
  for (const stream of waiting) group.start(stream, route); // Both wait for their head.
  assert.equal(group.active, 2);
  const refused = new TestStream(3);
  group.start(refused, route);
  await refused.waitSent(1);
  assert.deepEqual(refused.sent.map((message) => message.flags), [0xc1]);
  assert.match(latin1(refused.sent[0]?.payload ?? new Uint8Array()), /^HTTP\/1\.1 502 /);
  for (const stream of waiting) stream.serverAbort();
  await group.settled();
  assert.equal(group.active, 0);
  assert.equal(refused.finished, true);
  assert.deepEqual(outcomes.map(([id, outcome]) => [id, outcome.kind]).sort(), [
    [1, "no-head"],
    [2, "no-head"],
    [3, "synthetic"],
  ]);
  const events = (await memory.records()).filter((record) => record.event === "stream");
  assert.deepEqual(events.map((record) => [record.action, record.stream]).sort(), [
    ["activate", 1],
    ["activate", 2],
    ["shutdown", 1],
    ["shutdown", 2],
  ]);
  assert.deepEqual(events[0], {
    action: "activate",
    domain: "golden.test",
    event: "stream",
    mode: "agent",
    stream: 1,
  });
});

Deno.test("SessionGroup reuses backend connections across streams and closes them in settled() (issue 7, AGT-9 changed)", async () => {
  // A keep-alive backend: answers every request on a connection, counts the connections and
  // resolves `ended` when the agent closes one.
  let connections = 0;
  let requests = 0;
  const ended = Promise.withResolvers<void>();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      serving.push((async () => {
        const buffer = new Uint8Array(4096);
        let text = "";
        for (;;) {
          const count = await conn.read(buffer).catch(() => null);
          if (count === null) break;
          text += latin1(buffer.subarray(0, count));
          while (text.includes("\r\n\r\n")) {
            text = text.slice(text.indexOf("\r\n\r\n") + 4);
            requests++;
            await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
          }
        }
        conn.close();
        ended.resolve();
      })());
    }
  })().catch(() => {});
  try {
    let done = Promise.withResolvers<void>();
    const group = new SessionGroup({
      sessionOptions: () => ({ timeouts: TIMEOUTS, now: NOW }),
      onOutcome: () => done.resolve(),
    });
    const route = routing([{ name: "t", target: `http://127.0.0.1:${listener.addr.port}` }]);
    for (let id = 1; id <= 3; id++) {
      const stream = new TestStream(id);
      stream.push(Flag.Head | Flag.Start, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
      stream.push(Flag.Body | Flag.End);
      group.start(stream, route);
      await done.promise;
      done = Promise.withResolvers<void>();
      assert.deepEqual(stream.describe(), ["HEAD|START len=38", "BODY|END len=2"]);
    }
    assert.equal(connections, 1, "one backend connection served the three streams");
    await group.settled();
    await ended.promise; // settled() closed the group's pool and its idle connection
    assert.equal(requests, 3);
  } finally {
    listener.close();
    await accepting;
    await Promise.all(serving);
  }
});
