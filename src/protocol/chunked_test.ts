/**
 * Unit tests of the chunked coding: decoding across arbitrary splits, every rejection of ODD-42,
 * the bounds on lines and trailers, the encoder of PROTO-21, and properties.
 * @module
 */

import { concatBytes } from "./bytes.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ChunkedDecoder,
  encodeChunk,
  encodeLastChunk,
  MAX_CHUNK_LINE_SIZE,
  MAX_TRAILER_SIZE,
} from "./chunked.ts";
import { HttpParseError, type HttpParseErrorReason } from "./http1.ts";

const bytes = (text: string): Uint8Array => Uint8Array.from(text, (char) => char.charCodeAt(0));
const text = (data: Uint8Array): string => String.fromCharCode(...data);

/** Feeds `input` in one piece and returns the decoded text and the decoder. */
function decodeAll(input: string) {
  const decoder = new ChunkedDecoder();
  const result = decoder.decode(bytes(input));
  return { decoder, result, data: text(concatBytes(result.data)) };
}

function assertChunkError(input: string, reason: HttpParseErrorReason): void {
  assert.throws(() => {
    const decoder = new ChunkedDecoder();
    decoder.decode(bytes(input));
    decoder.finish();
  }, (error) => {
    assert.ok(error instanceof HttpParseError, `${JSON.stringify(input)}: ${error}`);
    assert.equal(error.reason, reason, `${JSON.stringify(input)}: ${error.message}`);
    assert.equal(error.status, 400);
    assert.match(error.message, /^Cannot decode chunked body: /);
    return true;
  }, JSON.stringify(input));
}

Deno.test("ChunkedDecoder decodes chunks, the last chunk and stops at the body's end (PROTO-21)", () => {
  const { decoder, result, data } = decodeAll("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nNEXT");
  assert.equal(data, "hello, world");
  assert.equal(result.done, true);
  assert.equal(result.consumed, 27);
  assert.equal(decoder.done, true);
  decoder.finish();
  assert.deepEqual(decoder.decode(bytes("more")), { data: [], done: true, consumed: 0 });
});

Deno.test("ChunkedDecoder returns zero-copy views into the input", () => {
  const input = bytes("3\r\nabc\r\n");
  const { data } = new ChunkedDecoder().decode(input);
  assert.equal(data.length, 1);
  assert.equal(data[0]?.buffer, input.buffer);
});

Deno.test("ChunkedDecoder accepts one byte at a time", () => {
  const decoder = new ChunkedDecoder();
  const out: Uint8Array[] = [];
  const input = bytes("a;ext=1\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n");
  for (const byte of input) out.push(...decoder.decode(Uint8Array.of(byte)).data);
  assert.equal(text(concatBytes(out)), "0123456789");
  assert.equal(decoder.done, true);
  assert.deepEqual(decoder.trailers, [["X-Sum", "1"]]);
});

Deno.test("ChunkedDecoder accepts upper-case hex, leading zeros and extensions (RFC 9112 §7.1)", () => {
  assert.equal(decodeAll("A\r\n0123456789\r\n0\r\n\r\n").data, "0123456789");
  assert.equal(decodeAll("000003\r\nabc\r\n0000\r\n\r\n").data, "abc");
  assert.equal(decodeAll('3;name="quoted; value"\r\nabc\r\n0;last\r\n\r\n').data, "abc");
  assert.equal(decodeAll("3 ; a=b\r\nabc\r\n0\r\n\r\n").data, "abc");
  assert.equal(decodeAll("3\t;a\r\nabc\r\n0\r\n\r\n").data, "abc");
});

Deno.test("ChunkedDecoder rejects invalid chunk-size lines instead of ending the body (ODD-42)", () => {
  const table: [string, HttpParseErrorReason][] = [
    ["zz\r\nabc\r\n0\r\n\r\n", "bad-chunk-size"],
    ["0x5\r\nhello\r\n0\r\n\r\n", "bad-chunk-size"],
    ["-1\r\n", "bad-chunk-size"],
    ["+5\r\nhello\r\n", "bad-chunk-size"],
    ["\r\n", "bad-chunk-size"],
    [" 5\r\nhello\r\n", "bad-chunk-size"],
    ["5 \r\nhello\r\n", "bad-chunk-size"],
    ["5x\r\nhello\r\n", "bad-chunk-size"],
    ["5\r\nhello\r\n1g\r\n", "bad-chunk-size"],
    // 2^53 and a 64-bit value that Go's overflow check let through as "end of body"
    ["20000000000000\r\n", "chunk-size-overflow"],
    ["fffffffffffffffff\r\n", "chunk-size-overflow"],
    ["10000000000000000\r\n", "chunk-size-overflow"],
  ];
  for (const [input, reason] of table) assertChunkError(input, reason);
});

Deno.test("ChunkedDecoder requires CRLF around chunk data (ODD-42, RFC 9112 §7.1)", () => {
  const table: [string, HttpParseErrorReason][] = [
    ["5\nhello\r\n0\r\n\r\n", "bare-lf"],
    ["5\r\nhello\n0\r\n\r\n", "missing-chunk-crlf"],
    ["5\r\nhelloX\r\n", "missing-chunk-crlf"],
    ["5\r\nhello\rX", "missing-chunk-crlf"],
    ["5\r\nhello\r\n0\r\n\n", "bare-lf"],
    ["5\r\r\nhello\r\n", "bare-cr"],
  ];
  for (const [input, reason] of table) assertChunkError(input, reason);
});

