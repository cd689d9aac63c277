import { readdir, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeMlpRepo, FEATURES } from './dist/test/bench/scenarios/model-path.js';
import { loadInChild, floats, v2JsonBody, tempRepo, spawnKinfer, ROOT } from './dist/test/bench/lib.js';
import { readProfile, renderProfile, summarizeProfile } from './dist/test/bench/profile.js';
const dir = '/tmp/exp/prof'; await rm(dir, { recursive: true, force: true }); await mkdir(dir, { recursive: true });
const repo = await tempRepo('exp-');
await writeMlpRepo(repo.dir);
const m = process.env.M ?? 'mlp-adaptive';
const k = await spawnKinfer(repo.dir, { cpu: 1, profileDir: dir });
const ctx = { loadGen: 'wrk', loadCpu: 0 };
const body = v2JsonBody('x', [1, FEATURES], floats(FEATURES, 3));
const url = `${k.url}/v2/models/${m}/infer`;
await loadInChild({ url, body, headers: { 'content-type': 'application/json' }, connections: 8, durationSec: 3 }, ctx);
const r = await loadInChild({ url, body, headers: { 'content-type': 'application/json' }, connections: Number(process.env.C ?? 1), durationSec: 10 }, ctx);
console.log('rps', r.rps.toFixed(1));
await k.close();
for (const f of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))) {
  console.log(renderProfile(f, summarizeProfile(await readProfile(join(dir, f)), ROOT, 40)));
}
await repo.cleanup();
