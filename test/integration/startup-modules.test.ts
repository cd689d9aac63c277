/**
 * What the built server loads at start: the bundle alone, nothing from node_modules. The SDKs
 * kept outside the bundle (cloudevents, @grpc/grpc-js, onnxruntime-node, the cloud storage
 * clients) load with what uses them; one pulled onto the start-up path costs every cold start
 * (the cloudevents SDK through payload logging's header codec cost ~40 ms, bench run 66).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../runtime/config.js';
import { freePort } from '../../runtime/core/free-port.js';

const BIN = join(packageRoot(), 'dist', 'bundle', 'main.cjs');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-startup-'));
  await mkdir(join(dir, 'repo'));
  // Writes the CommonJS modules loaded so far when the server is told to stop.
  await writeFile(join(dir, 'loaded.cjs'), `process.once('SIGINT', () => { require('node:fs').writeFileSync(process.env.LOADED_OUT, JSON.stringify(Object.keys(require.cache))); process.exit(0); });`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The modules `kinfer serve` (an empty repository) has loaded once it answers ready. */
async function loadedAtReady(env: Record<string, string>): Promise<string[]> {
  const port = await freePort();
  const out = join(dir, `loaded-${port}.json`);
  const child = spawn(process.execPath, ['-r', join(dir, 'loaded.cjs'), BIN, 'serve', '--model-repository', join(dir, 'repo'), '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, LOG_LEVEL: 'silent', LOADED_OUT: out, ...env },
    stdio: 'ignore',
  });
  try {
    let ready = false;
    for (let i = 0; i < 300 && !ready; i++) {
      ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then((r) => r.ok, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ready).toBe(true);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  }
  return JSON.parse(await readFile(out, 'utf8')) as string[];
}

describe('start-up path of the built server', () => {
  it('loads nothing from node_modules at start, payload logging on or off', async () => {
    for (const env of [{}, { KINFER_PAYLOAD_LOG_URL: 'http://127.0.0.1:9/logs' }] as Record<string, string>[]) {
      const loaded = await loadedAtReady(env);
      expect(loaded.filter((m) => m.includes(`${'/'}node_modules${'/'}`)), JSON.stringify(env)).toEqual([]);
      expect(loaded.some((m) => m.endsWith('main.cjs') || m.endsWith('kinfer.cjs'))).toBe(true);
    }
  }, 60_000);
});
