/**
 * A bound on every wait of the process and hostile tests: a promise that does not settle in time
 * fails the test with what was awaited, instead of hanging it.
 * @module
 */

/** Fails with `what` unless `promise` settles within `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
