import assert from "node:assert/strict";
import { DenoChannel } from "./channel.ts";

/** A connected pair on 127.0.0.1:0: the channel's side and the peer's. */
async function pair(): Promise<{ local: Deno.Conn; peer: Deno.Conn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [local, peer] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  return { local, peer };
}

Deno.test("DenoChannel with initialRead starts small, grows after full reads, never overwrites what it returned, and relax() shrinks it (issue 7)", async () => {
  const { local, peer } = await pair();
  const channel = new DenoChannel(local, { maxRead: 64, fresh: true, initialRead: 4 });
  try {
    const sent = new Uint8Array(200).map((_, index) => index);
    await peer.write(sent);
    const reads: Uint8Array[] = [];
    let total = 0;
    while (total < sent.length) {
      const bytes = await channel.read();
      assert.ok(bytes !== null);
      reads.push(bytes);
      total += bytes.length;
    }
    // 4, then 16, then 64-byte reads at most (growth by 4 up to maxRead).
    assert.ok((reads[0]?.length ?? 0) <= 4);
    assert.ok(reads.every((bytes) => bytes.length <= 64));
    assert.ok(reads.some((bytes) => bytes.length > 16), "the buffer grew to maxRead");
    // Every returned array still holds its bytes: none was reused for a later read.
    let at = 0;
    for (const bytes of reads) {
      assert.deepEqual(bytes, sent.subarray(at, at + bytes.length));
      at += bytes.length;
    }
    channel.relax();
    await peer.write(sent.subarray(0, 100));
    const after = await channel.read();
    assert.ok(after !== null && after.length <= 4, "relax() went back to the first size");
  } finally {
    channel.close();
    peer.close();
  }
});

Deno.test("DenoChannel without initialRead reads up to maxRead at once (issue 7)", async () => {
  const { local, peer } = await pair();
  const channel = new DenoChannel(local, { maxRead: 64, fresh: false });
  try {
    await peer.write(new Uint8Array(32).fill(7));
    const bytes = await channel.read();
    assert.ok(bytes !== null && bytes.length > 4 && bytes.length <= 64);
  } finally {
    channel.close();
    peer.close();
  }
});
