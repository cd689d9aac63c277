/**
 * @module test/helpers/pulls
 * For storage tests: pull options with quick retries (failure tests stay fast), a logger whose
 * lines the test reads (redaction checks look for secrets in them), and a pulled folder's files.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
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

/** The files under `dir`, as sorted relative paths with '/'. */
export async function tree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await tree(dir, r)));
    else out.push(r);
  }
  return out.sort();
}
