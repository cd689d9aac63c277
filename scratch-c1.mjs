import { writeMlpRepo, FEATURES } from './dist/test/bench/scenarios/model-path.js';
import { loadInChild, floats, v2JsonBody, tempRepo, spawnKinfer, spawnBare, cpuUse } from './dist/test/bench/lib.js';
const repo = await tempRepo('exp-');
const model = await writeMlpRepo(repo.dir);
const k = await spawnKinfer(repo.dir, { cpu: 1 });
const bare = await spawnBare(1, model);
const ctx = { loadGen: 'wrk', loadCpu: 0 };
const body = v2JsonBody('x', [1, FEATURES], floats(FEATURES, 3));
const headers = { 'content-type': 'application/json' };
const models = (process.env.MODELS ?? 'mlp-adaptive,mlp-unbatched').split(',');
const sides = [...models.map((m) => ({ label: m, url: `${k.url}/v2/models/${m}/infer`, m })), { label: 'floor', url: `${bare.url}/` }];
const metric = async (m) => {
  const t = await (await fetch(`${k.url}/metrics`)).text();
  const get = (n) => { const l = t.split('\n').find((x) => x.startsWith(n + '{') && x.includes(`model="${m}"`)); return l ? Number(l.split(' ').pop()) : 0; };
  return Object.fromEntries(['kinfer_request_duration_seconds_sum', 'kinfer_request_duration_seconds_count', 'kinfer_queue_duration_seconds_sum', 'kinfer_compute_duration_seconds_sum', 'kinfer_decode_duration_seconds_sum', 'kinfer_encode_duration_seconds_sum'].map((n) => [n.replace('kinfer_', '').replace('_seconds', ''), get(n)]));
};
for (const s of sides) await loadInChild({ url: s.url, body, headers, connections: 8, durationSec: 3 }, ctx);
const rounds = Number(process.env.ROUNDS ?? 3);
for (let i = 0; i < rounds; i++) {
  for (const s of sides) {
    const pid = s.m ? k.pid : bare.pid;
    const b = s.m ? await metric(s.m) : undefined;
    const c0 = cpuUse(pid);
    const r = await loadInChild({ url: s.url, body, headers, connections: 1, durationSec: 5 }, ctx);
    const c1 = cpuUse(pid);
    let extra = '';
    if (s.m) {
      const a = await metric(s.m);
      const n = a.request_duration_count - b.request_duration_count;
      const per = (key) => (((a[key] - b[key]) / n) * 1e6).toFixed(0);
      extra = `req ${per('request_duration_sum')} dec ${per('decode_duration_sum')} queue ${per('queue_duration_sum')} comp ${per('compute_duration_sum')} enc ${per('encode_duration_sum')} µs`;
    }
    console.log(`${s.label.padEnd(14)} ${r.rps.toFixed(1)} req/s  period ${(1e3 / r.rps).toFixed(2)} ms  cpu/req ${((c1.runMs - c0.runMs) * 1000 / r.ok).toFixed(0)} µs  ${extra}`);
  }
}
await k.close(); await bare.close(); await repo.cleanup();
