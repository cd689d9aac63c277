import ort from 'onnxruntime-node';
import { writeMlpRepo, FEATURES } from './dist/test/bench/scenarios/model-path.js';
import { baselineSessionOptions, floats, tempRepo, median } from './dist/test/bench/lib.js';
const repo = await tempRepo('exp-');
const model = await writeMlpRepo(repo.dir);
const n = Number(process.env.N ?? 1);
const sessions = [];
for (let i = 0; i < n; i++) sessions.push(await ort.InferenceSession.create(model, baselineSessionOptions()));
const data = floats(FEATURES, 1);
const out = [];
for (let round = 0; round < 5; round++) {
  const times = [];
  const end = performance.now() + 2000;
  for (let k = 0; k < 1000 && performance.now() < end; k++) {
    const t0 = performance.now();
    await sessions[0].run({ x: new ort.Tensor('float32', data, [1, FEATURES]) });
    times.push(performance.now() - t0);
  }
  out.push(median(times).toFixed(2));
}
console.log(`sessions ${n}: ${out.join(' ')} ms; rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`);
await repo.cleanup();
