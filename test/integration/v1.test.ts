/**
 * KServe's V1 data plane (TensorFlow Serving's REST predict format) through a
 * real server on 127.0.0.1: exact model outputs in the row and columnar forms,
 * a two-input two-output model, echo round trips, the ready and list routes,
 * and the errors a client gets.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { DT, mlpReference, valueInfo, writeGraph, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

describe('KServe V1 protocol', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;

  beforeAll(async () => {
    repo = await tempDir();
    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await writeFile(join(repo.dir, 'mlp', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 100000 }\n');
    // sum = a + b, prod = a * b, both [batch, 2].
    await writeGraph(join(repo.dir, 'pair', '1', 'model.onnx'), {
      name: 'pair',
      nodes: [
        { op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] },
        { op: 'Mul', inputs: ['a', 'b'], outputs: ['prod'] },
      ],
      inputs: [valueInfo('a', DT.FLOAT, ['batch', 2]), valueInfo('b', DT.FLOAT, ['batch', 2])],
      outputs: [valueInfo('sum', DT.FLOAT, ['batch', 2]), valueInfo('prod', DT.FLOAT, ['batch', 2])],
    });
    // total = ReduceSum(x) over everything, kept as [1, 1]: no row per instance.
    await writeGraph(join(repo.dir, 'total', '1', 'model.onnx'), {
      name: 'total',
      nodes: [{ op: 'ReduceSum', inputs: ['x'], outputs: ['total'] }],
      inputs: [valueInfo('x', DT.FLOAT, ['batch', 2])],
      outputs: [valueInfo('total', DT.FLOAT, [1, 1])],
    });
    // Not a model: its load fails, so it is known and not ready.
    await mkdir(join(repo.dir, 'broken', '1'), { recursive: true });
    await writeFile(join(repo.dir, 'broken', '1', 'model.onnx'), 'not onnx');
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const predict = (model: string, body: unknown) => postJson(`${server.url}/v1/models/${model}:predict`, body);

  it('row format: one prediction per instance, the model\'s exact values; concurrent callers share batches', async () => {
    const rows = [[1, -2, 3.5, 0.25], [0, 2, -1, 4], [0.5, 0.5, 0.5, 0.5]];
    const res = await predict('mlp', { instances: rows });
    expect(res.status).toBe(200);
    const { predictions } = (await res.json()) as { predictions: number[][] };
    expect(predictions).toHaveLength(3);
    rows.forEach((r, i) => mlpReference(mlp, Float32Array.from(r)).forEach((v, j) => expect(predictions[i]![j]).toBeCloseTo(v, 5)));

    const before = await (await fetch(`${server.url}/v2/models/mlp/stats`)).json() as { model_stats: { execution_count: number }[] };
    const many = await Promise.all(rows.map((r) => predict('mlp', { instances: [r] })));
    expect(many.map((r) => r.status)).toEqual([200, 200, 200]);
    const after = await (await fetch(`${server.url}/v2/models/mlp/stats`)).json() as { model_stats: { execution_count: number }[] };
    expect(after.model_stats[0]!.execution_count - before.model_stats[0]!.execution_count).toBeLessThan(3);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/kinfer_requests_total\{[^}]*model="mlp"[^}]*protocol="v1"[^}]*status="200"/);
  });

  it('columnar format and the versions path answer "outputs" with the whole tensor', async () => {
    const res = await postJson(`${server.url}/v1/models/mlp/versions/1:predict`, { inputs: [[1, 2, 3, 4]] });
    expect(res.status).toBe(200);
    const { outputs } = (await res.json()) as { outputs: number[][] };
    const want = mlpReference(mlp, Float32Array.from([1, 2, 3, 4]));
    expect(outputs).toHaveLength(1);
    outputs[0]!.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5));
    expect((await postJson(`${server.url}/v1/models/mlp/versions/7:predict`, { inputs: [[1, 2, 3, 4]] })).status).toBe(404);
  });

  it('several inputs and outputs: keyed instances in, keyed predictions out; named columns in, named outputs out', async () => {
    const rows = await predict('pair', { instances: [{ a: [1, 2], b: [3, 4] }, { a: [0.5, -1], b: [2, 2] }] });
    expect(rows.status).toBe(200);
    expect(await rows.json()).toEqual({ predictions: [{ sum: [4, 6], prod: [3, 8] }, { sum: [2.5, 1], prod: [1, -2] }] });
    const cols = await predict('pair', { inputs: { a: [[1, 1]], b: [[2, 3]] } });
    expect(await cols.json()).toEqual({ outputs: { sum: [[3, 4]], prod: [[2, 3]] } });
  });

  it('echo round-trips strings, {"b64"} bytes, booleans and integers', async () => {
    const res = await predict('echo', { instances: [{ s: 'héllo', raw: { b64: Buffer.from([0, 1, 255]).toString('base64') }, on: true, n: 7 }] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ predictions: [{ s: 'héllo', raw: { b64: 'AAH/' }, on: true, n: 7 }] });
  });

  it('ready and list routes as KServe answers them', async () => {
    expect(await (await fetch(`${server.url}/v1/models`)).json()).toEqual({ models: ['echo', 'mlp', 'pair', 'total'] });
    const ready = await fetch(`${server.url}/v1/models/mlp`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ name: 'mlp', ready: true });
    expect((await fetch(`${server.url}/v1/models/nope`)).status).toBe(404);
    const broken = await fetch(`${server.url}/v1/models/broken`);
    expect(broken.status).toBe(503);
    expect(((await broken.json()) as { error: string }).error).toMatch(/model 'broken' is not ready/);
    expect(await (await fetch(`${server.url}/`)).json()).toEqual({ status: 'alive' });
  });

  it('client mistakes get 400 (or 404 for no such model) with a specific message', async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ['mlp', { instances: [[1, 2, 3]] }, 400, /input 'x': expected shape \[-1,4\], got \[1,3\]/],
      ['mlp', { instances: [[1, 2, 3, 4], [1, 2]] }, 400, /instances\[1\]: shape \[2\] differs/],
      ['mlp', { rows: [] }, 400, /exactly one of "instances".*"inputs"/],
      ['mlp', '{"instances": [', 400, /not valid JSON/],
      ['pair', { instances: [[1, 2]] }, 400, /the model has 2 inputs \(a, b\)/],
      ['nope', { instances: [[1]] }, 404, /model 'nope'/],
    ];
    for (const [model, body, status, message] of cases) {
      const res = await predict(model, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    }
    // An output without a row per instance is refused before the model runs; the columnar form gets it whole.
    const before = (await (await fetch(`${server.url}/v2/models/total/stats`)).json()) as { model_stats: { execution_count: number }[] };
    const rows = await predict('total', { instances: [[1, 2], [3, 4]] });
    expect(rows.status).toBe(400);
    expect(((await rows.json()) as { error: string }).error).toMatch(/output 'total' has shape \[1,1\], not one row per instance \(2\); send the columnar format/);
    const after = (await (await fetch(`${server.url}/v2/models/total/stats`)).json()) as { model_stats: { execution_count: number }[] };
    expect(after.model_stats[0]!.execution_count).toBe(before.model_stats[0]!.execution_count);
    expect(await (await predict('total', { inputs: [[1, 2], [3, 4]] })).json()).toEqual({ outputs: [[10]] });
    const explain = await postJson(`${server.url}/v1/models/mlp:explain`, { instances: [[1, 2, 3, 4]] });
    expect(explain.status).toBe(400);
    expect(((await explain.json()) as { error: string }).error).toMatch(/no explainer/);
    expect((await postJson(`${server.url}/v1/models/mlp:classify`, {})).status).toBe(404);
  });
});
