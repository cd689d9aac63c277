/**
 * @module test/helpers/pull-options
 * Pull options for storage tests: quick retries so failure tests stay fast, and a logger whose
 * lines the test reads (redaction checks look for secrets in them).
 */
import { pino } from 'pino';
import type { PullOptions } from '../../runtime/storage/pull.js';

export function capture() {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { logger, lines, text: () => lines.join('') };
}

export function fast(extra: Partial<PullOptions> & { dest: string }): PullOptions {
  return { retries: 3, backoffMs: 10, progressIntervalMs: 0, stallMs: 3000, logger: capture().logger, env: {}, ...extra };
}
