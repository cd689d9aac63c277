/**
 * @module test/bench/scenarios/protocol
 * Scenario 1, protocol overhead: the echo model with one FP32 1×784 input as
 * v2 JSON at concurrency 1 and 16, against the bare node:http floor doing the
 * same parse + Float32Array + stringify. Target: kinfer ≥ 0.7× the floor.
 *
 * At c=16 also with `Accept-Encoding: gzip, deflate`, the default of Python's
 * httpx (the KServe client) and `requests`: against the floor gzipping its
 * reply whole at level 1, and against kinfer's own uncompressed throughput.
 * And the same request as a CloudEvent (what a Knative Trigger delivers), in
 * binary and structured mode, against kinfer's own v2 throughput.
 */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { countInstructions } from '../instructions.js';
import {
  CLI, compareRow, DIST_BENCH, floats, interleaved, medianOf, pairedRatio, ROOT, spawnBare, spawnKinfer, tempRepo, v2JsonBody, warmUp, WARM_UP_SEC,
  type BenchContext, type Row, type Scenario, type ScenarioResult,
} from '../lib.js';

/** Instruction counts (callgrind): requests before counting, per round, and rounds (the second reads 2-4% below the first). */
const COUNT = { warmUpRequests: 3000, requests: 1000, rounds: 2 };

/** What Python's httpx and `requests` send unless told otherwise. */
const GZIP_CLIENT = 'gzip, deflate';

/** A binary-mode CloudEvent's attributes, as a Knative broker delivers them. */
const CE_HEADERS = { 'ce-specversion': '1.0', 'ce-id': 'bench-1', 'ce-source': '/bench', 'ce-type': 'io.kinfer.inference.request', 'ce-model': 'echo' };

/** Rounds per concurrency in a full run: with 3 (unpaired), c=16 read 0.68x, 0.78x and 0.73x in three runs of the same code. */
const MIN_REPEATS = 5;

