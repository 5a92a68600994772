/**
 * Unit tests of the tunnel message codec: the layout of PROTO-15, the legal flag set of PROTO-16,
 * every rejection `decodeFrame()` makes, protocol v2's window update (issue 6) and that v1 stays
 * exactly as strict, and round-trip and robustness properties.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  classifyFlags,
  decodeFrame,
  describeFlags,
  describeFrame,
  encodeFrame,
  encodeFrameInto,
  encodeRawMessage,
  Flag,
  type Frame,
  FRAME_TRAILER_SIZE,
  FrameError,
  type FrameErrorReason,
  frameFlags,
  MAX_BODY_PAYLOAD,
  MAX_MESSAGE_SIZE,
  MAX_PAYLOAD_SIZE,
  MAX_READ_PAYLOAD,
  MAX_SENT_MESSAGE_SIZE,
  MAX_STREAM_ID,
  MAX_WINDOW_INCREMENT,
  type ProtocolVersion,
  protocolVersion,
  Subprotocol,
  type TunnelFrame,
  WINDOW_PAYLOAD_SIZE,
  windowFrame,
} from "./frame.ts";

/** A message `payload ‖ flags ‖ id` built by hand, independently of encodeFrame(). */
function message(payload: number[], flags: number, streamId: number): Uint8Array {
  return Uint8Array.of(
    ...payload,
    flags,
    (streamId >> 16) & 0xff,
    (streamId >> 8) & 0xff,
    streamId & 0xff,
  );
}

function assertFrameError(fn: () => unknown, reason: FrameErrorReason): void {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof FrameError, `expected FrameError, got ${error}`);
    assert.equal(error.reason, reason);
    assert.equal(error.name, "FrameError");
    assert.match(error.message, /^Cannot decode frame: /);
    return true;
  });
}

Deno.test("Flag has the bit values of PROTO-16, and v2's window update takes the unused 0x10", () => {
  assert.deepEqual(Flag, {
    Head: 0x01,
    Body: 0x02,
    Raw: 0x04,
    Abort: 0x08,
    Window: 0x10,
    Upgrade: 0x20,
    Start: 0x40,
    End: 0x80,
  });
});

Deno.test("frame limits follow PROTO-11/12/15/17/21/23", () => {
  assert.equal(FRAME_TRAILER_SIZE, 4);
  assert.equal(MAX_STREAM_ID, 16_777_215);
  assert.equal(MAX_MESSAGE_SIZE, 4_194_304);
  assert.equal(MAX_PAYLOAD_SIZE, 4_194_300);
  assert.equal(MAX_SENT_MESSAGE_SIZE, 65_536);
  assert.equal(MAX_READ_PAYLOAD, 65_532);
  assert.equal(MAX_BODY_PAYLOAD, 65_524);
  // A re-chunked 65 524-byte read fits one 65 536-byte message (PROTO-21).
  assert.equal(`fff4\r\n`.length + MAX_BODY_PAYLOAD + 2 + FRAME_TRAILER_SIZE, 65_536);
});

Deno.test("decodeFrame() reads flags at len-4 and a big-endian id at len-3..len-1 (PROTO-15)", () => {
  const frame = decodeFrame(message([0x61, 0x62], 0x82, 0x123456));
  assert.deepEqual(frame, {
    kind: "body",
    end: true,
    streamId: 0x123456,
    payload: Uint8Array.of(0x61, 0x62),
  });
  assert.equal(decodeFrame(message([], 0x08, 0)).streamId, 0);
  assert.equal(decodeFrame(message([], 0x08, MAX_STREAM_ID)).streamId, MAX_STREAM_ID);
});

Deno.test("decodeFrame() accepts an empty payload, the common case (PROTO-15)", () => {
  const frame = decodeFrame(message([], 0x82, 1));
  assert.equal(frame.payload.length, 0);
});

Deno.test("decodeFrame() returns a zero-copy payload view", () => {
  const bytes = message([1, 2, 3], 0x04, 7);
  const frame = decodeFrame(bytes);
  assert.equal(frame.payload.buffer, bytes.buffer);
  bytes[0] = 9;
  assert.equal(frame.payload[0], 9);
});

Deno.test("decodeFrame() rejects a trailer shorter than 4 bytes (PROTO-10/15)", () => {
  for (const length of [0, 1, 2, 3]) {
    assertFrameError(() => decodeFrame(new Uint8Array(length)), "short");
  }
});

