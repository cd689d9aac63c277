/**
 * @module test/bench/ort-baseline
 * In-process onnxruntime baselines, run as a (pinned) child process:
 *   create <model.onnx>                                  → {"createMs": n}
 *   throughput <model.onnx> <input> <features> <batches> <seconds>
 *                                                        → {"runs": [{batch, itemsPerSec, msPerRun}]}
 * Session options: `baselineSessionOptions` (lib.ts), the server's defaults.
 */
import ort from 'onnxruntime-node';
import { baselineSessionOptions as options, floats } from './lib.js';

const MAX_RUNS = 100_000;

async function main(): Promise<unknown> {
  const [mode, model, ...rest] = process.argv.slice(2);
  if (mode === 'create' && model) {
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(model, options());
    const createMs = performance.now() - t0;
    await session.release();
    return { createMs };
  }
  if (mode === 'throughput' && model && rest.length === 4) {
    const [input, featuresRaw, batchesRaw, secondsRaw] = rest as [string, string, string, string];
    const features = Number(featuresRaw);
    const seconds = Number(secondsRaw);
    const session = await ort.InferenceSession.create(model, options());
    const runs = [];
    for (const batch of batchesRaw.split(',').map(Number)) {
      const data = floats(batch * features, batch);
      const once = async () => {
        const out = await session.run({ [input]: new ort.Tensor('float32', data, [batch, features]) });
        for (const t of Object.values(out)) void (t.data as Float32Array).length;
      };
      for (let i = 0; i < 3; i++) await once();
      let n = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      while (performance.now() < end && n < MAX_RUNS) {
        await once();
        n++;
      }
      const ms = performance.now() - t0;
      runs.push({ batch, itemsPerSec: (n * batch * 1000) / ms, msPerRun: ms / n });
    }
    await session.release();
    return { runs };
  }
  throw new Error('usage: ort-baseline.js create <model> | throughput <model> <input> <features> <batches> <seconds>');
}

process.stdout.write(`${JSON.stringify(await main())}\n`);
