/**
 * @module test/bench/scenarios/cold-start
 * Scenario 4, cold start: `kinfer serve` spawned with only `ocr-det` (already
 * on disk) in its repository, timed from spawn to the first 200 from
 * /v2/health/ready; against the in-process `InferenceSession.create` time of
 * the same file (fresh process, same core) + 300 ms. Idle RSS 1 s after ready,
 * then idle CPU over the next IDLE_WINDOW_MS: what a ready pod with no traffic
 * costs its node (timers, samplers), in CPU ms per second and wake-ups per second.
 * Last, the first inference after ready against the ones after it (1×3×96×96
 * FP32 JSON, sent from the harness one at a time): what the first caller of a
 * new pod pays for code and heap that are not warm yet. The same again for a
 * copy of ocr-det whose config adds a `model_warmup` sample of that shape
 * (zeros): what the warm-up costs the start and buys the first caller.
 * Both sides run with the image's malloc setting (huge pages, SERVER_ENV in
 * lib.ts); one more spawn and session create per round without it show what
 * the setting buys.
 */
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  compareRow, cpuUse, floats, median, ROOT, rssMB, runScript, sleep, spawnKinfer, SERVER_ENV, tempRepo, v2JsonBody, WITHOUT_HUGE_PAGES,
  type BenchContext, type Scenario, type ScenarioResult,
} from '../lib.js';

const IDLE_WINDOW_MS = 2000;
/** Requests timed after ready: the first, and the median of the others. */
const FIRST_REQUESTS = 10;

/** Wall ms of one JSON infer; throws unless it answered 200. */
async function timedInfer(url: string, body: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'accept-encoding': 'identity' } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`bench cold-start: ocr-det answered ${res.status}`);
  return performance.now() - t0;
}

/** The first of FIRST_REQUESTS infers sent one at a time, and the median of the others (ms). */
async function firstAndLater(url: string, body: string): Promise<{ first: number; later: number }> {
  const times: number[] = [];
  for (let k = 0; k < FIRST_REQUESTS; k++) times.push(await timedInfer(url, body));
  return { first: times[0]!, later: median(times.slice(1)) };
}

