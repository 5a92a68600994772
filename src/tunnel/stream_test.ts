/**
 * Tests of `Stream` over an in-memory transport pair with tiny limits: per-read timeouts and
 * signals, send validation, back-pressure on the connection, counters and the ways to end.
 * @module
 */

import assert from "node:assert/strict";
import { Flag, MAX_PAYLOAD_SIZE } from "../protocol/mod.ts";
import { bytes, tunnelPair } from "./_tunnel_pair.ts";
import { type Stream, StreamClosedError } from "./stream.ts";

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
function watch<T>(promise: Promise<T>): { settled: () => boolean; done: Promise<T> } {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  return { settled: () => settled, done: promise };
}

Deno.test("Stream.read() rejects with TimeoutError after timeoutMs; a later message stays readable (SRV-14, AGT-3)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await assert.rejects(
    stream.read({ timeoutMs: 1 }),
    (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
  );
  assert.equal(stream.ended, undefined, "a read timeout does not end the stream");
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  const accepted = await pair.accepted();
  await accepted.send(Flag.Head | Flag.Start, bytes(3));
  const frame = await stream.read({ timeoutMs: 60_000 });
  assert.equal(frame?.kind, "head");
});

Deno.test("Stream.read() with a signal rejects with the signal's reason and leaves the stream open", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  const controller = new AbortController();
  const read = stream.read({ signal: controller.signal });
  const reason = new Error("client gone");
  controller.abort(reason);
  await assert.rejects(read, (error) => error === reason);
  await assert.rejects(stream.read({ signal: controller.signal }), (error) => error === reason);
  assert.equal(stream.ended, undefined);
});

Deno.test("concurrent reads are served in call order", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  const accepted = await pair.accepted();
  await accepted.read();
  const reads = [accepted.read(), accepted.read()];
  await stream.send(Flag.Body, bytes(1, 1));
  await stream.send(Flag.Body | Flag.End, bytes(1, 2));
  const frames = await Promise.all(reads);
  assert.deepEqual(frames.map((frame) => frame?.payload[0]), [1, 2]);
});

Deno.test("Stream.send() refuses ABRT, illegal flag combinations and oversized payloads (PROTO-16)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  await assert.rejects(stream.send(Flag.Abort, new Uint8Array(0)), RangeError);
  await assert.rejects(stream.send(Flag.Head, bytes(1)), RangeError);
  await assert.rejects(stream.send(0x10 | Flag.Body, bytes(1)), RangeError);
  await assert.rejects(stream.send(Flag.Body, new Uint8Array(MAX_PAYLOAD_SIZE + 1)), RangeError);
  assert.equal(pair.serverSide.sentMessages, 0);
  assert.equal(stream.ended, undefined);
});

Deno.test("Stream.send() waits while the transport holds more than highWater and resumes once drained", async () => {
  await using pair = tunnelPair({ limits: { highWater: 64, lowWater: 16 } });
  const stream = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  const accepted = await pair.accepted();
  await accepted.read();

  pair.serverSide.pause(); // the agent stopped reading
  await stream.send(Flag.Body, bytes(100, 1)); // under highWater: goes out at once
  assert.equal(pair.serverSide.bufferedAmount, 104);
  const second = watch(stream.send(Flag.Body, bytes(10, 2)));
  const third = watch(stream.send(Flag.Body | Flag.End, bytes(10, 3)));
  await pair.idle();
  assert.equal(second.settled() || third.settled(), false, "senders wait for the drain");
  assert.equal(pair.serverSide.bufferedAmount, 104, "nothing more was handed to the transport");

  pair.serverSide.resume();
  await Promise.all([second.done, third.done]);
  const order = [];
  for (let i = 0; i < 3; i++) order.push((await accepted.read())?.payload[0]);
  assert.deepEqual(order, [1, 2, 3], "the stream's messages kept their order");
  assert.equal(stream.bytesOut, 4 + 100 + 10 + 10);
  assert.equal(accepted.bytesIn, 4 + 100 + 10 + 10);
});

Deno.test("a stream's waiting sends fail when it is aborted, and nothing of it follows the ABRT", async () => {
  await using pair = tunnelPair({ limits: { highWater: 64, lowWater: 16 } });
  const stream = pair.server.open() as Stream;
  const other = pair.server.open() as Stream;
  await stream.send(Flag.Head | Flag.Start, bytes(4));
  await other.send(Flag.Head | Flag.Start, bytes(4));
  const accepted = await pair.accepted();
  const otherAccepted = await pair.accepted();
  await accepted.read();
  await otherAccepted.read();

  pair.serverSide.pause();
  await stream.send(Flag.Body, bytes(100));
  const waiting = watch(stream.send(Flag.Body, bytes(10)));
  const otherWaiting = watch(other.send(Flag.Body, bytes(10, 7)));
  stream.abort("client gone");
  await assert.rejects(waiting.done, (error) => {
    assert.ok(error instanceof StreamClosedError);
    assert.equal(error.end, "aborted");
    return true;
  });
  pair.serverSide.resume();
  await otherWaiting.done;
  const first = await accepted.read();
  assert.equal(first?.payload.length, 100, "the body sent before the abort arrives");
  assert.equal(await accepted.read(), null, "then the ABRT, and nothing after it");
  assert.equal((await otherAccepted.read())?.payload[0], 7, "the other stream's send went out");
});

Deno.test("finish() resolves pending reads with null; later sends reject as finished (PROTO-18)", async () => {
  await using pair = tunnelPair();
  const stream = pair.server.open() as Stream;
  const read = stream.read({ timeoutMs: 60_000 });
  stream.finish();
  assert.equal(await read, null);
  assert.equal(stream.ended, "finished");
  assert.ok(stream.signal.aborted);
  await assert.rejects(stream.send(Flag.Body, bytes(1)), StreamClosedError);
  stream.abort("late");
  assert.equal(pair.serverSide.sentMessages, 0, "no ABRT after a normal end");
  // A normal end is built for every request: no stack is captured for it (issue 7).
  const reason = stream.signal.reason as StreamClosedError;
  assert.equal(reason.end, "finished");
  assert.doesNotMatch(reason.stack ?? "", /\n\s+at /);
  // An abnormal end keeps its stack for diagnosis.
  const other = pair.server.open() as Stream;
  other.abort("backend gone");
  assert.match((other.signal.reason as StreamClosedError).stack ?? "", /\n\s+at /);
});

Deno.test("the stream's signal is aborted with the reason whatever ends it", async () => {
  await using pair = tunnelPair();
  const streams = [pair.server.open(), pair.server.open()] as Stream[];
  const reasons: unknown[] = [];
  for (const stream of streams) {
    stream.signal.addEventListener("abort", () => reasons.push(stream.signal.reason));
  }
  streams[0]?.abort("backend timeout");
  pair.server.close();
  assert.equal(reasons.length, 2);
  assert.match((reasons[0] as Error).message, /^Stream 1 was aborted: backend timeout$/);
  assert.equal((reasons[1] as StreamClosedError).end, "disconnected");
});

Deno.test("`using` a stream aborts it at the end of the block unless it ended", async () => {
  await using pair = tunnelPair();
  let id = -1;
  {
    using stream = pair.server.open() as Stream;
    id = stream.id;
    await stream.send(Flag.Head | Flag.Start, bytes(4));
  }
  assert.equal(pair.server.get(id), undefined);
  const accepted = await pair.accepted();
  await accepted.read();
  assert.equal(await accepted.read(), null, "the agent saw the ABRT");
});
