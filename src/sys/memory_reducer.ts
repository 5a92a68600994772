/**
 * Gives memory back to the system once a busy process falls quiet (issue 7: RSS must return near
 * its idle level after a load). Measured with the bench's 50-connection load: V8 keeps its grown
 * heap (the server's `heapTotal` stayed at 50 MB with 28 MB used) and the C allocator keeps the
 * freed buffers of Rust's TLS and HTTP layers, so RSS stayed at 130-200 MB per process long after
 * the load. A full garbage collection (Deno exposes none without V8's `--expose-gc`, which the
 * runtime flags of scripts/permissions.ts set) shrinks the heap, and `malloc_trim(0)` returns the
 * allocator's free pages: together they took the agent from 121 MB back to 97 MB in the same
 * run. Both cost a few milliseconds, so they run once per quiet period, not on a schedule.
 * @module
 */

import { trimAllocator } from "./libc.ts";

/**
 * How long a process must go without new work before memory is reduced, and the tick of the
 * check: the first tick without activity after one with some, so the reduction runs 20-40 s after
 * a load ends (issue 7 measures RSS a minute after) and never during steady traffic.
 */
export const QUIET_TICK_MS = 20_000;

/** What a {@linkcode MemoryReducer} calls; the defaults are V8's `gc()` and `malloc_trim`. */
export interface MemoryReducerOptions {
  /** Tick of the quiet check ({@linkcode QUIET_TICK_MS}); 0 starts no timer (tests call tick). */
  readonly tickMs?: number;
  /** Full garbage collection; default `globalThis.gc` when V8 exposes it, else nothing. */
  readonly collect?: () => void;
  /** Returns the C allocator's free memory to the system; default `malloc_trim(0)` (glibc). */
  readonly trim?: () => unknown;
}

/**
 * Counts activity ({@linkcode touch}, one increment per request or stream) and, on the first tick
 * with no activity after a tick that had some, collects garbage and trims the allocator once.
 */
export class MemoryReducer implements Disposable {
  readonly #collect: (() => void) | undefined;
  readonly #trim: () => unknown;
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  #activity = 0;
  #seen = 0;
  #pending = false;
  #reductions = 0;

  constructor(options: MemoryReducerOptions = {}) {
    this.#collect = options.collect ?? exposedGc();
    this.#trim = options.trim ?? trimAllocator;
    const tickMs = options.tickMs ?? QUIET_TICK_MS;
    if (tickMs > 0) {
      const timer = setInterval(() => this.tick(), tickMs);
      Deno.unrefTimer(timer); // never keeps a stopping process alive
      this.#timer = timer;
    }
  }

  /** Records new work (cheap: one increment on the request path). */
  touch(): void {
    this.#activity++;
  }

  /** How many times memory was reduced (tests, diagnostics). */
  get reductions(): number {
    return this.#reductions;
  }

  /** One quiet check; returns whether it reduced memory. */
  tick(): boolean {
    if (this.#activity !== this.#seen) {
      this.#seen = this.#activity;
      this.#pending = true;
      return false;
    }
    if (!this.#pending) return false;
    this.#pending = false;
    this.#reductions++;
    try {
      this.#collect?.();
      this.#trim();
    } catch {
      // Best effort: a failing reduction must not disturb the process.
    }
    return true;
  }

  [Symbol.dispose](): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }
}

/** V8's `gc()` when the runtime runs with `--expose-gc`, else `undefined`. */
function exposedGc(): (() => void) | undefined {
  const gc: unknown = Reflect.get(globalThis, "gc");
  return typeof gc === "function" ? () => gc() : undefined;
}