export const coldStart: Scenario = {
  name: 'cold-start',
  httpLoad: false,
  title: '4. Cold start: spawn → /v2/health/ready with ocr-det on disk',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const repo = await tempRepo('kinfer-bench-cold-');
    await symlink(join(ROOT, 'models', 'ocr-det'), join(repo.dir, 'ocr-det'));
    // The same model with one warm-up sample of the shape the first request sends.
    const warmRepo = await tempRepo('kinfer-bench-cold-warm-');
    await mkdir(join(warmRepo.dir, 'ocr-det'));
    await symlink(join(ROOT, 'models', 'ocr-det', '1'), join(warmRepo.dir, 'ocr-det', '1'));
    const config = await readFile(join(ROOT, 'models', 'ocr-det', 'config.pbtxt'), 'utf8');
    await writeFile(
      join(warmRepo.dir, 'ocr-det', 'config.pbtxt'),
      `${config}\nmodel_warmup [ { name: "96x96" batch_size: 1 inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 3, 96, 96 ] zero_data: true } } } ]\n`,
    );
    const modelFile = join(ROOT, 'models', 'ocr-det', '1', 'model.onnx');
    const reps = Math.max(3, ctx.repeats + 2);
    const ready: number[] = [];
    const rss: number[] = [];
    const create: number[] = [];
    const idleCpu: number[] = [];
    const idleWakeups: number[] = [];
    const first: number[] = [];
    const later: number[] = [];
    const warmReady: number[] = [];
    const warmFirst: number[] = [];
    const warmLater: number[] = [];
    // glibc's default malloc, without the image's huge pages (SERVER_ENV): spawn → ready, idle RSS, session create.
    const plainReady: number[] = [];
    const plainRss: number[] = [];
    const plainCreate: number[] = [];
    const image = v2JsonBody('x', [1, 3, 96, 96], floats(3 * 96 * 96, 7));
    try {
      // One unrecorded spawn and session create first. Right after model-path, the first two
      // spawns of runs 18 and 19 took 550-580 ms against 420-440 ms for the rest (session create
      // 227-235 against 166-182 ms), which flipped the median from run to run.
      const unrecorded = await spawnKinfer(repo.dir, { cpu: ctx.serverCpu, timeoutMs: 60_000, profileDir: ctx.profileDir });
      await unrecorded.close();
      await runScript<{ createMs: number }>('ort-baseline.js', ['create', modelFile], { cpu: ctx.serverCpu, timeoutMs: 60_000 });
      ctx.log(`  unrecorded spawn: ready ${unrecorded.readyMs.toFixed(0)} ms`);
      for (let i = 0; i < reps; i++) {
        const s = await spawnKinfer(repo.dir, { cpu: ctx.serverCpu, timeoutMs: 60_000, profileDir: ctx.profileDir });
        try {
          ready.push(s.readyMs);
          await sleep(1000);
          rss.push(rssMB(s.pid));
          const before = cpuUse(s.pid);
          await sleep(IDLE_WINDOW_MS);
          const after = cpuUse(s.pid);
          idleCpu.push(((after.runMs - before.runMs) * 1000) / IDLE_WINDOW_MS);
          idleWakeups.push(((after.slices - before.slices) * 1000) / IDLE_WINDOW_MS);
          const t = await firstAndLater(`${s.url}/v2/models/ocr-det/infer`, image);
          first.push(t.first);
          later.push(t.later);
        } finally {
          await s.close();
        }
        const w = await spawnKinfer(warmRepo.dir, { cpu: ctx.serverCpu, timeoutMs: 60_000, profileDir: ctx.profileDir });
        try {
          warmReady.push(w.readyMs);
          await sleep(1000);
          const t = await firstAndLater(`${w.url}/v2/models/ocr-det/infer`, image);
          warmFirst.push(t.first);
          warmLater.push(t.later);
        } finally {
          await w.close();
        }
        const p = await spawnKinfer(repo.dir, { cpu: ctx.serverCpu, timeoutMs: 60_000, env: WITHOUT_HUGE_PAGES });
        try {
          plainReady.push(p.readyMs);
          await sleep(1000);
          plainRss.push(rssMB(p.pid));
        } finally {
          await p.close();
        }
        const pc = await runScript<{ createMs: number }>('ort-baseline.js', ['create', modelFile], { cpu: ctx.serverCpu, timeoutMs: 60_000, env: WITHOUT_HUGE_PAGES });
        plainCreate.push(pc.createMs);
        const c = await runScript<{ createMs: number }>('ort-baseline.js', ['create', modelFile], { cpu: ctx.serverCpu, timeoutMs: 60_000 });
        create.push(c.createMs);
        ctx.log(`  #${i + 1}: ready ${s.readyMs.toFixed(0)} ms, idle RSS ${rss.at(-1)!.toFixed(0)} MB, idle CPU ${idleCpu.at(-1)!.toFixed(1)} ms/s (${idleWakeups.at(-1)!.toFixed(0)} wake-ups/s), first infer ${first.at(-1)!.toFixed(0)} ms then ${later.at(-1)!.toFixed(0)} ms; with model_warmup ready ${warmReady.at(-1)!.toFixed(0)} ms, first infer ${warmFirst.at(-1)!.toFixed(0)} ms then ${warmLater.at(-1)!.toFixed(0)} ms; session create ${c.createMs.toFixed(0)} ms; default malloc: ready ${p.readyMs.toFixed(0)} ms, idle RSS ${plainRss.at(-1)!.toFixed(0)} MB, session create ${pc.createMs.toFixed(0)} ms`);
      }
    } finally {
      await repo.cleanup();
      await warmRepo.cleanup();
    }
    const limit = median(create) + 300;
    return {
      name: this.name,
      title: this.title,
      baselineLabel: 'session create + 300 ms',
      rows: [
        compareRow('spawn → ready', median(ready), limit, 'ms', { max: 1, text: '≤ 1.00×' }),
        compareRow('in-process session create', median(create), undefined, 'ms'),
        compareRow('glibc default malloc: spawn → ready (vs huge pages)', median(plainReady), median(ready), 'ms', { text: 'reported' }),
        compareRow('glibc default malloc: in-process session create (vs huge pages)', median(plainCreate), median(create), 'ms', { text: 'reported' }),
        compareRow('glibc default malloc: idle RSS after ready (vs huge pages)', median(plainRss), median(rss), 'MB', { text: 'reported' }),
        compareRow('idle RSS after ready', median(rss), undefined, 'MB'),
        compareRow('idle CPU after ready', median(idleCpu), undefined, 'ms/s'),
        compareRow('idle wake-ups after ready (all threads)', median(idleWakeups), undefined, '/s'),
        compareRow(`first infer after ready (vs median of the next ${FIRST_REQUESTS - 1})`, median(first), median(later), 'ms', { text: 'reported' }),
        compareRow('with model_warmup: spawn → ready (vs without)', median(warmReady), median(ready), 'ms', { text: 'reported' }),
        compareRow(`with model_warmup: first infer after ready (vs median of the next ${FIRST_REQUESTS - 1})`, median(warmFirst), median(warmLater), 'ms', { text: 'reported' }),
      ],
      notes: [
        `${reps} spawns, median, after one unrecorded spawn and session create; server pinned to one core, so ONNX Runtime uses 1 intra-op thread`,
        `first infer: ocr-det, one FP32 1×3×96×96 JSON request (${(image.length / 1024).toFixed(0)} KiB) at a time from the harness, after the idle window`,
        'with model_warmup: the same model with one warm-up sample (1×3×96×96 zeros) in its config, spawned after each plain one; first infer 1 s after ready',
        `malloc: kinfer and the session create run with the image's GLIBC_TUNABLES=${SERVER_ENV.GLIBC_TUNABLES} (transparent huge pages for malloc), as deployed; the default-malloc rows spawn kinfer and create the session once more per round with GLIBC_TUNABLES empty`,
      ],
    };
  },
};
