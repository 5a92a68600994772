import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CLOSE_TOO_BIG,
  closePayload,
  encodeWebSocketFrame,
  isValidCloseCode,
  Opcode,
  WebSocketDecoder,
  WebSocketProtocolError,
} from "./websocket.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("encodeWebSocketFrame() writes the RFC 6455 header for 7-bit, 16-bit and 64-bit lengths", () => {
  assert.deepEqual([...encodeWebSocketFrame({ opcode: Opcode.Text, payload: bytes("hi") })], [
    0x81,
    2,
    0x68,
    0x69,
  ]);
  const medium = encodeWebSocketFrame({ opcode: Opcode.Binary, payload: new Uint8Array(300) });
  assert.deepEqual([...medium.subarray(0, 4)], [0x82, 126, 1, 44]);
  const large = encodeWebSocketFrame({ opcode: Opcode.Binary, payload: new Uint8Array(70_000) });
  assert.deepEqual([...large.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
});

Deno.test("encodeWebSocketFrame() masks with the given key (RFC 6455 §5.3 example)", () => {
  const frame = encodeWebSocketFrame(
    { opcode: Opcode.Text, payload: bytes("Hello") },
    Uint8Array.of(0x37, 0xfa, 0x21, 0x3d),
  );
  assert.deepEqual([...frame], [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
});

Deno.test("WebSocketDecoder reassembles fragments split at any byte and passes control frames", () => {
  const wire = [
    encodeWebSocketFrame({ fin: false, opcode: Opcode.Text, payload: bytes("Hel") }, true),
    encodeWebSocketFrame({ opcode: Opcode.Ping, payload: bytes("p") }, true),
    encodeWebSocketFrame({ fin: true, opcode: Opcode.Continuation, payload: bytes("lo") }, true),
    encodeWebSocketFrame({ opcode: Opcode.Close, payload: closePayload(1000, "bye") }, true),
  ];
  const all = new Uint8Array(wire.reduce((n, f) => n + f.length, 0));
  let offset = 0;
  for (const frame of wire) {
    all.set(frame, offset);
    offset += frame.length;
  }
  const decoder = new WebSocketDecoder({ masked: true });
  const messages = [...all].flatMap((byte) => decoder.push(Uint8Array.of(byte)));
  assert.deepEqual(messages, [
    { type: "ping", data: bytes("p") },
    { type: "text", text: "Hello" },
    { type: "close", code: 1000, reason: "bye" },
  ]);
});

Deno.test("WebSocketDecoder rejects wrong masking, reserved bits, oversize and bad control frames (PROTO-12)", () => {
  const cases: [Uint8Array, boolean, number][] = [
    [encodeWebSocketFrame({ opcode: Opcode.Binary, payload: bytes("x") }), true, 1002],
    [encodeWebSocketFrame({ opcode: Opcode.Binary, payload: bytes("x") }, true), false, 1002],
    [Uint8Array.of(0xc2, 0), false, 1002],
    [Uint8Array.of(0x83, 0), false, 1002],
    [Uint8Array.of(0x09, 0), false, 1002],
    [encodeWebSocketFrame({ opcode: Opcode.Ping, payload: new Uint8Array(126) }), false, 1002],
    [Uint8Array.of(0x80, 1, 0), false, 1002],
    [Uint8Array.of(0x81, 2, 0xc3, 0x28), false, 1007],
    [Uint8Array.of(0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0), false, CLOSE_TOO_BIG],
  ];
  for (const [wire, masked, code] of cases) {
    const decoder = new WebSocketDecoder({ masked, maxMessageSize: 1024 });
    assert.throws(
      () => decoder.push(wire),
      (error: unknown) => error instanceof WebSocketProtocolError && error.code === code,
      `${[...wire.subarray(0, 4)]}`,
    );
  }
  assert.equal(cases.length, 9);
});

Deno.test("WebSocketDecoder round-trips random binary messages split at random points", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 2000 }), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 1, max: 700 }),
      (payloads, step) => {
        const wire = payloads.map((payload) =>
          encodeWebSocketFrame({ opcode: Opcode.Binary, payload }, true)
        );
        const all = new Uint8Array(wire.reduce((n, f) => n + f.length, 0));
        let offset = 0;
        for (const frame of wire) {
          all.set(frame, offset);
          offset += frame.length;
        }
        const decoder = new WebSocketDecoder({ masked: true });
        const out = [];
        for (let i = 0; i < all.length; i += step) {
          out.push(...decoder.push(all.subarray(i, i + step)));
        }
        assert.deepEqual(out, payloads.map((data) => ({ type: "binary", data })));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("isValidCloseCode() accepts the codes a close frame may carry and refuses the reserved ones (RFC 6455 §7.4)", () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
    assert.equal(isValidCloseCode(code), true, String(code));
  }
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
    assert.equal(isValidCloseCode(code), false, String(code));
  }
});
