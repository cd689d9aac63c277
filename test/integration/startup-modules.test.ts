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
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../runtime/config.js';
import { freePort } from '../../runtime/core/free-port.js';

const BIN = join(packageRoot(), 'dist', 'bundle', 'main.cjs');
const require = createRequire(import.meta.url);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-startup-'));
  await mkdir(join(dir, 'repo'));
  // Writes the CommonJS modules loaded so far when the server is told to stop.
  await writeFile(join(dir, 'loaded.cjs'), `process.once('SIGINT', () => { require('node:fs').writeFileSync(process.env.LOADED_OUT, JSON.stringify(Object.keys(require.cache))); process.exit(0); });`);
  // And what the ESM loader resolves (an \`import()\` of a package is not in require.cache): a resolve hook appending each URL.
  await writeFile(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.IMPORTED_OUT, r.url + '\\n');
  return r;
}`);
  await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The modules `kinfer serve` (an empty repository) has loaded (required or imported) once it answers ready. */
async function loadedAtReady(env: Record<string, string>): Promise<string[]> {
  const port = await freePort();
  const out = join(dir, `loaded-${port}.json`);
  const imported = join(dir, `imported-${port}.txt`);
  await writeFile(imported, '');
  const child = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, '-r', join(dir, 'loaded.cjs'), BIN, 'serve', '--model-repository', join(dir, 'repo'), '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, LOG_LEVEL: 'silent', LOADED_OUT: out, IMPORTED_OUT: imported, ...env },
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
  return [...(JSON.parse(await readFile(out, 'utf8')) as string[]), ...(await readFile(imported, 'utf8')).split('\n').filter(Boolean)];
}

describe('start-up path of the built server', () => {
  it('the check sees an import() of a package (so a pass means something)', async () => {
    // A hook-only run: the bundle is replaced by a script that imports a package the way the bundle would.
    const script = join(dir, 'imports.cjs');
    const target = pathToFileURL(require.resolve('prom-client', { paths: [packageRoot()] })).href;
    await writeFile(script, `import(${JSON.stringify(target)}).then(() => require('node:http').createServer((q, s) => s.end('{}')).listen(Number(process.argv.at(-3)), '127.0.0.1'));`);
    const port = await freePort();
    const imported = join(dir, 'imported-probe.txt');
    await writeFile(imported, '');
    const child = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, script, String(port), 'x', 'y'], { env: { ...process.env, IMPORTED_OUT: imported }, stdio: 'ignore' });
    try {
      let up = false;
      for (let i = 0; i < 200 && !up; i++) {
        up = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false);
        if (!up) await new Promise((r) => setTimeout(r, 25));
      }
      expect(up).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
    expect(await readFile(imported, 'utf8')).toMatch(/node_modules\/prom-client\//);
  });

  it('loads nothing from node_modules at start, payload logging on or off', async () => {
    for (const env of [{}, { KINFER_PAYLOAD_LOG_URL: 'http://127.0.0.1:9/logs' }] as Record<string, string>[]) {
      const loaded = await loadedAtReady(env);
      expect(loaded.filter((m) => m.includes(`${'/'}node_modules${'/'}`)), JSON.stringify(env)).toEqual([]);
      expect(loaded.some((m) => m.endsWith('main.cjs') || m.endsWith('kinfer.cjs'))).toBe(true);
    }
  }, 60_000);
});