Deno.test("decodeFrame() rejects a message over 4 MiB and accepts exactly 4 MiB (PROTO-12)", () => {
  const limit = new Uint8Array(MAX_MESSAGE_SIZE);
  limit[MAX_MESSAGE_SIZE - 4] = 0x02;
  assert.equal(decodeFrame(limit).payload.length, MAX_PAYLOAD_SIZE);
  const over = new Uint8Array(MAX_MESSAGE_SIZE + 1);
  over[MAX_MESSAGE_SIZE - 3] = 0x02;
  assertFrameError(() => decodeFrame(over), "oversize");
});

Deno.test("decodeFrame() rejects the unused flag bit 0x10 (PROTO-16)", () => {
  for (const flags of [0x10, 0x12, 0x51, 0x92, 0xff]) {
    assertFrameError(() => decodeFrame(message([], flags, 1)), "unknown-flags");
  }
});

Deno.test("decodeFrame() accepts exactly the 8 combinations groom 1.3 emits (PROTO-16)", () => {
  const legal = [0x41, 0x61, 0xc1, 0x02, 0x82, 0x04, 0x84, 0x08];
  let rejected = 0;
  for (let flags = 0; flags < 256; flags++) {
    const bytes = message([], flags, 5);
    if (legal.includes(flags)) {
      assert.equal(frameFlags(decodeFrame(bytes)), flags);
    } else {
      assertFrameError(
        () => decodeFrame(bytes),
        (flags & 0x10) !== 0 ? "unknown-flags" : "illegal-flags",
      );
      rejected++;
    }
  }
  assert.equal(rejected, 248);
});

Deno.test("decodeFrame() rejects HEAD without START, mixed kinds and ABRT with other bits (PROTO-16)", () => {
  // 0x01 HEAD alone, 0x03 HEAD|BODY, 0x06 BODY|RAW, 0x88 ABRT|END, 0x48 ABRT|START,
  // 0xe1 HEAD|START|UPGD|END, 0x22 BODY|UPGD, 0x42 BODY|START, 0x80 END alone, 0x00 nothing.
  for (const flags of [0x01, 0x03, 0x06, 0x88, 0x48, 0xe1, 0x22, 0x42, 0x80, 0x00]) {
    assertFrameError(() => decodeFrame(message([], flags, 1)), "illegal-flags");
  }
});

Deno.test("decodeFrame() rejects ABRT with a payload (PROTO-16)", () => {
  assertFrameError(() => decodeFrame(message([0], 0x08, 1)), "abort-payload");
});

Deno.test("decodeFrame() classifies heads by UPGD and END (PROTO-16, PROTO-24/25)", () => {
  assert.deepEqual(classifyFlags(0x41), { kind: "head", upgrade: false, end: false });
  assert.deepEqual(classifyFlags(0x61), { kind: "head", upgrade: true, end: false });
  assert.deepEqual(classifyFlags(0xc1), { kind: "head", upgrade: false, end: true });
  assert.deepEqual(classifyFlags(0x84), { kind: "raw", end: true });
  assert.deepEqual(classifyFlags(0x08), { kind: "abort" });
  assert.equal(classifyFlags(0x10), undefined);
});

Deno.test("encodeFrame() writes payload ‖ flags ‖ 3-byte big-endian id (PROTO-15)", () => {
  const payload = Uint8Array.of(0x68, 0x69);
  assert.deepEqual(
    encodeFrame({ kind: "head", upgrade: true, end: false, streamId: 0xabcdef, payload }),
    message([0x68, 0x69], 0x61, 0xabcdef),
  );
  assert.deepEqual(
    encodeFrame({ kind: "abort", streamId: 1, payload: new Uint8Array(0) }),
    message([], 0x08, 1),
  );
});

Deno.test("encodeFrame() rejects an id above 2^24−1, negative or fractional (PROTO-17)", () => {
  for (const streamId of [MAX_STREAM_ID + 1, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => encodeFrame({ kind: "body", end: false, streamId, payload: new Uint8Array(0) }),
      RangeError,
    );
  }
});

Deno.test("encodeFrame() rejects illegal combinations and an ABRT payload (PROTO-16)", () => {
  const payload = new Uint8Array(1);
  assert.throws(
    () => encodeFrame({ kind: "head", upgrade: true, end: true, streamId: 1, payload }),
    /illegal flag combination HEAD\|UPGD\|START\|END/,
  );
  assert.throws(() => encodeFrame({ kind: "abort", streamId: 1, payload }), RangeError);
});

Deno.test("encodeFrame() rejects a payload the receiver would refuse (PROTO-12)", () => {
  const payload = new Uint8Array(MAX_PAYLOAD_SIZE + 1);
  assert.throws(() => encodeFrame({ kind: "raw", end: false, streamId: 1, payload }), RangeError);
});

