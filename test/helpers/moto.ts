/**
 * @module test/helpers/moto
 * Starts `moto_server` (the S3 mock) on 127.0.0.1 with a free port, waits
 * (bounded) until it answers, and stops it. `motoAvailable()` says whether the
 * executable is on PATH, so S3 tests can skip with a clear message where not.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
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
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  const stop = async () => {
    if (exited) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`moto_server exited before answering: ${stderr.slice(-500)}`);
    if (await answers(endpoint)) return { endpoint, stop };
    await new Promise((r) => setTimeout(r, 150));
  }
  await stop();
  throw new Error(`moto_server did not answer on ${endpoint} within ${timeoutMs} ms: ${stderr.slice(-500)}`);
}
