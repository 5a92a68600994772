import assert from "node:assert/strict";
import { join } from "node:path";
import { type DomainEvent, DomainWatcher } from "./watcher.ts";

interface Fake {
  text: string;
}

/** A loader that treats the file text as the config and fails on the text "broken". */
async function load(file: { path: string }) {
  const text = await Deno.readTextFile(file.path);
  if (text.includes("broken")) throw new SyntaxError(`${file.path}:1:1: broken`);
  return { config: { text } satisfies Fake, hash: text };
}

async function withFolder(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "groom-domains-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function collector() {
  const events: DomainEvent<Fake>[] = [];
  const waiters: { test: (e: DomainEvent<Fake>) => boolean; resolve: () => void }[] = [];
  return {
    events,
    onEvent(event: DomainEvent<Fake>) {
      events.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.test(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    },
    next(test: (e: DomainEvent<Fake>) => boolean): Promise<void> {
      return new Promise((resolve) => waiters.push({ test, resolve }));
    },
    kinds: () => events.map((e) => `${e.type}:${"name" in e ? e.name : ""}`),
  };
}

Deno.test("DomainWatcher reports load, update, error-once and remove across scans (DOM-4…DOM-7)", async () => {
  await withFolder(async (dir) => {
    const seen = collector();
    await using watcher = new DomainWatcher<Fake>({
      folder: () => dir,
      load,
      onEvent: seen.onEvent,
      watch: false,
    });
    await Deno.writeTextFile(join(dir, "A.example"), "one");
    await Deno.writeTextFile(join(dir, "_fragment"), "ignored");
    await Deno.writeTextFile(join(dir, "bad..name"), "x");
    await watcher.start();
    assert.deepEqual(seen.kinds().sort(), ["invalid:", "load:a.example"]);
    assert.equal(watcher.get("a.example")?.text, "one");

    // Same content again: no event. Changed content: update. Broken: error, previous kept.
    const path = join(dir, "A.example");
    await Deno.writeTextFile(path, "one");
    await Deno.utime(path, 1, 1);
    await watcher.scan();
    await Deno.writeTextFile(path, "two");
    await watcher.scan();
    await Deno.writeTextFile(path, "broken!");
    await watcher.scan();
    await watcher.scan(); // unchanged broken file: not reported again (ODD-15)
    assert.equal(watcher.get("a.example")?.text, "two");
    await Deno.remove(path);
    await watcher.scan();
    assert.equal(watcher.get("a.example"), undefined);
    assert.deepEqual(seen.events.slice(2).map((e) => e.type), ["update", "error", "remove"]);
  });
});

Deno.test("DomainWatcher reacts to a folder change without waiting for the rescan", async () => {
  await withFolder(async (dir) => {
    const seen = collector();
    await using watcher = new DomainWatcher<Fake>({
      folder: () => dir,
      load,
      onEvent: seen.onEvent,
      rescanMs: 3_600_000, // the safety net must not be what finds the file
      debounceMs: 20,
    });
    await watcher.start();
    const loaded = seen.next((e) => e.type === "load" && e.name === "new.example");
    await Deno.writeTextFile(join(dir, "new.example"), "hello");
    await loaded;
    assert.equal(watcher.get("new.example")?.text, "hello");
  });
});

Deno.test("DomainWatcher reports a missing folder once and picks it up when it appears (DOM-1)", async () => {
  await withFolder(async (dir) => {
    const folder = join(dir, "later");
    const seen = collector();
    await using watcher = new DomainWatcher<Fake>({
      folder: () => folder,
      load,
      onEvent: seen.onEvent,
      watch: false,
    });
    await watcher.start();
    await watcher.scan();
    assert.deepEqual(seen.events.map((e) => e.type), ["folder-error"]);
    await Deno.mkdir(folder);
    await Deno.writeTextFile(join(folder, "x.example"), "x");
    await watcher.scan();
    assert.deepEqual(seen.events.map((e) => e.type), ["folder-error", "load"]);
  });
});