export const protocol: Scenario = {
  name: 'protocol',
  httpLoad: true,
  title: '1. Protocol overhead: echo, FP32 1×784 JSON',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const repo = await tempRepo('kinfer-bench-echo-');
    await symlink(join(ROOT, 'models', 'echo'), join(repo.dir, 'echo'));
    const data = floats(784);
    const body = v2JsonBody('input0', [1, 784], data);
    const structuredEvent = `{"specversion":"1.0","id":"bench-1","source":"/bench","type":"io.kinfer.inference.request","model":"echo","datacontenttype":"application/json","data":${body}}`;
    const kinfer = await spawnKinfer(repo.dir, { cpu: ctx.serverCpu, profileDir: ctx.profileDir });
    const bare = await spawnBare(ctx.serverCpu);
    try {
      // Each side's request, defined once for the correctness check, the warm-up and the loads.
      const json = { 'content-type': 'application/json' };
      const sides = {
        kinfer: { url: `${kinfer.url}/v2/models/echo/infer`, body, headers: json },
        bare: { url: `${bare.url}/infer`, body, headers: json },
        'cloudevent binary': { url: `${kinfer.url}/`, body, headers: { ...json, ...CE_HEADERS } },
        'cloudevent structured': { url: `${kinfer.url}/`, body: structuredEvent, headers: { 'content-type': 'application/cloudevents+json' } },
      };
      for (const [who, req] of Object.entries(sides)) {
        const res = await fetch(req.url, { method: 'POST', body: req.body, headers: req.headers });
        const reply = (await res.json()) as { outputs?: { data: number[] }[]; data?: { outputs?: { data: number[] }[] } };
        // A structured CloudEvent reply carries the v2 response in `data`.
        const got = (who === 'cloudevent structured' ? reply.data : reply)?.outputs?.[0]?.data;
        if (res.status !== 200 || got?.length !== 784 || got.some((v, i) => v !== data[i])) {
          throw new Error(`bench protocol: ${who} did not echo the tensor (status ${res.status})`);
        }
      }
      for (const req of Object.values(sides)) await warmUp(ctx, { ...req, connections: 16 });
      const repeats = ctx.quick ? ctx.repeats : Math.max(ctx.repeats, MIN_REPEATS);
      const rows: Row[] = [];
      const p99: [number, number] = [NaN, NaN];
      for (const c of [1, 16]) {
        ctx.log(`protocol: concurrency ${c}`);
        const load = { connections: c, durationSec: ctx.durationSec };
        const gzip = (req: (typeof sides)['kinfer']) => ({ ...req, ...load, headers: { ...req.headers, 'accept-encoding': GZIP_CLIENT } });
        const runs = await interleaved(ctx, [
          { name: `kinfer c${c}`, spec: { ...sides.kinfer, ...load } },
          { name: `bare c${c}`, spec: { ...sides.bare, ...load } },
          ...(c === 16
            ? [
                { name: 'kinfer gzip', spec: gzip(sides.kinfer) },
                { name: 'bare gzip', spec: gzip(sides.bare) },
                { name: 'kinfer cloudevent binary', spec: { ...sides['cloudevent binary'], ...load } },
                { name: 'kinfer cloudevent structured', spec: { ...sides['cloudevent structured'], ...load } },
              ]
            : []),
        ], repeats);
        const k = runs.get(`kinfer c${c}`)!;
        const b = runs.get(`bare c${c}`)!;
        rows.push(compareRow(`c=${c} throughput`, medianOf(k, 'rps'), medianOf(b, 'rps'), 'req/s', { min: 0.7, ratio: pairedRatio(k, b, 'rps') }));
        if (c === 16) {
          p99[0] = medianOf(k, 'p99');
          p99[1] = medianOf(b, 'p99');
          rows.push(compareRow('c=16 p50 latency', medianOf(k, 'p50'), medianOf(b, 'p50'), 'ms'));
          const kg = runs.get('kinfer gzip')!;
          const bg = runs.get('bare gzip')!;
          rows.push(compareRow('c=16 throughput, gzip reply', medianOf(kg, 'rps'), medianOf(bg, 'rps'), 'req/s', { text: 'reported', ratio: pairedRatio(kg, bg, 'rps') }));
          // kinfer against itself: what compression costs (the baseline column is kinfer without it).
          rows.push(compareRow('c=16 gzip vs uncompressed (kinfer)', medianOf(kg, 'rps'), medianOf(k, 'rps'), 'req/s', { text: 'reported', ratio: pairedRatio(kg, k, 'rps') }));
          // The baseline column of these rows is kinfer's own v2 JSON throughput.
          for (const mode of ['binary', 'structured'] as const) {
            const ce = runs.get(`kinfer cloudevent ${mode}`)!;
            rows.push(compareRow(`c=16 CloudEvent ${mode} vs v2 (kinfer)`, medianOf(ce, 'rps'), medianOf(k, 'rps'), 'req/s', { text: 'reported', ratio: pairedRatio(ce, k, 'rps') }));
          }
        }
      }
      rows.push(compareRow('c=16 p99 latency', p99[0], p99[1], 'ms', { text: 'reported' }));
      const notes: string[] = [];
      if (ctx.callgrind) {
        // After the timed rounds, so the servers under valgrind never share the machine with them.
        ctx.log('protocol: instructions per request under callgrind (kinfer, then bare)');
        const count = { ...COUNT, body, headers: json, connections: 16, cpu: ctx.serverCpu };
        const k = await countInstructions({
          ...count,
          args: [CLI, 'serve', '--model-repository', repo.dir, '--port', '{PORT}', '--host', '127.0.0.1'],
          path: '/v2/models/echo/infer',
          env: { LOG_LEVEL: 'warn' },
        });
        const b = await countInstructions({ ...count, args: [join(DIST_BENCH, 'bare-server.js'), '{PORT}'], path: '/infer' });
        ctx.log(`  kinfer ${k.perRequest.map((n) => n.toFixed(0)).join(', ')}; bare ${b.perRequest.map((n) => n.toFixed(0)).join(', ')} per request`);
        rows.push(compareRow('c=16 instructions per request (callgrind)', k.perRequest.at(-1)! / 1e6, b.perRequest.at(-1)! / 1e6, 'M instr', { text: 'reported' }));
        notes.push(
          `instructions: valgrind ${ctx.callgrind} (callgrind, all threads, user space only), c=16 from autocannon; ${COUNT.warmUpRequests} requests of warm-up, then ${COUNT.rounds} rounds of ${COUNT.requests}, the last shown`,
        );
      }
      return {
        name: this.name,
        title: this.title,
        baselineLabel: 'bare node:http',
        rows,
        notes: [...notes, `body ${(body.length / 1024).toFixed(1)} KiB; each side warmed up with ${ctx.quick ? 1 : WARM_UP_SEC} s of unrecorded load at c=16, then ${repeats}× ${ctx.durationSec} s per side, interleaved (the order alternating), medians; ratio = median of the per-round ratios`],
      };
    } finally {
      await kinfer.close();
      await bare.close();
      await repo.cleanup();
    }
  },
};
