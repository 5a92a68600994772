/**
 * Tests of `Mux` over an in-memory transport pair with tiny limits: stream id allocation, the
 * concurrency cap, agent-side stream creation, aborts, teardown, bad peer input, the receive
 * bounds of ODD-7, and a property test over random interleavings.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, Flag, type Frame, MAX_STREAM_ID } from "../protocol/mod.ts";
import { bytes, tunnelPair } from "./_tunnel_pair.ts";
import { MemoryTransport } from "./memory_transport.ts";
import {
  Mux,
  REPORT_BURST,
  REPORT_INTERVAL_MS,
  TunnelClosedError,
  type TunnelEvent,
} from "./mux.ts";
import { type Stream, StreamClosedError } from "./stream.ts";
import { QUEUE_ENTRY_OVERHEAD } from "./flow.ts";

const text = new TextEncoder();

function message(frame: Frame): Uint8Array {
  return encodeFrame(frame);
}

function body(streamId: number, payload: Uint8Array, end = false): Uint8Array {
  return message({ kind: "body", streamId, payload, end });
}

function ofKind(events: readonly TunnelEvent[], event: TunnelEvent["event"]): TunnelEvent[] {
  return events.filter((candidate) => candidate.event === event);
}

async function rejectsClosed(promise: Promise<unknown>, end: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StreamClosedError, `expected StreamClosedError, got ${error}`);
    assert.equal(error.end, end);
    return true;
  });
}

Deno.test("Mux.open() allocates ids from 1 and the counter survives a new Mux (PROTO-17)", async () => {
  const counter = { last: 0 };
  {
    await using pair = tunnelPair({ counter });
    assert.deepEqual([pair.server.open()?.id, pair.server.open()?.id], [1, 2]);
  }
  await using next = tunnelPair({ counter });
  assert.equal(next.server.open()?.id, 3);
  assert.equal(counter.last, 3);
});

Deno.test("Mux.open() wraps modulo 2^24 to 0 and skips ids in use (PROTO-17)", async () => {
  const counter = { last: MAX_STREAM_ID - 1 };
  await using pair = tunnelPair({ counter });
  const ids = [pair.server.open(), pair.server.open(), pair.server.open()].map((s) => s?.id);
  assert.deepEqual(ids, [MAX_STREAM_ID, 0, 1]);
  counter.last = MAX_STREAM_ID - 1; // as after another 2^24 allocations
  assert.equal(pair.server.open()?.id, 2, "MAX_STREAM_ID, 0 and 1 are still in use");
});

Deno.test("Mux.open() returns undefined at the concurrency cap without using an id (SRV-11)", async () => {
  const counter = { last: 0 };
  await using pair = tunnelPair({ counter, concurrency: 3 });
  const streams = [pair.server.open(), pair.server.open(), pair.server.open()];
  assert.ok(streams.every((stream) => stream !== undefined));
  assert.equal(pair.server.open(), undefined);
  assert.equal(counter.last, 3);
  streams[0]?.finish();
  assert.equal(pair.server.open()?.id, 4);
  pair.server.concurrency = 5; // a domain reload applies to later requests (DOM-10)
  assert.notEqual(pair.server.open(), undefined);
  assert.equal(pair.server.size, 4);
});

Deno.test("Mux.open() throws on the agent, and TunnelClosedError once closed", async () => {
  await using pair = tunnelPair();
  assert.throws(() => pair.agent.open(), TypeError);
  pair.server.close();
  assert.throws(() => pair.server.open(), TunnelClosedError);
});

Deno.test("Mux constructor refuses an agent without onStream and inconsistent limits", () => {
  const [left] = MemoryTransport.pair();
  assert.throws(() => new Mux(left, { role: "agent" }), TypeError);
  assert.throws(
    () => new Mux(left, { role: "server", limits: { highWater: 10, lowWater: 20 } }),
    RangeError,
  );
  assert.throws(
    () =>
      new Mux(left, {
        role: "server",
        limits: { maxStreamQueueBytes: 0 },
      }),
    RangeError,
  );
});

Deno.test("the agent creates a stream for START of an unknown id, HEAD queued first (PROTO-17, AGT-2)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, text.encode("GET / HTTP/1.1\r\n\r\n"));
  await stream.send(Flag.Body | Flag.End, new Uint8Array(0));
  const accepted = await pair.accepted();
  assert.equal(accepted.id, stream.id);
  const head = await accepted.read();
  assert.equal(head?.kind, "head");
  assert.equal(new TextDecoder().decode(head?.payload), "GET / HTTP/1.1\r\n\r\n");
  const end = await accepted.read();
  assert.deepEqual([end?.kind, end?.kind === "body" && end.end], ["body", true]);

  // The answer flows back on the same id, in order.
  await accepted.send(Flag.Head | Flag.Start, text.encode("HTTP/1.1 200 OK\r\n\r\n"));
  await accepted.send(Flag.Body, bytes(3));
  await accepted.send(Flag.Body | Flag.End, new Uint8Array(0));
  const kinds = [];
  for (let i = 0; i < 3; i++) kinds.push((await stream.read())?.kind);
  assert.deepEqual(kinds, ["head", "body", "body"]);
  assert.deepEqual(
    ofKind(pair.agentEvents, "stream"),
    [{ event: "stream", action: "activate", stream: stream.id }],
  );
});

Deno.test("messages for unknown ids are dropped and reported on both sides; the server never creates streams (PROTO-17)", async () => {
  await using pair = tunnelPair();
  pair.agentSide.inject(body(77, bytes(5)));
  pair.serverSide.inject(
    message({ kind: "head", streamId: 9, payload: bytes(4), upgrade: false, end: false }),
  );
  pair.agentSide.inject(message({ kind: "abort", streamId: 78, payload: new Uint8Array(0) }));
  assert.equal(pair.agent.size, 0);
  assert.equal(pair.server.size, 0);
  assert.equal(pair.agent.stats.dropped, 2);
  assert.equal(pair.server.stats.dropped, 1);
  assert.deepEqual(ofKind(pair.agentEvents, "dropped")[0], {
    event: "dropped",
    stream: 77,
    kind: "body",
    size: 5,
    total: 1,
    suppressed: 0,
  });
  assert.equal(ofKind(pair.serverEvents, "dropped").length, 1);
  assert.equal(pair.agentSide.sentMessages + pair.serverSide.sentMessages, 0, "nothing answered");
});

Deno.test("abort() sends ABRT once; the peer shuts the stream without answering (PROTO-18, PROTO-27)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(10));
  const accepted = await pair.accepted();
  await accepted.read();
  const pending = accepted.read();
  stream.abort("client gone");
  stream.abort("again");
  assert.equal(await pending, null);
  assert.equal(pair.serverSide.sentMessages, 2, "HEAD and one ABRT");
  assert.equal(pair.agentSide.sentMessages, 0, "no answer to an ABRT");
  assert.ok(accepted.signal.aborted);
  assert.equal((accepted.signal.reason as StreamClosedError).end, "peer-aborted");
  await rejectsClosed(accepted.send(Flag.Body, bytes(1)), "peer-aborted");
  assert.equal(accepted.ended, "peer-aborted");
  assert.equal(pair.agent.size, 0);
  await rejectsClosed(stream.read(), "aborted");
  assert.match((stream.signal.reason as Error).message, /client gone/);
});

Deno.test("an ABRT from the agent ends the server's pending read with null (PROTO-18)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(10));
  const accepted = await pair.accepted();
  const pending = stream.read({ timeoutMs: 60_000 });
  accepted.abort("backend gone");
  assert.equal(await pending, null);
  assert.equal(stream.ended, "peer-aborted");
  assert.equal(pair.server.size, 0);
});

Deno.test("frames queued before the peer's ABRT stay readable, then read() is null (PROTO-26)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(10));
  const accepted = await pair.accepted();
  await accepted.send(Flag.Raw | Flag.End, text.encode("last bytes"));
  accepted.abort("raw session over");
  await pair.idle();
  const last = await stream.read();
  assert.deepEqual([last?.kind, new TextDecoder().decode(last?.payload)], ["raw", "last bytes"]);
  assert.equal(await stream.read(), null);
  assert.equal(await stream.read(), null);
});

Deno.test("finish() forgets the stream without a message; later frames for it are dropped (PROTO-18)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(10));
  const accepted = await pair.accepted();
  stream.finish();
  assert.equal(pair.server.size, 0);
  assert.equal(pair.serverSide.sentMessages, 1);
  assert.equal(await stream.read(), null);
  await rejectsClosed(stream.send(Flag.Body, bytes(1)), "finished");
  await accepted.send(Flag.Body, bytes(1));
  await pair.idle();
  assert.equal(pair.server.stats.dropped, 1);
  accepted.finish();
  assert.equal(pair.agent.size, 0);
});

Deno.test("close() shuts every stream without ABRT and fails pending reads and sends at once (DOM-11)", async () => {
  await using pair = tunnelPair({ limits: { highWater: 16, lowWater: 0 } });
  const streams = [pair.server.open(), pair.server.open()] as Stream[];
  for (const stream of streams) await stream.send(Flag.Head | Flag.Start, bytes(4));
  const accepted = [await pair.accepted(), await pair.accepted()];
  for (const stream of accepted) await stream.read();
  const agentReads = accepted.map((stream) => rejectsClosed(stream.read(), "disconnected"));
  const serverReads = streams.map((stream) =>
    rejectsClosed(stream.read({ timeoutMs: 60_000 }), "disconnected")
  );
  pair.serverSide.pause();
  await streams[0]?.send(Flag.Body, bytes(32)); // fills the window
  const blockedSend = rejectsClosed(
    streams[0]?.send(Flag.Body, bytes(32)) as Promise<void>,
    "disconnected",
  );
  const sentBefore = pair.serverSide.sentMessages;

  pair.server.close("domain deactivated");
  await Promise.all([...serverReads, blockedSend]);
  assert.equal(pair.serverSide.sentMessages, sentBefore, "no ABRT on teardown");
  assert.equal(pair.server.size, 0);
  assert.ok(pair.server.signal.aborted);
  assert.ok(pair.server.signal.reason instanceof TunnelClosedError);
  assert.equal((await pair.server.closed).reason, "domain deactivated");

  // The agent learns from its transport and shuts its side too.
  assert.equal((await pair.agent.closed).reason, "");
  await Promise.all(agentReads);
  assert.equal(pair.agent.size, 0);
  const shutdowns = ofKind(pair.serverEvents, "stream").filter((e) =>
    e.event === "stream" && e.action === "shutdown"
  );
  assert.equal(shutdowns.length, 2);
});

Deno.test("a broken transport shuts the streams and reports its error", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  const read = rejectsClosed(stream.read(), "disconnected");
  pair.serverSide.fail(new Error("connection reset"));
  await read;
  const info = await pair.server.closed;
  assert.equal(info.error?.message, "connection reset");
  assert.match((stream.signal.reason as Error).message, /connection reset/);
});

Deno.test("malformed messages are reported with their reason and dropped, never thrown (PROTO-10)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  const table: [Uint8Array, string][] = [
    [new Uint8Array([1, 2, 3]), "short"],
    [new Uint8Array(0), "short"],
    [new Uint8Array([0x10, 0, 0, stream.id]), "unknown-flags"],
    [new Uint8Array([0x01, 0, 0, stream.id]), "illegal-flags"],
    [new Uint8Array([9, 0x08, 0, 0, stream.id]), "abort-payload"],
  ];
  for (const [bad] of table) pair.serverSide.inject(bad);
  const reported = ofKind(pair.serverEvents, "malformed");
  assert.equal(reported.length, table.length);
  assert.deepEqual(
    reported.map((event) => event.event === "malformed" && event.reason),
    table.map(([, reason]) => reason),
  );
  assert.equal(pair.server.stats.malformed, table.length);
  assert.equal(stream.ended, undefined, "the stream is untouched");
  assert.equal(pair.server.size, 1);
});

Deno.test("a flood of malformed messages is counted but reported at most REPORT_BURST times per window", async () => {
  let now = 1_000_000;
  await using pair = tunnelPair({ now: () => now });
  for (let i = 0; i < 10_000; i++) pair.serverSide.inject(new Uint8Array([i & 0xff]));
  assert.equal(pair.server.stats.malformed, 10_000);
  assert.equal(ofKind(pair.serverEvents, "malformed").length, REPORT_BURST);
  now += REPORT_INTERVAL_MS;
  pair.serverSide.inject(new Uint8Array([1]));
  const last = ofKind(pair.serverEvents, "malformed").at(-1);
  assert.equal(last?.event === "malformed" && last.suppressed, 10_000 - REPORT_BURST);
  assert.equal(last?.event === "malformed" && last.total, 10_001);
});

Deno.test("a lagging stream is aborted at its bound while other streams keep flowing (ODD-7, ODD-43)", async () => {
  const bound = 4 * (100 + QUEUE_ENTRY_OVERHEAD);
  await using pair = tunnelPair({ serverLimits: { maxStreamQueueBytes: bound } });
  const slow = pair.server.open() as Stream;
  const fast = pair.server.open() as Stream;
  await slow.send(Flag.Head | Flag.Start, bytes(4));
  await fast.send(Flag.Head | Flag.Start, bytes(4));
  const slowAgent = await pair.accepted();
  const fastAgent = await pair.accepted();

  // The agent streams 10 messages on each; nobody reads the slow stream on the server.
  const received: number[] = [];
  const reader = (async () => {
    while (true) {
      const frame = await fast.read();
      if (frame === null || frame.kind !== "body") break;
      received.push(frame.payload[0] ?? -1);
      if (frame.end) break;
    }
  })();
  const slowSends: Promise<void>[] = [];
  for (let i = 0; i < 10; i++) {
    slowSends.push(slowAgent.send(Flag.Body, bytes(100, i)));
    await fastAgent.send(i === 9 ? Flag.Body | Flag.End : Flag.Body, bytes(100, i));
  }
  await reader;
  assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "the fast stream got everything");

  await rejectsClosed(slow.read(), "overflow");
  const overflow = ofKind(pair.serverEvents, "overflow");
  assert.equal(overflow.length, 1);
  assert.deepEqual(overflow[0], {
    event: "overflow",
    stream: slow.id,
    queuedBytes: bound,
    scope: "stream",
    limit: bound,
  });
  assert.equal(pair.server.stats.overflows, 1);
  // The ABRT reached the agent: its stream is shut, its later sends fail.
  await pair.idle();
  assert.equal(slowAgent.ended, "peer-aborted");
  await Promise.allSettled(slowSends);
  await rejectsClosed(slowAgent.send(Flag.Body, bytes(1)), "peer-aborted");

  // The tunnel recovered at once: a new stream round-trips.
  const next = pair.server.open() as Stream;
  await next.send(Flag.Head | Flag.Start, bytes(4));
  const nextAgent = await pair.accepted();
  await nextAgent.send(Flag.Head | Flag.Start, bytes(4));
  assert.equal((await next.read())?.kind, "head");
});

Deno.test("the tunnel-wide bound aborts the stream holding the most (ODD-7)", async () => {
  const cost = 100 + QUEUE_ENTRY_OVERHEAD;
  await using pair = tunnelPair({
    serverLimits: { maxStreamQueueBytes: 10 * cost, maxTunnelQueueBytes: 7 * cost },
  });
  const [a, b] = [pair.server.open(), pair.server.open()] as Stream[];
  const ids = [a?.id ?? 0, b?.id ?? 0];
  for (let i = 0; i < 5; i++) pair.serverSide.inject(body(ids[0] ?? 0, bytes(100)));
  for (let i = 0; i < 2; i++) pair.serverSide.inject(body(ids[1] ?? 0, bytes(100)));
  assert.equal(a?.ended, undefined, "7 messages fit");
  pair.serverSide.inject(body(ids[1] ?? 0, bytes(100)));
  assert.equal(a?.ended, "overflow", "the stream holding the most went, not the one that grew");
  assert.equal(b?.ended, undefined);
  assert.equal(b?.queuedBytes, 3 * cost);
  const event = ofKind(pair.serverEvents, "overflow")[0];
  assert.equal(event?.event === "overflow" && event.scope, "tunnel");
});

Deno.test("an onStream callback that throws gets its stream aborted and reported", async () => {
  const failure = new Error("handler bug");
  await using pair = tunnelPair({
    onStream: () => {
      throw failure;
    },
  });
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  assert.equal(await stream.read(), null, "the agent aborted it");
  const reported = ofKind(pair.agentEvents, "callback-error")[0];
  assert.equal(reported?.event === "callback-error" && reported.error, failure);
  assert.equal(pair.agent.size, 0);
});

Deno.test("stream activate and shutdown events carry the id, the end and the byte counts (LOG-10)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(7));
  const accepted = await pair.accepted();
  await accepted.send(Flag.Head | Flag.Start, bytes(5));
  await stream.read();
  stream.finish();
  assert.deepEqual(ofKind(pair.serverEvents, "stream"), [
    { event: "stream", action: "activate", stream: stream.id },
    {
      event: "stream",
      action: "shutdown",
      stream: stream.id,
      end: "finished",
      bytesIn: 5,
      bytesOut: 7,
    },
  ]);
});

Deno.test("a throwing onEvent hook does not break the tunnel", async () => {
  const [serverSide, agentSide] = MemoryTransport.pair();
  const server = new Mux(serverSide, {
    role: "server",
    onEvent: () => {
      throw new Error("logger down");
    },
  });
  const agent = new Mux(agentSide, { role: "agent", onStream: (stream) => stream.finish() });
  const stream = server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  serverSide.inject(new Uint8Array(1));
  stream.abort();
  server.close();
  await Promise.all([server.closed, agent.closed]);
  assert.equal(server.stats.malformed, 1);
});

type Operation =
  | { op: "open" }
  | { op: "send"; side: "server" | "agent"; index: number; size: number; end: boolean }
  | { op: "read"; side: "server" | "agent"; index: number; timeoutMs: number | undefined }
  | { op: "abort" | "finish"; side: "server" | "agent"; index: number }
  | { op: "pause" | "resume"; side: "server" | "agent" }
  | { op: "garbage"; side: "server" | "agent"; bytes: Uint8Array }
  | { op: "idle" }
  | { op: "await-timed" }
  | { op: "close"; side: "server" | "agent" };

const side = fc.constantFrom<"server" | "agent">("server", "agent");
const index = fc.nat({ max: 7 });
const operation: fc.Arbitrary<Operation> = fc.oneof(
  { arbitrary: fc.constant<Operation>({ op: "open" }), weight: 6 },
  {
    arbitrary: fc.record({
      op: fc.constant("send" as const),
      side,
      index,
      size: fc.nat({ max: 300 }),
      end: fc.boolean(),
    }),
    weight: 10,
  },
  {
    arbitrary: fc.record({
      op: fc.constant("read" as const),
      side,
      index,
      timeoutMs: fc.option(fc.constantFrom(0, 1), { nil: undefined }),
    }),
    weight: 10,
  },
  {
    arbitrary: fc.record({ op: fc.constantFrom("abort" as const, "finish" as const), side, index }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constantFrom("pause" as const, "resume" as const), side }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constant("garbage" as const),
      side,
      bytes: fc.uint8Array({ maxLength: 9 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.constant<Operation>({ op: "idle" }), weight: 4 },
  { arbitrary: fc.constant<Operation>({ op: "await-timed" }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("close" as const), side }), weight: 1 },
);

function expectedFailure(error: unknown): boolean {
  return error instanceof StreamClosedError ||
    error instanceof TunnelClosedError ||
    (error instanceof DOMException && error.name === "TimeoutError");
}

Deno.test("random interleavings of open/send/read/abort/finish/close never throw unexpected errors and leave nothing behind", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(operation, { maxLength: 80, size: "max" }), async (operations) => {
      // Outcomes are captured at once: a rejection must not go unhandled while the test awaits.
      const pending: Promise<PromiseSettledResult<unknown>>[] = [];
      const track = (promise: Promise<unknown>) => {
        const outcome = promise.then(
          (value) => ({ status: "fulfilled", value }) as const,
          (reason: unknown) => ({ status: "rejected", reason }) as const,
        );
        pending.push(outcome);
        return outcome;
      };
      const timedReads: Promise<unknown>[] = [];
      const pair = tunnelPair({
        concurrency: 5,
        limits: {
          highWater: 256,
          lowWater: 64,
          maxStreamQueueBytes: 1200,
          maxTunnelQueueBytes: 2400,
        },
      });
      const streams = { server: [] as Stream[], agent: [] as Stream[] };
      const collect = (async () => {
        while (true) {
          const stream = await Promise.race([pair.accepted(), pair.agent.closed.then(() => null)]);
          if (stream === null) return;
          streams.agent.push(stream);
        }
      })();
      const pick = (where: "server" | "agent", at: number) => {
        const list = streams[where];
        return list.length === 0 ? undefined : list[at % list.length];
      };
      const transport = (where: "server" | "agent") =>
        where === "server" ? pair.serverSide : pair.agentSide;
      for (const operation of operations) {
        switch (operation.op) {
          case "open": {
            try {
              const stream = pair.server.open();
              if (stream !== undefined) {
                streams.server.push(stream);
                track(stream.send(Flag.Head | Flag.Start, bytes(8)));
              }
            } catch (error) {
              assert.ok(error instanceof TunnelClosedError);
            }
            break;
          }
          case "send": {
            const flags = operation.end ? Flag.Body | Flag.End : Flag.Body;
            const stream = pick(operation.side, operation.index);
            if (stream !== undefined) track(stream.send(flags, bytes(operation.size)));
            break;
          }
          case "read": {
            const stream = pick(operation.side, operation.index);
            const options = operation.timeoutMs === undefined
              ? {}
              : { timeoutMs: operation.timeoutMs };
            if (stream === undefined) break;
            const read = track(stream.read(options));
            if (operation.timeoutMs !== undefined) timedReads.push(read);
            break;
          }
          case "await-timed":
            // Settles within its timeout whatever happens: no sleep, the read's own deadline.
            await timedReads.pop();
            break;
          case "abort":
            pick(operation.side, operation.index)?.abort("random");
            break;
          case "finish":
            pick(operation.side, operation.index)?.finish();
            break;
          case "pause":
            transport(operation.side).pause();
            break;
          case "resume":
            transport(operation.side).resume();
            break;
          case "garbage":
            transport(operation.side).inject(operation.bytes);
            break;
          case "idle":
            await pair.idle();
            break;
          case "close":
            (operation.side === "server" ? pair.server : pair.agent).close("random");
            break;
        }
      }
      await pair[Symbol.asyncDispose]();
      await collect;
      for (const outcome of await Promise.all(pending)) {
        if (outcome.status === "rejected" && !expectedFailure(outcome.reason)) {
          throw outcome.reason;
        }
      }
      assert.equal(pair.server.size, 0);
      assert.equal(pair.agent.size, 0);
      for (const stream of [...streams.server, ...streams.agent]) {
        assert.notEqual(stream.ended, undefined, `stream ${stream.id} still open`);
        assert.equal(stream.signal.aborted, true);
      }
    }),
    { numRuns: 200 },
  );
});
