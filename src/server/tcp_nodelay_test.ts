/** Tests of tcp_nodelay.ts: Nagle's algorithm off on every accepted connection (issue 7). @module */

import assert from "node:assert/strict";
import { CertStore } from "../tls/mod.ts";
import { startListener } from "./listen.ts";
import { descriptorNoDelay, listenerNoDelay, setListenerNoDelay } from "./tcp_nodelay.ts";

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
    "setListenerNoDelay() sets TCP_NODELAY on the listening socket; accepted connections inherit it (issue 7)",
  ignore: !LINUX,
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    assert.deepEqual(listenerNoDelay(port), [false]);
    assert.deepEqual(setListenerNoDelay(port), { applied: 1 });
    assert.deepEqual(listenerNoDelay(port), [true]);

    using _client = await Deno.connect({ hostname: "127.0.0.1", port });
    using accepted = await listener.accept();
    const fd = fdOf(accepted);
    assert.ok(fd !== undefined, "Deno exposes the accepted connection's descriptor");
    assert.equal(descriptorNoDelay(fd), true);
  },
});

Deno.test({
  name: "setListenerNoDelay() applies to nothing for a port nobody in this process listens on",
  ignore: !LINUX,
  fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    assert.deepEqual(setListenerNoDelay(port), { applied: 0 });
    assert.deepEqual(listenerNoDelay(port), []);
  },
});

Deno.test({
  name: "setListenerNoDelay() skips without complaint where it cannot work",
  ignore: LINUX,
  fn() {
    assert.ok("skipped" in setListenerNoDelay(1));
    assert.equal(listenerNoDelay(1), undefined);
  },
});

Deno.test({
  name: "startListener() serves with Nagle off: its listening socket has TCP_NODELAY (issue 7)",
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
    assert.deepEqual(listenerNoDelay(listener.addr.port), [true]);
  },
});
