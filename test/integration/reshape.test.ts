/**
 * Triton's `reshape`, `optional` and `default_model_filename` through a real server on
 * 127.0.0.1, with ONNX models whose shapes differ from what clients send: a model taking
 * [batch] served as [batch, 1] (dynamic batching merging such requests, warm-up going
 * through the reshape), one taking [batch, n, 2, 2] served as [batch, n, 4], and one without
 * a batch dim taking [6] served as [2, 3].
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import type { ModelStat } from '../../runtime/observability/statistics.js';
import { tritonClient, unary } from '../helpers/grpc-client.js';
import { writeScaleModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

async function config(dir: string, name: string, text: string): Promise<void> {
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(join(dir, name, 'config.pbtxt'), text);
}

describe('reshape, optional inputs and default_model_filename', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    await writeScaleModel(join(repo.dir, 'flat', '1'), 3, 'model.onnx', ['batch']);
    // A 200 ms window: concurrent requests merge into one run of the [batch] model.
    await config(
      repo.dir,
      'flat',
      `platform: "onnxruntime_onnx"\nmax_batch_size: 8\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
dynamic_batching { max_queue_delay_microseconds: 200000 }
model_warmup [ { name: "ones" batch_size: 2 inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } } ]\n`,
    );
    await writeScaleModel(join(repo.dir, 'grid', '1'), 2, 'model.onnx', ['batch', 'n', 2, 2]);
    await config(
      repo.dir,
      'grid',
      `platform: "onnxruntime_onnx"\nmax_batch_size: 4\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape: { shape: [ -1, 2, 2 ] } } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape: { shape: [ -1, 2, 2 ] } } ]\n`,
    );
    await writeScaleModel(join(repo.dir, 'nobatch', '1'), 5, 'model.onnx', [6]);
    await config(repo.dir, 'nobatch', `platform: "onnxruntime_onnx"\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ 2, 3 ] reshape: { shape: [ 6 ] } } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 6 ] } ]\n`);
    // Two .onnx files in one version folder: without default_model_filename neither is chosen.
    await writeScaleModel(join(repo.dir, 'named', '1'), 2, 'first.onnx');
    await writeScaleModel(join(repo.dir, 'named', '1'), 7, 'second.onnx');
    await config(repo.dir, 'named', 'max_batch_size: 4\ndefault_model_filename: "second.onnx"\n');
    await writeScaleModel(join(repo.dir, 'misnamed', '1'), 2, 'model.onnx');
    await config(repo.dir, 'misnamed', 'max_batch_size: 4\ndefault_model_filename: "absent.onnx"\n');
    server = await startTestServer({ modelRepository: repo.dir, grpcPort: 0 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const infer = (model: string, shape: number[], data: number[]) => postJson(`${server.url}/v2/models/${model}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape, data }] });

  it('serves a [batch] model as [batch, 1]: metadata, config and answers in the config dims, the model fed its own shape', async () => {
    const meta = await (await fetch(`${server.url}/v2/models/flat`)).json();
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
    expect(meta.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, 1] }]);
    const cfg = await (await fetch(`${server.url}/v2/models/flat/config`)).json();
    expect(cfg.input[0]).toMatchObject({ name: 'x', dims: [1], reshape: { shape: [] } });
    expect(cfg.output[0]).toMatchObject({ name: 'y', dims: [1], reshape: { shape: [] } });

    const res = await infer('flat', [3, 1], [1, 2, 3]);
    expect(res.status).toBe(200);
    expect((await res.json()).outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [3, 1], data: [3, 6, 9] }]);
    // The client's shape is still checked against dims.
    const bad = await infer('flat', [3], [1, 2, 3]);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/input 'x': expected shape \[-1,1\], got \[3\]/);
  });

  it('merges concurrent [1, 1] requests into one run of the [batch] model and splits the answer back', async () => {
    const before = (await (await fetch(`${server.url}/v2/models/flat/stats`)).json()).model_stats[0] as ModelStat;
    const replies = await Promise.all([1, 2, 3, 4].map((v) => infer('flat', [1, 1], [v]).then((r) => r.json())));
    expect(replies.map((r) => r.outputs[0])).toEqual([3, 6, 9, 12].map((v) => ({ name: 'y', datatype: 'FP32', shape: [1, 1], data: [v] })));
    const after = (await (await fetch(`${server.url}/v2/models/flat/stats`)).json()).model_stats[0] as ModelStat;
    expect(after.inference_count - before.inference_count).toBe(4);
    expect(after.execution_count - before.execution_count).toBeLessThan(4); // at least two requests shared a run
  });

  it('carries variable dims across the reshape in order: [batch, n, 4] served, [batch, n, 2, 2] computed', async () => {
    for (const [batch, n] of [[1, 3], [2, 1]] as const) {
      const data = Array.from({ length: batch * n * 4 }, (_, i) => i);
      const res = await infer('grid', [batch, n, 4], data);
      expect(res.status).toBe(200);
      expect((await res.json()).outputs[0]).toEqual({ name: 'y', datatype: 'FP32', shape: [batch, n, 4], data: data.map((v) => v * 2) });
    }
  });

  it('reshapes a model without a batch dim: [2, 3] served, [6] computed', async () => {
    const res = await infer('nobatch', [2, 3], [1, 2, 3, 4, 5, 6]);
    expect(res.status).toBe(200);
    expect((await res.json()).outputs[0]).toEqual({ name: 'y', datatype: 'FP32', shape: [6], data: [5, 10, 15, 20, 25, 30] });
  });

  it("says reshape in Triton's own gRPC ModelConfig messages", async () => {
    const triton = tritonClient(server.grpcPort!);
    try {
      const { config: c } = await unary(triton, 'ModelConfig', { name: 'grid' });
      expect(c.input[0].dims).toEqual(['-1', '4']);
      expect(c.input[0].reshape.shape).toEqual(['-1', '2', '2']);
      expect(c.output[0].reshape.shape).toEqual(['-1', '2', '2']);
      const { config: flat } = await unary(triton, 'ModelConfig', { name: 'flat' });
      expect(flat.input[0].reshape).toEqual({ shape: [] }); // present and empty: a scalar per item
      const { config: named } = await unary(triton, 'ModelConfig', { name: 'named' });
      expect(named.input[0].reshape).toBeNull(); // no reshape: the field is absent
    } finally {
      triton.close();
    }
  });

  it('loads the file default_model_filename names, and says which file is missing when it is not there', async () => {
    const res = await infer('named', [1, 4], [1, 2, 3, 4]);
    expect(res.status).toBe(200);
    expect((await res.json()).outputs[0].data).toEqual([7, 14, 21, 28]); // second.onnx, not first.onnx
    const index = await (await postJson(`${server.url}/v2/repository/index`, {})).json();
    const misnamed = index.find((e: { name: string }) => e.name === 'misnamed');
    expect(misnamed.state).toBe('UNAVAILABLE');
    expect(misnamed.reason).toMatch(/default_model_filename 'absent\.onnx' is not a file or an ONNX model folder in .*misnamed\/1/);
  });
});
