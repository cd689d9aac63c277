/**
 * @module core/within
 * Waits for a promise at most `ms`, for the waits that must not hang
 * (shutdown, unload): the promise's value, or `fallback` when time runs out.
 * The promise itself goes on; a rejection after the timeout is dropped.
 */
/** The longest delay setTimeout honours (longer ones fire after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  // Past ~24.8 days a timer would fire at once: treat such a limit as none.
  if (!Number.isFinite(ms) || ms > MAX_TIMER_MS) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
