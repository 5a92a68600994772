/**
 * Tests of socket_tuning.ts: Nagle's algorithm off and unsent data bounded on every accepted
 * connection (issues 6 and 7).
 * @module
 */

import assert from "node:assert/strict";
import { CertStore } from "../tls/mod.ts";
import { startListener } from "./listen.ts";
import { UNSENT_LIMIT_BYTES } from "../sys/mod.ts";
import { descriptorTuning, listenerTuning, tuneListener } from "./socket_tuning.ts";

const TLS = new URL("../../tests/testdata/tls/", import.meta.url);
const LINUX = Deno.build.os === "linux";

/** The descriptor Deno keeps behind an accepted connection (an internal symbol, tests only). */
function fdOf(conn: Deno.Conn): number | undefined {
  const symbol = Object.getOwnPropertySymbols(conn).find((s) =>
    s.description === "Deno.internal.fd"
  );
  const fd: unknown = symbol === undefined ? undefined : Reflect.get(conn, symbol);
  return typeof fd === "number" ? fd : undefined;
}

Deno.test({
  name:
    "tuneListener() sets TCP_NODELAY and TCP_NOTSENT_LOWAT on the listening socket; accepted connections inherit both (issues 6, 7)",
  ignore: !LINUX,
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    assert.deepEqual(listenerTuning(port), [{ noDelay: false, unsentLimit: 0 }]);
    assert.deepEqual(tuneListener(port), { applied: 1 });
    const tuned = { noDelay: true, unsentLimit: UNSENT_LIMIT_BYTES };
    assert.deepEqual(listenerTuning(port), [tuned]);

    using _client = await Deno.connect({ hostname: "127.0.0.1", port });
    using accepted = await listener.accept();
    const fd = fdOf(accepted);
    assert.ok(fd !== undefined, "Deno exposes the accepted connection's descriptor");
    assert.deepEqual(descriptorTuning(fd), tuned);
  },
});

Deno.test({
  name: "tuneListener() applies to nothing for a port nobody in this process listens on",
  ignore: !LINUX,
  fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    assert.deepEqual(tuneListener(port), { applied: 0 });
    assert.deepEqual(listenerTuning(port), []);
  },
});

Deno.test({
  name: "tuneListener() skips without complaint where it cannot work",
  ignore: LINUX,
  fn() {
    assert.ok("skipped" in tuneListener(1));
    assert.equal(listenerTuning(1), undefined);
  },
});

Deno.test({
  name:
    "startListener() serves with Nagle off and unsent data bounded: its listening socket is tuned (issues 6, 7)",
  ignore: !LINUX,
  async fn() {
    const store = new CertStore([{
      pattern: "*",
      cert: new URL("localhost.pem", TLS).pathname,
      key: new URL("localhost.key", TLS).pathname,
    }]);
    await using listener = await startListener(
      { hostname: "127.0.0.1", port: 0, store },
      () => new Response("ok"),
      { certCheckIntervalMs: 3_600_000 },
    );
    assert.deepEqual(listenerTuning(listener.addr.port), [
      { noDelay: true, unsentLimit: UNSENT_LIMIT_BYTES },
    ]);
  },
});