Deno.test("ChunkedDecoder bounds the chunk-size line and its extensions", () => {
  const long = `1;${"x".repeat(MAX_CHUNK_LINE_SIZE)}\r\na\r\n0\r\n\r\n`;
  assertChunkError(long, "chunk-line-too-long");
  const fits = `1;${"x".repeat(MAX_CHUNK_LINE_SIZE - 4)}\r\na\r\n0\r\n\r\n`;
  assert.equal(decodeAll(fits).data, "a");
  assertChunkError("1;a\x00b\r\na\r\n0\r\n\r\n", "bad-chunk-extension");
  assertChunkError("1;a\x7f\r\na\r\n0\r\n\r\n", "bad-chunk-extension");
  // A line that never ends is cut at the bound, not buffered forever.
  const decoder = new ChunkedDecoder({ maxLineSize: 16 });
  assert.throws(() => decoder.decode(bytes("1".padEnd(17, " "))), HttpParseError);
});

Deno.test("ChunkedDecoder bounds and validates trailers (never forwarded, PROTO-21)", () => {
  const big = `0\r\nX-Big: ${"v".repeat(MAX_TRAILER_SIZE)}\r\n\r\n`;
  assertChunkError(big, "trailer-too-large");
  assertChunkError("0\r\nX-A: 1\r\n folded\r\n\r\n", "obs-fold");
  assertChunkError("0\r\nX-A : 1\r\n\r\n", "space-before-colon");
  assertChunkError("0\r\nno colon\r\n\r\n", "bad-header-name");
  const { decoder } = decodeAll("0\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
  assert.deepEqual(decoder.trailers, [["X-A", "1"], ["X-B", "2"]]);
});

Deno.test("ChunkedDecoder.finish() rejects a body cut short (ODD-42)", () => {
  for (const input of ["", "5\r\nhel", "5\r\nhello\r\n", "0\r\n", "0\r\nX-A: 1\r\n"]) {
    assertChunkError(input, "truncated-chunked-body");
  }
});

Deno.test("ChunkedDecoder errors are sticky", () => {
  const decoder = new ChunkedDecoder();
  assert.throws(() => decoder.decode(bytes("zz\r\n")), HttpParseError);
  assert.throws(() => decoder.decode(bytes("0\r\n\r\n")), /not hexadecimal/);
  assert.throws(() => decoder.finish(), /not hexadecimal/);
});

Deno.test("encodeChunk() writes lower-case hex size, CRLF, data, CRLF (PROTO-21)", () => {
  assert.equal(text(encodeChunk(bytes("first-chunk\n"))), "c\r\nfirst-chunk\n\r\n");
  const big = encodeChunk(new Uint8Array(3000));
  assert.equal(text(big.subarray(0, 5)), "bb8\r\n");
  assert.equal(big.length, 3000 + 7);
  const largest = encodeChunk(new Uint8Array(65_524));
  assert.equal(text(largest.subarray(0, 6)), "fff4\r\n");
  assert.equal(largest.length, 65_532);
});

Deno.test("encodeChunk() of no data is empty, never a terminating 0 chunk (PROTO-21)", () => {
  assert.equal(encodeChunk(new Uint8Array(0)).length, 0);
});

Deno.test("encodeLastChunk() is 0\\r\\n\\r\\n and a fresh array each call (PROTO-21)", () => {
  const last = encodeLastChunk();
  assert.equal(text(last), "0\r\n\r\n");
  last[0] = 0;
  assert.equal(text(encodeLastChunk()), "0\r\n\r\n");
});

Deno.test("chunk encode→decode round-trips random data split at random points (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (pieces, cuts) => {
        const wire = concatBytes([...pieces.map(encodeChunk), encodeLastChunk()]);
        const points = [...new Set(cuts.map((cut) => cut % (wire.length + 1)))].sort((a, b) =>
          a - b
        );
        const decoder = new ChunkedDecoder();
        const out: Uint8Array[] = [];
        let from = 0;
        for (const point of [...points, wire.length]) {
          const result = decoder.decode(wire.subarray(from, point));
          assert.equal(result.consumed, point - from);
          out.push(...result.data);
          from = point;
        }
        decoder.finish();
        assert.deepEqual(concatBytes(out), concatBytes(pieces));
      },
    ),
    { numRuns: 500 },
  );
});

/** Bytes biased towards chunk syntax so the decoder gets past the first line. */
const chunkishBytes = fc.array(
  fc.oneof(
    fc.constantFrom("5\r\n", "hello", "\r\n", "0\r\n", ";x=y", "\n", "\r", "X-A: 1\r\n", "ffff"),
    fc.uint8Array({ maxLength: 6 }).map((b) => String.fromCharCode(...b)),
  ),
  { maxLength: 12 },
).map((parts) => bytes(parts.join("")));

Deno.test("ChunkedDecoder on arbitrary bytes returns data or throws HttpParseError (property)", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 200 }), chunkishBytes),
      fc.nat(),
      (input, cut) => {
        const decoder = new ChunkedDecoder({ maxLineSize: 64, maxTrailerSize: 64 });
        try {
          const split = cut % (input.length + 1);
          let consumed = decoder.decode(input.subarray(0, split)).consumed;
          consumed += decoder.decode(input.subarray(split)).consumed;
          assert.ok(consumed <= input.length);
          decoder.finish();
        } catch (error) {
          assert.ok(error instanceof HttpParseError, `unexpected ${error}`);
        }
      },
    ),
    { numRuns: 3000 },
  );
});