Deno.test("encodeFrameInto() seals a payload in place without copying (PROTO-23)", () => {
  const buffer = new Uint8Array(MAX_READ_PAYLOAD + FRAME_TRAILER_SIZE);
  buffer.set([1, 2, 3]);
  const sealed = encodeFrameInto(buffer, {
    kind: "body",
    end: true,
    streamId: 9,
    payloadLength: 3,
  });
  assert.equal(sealed.buffer, buffer.buffer);
  assert.deepEqual(sealed, message([1, 2, 3], 0x82, 9));
  assert.throws(
    () =>
      encodeFrameInto(new Uint8Array(6), {
        kind: "raw",
        end: false,
        streamId: 1,
        payloadLength: 3,
      }),
    RangeError,
  );
  assert.throws(
    () => encodeFrameInto(buffer, { kind: "raw", end: false, streamId: 1, payloadLength: -1 }),
    RangeError,
  );
});

Deno.test("describeFrame() names flags, id and length, never payload content", () => {
  const payload = new TextEncoder().encode("Authorization: Bearer secret");
  const text = describeFrame({ kind: "head", upgrade: false, end: true, streamId: 11, payload });
  assert.equal(text, `HEAD|START|END id=11 len=${payload.length}`);
  assert.doesNotMatch(text, /secret/);
  assert.equal(describeFlags(0x61), "HEAD|UPGD|START");
  assert.equal(describeFlags(0x10), "WNDW");
  assert.equal(describeFlags(0), "none");
});

const legalFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    kind: fc.constant("head" as const),
    streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
    payload: fc.uint8Array({ maxLength: 300 }),
    upgrade: fc.boolean(),
    end: fc.boolean(),
  }).map((frame) => ({ ...frame, end: frame.upgrade ? false : frame.end })),
  fc.record({
    kind: fc.constantFrom("body" as const, "raw" as const),
    streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
    payload: fc.uint8Array({ maxLength: 300 }),
    end: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("abort" as const),
    streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
    payload: fc.constant(new Uint8Array(0)),
  }),
);

Deno.test("decodeFrame(encodeFrame(f)) equals f for random legal frames (property)", () => {
  fc.assert(
    fc.property(legalFrame, (frame) => {
      const bytes = encodeFrame(frame);
      assert.equal(bytes.length, frame.payload.length + FRAME_TRAILER_SIZE);
      assert.deepEqual(decodeFrame(bytes), { ...frame }); // fc.record objects have no prototype
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeFrame() on arbitrary bytes returns a frame or throws FrameError (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const frame = decodeFrame(bytes);
        assert.deepEqual(encodeFrame(frame), bytes);
      } catch (error) {
        assert.ok(error instanceof FrameError, `unexpected ${error}`);
      }
    }),
    { numRuns: 2000 },
  );
});

// ---- protocol v2 (issue 6) ------------------------------------------------------------------

Deno.test("protocolVersion() maps groom2 to 2 and groom, none or anything else to 1 (PROTO-8, issue 6)", () => {
  assert.deepEqual(Subprotocol, { V1: "groom", V2: "groom2" });
  const table: [string, ProtocolVersion][] = [["groom2", 2], ["groom", 1], ["", 1], ["GROOM2", 1]];
  for (const [name, version] of table) assert.equal(protocolVersion(name), version, name);
});

Deno.test("decodeFrame(m, 2) reads a window update: 4-byte big-endian increment, flags 0x10 (issue 6)", () => {
  const frame = decodeFrame(message([0x00, 0x04, 0x00, 0x01], 0x10, 0x000102), 2);
  assert.equal(frame.kind, "window");
  assert.equal(frame.streamId, 0x000102);
  assert.equal(frame.kind === "window" && frame.increment, 0x040001);
  assert.equal(WINDOW_PAYLOAD_SIZE, 4);
  assert.equal(MAX_WINDOW_INCREMENT, 2 ** 31 - 1);
  const largest = decodeFrame(message([0x7f, 0xff, 0xff, 0xff], 0x10, 1), 2);
  assert.equal(largest.kind === "window" && largest.increment, MAX_WINDOW_INCREMENT);
});

Deno.test("decodeFrame() in v1 still rejects 0x10 and every combination with it (PROTO-16, issue 6)", () => {
  const update = message([0, 0, 1, 0], 0x10, 1);
  assertFrameError(() => decodeFrame(update), "unknown-flags");
  assertFrameError(() => decodeFrame(update, 1), "unknown-flags");
  assert.equal(classifyFlags(0x10, 1), undefined);
  assert.deepEqual(classifyFlags(0x10, 2), { kind: "window" });
});

