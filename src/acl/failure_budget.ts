/**
 * A bounded failure budget per source address: repeated bad secrets or credentials from one
 * address are refused without being checked once the budget is spent, until its window passes.
 * Other addresses are not affected, so one attacker cannot lock out the real agent or users, and
 * the costly `$6$` checks cannot be used to burn CPU. Pure, with an injected clock; memory bounded.
 * @module
 */

/** Failures allowed per address and window. */
export const DEFAULT_FAILURE_LIMIT = 10;
/** Length of the counting window. */
export const DEFAULT_FAILURE_WINDOW_MS = 60_000;
/** Addresses tracked at most; the oldest is forgotten first (bounded memory under a scan). */
export const MAX_TRACKED_ADDRESSES = 10_000;

interface Entry {
  count: number;
  since: number;
}

/** Options of {@linkcode FailureBudget}. */
export interface FailureBudgetOptions {
  readonly limit?: number;
  readonly windowMs?: number;
  readonly maxAddresses?: number;
  readonly now?: () => number;
}

/** Counts failures per address. */
export class FailureBudget {
  readonly #entries = new Map<string, Entry>();
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #max: number;
  readonly #now: () => number;

  /** Creates a budget. */
  constructor(options: FailureBudgetOptions = {}) {
    this.#limit = options.limit ?? DEFAULT_FAILURE_LIMIT;
    this.#windowMs = options.windowMs ?? DEFAULT_FAILURE_WINDOW_MS;
    this.#max = options.maxAddresses ?? MAX_TRACKED_ADDRESSES;
    this.#now = options.now ?? Date.now;
  }

  /** Whether `address` has spent its budget in the current window. */
  blocked(address: string): boolean {
    const entry = this.#current(address);
    return entry !== undefined && entry.count >= this.#limit;
  }

  /** Records a failure; returns true when this failure spent the budget (log it once). */
  fail(address: string): boolean {
    const entry = this.#current(address) ?? { count: 0, since: this.#now() };
    entry.count++;
    this.#entries.delete(address);
    this.#entries.set(address, entry);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    return entry.count === this.#limit;
  }

  /** Forgets an address after a success. */
  succeed(address: string): void {
    this.#entries.delete(address);
  }

  /** Number of addresses tracked. */
  get size(): number {
    return this.#entries.size;
  }

  #current(address: string): Entry | undefined {
    const entry = this.#entries.get(address);
    if (entry && this.#now() - entry.since >= this.#windowMs) {
      this.#entries.delete(address);
      return undefined;
    }
    return entry;
  }
}
