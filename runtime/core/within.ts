/**
 * @module core/within
 * Waits for a promise at most `ms`, for the waits that must not hang
 * (shutdown, unload): the promise's value, or `fallback` when time runs out.
 * The promise itself goes on; a rejection after the timeout is dropped.
 */
export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  if (!Number.isFinite(ms)) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
