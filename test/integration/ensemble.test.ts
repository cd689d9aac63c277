/**
 * Triton's ensemble models through a real server on 127.0.0.1: a pipeline of three
 * ONNX models (x·2 then ·3 on one branch, x·5 on the other), run over HTTP and gRPC,
 * with the composing models batching across concurrent ensemble requests.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inferenceClient, tritonClient, unary } from '../helpers/grpc-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import type { ModelStat } from '../../runtime/observability/statistics.js';
import { writeScaleModel } from '../helpers/onnx-models.js';
import { defaultModelRepository } from '../../runtime/config.js';
import { metricValue, postJson, startTestServer, tempDir } from '../helpers/server.js';

const X = [1, 2, 3, 4];
const PIPE = `platform: "ensemble"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "Z" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling {
  step [
    { model_name: "scale3" model_version: -1 input_map { key: "x" value: "doubled" } output_map { key: "y" value: "Y" } },
    { model_name: "scale2" model_version: 1 input_map { key: "x" value: "X" } output_map { key: "y" value: "doubled" } },
    { model_name: "scale5" input_map { key: "x" value: "X" } output_map { key: "y" value: "Z" } }
  ]
}
`;

describe('ensemble models', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    for (const k of [2, 3, 5]) {
      await writeScaleModel(join(repo.dir, `scale${k}`, '1'), k);
      // A 100 ms window: concurrent steps of concurrent ensemble requests merge.
      await writeFile(join(repo.dir, `scale${k}`, 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 100000 }\n');
    }
    await mkdir(join(repo.dir, 'pipe', '1'), { recursive: true });
    await writeFile(join(repo.dir, 'pipe', 'config.pbtxt'), PIPE);
    // Loaded at start with its composing model, which loads at the same time: the warm-up waits for it.
    await mkdir(join(repo.dir, 'warm'));
    await writeFile(
      join(repo.dir, 'warm', 'config.pbtxt'),
      `platform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [ { model_name: "scale5" input_map { key: "x" value: "X" } output_map { key: "y" value: "Y" } } ] }
model_warmup [ { name: "zeros" batch_size: 1 inputs { key: "X" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]\n`,
    );
    // Two ensembles that run each other: every request would wait on itself.
    for (const [a, b] of [['cyc_a', 'cyc_b'], ['cyc_b', 'cyc_a']]) {
      await mkdir(join(repo.dir, a!));
      await writeFile(join(repo.dir, a!, 'config.pbtxt'), `platform: "ensemble"\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]\nensemble_scheduling { step [ { model_name: "${b}" input_map { key: "X" value: "X" } output_map { key: "Y" value: "Y" } } ] }\n`);
    }
    // An optional ensemble input, fed to a step that needs it.
    await mkdir(join(repo.dir, 'opt'));
    await writeFile(
      join(repo.dir, 'opt', 'config.pbtxt'),
      `platform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 4 ] optional: true } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "Z" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [ { model_name: "scale2" input_map { key: "x" value: "X" } output_map { key: "y" value: "Y" } }, { model_name: "scale5" input_map { key: "x" value: "B" } output_map { key: "y" value: "Z" } } ] }\n`,
    );
    server = await startTestServer({ modelRepository: repo.dir, grpcPort: 0 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const infer = async (rows: number[][], outputs?: string[]) => {
    const body: Record<string, unknown> = { inputs: [{ name: 'X', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() }] };
    if (outputs) body.outputs = outputs.map((name) => ({ name }));
    const res = await postJson(`${server.url}/v2/models/pipe/infer`, body);
    return { status: res.status, body: (await res.json()) as { model_name: string; model_version: string; outputs: { name: string; shape: number[]; data: number[] }[]; error?: string } };
  };
  const stats = async (m: string) => ((await (await fetch(`${server.url}/v2/models/${m}/stats`)).json()) as { model_stats: ModelStat[] }).model_stats[0]!;

  it('loads an ensemble with a warm-up beside its composing models at start, and refuses ensembles that run each other', async () => {
    expect((await fetch(`${server.url}/v2/models/warm/ready`)).status).toBe(200);
    const index = (await (await postJson(`${server.url}/v2/repository/index`, {})).json()) as { name: string; state: string; reason?: string }[];
    const cyc = index.filter((e) => e.name.startsWith('cyc_'));
    expect(cyc.map((e) => e.state)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
    expect(cyc[0]!.reason).toBe("ensemble 'cyc_a': its steps lead back to it (cyc_a → cyc_b → cyc_a); ensembles cannot call each other in a cycle");
  });

  it('runs the pipeline: each branch through its models, tensors renamed between steps', async () => {
    const { status, body } = await infer([X]);
    expect(status).toBe(200);
    expect(body.model_name).toBe('pipe');
    expect(body.model_version).toBe('1');
    expect(body.outputs.map((o) => [o.name, o.shape, o.data])).toEqual([
      ['Y', [1, 4], X.map((x) => x * 6)],
      ['Z', [1, 4], X.map((x) => x * 5)],
    ]);
    expect((await infer([X], ['Z'])).body.outputs.map((o) => o.name)).toEqual(['Z']);
  });

  it('describes itself as an ensemble: metadata, and the config with its steps', async () => {
    const meta = (await (await fetch(`${server.url}/v2/models/pipe`)).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({ name: 'pipe', platform: 'ensemble', inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }] });
    const config = (await (await fetch(`${server.url}/v2/models/pipe/config`)).json()) as Record<string, unknown>;
    expect(config).toMatchObject({ platform: 'ensemble', max_batch_size: 8, instance_group: [] });
    expect(config.ensemble_scheduling).toEqual({
      step: [
        { model_name: 'scale3', model_version: -1, input_map: { x: 'doubled' }, output_map: { y: 'Y' } },
        { model_name: 'scale2', model_version: 1, input_map: { x: 'X' }, output_map: { y: 'doubled' } },
        { model_name: 'scale5', model_version: -1, input_map: { x: 'X' }, output_map: { y: 'Z' } },
      ],
    });
  });

  it('lets the composing models batch across concurrent ensemble requests, and counts each model', async () => {
    const [pipeBefore, twoBefore] = [await stats('pipe'), await stats('scale2')];
    const rows = [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4], [5, 5, 5, 5], [6, 6, 6, 6]];
    const answers = await Promise.all(rows.map((r) => infer([r])));
    answers.forEach((a, i) => expect(a.body.outputs[0]!.data).toEqual(rows[i]!.map((v) => v * 6)));
    const [pipe, two] = [await stats('pipe'), await stats('scale2')];
    expect(pipe.inference_count - pipeBefore.inference_count).toBe(6);
    expect(two.inference_count - twoBefore.inference_count).toBe(6);
    expect(two.execution_count - twoBefore.execution_count).toBeLessThan(6);
  });

  it('answers over gRPC too, and its ModelConfig carries the steps in Triton\'s own messages', async () => {
    // Triton's ModelConfig messages as a Triton client compiles them; ModelInfer from the server's own definition.
    const triton = tritonClient(server.grpcPort!);
    const own = inferenceClient(server.grpcPort!);
    try {
      const { config } = await unary(triton, 'ModelConfig', { name: 'pipe' });
      expect(config.scheduling_choice).toBe('ensemble_scheduling');
      expect(config.ensemble_scheduling.step.map((s: any) => [s.model_name, s.model_version, s.input_map, s.output_map])).toEqual([
        ['scale3', '-1', { x: 'doubled' }, { y: 'Y' }],
        ['scale2', '1', { x: 'X' }, { y: 'doubled' }],
        ['scale5', '-1', { x: 'X' }, { y: 'Z' }],
      ]);
      const res = await unary(own, 'ModelInfer', { model_name: 'pipe', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: X } }] });
      const byName = Object.fromEntries(res.outputs.map((o: any) => [o.name, o.contents.fp32_contents]));
      expect(byName).toEqual({ Y: X.map((x) => x * 6), Z: X.map((x) => x * 5) });
    } finally {
      triton.close();
      own.close();
    }
  });

  it('passes an optional input the request left out to its step as left out: the step, which needs it, says so', async () => {
    const both = await postJson(`${server.url}/v2/models/opt/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }, { name: 'B', datatype: 'FP32', shape: [1, 4], data: X }] });
    expect(both.status).toBe(200);
    expect(Object.fromEntries((await both.json()).outputs.map((o: { name: string; data: number[] }) => [o.name, o.data]))).toEqual({ Y: X.map((x) => x * 2), Z: X.map((x) => x * 5) });
    const without = await postJson(`${server.url}/v2/models/opt/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }] });
    expect(without.status).toBe(400);
    expect((await without.json()).error).toMatch(/ensemble 'opt' step 1 \(model 'scale5'\).*missing input 'x'/);
  });

  it("holds its steps to the request's deadline: a step queued past it fails the request, named", async () => {
    // 30 ms against the composing models' 100 ms batching window: the first step cannot start in time.
    const res = await postJson(`${server.url}/v2/models/pipe/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }], parameters: { timeout: 30_000 } });
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: string }).error).toMatch(/^ensemble 'pipe' step [12] \(model 'scale[25]'( version 1)?\): request deadline passed after \d+ ms in the queue/);
    // Triton's failure reason: the step's (expired in its queue: REJECTED), for the ensemble too, not BACKEND.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricValue(metrics, 'nv_inference_request_failure', { model: 'pipe', reason: 'REJECTED' })).toBe(1);
    expect(metricValue(metrics, 'nv_inference_request_failure', { model: 'pipe', reason: 'BACKEND' })).toBe(0);
  });

  it("serves a request that names a sequence (id 0 or \"\" is Triton's none) through stateless steps", async () => {
    for (const sequence_id of [0, '', 7]) {
      const res = await postJson(`${server.url}/v2/models/pipe/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }], parameters: { sequence_id, sequence_start: true } });
      expect(res.status, JSON.stringify(sequence_id)).toBe(200);
    }
    const bad = await postJson(`${server.url}/v2/models/pipe/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }], parameters: { sequence_id: -1 } });
    expect(bad.status).toBe(400);
  });

  it('answers 503 naming the step while a composing model is unloaded, and serves again once it is back', async () => {
    expect((await postJson(`${server.url}/v2/repository/models/scale3/unload`, {})).status).toBe(200);
    const gone = await infer([X]);
    expect(gone.status).toBe(503);
    expect(gone.body.error).toBe("ensemble 'pipe' step 0 (model 'scale3'): model 'scale3' is not found");
    expect((await postJson(`${server.url}/v2/repository/models/scale3/load`, {})).status).toBe(200);
    expect((await infer([X])).status).toBe(200);
  });

  it('refuses two concurrent loads that would make two ensembles run each other, without hanging', async () => {
    const config = (to: string) => JSON.stringify({
      platform: 'ensemble',
      input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [1, 4] }],
      output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: [1, 4] }],
      ensemble_scheduling: { step: [{ model_name: to, input_map: to.startsWith('scale') ? { x: 'X' } : { X: 'X' }, output_map: to.startsWith('scale') ? { y: 'Y' } : { Y: 'Y' } }] },
    });
    for (const n of ['ea', 'eb']) {
      await mkdir(join(repo.dir, n));
      await writeFile(join(repo.dir, n, 'config.json'), config('scale2'));
      expect((await postJson(`${server.url}/v2/repository/models/${n}/load`, {})).status).toBe(200);
    }
    // Sent together: ea → eb and eb → ea.
    const answers = await Promise.all(
      [['ea', 'eb'], ['eb', 'ea']].map(async ([n, to]) => {
        const res = await postJson(`${server.url}/v2/repository/models/${n}/load`, { parameters: { config: config(to!) } });
        return [res.status, ((await res.json()) as { error?: string }).error];
      }),
    );
    expect(answers.some(([status]) => status === 400)).toBe(true);
    expect(answers.filter(([status]) => status === 400).every(([, error]) => /its steps lead back to it/.test(String(error)))).toBe(true);
    expect(answers.every(([status]) => status === 200 || status === 400)).toBe(true);
    // Whatever serves now answers (no request waits on itself).
    for (const n of ['ea', 'eb']) {
      const res = await postJson(`${server.url}/v2/models/${n}/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }] });
      expect(res.status, n).toBe(200);
    }
  });

  it("sees an ensemble's new config through its whole load: a load closing a cycle during another's warm-up is refused", async () => {
    const config = (to: string, warm: boolean) => JSON.stringify({
      platform: 'ensemble',
      input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [1, 4] }],
      output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: [1, 4] }],
      ensemble_scheduling: { step: [{ model_name: to, input_map: to.startsWith('scale') ? { x: 'X' } : { X: 'X' }, output_map: to.startsWith('scale') ? { y: 'Y' } : { Y: 'Y' } }] },
      // Pipelines through scale2's 100 ms batching window before it serves: ~2 s between its cycle check and its swap.
      ...(warm ? { model_warmup: [{ name: 'w', batch_size: 1, count: 20, inputs: { X: { data_type: 'TYPE_FP32', dims: [1, 4], zero_data: true } } }] } : {}),
    });
    for (const n of ['wa', 'wb']) {
      await mkdir(join(repo.dir, n));
      await writeFile(join(repo.dir, n, 'config.json'), config('scale2', false));
      expect((await postJson(`${server.url}/v2/repository/models/${n}/load`, {})).status).toBe(200);
    }
    const first = postJson(`${server.url}/v2/repository/models/wa/load`, { parameters: { config: config('wb', true) } });
    await new Promise((r) => setTimeout(r, 50));
    const second = await postJson(`${server.url}/v2/repository/models/wb/load`, { parameters: { config: config('wa', false) } });
    expect((await first).status).toBe(200);
    expect([second.status, ((await second.json()) as { error: string }).error]).toEqual([400, "ensemble 'wb': its steps lead back to it (wb → wa → wb); ensembles cannot call each other in a cycle"]);
    expect((await postJson(`${server.url}/v2/models/wa/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: X }] })).status).toBe(200);
  });

  it('loads its composing models with it (Triton explicit mode), and refuses steps that do not fit them', async () => {
    expect((await postJson(`${server.url}/v2/repository/models/scale5/unload`, {})).status).toBe(200);
    expect((await postJson(`${server.url}/v2/repository/models/pipe/load`, {})).status).toBe(200);
    expect((await fetch(`${server.url}/v2/models/scale5/ready`)).status).toBe(200);
    const load = async (config: string) => {
      const res = await postJson(`${server.url}/v2/repository/models/pipe/load`, { parameters: { config } });
      return [res.status, ((await res.json()) as { error?: string }).error];
    };
    const base = { platform: 'ensemble', max_batch_size: 8, input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [4] }], output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: [4] }] };
    const oneStep = (model: string, inputMap: object) => JSON.stringify({ ...base, ensemble_scheduling: { step: [{ model_name: model, input_map: inputMap, output_map: { y: 'Y' } }] } });
    expect(await load(oneStep('scale2', { nope: 'X' }))).toEqual([400, "ensemble 'pipe' step 0: model 'scale2' has no input 'nope' (its inputs: x)"]);
    expect(await load(oneStep('ghost', { x: 'X' }))).toEqual([400, expect.stringMatching(/^ensemble 'pipe': composing model 'ghost' did not load: model 'ghost' not found/)]);
    // A pinned version that does not serve fails the load (Triton: the ensemble would not be available).
    const pinned = JSON.stringify({ ...base, ensemble_scheduling: { step: [{ model_name: 'scale2', model_version: 7, input_map: { x: 'X' }, output_map: { y: 'Y' } }] } });
    expect(await load(pinned)).toEqual([503, "ensemble 'pipe' step 0: model 'scale2' version 7 does not serve: model 'scale2' has no version '7' loaded (serving version 1)"]);
    // Every refusal left the pipeline serving.
    expect((await infer([X])).body.outputs[1]!.data).toEqual(X.map((x) => x * 5));
  });
});

describe('ensembles at shutdown', () => {
  it('lets a pipeline in flight finish: ensembles drain before their composing models unload', async () => {
    const repo = await tempDir();
    try {
      // A slow first step (the OCR detector on a large image), then echo.
      await mkdir(join(repo.dir, 'slow', '1'), { recursive: true });
      await symlink(join(defaultModelRepository(), 'ocr-det', '1', 'model.onnx'), join(repo.dir, 'slow', '1', 'model.onnx'));
      await writeFile(join(repo.dir, 'slow', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 0\n');
      await mkdir(join(repo.dir, 'echo'));
      await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
      await mkdir(join(repo.dir, 'chain'));
      await writeFile(
        join(repo.dir, 'chain', 'config.pbtxt'),
        `platform: "ensemble"\ninput [ { name: "IMG" data_type: TYPE_FP32 dims: [ 1, 3, -1, -1 ] } ]\noutput [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1, 1, -1, -1 ] } ]
ensemble_scheduling { step [
  { model_name: "slow" input_map { key: "x" value: "IMG" } output_map { key: "sigmoid_0.tmp_0" value: "MAP" } },
  { model_name: "echo" input_map { key: "m" value: "MAP" } output_map { key: "m" value: "OUT" } }
] }\n`,
      );
      const server = await startTestServer({ modelRepository: repo.dir });
      const side = 480;
      const pending = postJson(`${server.url}/v2/models/chain/infer`, { inputs: [{ name: 'IMG', datatype: 'FP32', shape: [1, 3, side, side], data: new Array(3 * side * side).fill(0.5) }] });
      // Close once the first step is queued or running and before it has finished (otherwise this test shows nothing).
      const slowDone = async () => ((await (await fetch(`${server.url}/v2/models/slow/stats`)).json()) as { model_stats: { inference_count: number }[] }).model_stats[0]!.inference_count;
      const pendingSlow = async () => Number((await (await fetch(`${server.url}/metrics`)).text()).match(/kinfer_pending_requests\{model="slow",version="1"\} (\d+)/)?.[1] ?? 0);
      for (let i = 0; i < 200 && (await pendingSlow()) === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(await pendingSlow()).toBeGreaterThan(0);
      expect(await slowDone()).toBe(0);
      const closed = server.close();
      const res = await pending;
      await closed;
      expect(res.status).toBe(200);
      const body = (await res.json()) as { outputs: { name: string; shape: number[] }[] };
      expect(body.outputs[0]).toMatchObject({ name: 'OUT', shape: [1, 1, side, side] });
    } finally {
      await repo.cleanup();
    }
  });
});

describe("unload_dependents (Triton's model_repository(unload_dependents))", () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const ensemble = (steps: [string, string, string][]) =>
    `platform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]\nensemble_scheduling { step [ ${steps
      .map(([m, from, to]) => `{ model_name: "${m}" input_map { key: "x" value: "${from}" } output_map { key: "y" value: "${to}" } }`)
      .join(', ')} ] }\n`;

  beforeAll(async () => {
    repo = await tempDir();
    for (const k of [7, 11]) {
      await writeScaleModel(join(repo.dir, `k${k}`, '1'), k);
      await writeFile(join(repo.dir, `k${k}`, 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n');
    }
    await mkdir(join(repo.dir, 'chain'));
    await writeFile(join(repo.dir, 'chain', 'config.pbtxt'), ensemble([['k7', 'X', 'mid'], ['k11', 'mid', 'Y']]));
    await mkdir(join(repo.dir, 'other'));
    await writeFile(join(repo.dir, 'other', 'config.pbtxt'), ensemble([['k11', 'X', 'Y']]));
    // Triton's explicit mode with nothing at start: the ensembles' loads load their composing models.
    server = await startTestServer({ modelRepository: repo.dir, startupModels: [], grpcPort: 0 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const repoCall = (verb: string, model: string, parameters?: object) => postJson(`${server.url}/v2/repository/models/${model}/${verb}`, parameters ? { parameters } : {});
  const ready = async (model: string) => (await fetch(`${server.url}/v2/models/${model}/ready`)).status === 200;

  it('unloads the composing models only ensembles loaded, with the last ensemble that runs them; a model loaded on its own stays', async () => {
    expect((await (await fetch(`${server.url}/v2`)).json()).extensions).toContain('model_repository(unload_dependents)');
    expect((await repoCall('load', 'chain')).status).toBe(200);
    expect([await ready('k7'), await ready('k11')]).toEqual([true, true]);
    expect((await repoCall('load', 'other')).status).toBe(200);
    expect((await repoCall('unload', 'chain', { unload_dependents: 'yes' })).status).toBe(400);
    expect((await repoCall('unload', 'chain', { 'file:1/model.onnx': 'AAAA' })).status).toBe(400); // files are for loads
    expect(await ready('chain')).toBe(true);

    expect((await repoCall('unload', 'chain', { unload_dependents: true })).status).toBe(200);
    expect([await ready('chain'), await ready('k7'), await ready('k11')]).toEqual([false, false, true]); // `other` runs k11
    expect((await repoCall('unload', 'other', { unload_dependents: true })).status).toBe(200);
    expect(await ready('k11')).toBe(false); // an ensemble loaded it, and the last one that ran it is gone

    // Loaded on its own, k7 is no dependent: it stays; k11, loaded by `chain`, goes.
    expect((await repoCall('load', 'k7')).status).toBe(200);
    expect((await repoCall('load', 'chain')).status).toBe(200);
    expect((await repoCall('unload', 'chain', { unload_dependents: true })).status).toBe(200);
    expect([await ready('k7'), await ready('k11')]).toEqual([true, false]);

    // A plain unload leaves the dependents serving; they stay dependents for the next ensemble's unload.
    expect((await repoCall('load', 'chain')).status).toBe(200);
    expect((await repoCall('unload', 'chain')).status).toBe(200);
    expect(await ready('k11')).toBe(true);
    expect((await repoCall('load', 'other')).status).toBe(200);
    expect((await repoCall('unload', 'other', { unload_dependents: true })).status).toBe(200);
    expect(await ready('k11')).toBe(false);

    // Over gRPC, as a bool_param.
    expect((await repoCall('unload', 'k7')).status).toBe(200);
    expect((await repoCall('load', 'chain')).status).toBe(200);
    const client = inferenceClient(server.grpcPort!);
    try {
      await unary(client, 'RepositoryModelUnload', { model_name: 'chain', parameters: { unload_dependents: { bool_param: true } } });
    } finally {
      client.close();
    }
    expect([await ready('chain'), await ready('k7'), await ready('k11')]).toEqual([false, false, false]);
  });
});