Deno.test("decodeFrame(m, 2) accepts exactly groom 1.3's 8 combinations plus 0x10 alone (issue 6)", () => {
  const legal = [0x41, 0x61, 0xc1, 0x02, 0x82, 0x04, 0x84, 0x08];
  let rejected = 0;
  for (let flags = 0; flags < 256; flags++) {
    if (flags === 0x10) continue;
    const bytes = message([], flags, 5);
    if (legal.includes(flags)) {
      assert.equal(frameFlags(decodeFrame(bytes, 2)), flags);
    } else {
      assertFrameError(() => decodeFrame(bytes, 2), "illegal-flags");
      rejected++;
    }
  }
  assert.equal(rejected, 247);
});

Deno.test("decodeFrame(m, 2) rejects a window update that is not 4 bytes or grants 0 or over 2^31−1", () => {
  for (const payload of [[], [1], [0, 0, 1], [0, 0, 0, 1, 0]]) {
    assertFrameError(() => decodeFrame(message(payload, 0x10, 1), 2), "window-payload");
  }
  for (const payload of [[0, 0, 0, 0], [0x80, 0, 0, 0], [0xff, 0xff, 0xff, 0xff]]) {
    assertFrameError(() => decodeFrame(message(payload, 0x10, 1), 2), "window-payload");
  }
});

Deno.test("windowFrame() and encodeFrame() write the increment big-endian; bad increments throw", () => {
  assert.deepEqual(
    encodeFrame(windowFrame(0xabcdef, 0x01020304)),
    message([1, 2, 3, 4], 0x10, 0xabcdef),
  );
  assert.deepEqual(windowFrame(3, 65_536).payload, Uint8Array.of(0, 1, 0, 0));
  for (const increment of [0, -1, 1.5, MAX_WINDOW_INCREMENT + 1, Number.NaN]) {
    assert.throws(() => windowFrame(1, increment), RangeError);
    assert.throws(
      () => encodeFrame({ kind: "window", streamId: 1, increment, payload: new Uint8Array(4) }),
      RangeError,
    );
  }
  assert.throws(
    () =>
      encodeFrameInto(new Uint8Array(16), {
        kind: "window",
        streamId: 1,
        increment: 1,
        payloadLength: 4,
      }),
    RangeError,
  );
  assert.equal(describeFrame(windowFrame(4, 8)), "WNDW id=4 len=4");
});

const tunnelFrame: fc.Arbitrary<TunnelFrame> = fc.oneof(
  legalFrame,
  fc.record({
    streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
    increment: fc.integer({ min: 1, max: MAX_WINDOW_INCREMENT }),
  }).map(({ streamId, increment }) => windowFrame(streamId, increment)),
);

Deno.test("decodeFrame(encodeFrame(f), 2) equals f for random v2 frames (property)", () => {
  fc.assert(
    fc.property(tunnelFrame, (frame) => {
      const bytes = encodeFrame(frame);
      assert.deepEqual(decodeFrame(bytes, 2), { ...frame });
      if (frame.kind !== "window") assert.deepEqual(decodeFrame(bytes, 1), { ...frame });
      else assertFrameError(() => decodeFrame(bytes, 1), "unknown-flags");
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeFrame(m, 2) on arbitrary bytes returns a frame or throws FrameError (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 16 }), (bytes) => {
      try {
        const frame = decodeFrame(bytes, 2);
        assert.deepEqual(encodeFrame(frame), bytes);
      } catch (error) {
        assert.ok(error instanceof FrameError, `unexpected ${error}`);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("encodeRawMessage() writes payload ‖ flags ‖ id as given, legal or not (PROTO-15)", () => {
  const legal = encodeRawMessage(Flag.Body | Flag.End, 0x010203, "hi");
  assert.deepEqual([...legal], [0x68, 0x69, 0x82, 0x01, 0x02, 0x03]);
  assert.deepEqual(
    legal,
    encodeFrame({
      kind: "body",
      end: true,
      streamId: 0x010203,
      payload: new TextEncoder().encode("hi"),
    }),
  );
  // What encodeFrame refuses: ABRT with a payload, unknown flags, the largest id.
  assert.deepEqual([...encodeRawMessage(Flag.Abort, 1, "p")], [0x70, Flag.Abort, 0, 0, 1]);
  assert.deepEqual([...encodeRawMessage(0xff, 0xffffff)], [0xff, 0xff, 0xff, 0xff]);
});
