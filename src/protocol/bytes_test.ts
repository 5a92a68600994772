/** Tests of concatBytes(). @module */

import assert from "node:assert/strict";
import fc from "fast-check";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes() joins parts in order and returns a lone non-empty part itself", () => {
  const a = new Uint8Array([1, 2]);
  const b = new Uint8Array([3]);
  assert.deepEqual(concatBytes([a, b]), new Uint8Array([1, 2, 3]));
  assert.deepEqual(concatBytes([a, new Uint8Array(0), b], 3), new Uint8Array([1, 2, 3]));
  assert.equal(concatBytes([new Uint8Array(0), a, new Uint8Array(0)]), a, "no copy");
  assert.deepEqual(concatBytes([]), new Uint8Array(0));
  assert.deepEqual(concatBytes([new Uint8Array(0)]), new Uint8Array(0));
});

Deno.test("concatBytes() equals a flat copy for any parts (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (parts) => {
      const flat = parts.flatMap((part) => [...part]);
      assert.deepEqual([...concatBytes(parts)], flat);
    }),
  );
});
