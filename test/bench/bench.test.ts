/**
 * @module test/bench/bench.test
 * Smoke test of the benchmark harness: one ~1 s load run against the bare
 * floor server, through the same helpers the scenarios use, checking the
 * shape of what comes back (never the speed: that is `npm run bench`'s job).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { mlpReference, writeMlpModel } from '../helpers/onnx-models.js';
import { createBareServer } from './bare-server.js';
import {
  assertClean, baselineSessionOptions, compareRow, cpuUse, floats, limitRow, loadInProcess, machineInfo, median, medianOf,
  pairedRatio, renderMarkdown, renderText, runScript, splitThreadCpu, threadCpu, v2BinaryBody, v2JsonBody, type ScenarioResult,
} from './lib.js';
import { calibrate } from './calibrate.js';
import { markdownReport, SCENARIOS } from './run.js';
import { timePair } from './scenarios/large-tensors.js';

describe('bench harness', () => {
  const server = createBareServer();
  let url = '';
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/infer`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('runs a bounded load and turns it into a table and a report', async () => {
    const data = floats(16);
    const body = v2JsonBody('x', [1, 16], data);
    const res = await fetch(url, { method: 'POST', body });
    expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(Array.from(data));

    const r = assertClean('bare', await loadInProcess({ url, body, headers: { 'content-type': 'application/json' }, connections: 2, durationSec: 1, maxRequests: 5000 }));
    expect(r.ok).toBeGreaterThan(0);
    expect(r.ok).toBeLessThanOrEqual(5000);
    expect(r.rps).toBeGreaterThan(0);
    expect(r.p99).toBeGreaterThanOrEqual(r.p50);

    const scenario: ScenarioResult = {
      name: 'smoke',
      title: 'smoke',
      baselineLabel: 'itself',
      rows: [
        compareRow('throughput', r.rps, r.rps / 2, 'req/s', { min: 1.5 }),
        compareRow('latency', 5, 10, 'ms', { max: 1 }),
        compareRow('missed', 1, 2, 'req/s', { min: 0.7 }),
        // Paired: the median of per-pair ratios decides, not the ratio of the medians (0.5).
        compareRow('paired', 1, 2, 'req/s', { min: 0.7, ratio: 0.9 }),
        limitRow('rss', 200, 'MB', 150, '< 150 MB'),
      ],
      notes: ['a note'],
    };
    expect(scenario.rows.map((x) => x.result)).toEqual(['PASS', 'PASS', 'MISS', 'PASS', 'MISS']);
    expect(scenario.rows[3]!.ratio).toBe('0.90×');
    expect(scenario.rows[0]!.ratio).toBe('2.00×');
    const text = renderText(scenario);
    expect(text.split('\n')[1]).toMatch(/^case\s+kinfer\s+itself\s+ratio\s+target\s+result$/);
    const md = markdownReport(machineInfo(false), { quick: true, repeats: 1, durationSec: 1 }, [scenario]);
    expect(md).toContain('| case | kinfer | itself | ratio | target | result |');
    expect(md).toMatch(/Node v\d+/);
    expect(md).toMatch(/load generator autocannon [\d.]+ \(keep-alive\)/);
    expect(markdownReport(machineInfo(false, 'wrk 4.1.0'), { quick: true, repeats: 1, durationSec: 1 }, [scenario])).toContain('load generator wrk 4.1.0 (1 thread, keep-alive)');
    expect(markdownReport(machineInfo(false, 'none'), { quick: true, repeats: 1, durationSec: 1 }, [scenario])).toContain('load generator none (no scenario drives HTTP load)');
    expect(renderMarkdown(scenario).split('\n').filter((l) => l.startsWith('| ')).length).toBe(6);
    // The machine's phase, measured on this machine: a report line when given, none otherwise.
    const c = calibrate();
    expect(c.cpuMs).toBeGreaterThan(0);
    expect(c.memGBps).toBeGreaterThan(0);
    const phased = markdownReport(machineInfo(false), { quick: true, repeats: 1, durationSec: 1 }, [scenario], { before: c, after: { cpuMs: 40, memGBps: 9.5 } });
    expect(phased).toContain(`before ${c.cpuMs.toFixed(1)} ms, ${c.memGBps.toFixed(1)} GB/s; after 40.0 ms, 9.5 GB/s`);
    expect(md).not.toContain('Machine phase');
  }, 20_000);

  it('serves a model through the bare floor server: session.run on the event loop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-bench-bare-'));
    const m = await writeMlpModel(dir);
    const session = await ort.InferenceSession.create(m.path, baselineSessionOptions());
    const floor = createBareServer({ ort, session });
    try {
      await new Promise<void>((r) => floor.listen(0, '127.0.0.1', r));
      const x = Float32Array.from([1, -2, 0.5, 3, -1, 0.25, 2, -0.5]);
      const res = await fetch(`http://127.0.0.1:${(floor.address() as AddressInfo).port}/`, { method: 'POST', body: v2JsonBody('x', [2, 4], x) });
      const out = ((await res.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] }).outputs;
      expect(res.status).toBe(200);
      expect(out.map((o) => [o.name, o.shape])).toEqual([['y', [2, 3]]]);
      const want = mlpReference(m, x);
      out[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      const bad = await fetch(`http://127.0.0.1:${(floor.address() as AddressInfo).port}/`, { method: 'POST', body: v2JsonBody('x', [1, 3], x.subarray(0, 3)) });
      expect(bad.status).toBe(400);
    } finally {
      floor.closeAllConnections();
      await new Promise((r) => floor.close(r));
      await session.release();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('batches requests to bare-b<N> into one run in the floor server, each reply its own row', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-bench-bare-batch-'));
    const m = await writeMlpModel(dir);
    const session = await ort.InferenceSession.create(m.path, baselineSessionOptions());
    // Counts the runs and their batch sizes through the session the floor holds.
    const sizes: number[] = [];
    const counted = Object.assign(Object.create(session) as typeof session, {
      run: (feeds: Record<string, ort.Tensor>) => {
        sizes.push(feeds.x!.dims[0]!);
        return session.run(feeds);
      },
    });
    const floor = createBareServer({ ort, session: counted });
    try {
      await new Promise<void>((r) => floor.listen(0, '127.0.0.1', r));
      const url = (n: number) => `http://127.0.0.1:${(floor.address() as AddressInfo).port}/v2/models/bare-b${n}/infer`;
      const xs = [0, 1, 2].map((k) => Float32Array.from({ length: 4 }, (_, i) => (i - 1.5) * (k + 1)));
      const send = (n: number, x: Float32Array) => fetch(url(n), { method: 'POST', body: v2JsonBody('x', [1, 4], x) });
      const outs = await Promise.all(xs.map(async (x) => ((await (await send(3, x)).json()) as { outputs: { shape: number[]; data: number[] }[] }).outputs[0]!));
      expect(sizes).toEqual([3]);
      for (const [k, out] of outs.entries()) {
        expect(out.shape).toEqual([1, 3]);
        const want = mlpReference(m, xs[k]!);
        out.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      }
      // Short of its size, a batch runs after the wait.
      const short = await send(4, xs[0]!);
      expect(short.status).toBe(200);
      expect(sizes).toEqual([3, 1]);
      // A request that does not fit the first one's rows fails its whole batch with 400s.
      const mixed = await Promise.all([send(2, xs[0]!), fetch(url(2), { method: 'POST', body: v2JsonBody('x', [1, 3], xs[1]!.subarray(0, 3)) })]);
      expect(mixed.map((r) => r.status)).toEqual([400, 400]);
    } finally {
      floor.closeAllConnections();
      await new Promise((r) => floor.close(r));
      await session.release();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('times batch-1 runs back to back, after an idle pause and after a cache-emptying read (ort-baseline gaps)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-bench-gaps-'));
    try {
      const m = await writeMlpModel(dir);
      const t0 = performance.now();
      const r = await runScript<Record<string, number>>('ort-baseline.js', ['gaps', m.path, 'x', '4', '5', '1', '1'], { timeoutMs: 60_000 });
      expect(Object.keys(r).sort()).toEqual(['backToBackMs', 'evictedMs', 'pausedMs']);
      for (const v of Object.values(r)) expect(v).toBeGreaterThan(0);
      // One round is 30 runs per kind, so the idle kind alone waited 30 × 5 ms; the pause is not timed into the runs.
      expect(performance.now() - t0).toBeGreaterThan(150);
      expect(r.pausedMs).toBeLessThan(5);
      await expect(runScript('ort-baseline.js', ['gaps', m.path, 'x', '4'], { timeoutMs: 60_000 })).rejects.toThrow(/usage: ort-baseline\.js/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the CPU a live process used, over all its threads and split by thread', async () => {
    const a = cpuUse(process.pid);
    const threadsBefore = threadCpu(process.pid);
    // A worker thread spins ~120 ms (wall) while the main thread spins ~60 ms; on one core or two, each gets
    // at least half of its span. The worker stays alive until both snapshots are taken.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const end = Date.now() + 120; let n = 0; while (Date.now() < end && n < 1e10) n++;
       parentPort.postMessage('spun'); setInterval(() => {}, 1000);`,
      { eval: true },
    );
    const spun = new Promise((r) => worker.once('message', r));
    const end = performance.now() + 60;
    let spins = 0;
    while (performance.now() < end && spins < 1e9) spins++;
    await spun;
    const b = cpuUse(process.pid);
    const threadsAfter = threadCpu(process.pid);
    await worker.terminate();
    expect(b.runMs - a.runMs).toBeGreaterThanOrEqual(90);
    expect(b.slices).toBeGreaterThanOrEqual(a.slices);
    expect(cpuUse(2 ** 22 + 1).runMs).toBeNaN();
    expect(threadCpu(2 ** 22 + 1).size).toBe(0);
    const split = splitThreadCpu(process.pid, threadsBefore, threadsAfter);
    expect(split.main).toBeGreaterThanOrEqual(30);
    expect(split.busiest).toBeGreaterThanOrEqual(60);
    expect(split.main + split.busiest + split.rest).toBeCloseTo(b.runMs - a.runMs, -1);
    const fake = splitThreadCpu(7, new Map([[7, { runMs: 1 }], [8, { runMs: 0 }]]), new Map([[7, { runMs: 5 }], [8, { runMs: 30 }], [9, { runMs: 2 }], [10, { runMs: 3 }]]));
    expect(fake).toEqual({ main: 4, busiest: 30, rest: 5 });
  });

  it('has the five scenarios and sane helpers', () => {
    expect(SCENARIOS.map((s) => s.name)).toEqual(['protocol', 'large-tensors', 'model-path', 'cold-start', 'storage']);
    expect(SCENARIOS.filter((s) => s.httpLoad).map((s) => s.name)).toEqual(['protocol', 'large-tensors', 'model-path']);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    // The VM slows down between rounds: each round's pair is compared, not the two medians.
    const run = (rps: number) => ({ rps, p50: 1, p99: 2, ok: rps, errors: 0, non2xx: 0, durationSec: 1 });
    const a = [100, 300, 310].map(run);
    const b = [200, 310, 600].map(run);
    expect(medianOf(a, 'rps') / medianOf(b, 'rps')).toBeCloseTo(0.968, 3);
    expect(pairedRatio(a, b, 'rps')).toBeCloseTo(310 / 600, 6);
    expect(() => pairedRatio(a, b.slice(1), 'rps')).toThrow(/paired ratio of 3 and 2 runs/);
    const bin = v2BinaryBody('x', [2], Float32Array.from([1.5, -2]));
    const head = JSON.parse(Buffer.from(bin.body.subarray(0, bin.headerLength)).toString()) as { inputs: { parameters: { binary_data_size: number } }[] };
    expect(head.inputs[0]!.parameters.binary_data_size).toBe(8);
    expect(new Float32Array(bin.body.slice(bin.headerLength).buffer)).toEqual(Float32Array.from([1.5, -2]));
  });

  it('times two in-process functions call by call, alternating which goes first', () => {
    const calls: string[] = [];
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    const r = timePair(() => (calls.push('a'), spin(2)), () => (calls.push('b'), spin(0.5)), 30);
    expect(calls.slice(0, 4)).toEqual(['a', 'b', 'a', 'b']); // warm-up
    expect(calls.slice(4, 8)).toEqual(['a', 'b', 'b', 'a']);
    expect(calls.length).toBeLessThanOrEqual(4 + 2 * 200);
    expect(r.aMs).toBeGreaterThanOrEqual(2);
    expect(r.bMs).toBeGreaterThanOrEqual(0.5);
    expect(r.ratio).toBeLessThan(0.6); // b/a: ~0.25
  });
});
