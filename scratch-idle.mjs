import ort from 'onnxruntime-node';
import { writeMlpRepo, FEATURES } from './dist/test/bench/scenarios/model-path.js';
import { baselineSessionOptions, floats, tempRepo, median } from './dist/test/bench/lib.js';
const repo = await tempRepo('exp-');
const model = await writeMlpRepo(repo.dir);
const session = await ort.InferenceSession.create(model, baselineSessionOptions());
const data = floats(FEATURES, 1);
const sab = new Int32Array(new SharedArrayBuffer(4));
const body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 512], datatype: 'FP32', data: Array.from(floats(512, 3)) }] });
const modes = {
  tight: async () => {},
  idle300us: async () => { Atomics.wait(sab, 0, 0, 0.3); },
  idle1ms: async () => { Atomics.wait(sab, 0, 0, 1); },
  json: async () => { const o = JSON.parse(body); JSON.stringify({ outputs: [{ data: Array.from(Float32Array.from(o.inputs[0].data)) }] }); },
};
const res = {};
for (let round = 0; round < 4; round++) {
  for (const [name, between] of Object.entries(modes)) {
    const times = [];
    const end = performance.now() + 2500;
    for (let n = 0; n < 1000 && performance.now() < end; n++) {
      await between();
      const t0 = performance.now();
      await session.run({ x: new ort.Tensor('float32', data, [1, FEATURES]) });
      times.push(performance.now() - t0);
    }
    (res[name] ??= []).push(median(times));
  }
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(10), v.map((x) => x.toFixed(2)).join(' '), 'ms per run (median of each round)');
await repo.cleanup();
