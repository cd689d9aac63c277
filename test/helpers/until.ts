/**
 * @module test/helpers/until
 * Waits for a condition other code makes true (a stream, a watch, a process), polling every
 * `everyMs` for at most `ms`, then asserts it, so a condition that never comes fails the test.
 */
import { expect } from 'vitest';

export async function until(done: () => boolean, ms = 10_000, everyMs = 5): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end && !done(); ) await new Promise((r) => setTimeout(r, everyMs));
  expect(done()).toBe(true);
}
