/**
 * The server's per-request path end to end (issue 7): a real client → server → agent tunnel →
 * sample backend in process, on loopback. Small answers with a Content-Length come back whole
 * with that length (answered as bytes, SRV-17), and uploads of several MiB, batched into BODY
 * messages of up to 64 KiB (PROTO-21), reach the backend intact, with or without a length.
 * @module
 */

import assert from "node:assert/strict";
import { patternBytes, patternDigest } from "../../scripts/sample_backend.ts";
import { startStack } from "../_harness/stack.ts";

const MiB = 1024 * 1024;

Deno.test("a small answer keeps its Content-Length and body through groom (issue 7, SRV-17, SRV-20)", async () => {
  await using stack = await startStack();
  const expected = "hello from the backend\n";
  let ran = 0;
  for (let run = 0; run < 3; run++) {
    const response = await stack.fetch("/hello");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(expected.length));
    assert.equal(response.headers.get("content-type"), "text/plain");
    assert.equal(await response.text(), expected);
    ran++;
  }
  assert.equal(ran, 3);
  await stack.accessLog.waitFor(() =>
    stack.accessLog.records().filter((record) => record.path === "/hello").length === 3
  );
  const records = stack.accessLog.records().filter((record) => record.path === "/hello");
  assert.deepEqual(records.map((record) => [record.status, record.reason]), [
    [200, undefined],
    [200, undefined],
    [200, undefined],
  ]);
});

Deno.test("uploads of several MiB arrive intact, with or without a length (issue 7, PROTO-21, SRV-12)", async () => {
  await using stack = await startStack();
  const size = 5 * MiB + 12_345; // not a multiple of any batch or read size
  const digest = patternDigest(size);
  const bytes = patternBytes(0, size);

  const sized = await stack.fetch("/digest", { method: "POST", body: bytes });
  assert.deepEqual(await sized.json(), { size, sha256: digest });

  // A stream body has no length: the server re-chunks it (PROTO-21).
  let offset = 0;
  const streamed = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= size) {
        controller.close();
        return;
      }
      const length = Math.min(100_000, size - offset);
      controller.enqueue(bytes.slice(offset, offset + length));
      offset += length;
    },
  });
  const chunked = await stack.fetch("/digest", { method: "POST", body: streamed });
  assert.deepEqual(await chunked.json(), { size, sha256: digest });
});
