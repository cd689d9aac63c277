/**
 * @module test/helpers/moto
 * Starts `moto_server` (the S3 mock) on 127.0.0.1 with a free port, waits
 * (bounded) until it answers, and stops it. `motoAvailable()` says whether the
 * executable is on PATH, so S3 tests can skip with a clear message where not.
 */
import { accessSync, constants } from 'node:fs';
import { startChildService } from './child-service.js';
import { freePort } from './loopback.js';
import path from 'node:path';

export interface Moto {
  endpoint: string;
  stop(): Promise<void>;
}

export function motoAvailable(): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    try {
      accessSync(path.join(dir, 'moto_server'), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}


async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Starts moto_server; rejects if it does not answer within `timeoutMs` (default 30 s). */
export async function startMoto(timeoutMs = 30_000): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const { stop } = await startChildService({ name: 'moto_server', command: 'moto_server', args: ['-H', '127.0.0.1', '-p', String(port)], probe: () => answers(endpoint), endpoint, timeoutMs });
  return { endpoint, stop };
}
