/**
 * Tests of the quiet-period memory reducer: when it collects and trims, and that steady work never
 * triggers it.
 * @module
 */

import assert from "node:assert/strict";
import { LIBC_PATHS, trimAllocator } from "./libc.ts";
import { MemoryReducer } from "./memory_reducer.ts";

function counting(): { calls: string[]; reducer: MemoryReducer } {
  const calls: string[] = [];
  const reducer = new MemoryReducer({
    tickMs: 0,
    collect: () => calls.push("collect"),
    trim: () => calls.push("trim"),
  });
  return { calls, reducer };
}

Deno.test("MemoryReducer reduces once, on the first quiet tick after activity (issue 7)", () => {
  const { calls, reducer } = counting();
  assert.equal(reducer.tick(), false, "nothing happened yet: nothing to give back");
  reducer.touch();
  reducer.touch();
  assert.equal(reducer.tick(), false, "activity during this tick");
  assert.equal(reducer.tick(), true, "a quiet tick after activity");
  assert.deepEqual(calls, ["collect", "trim"]);
  assert.equal(reducer.tick(), false, "still quiet: already reduced");
  assert.equal(reducer.reductions, 1);
  reducer[Symbol.dispose]();
});

Deno.test("MemoryReducer never reduces while work keeps arriving (issue 7)", () => {
  const { calls, reducer } = counting();
  for (let tick = 0; tick < 10; tick++) {
    reducer.touch();
    assert.equal(reducer.tick(), false);
  }
  assert.deepEqual(calls, []);
  reducer[Symbol.dispose]();
});

Deno.test("MemoryReducer survives a failing collection and still trims nothing twice", () => {
  const reducer = new MemoryReducer({
    tickMs: 0,
    collect: () => {
      throw new Error("boom");
    },
  });
  reducer.touch();
  reducer.tick();
  assert.equal(reducer.tick(), true);
  assert.equal(reducer.reductions, 1);
  reducer[Symbol.dispose]();
});

Deno.test("MemoryReducer's timer does not keep the process alive and stops on dispose", () => {
  // With a real tick the timer is unref'd; the resource sanitizer fails the test if it leaks.
  const reducer = new MemoryReducer({ tickMs: 60_000, collect: () => {} });
  reducer[Symbol.dispose]();
  assert.equal(reducer.reductions, 0);
});

Deno.test("trimAllocator() calls glibc's malloc_trim on Linux with the ffi permission, else says it cannot", () => {
  const glibc = Deno.build.os === "linux" &&
    LIBC_PATHS.some((path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    });
  assert.equal(trimAllocator(), glibc);
});
