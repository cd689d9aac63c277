/**
 * @module test/bench/ort-baseline
 * In-process onnxruntime baselines, run as a (pinned) child process:
 *   create <model.onnx>                                  → {"createMs": n}
 *   throughput <model.onnx> <input> <features> <batches> <seconds>
 *                                                        → {"runs": [{batch, itemsPerSec, msPerRun}]}
 *   gaps <model.onnx> <input> <features> <pauseMs> <evictMiB> <rounds>
 *                                                        → {"backToBackMs", "pausedMs", "evictedMs"}
 *     batch-1 ms per run (median of the per-round medians) when the runs follow each other, when each
 *     waits `pauseMs` first (idle, as a server waits for its next request), and when each follows a read
 *     of `evictMiB` MiB (the caches emptied); the three take turns, round by round.
 * Session options: `baselineSessionOptions` (lib.ts), the server's defaults.
 */
import ort from 'onnxruntime-node';
import { baselineSessionOptions as options, floats, median } from './lib.js';

const MAX_RUNS = 100_000;
const RUNS_PER_ROUND = 30;

/** Waits `ms`, idle for all but the last millisecond (timers are that coarse), then spinning to the end. */
async function pause(ms: number): Promise<void> {
  const end = performance.now() + ms;
  if (ms > 1) await new Promise((resolve) => setTimeout(resolve, ms - 1));
  while (performance.now() < end);
}

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
  if (mode === 'gaps' && model && rest.length === 5) {
    const [input, features, pauseMs, evictMiB, rounds] = [rest[0]!, ...rest.slice(1).map(Number)] as [string, number, number, number, number];
    const session = await ort.InferenceSession.create(model, options());
    const data = floats(features, 1);
    const evict = new Uint8Array(evictMiB * 2 ** 20).fill(1);
    let sink = 0;
    const run = async () => {
      const t0 = performance.now();
      const out = await session.run({ [input]: new ort.Tensor('float32', data, [1, features]) });
      const ms = performance.now() - t0;
      for (const t of Object.values(out)) sink += (t.data as Float32Array).length;
      return ms;
    };
    const before: Record<string, () => Promise<void> | void> = {
      backToBackMs: () => {},
      pausedMs: () => pause(pauseMs),
      evictedMs: () => {
        for (let i = 0; i < evict.length; i += 64) sink += evict[i]!;
      },
    };
    for (let i = 0; i < 5; i++) await run();
    const perRound: Record<string, number[]> = { backToBackMs: [], pausedMs: [], evictedMs: [] };
    for (let r = 0; r < Math.min(rounds, 100); r++) {
      for (const [k, prepare] of Object.entries(before)) {
        const ms = [];
        for (let i = 0; i < RUNS_PER_ROUND; i++) {
          await prepare();
          ms.push(await run());
        }
        perRound[k]!.push(median(ms));
      }
    }
    await session.release();
    if (sink === 0) throw new Error('ort-baseline gaps: the model returned no outputs');
    return Object.fromEntries(Object.entries(perRound).map(([k, v]) => [k, median(v)]));
  }
  throw new Error('usage: ort-baseline.js create <model> | throughput <model> <input> <features> <batches> <seconds> | gaps <model> <input> <features> <pauseMs> <evictMiB> <rounds>');
}

process.stdout.write(`${JSON.stringify(await main())}\n`);
