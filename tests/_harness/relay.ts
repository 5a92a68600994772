/**
 * A TCP relay for fault tests: it forwards every connection to a target on loopback and can make
 * the connections it carries go silent at once, both ways, without closing anything: a half-open
 * tunnel, as when a NAT entry or a firewall state vanishes. Bytes that arrive on a silent
 * connection are read and thrown away, so neither end sees an error or back-pressure; only
 * keep-alives can tell. Connections accepted after `silence()` are relayed normally, so a peer
 * that notices and dials again gets through.
 * @module
 */

/** Size of each read of a relayed socket. */
const READ_BUFFER_BYTES = 64 * 1024;

/** One relayed connection. */
interface Pair {
  readonly client: Deno.Conn;
  readonly target: Deno.Conn;
  silent: boolean;
  done: Promise<void>;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** The relay's port on 127.0.0.1. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections currently relayed (silent ones included). */
  readonly open: number;
  /** Resolves once `count` connections have been accepted in total. */
  whenAccepted(count: number): Promise<void>;
  /**
   * Makes every connection open now silent in both directions (nothing is closed); returns how
   * many. Later connections are relayed normally.
   */
  silence(): number;
  /** Closes every connection at once (both ends see the close). */
  cut(): void;
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Copies `from` to `to` until either ends; drops the bytes while the pair is silent. */
async function pump(pair: Pair, from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(READ_BUFFER_BYTES);
  try {
    for (;;) {
      const count = await from.read(buffer);
      if (count === null) break;
      if (pair.silent) continue;
      let offset = 0;
      while (offset < count) offset += await to.write(buffer.subarray(offset, count));
    }
  } catch {
    // A reset or a local close: the pair ends.
  }
  // A silent pair never passes on a close either: the other end keeps waiting, half-open.
  if (!pair.silent) {
    closeQuietly(from);
    closeQuietly(to);
  }
}

/** Starts a relay from an OS-chosen port on 127.0.0.1 to `target`. */
export function startRelay(target: { hostname: string; port: number }): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pairs = new Set<Pair>();
  const waiters: { count: number; resolve: () => void }[] = [];
  let accepted = 0;

  const serve = async (client: Deno.Conn): Promise<void> => {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect(target);
    } catch {
      closeQuietly(client);
      return;
    }
    const pair: Pair = { client, target: upstream, silent: false, done: Promise.resolve() };
    pair.done = Promise.all([pump(pair, client, upstream), pump(pair, upstream, client)])
      .then(() => {
        pairs.delete(pair);
      });
    pairs.add(pair);
  };

  const accepting = (async () => {
    try {
      for await (const client of listener) {
        accepted++;
        for (const waiter of [...waiters]) {
          if (accepted >= waiter.count) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
        await serve(client);
      }
    } catch {
      // The listener was closed.
    }
  })();

  const cut = (): void => {
    for (const pair of pairs) {
      pair.silent = false;
      closeQuietly(pair.client);
      closeQuietly(pair.target);
    }
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    closing ??= (async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      const open = [...pairs];
      cut();
      await Promise.all(open.map((pair) => pair.done));
    })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    whenAccepted(count) {
      if (accepted >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    silence() {
      for (const pair of pairs) pair.silent = true;
      return pairs.size;
    },
    cut,
    close,
    [Symbol.asyncDispose]: close,
  };
}
