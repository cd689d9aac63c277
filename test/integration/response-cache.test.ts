/**
 * Triton's response cache through a real server on 127.0.0.1: a repeated
 * request is answered without running the model (the statistics extension
 * counts no new execution), only for models that enable it, never across a
 * reload, and not at all while the server gives the cache no bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import type { ModelStat } from '../../runtime/observability/statistics.js';
import { mlpReference, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

async function statsOf(url: string, model: string): Promise<ModelStat> {
  return ((await (await fetch(`${url}/v2/models/${model}/stats`)).json()) as { model_stats: ModelStat[] }).model_stats[0]!;
}

const body = (x: number[]) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x }] });

describe('response cache', () => {
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;

  beforeAll(async () => {
    repo = await tempDir();
    mlp = await writeMlpModel(join(repo.dir, 'cached', '1'));
    await writeFile(join(repo.dir, 'cached', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nresponse_cache { enable: true }\n');
    await writeMlpModel(join(repo.dir, 'plain', '1'));
    // A cached ensemble of one uncached step.
    await writeMlpModel(join(repo.dir, 'step', '1'));
    await mkdir(join(repo.dir, 'pipe'), { recursive: true });
    await writeFile(
      join(repo.dir, 'pipe', 'config.pbtxt'),
      `platform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]\nresponse_cache { enable: true }\nensemble_scheduling { step [ { model_name: "step" input_map { key: "x" value: "X" } output_map { key: "y" value: "Y" } } ] }\n`,
    );
  });
  afterAll(async () => {
    await repo.cleanup();
  });

  describe('with KINFER_RESPONSE_CACHE_BYTES set', () => {
    let server: RunningServer;
    beforeAll(async () => {
      server = await startTestServer({ modelRepository: repo.dir, responseCacheBytes: 1 << 20 });
    });
    afterAll(async () => {
      await server.close();
    });

    it('answers a repeated request from the cache with the same values and no execution; other inputs run', async () => {
      const x = [1, -2, 3.5, 0.25];
      const first = await postJson(`${server.url}/v2/models/cached/infer`, body(x));
      expect(first.status).toBe(200);
      const firstBody = (await first.json()) as { outputs: { data: number[] }[] };
      const want = mlpReference(mlp, Float32Array.from(x));
      firstBody.outputs[0]!.data.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5));
      const afterFirst = await statsOf(server.url, 'cached');
      expect(afterFirst.execution_count).toBe(1);

      for (let i = 0; i < 3; i++) {
        const again = await postJson(`${server.url}/v2/models/cached/infer`, { ...body(x), id: `r${i}` });
        expect(again.status).toBe(200);
        const b = (await again.json()) as { id: string; outputs: { data: number[] }[] };
        expect(b.id).toBe(`r${i}`); // the cached outputs, this request's own id
        expect(b.outputs[0]!.data).toEqual(firstBody.outputs[0]!.data);
      }
      // The V1 route reaches the same cache (same inputs, same outputs asked for).
      const v1 = await postJson(`${server.url}/v1/models/cached:predict`, { instances: [x] });
      expect(((await v1.json()) as { predictions: number[][] }).predictions[0]).toEqual(firstBody.outputs[0]!.data);
      const s = await statsOf(server.url, 'cached');
      expect(s.execution_count).toBe(1);
      expect(s.inference_count).toBe(1);
      expect(s.inference_stats.cache_hit.count).toBe(4);
      expect(s.inference_stats.cache_miss.count).toBe(1);
      expect(s.inference_stats.success.count).toBe(5);
      expect(s.inference_stats.queue.count).toBe(5); // hits count in queue, with no wait (Triton's rule)
      expect(s.inference_stats.compute_infer.count).toBe(1);

      expect((await postJson(`${server.url}/v2/models/cached/infer`, body([0, 0, 0, 1]))).status).toBe(200);
      const s2 = await statsOf(server.url, 'cached');
      expect([s2.execution_count, s2.inference_stats.cache_miss.count]).toEqual([2, 2]);

      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/kinfer_response_cache_lookups_total\{result="hit"\} 4/);
      expect(metrics).toMatch(/kinfer_response_cache_entries 2/);
      const config = (await (await fetch(`${server.url}/v2/models/cached/config`)).json()) as { response_cache?: { enable: boolean } };
      expect(config.response_cache).toEqual({ enable: true });
    });

    it('leaves models that do not enable it alone; a reload from changed files starts with nothing cached, one from the same files keeps it', async () => {
      const x = [4, 3, 2, 1];
      for (let i = 0; i < 2; i++) expect((await postJson(`${server.url}/v2/models/plain/infer`, body(x))).status).toBe(200);
      const plain = await statsOf(server.url, 'plain');
      expect([plain.execution_count, plain.inference_stats.cache_hit.count, plain.inference_stats.cache_miss.count]).toEqual([2, 0, 0]);

      expect((await postJson(`${server.url}/v2/models/cached/infer`, body(x))).status).toBe(200);
      const before = await statsOf(server.url, 'cached');
      // Nothing changed: the version keeps serving, its statistics and its cache entries with it.
      expect((await postJson(`${server.url}/v2/repository/models/cached/load`, {})).status).toBe(200);
      expect((await postJson(`${server.url}/v2/models/cached/infer`, body(x))).status).toBe(200);
      const kept = await statsOf(server.url, 'cached');
      expect(kept.execution_count).toBe(before.execution_count);
      expect(kept.inference_stats.cache_hit.count).toBe(before.inference_stats.cache_hit.count + 1);
      // The config file changed (a comment is enough: its size and time did): loaded anew, nothing cached.
      await writeFile(join(repo.dir, 'cached', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nresponse_cache { enable: true }\n# edited\n');
      expect((await postJson(`${server.url}/v2/repository/models/cached/load`, {})).status).toBe(200);
      expect((await postJson(`${server.url}/v2/models/cached/infer`, body(x))).status).toBe(200);
      const reloaded = await statsOf(server.url, 'cached');
      expect([reloaded.execution_count, reloaded.inference_stats.cache_hit.count]).toEqual([1, 0]);
    });

    it("keys an ensemble's entries to the loads of its steps: a reloaded or unloaded step is never answered from the old entries", async () => {
      const pipe = (x: number[]) => postJson(`${server.url}/v2/models/pipe/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: x }] });
      const x = [2, -1, 0.5, 3];
      const want = mlpReference(mlp, Float32Array.from(x));
      for (let i = 0; i < 2; i++) {
        const r = await pipe(x);
        expect(r.status).toBe(200);
        ((await r.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5));
      }
      const hits = async () => (await statsOf(server.url, 'pipe')).inference_stats.cache_hit.count;
      const stepRuns = async () => (await statsOf(server.url, 'step')).execution_count;
      expect([await hits(), await stepRuns()]).toEqual([1, 1]);
      // The step is loaded anew (its config changed); the ensemble is not: its old entry must not answer.
      await writeFile(join(repo.dir, 'step', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\n# edited\n');
      expect((await postJson(`${server.url}/v2/repository/models/step/load`, {})).status).toBe(200);
      expect((await pipe(x)).status).toBe(200);
      expect([await hits(), await stepRuns()]).toEqual([1, 1]);
      expect((await pipe(x)).status).toBe(200);
      expect(await hits()).toBe(2);
      // With the step unloaded, the request fails as the pipeline does, not from the cache.
      expect((await postJson(`${server.url}/v2/repository/models/step/unload`, {})).status).toBe(200);
      const gone = await pipe(x);
      expect(gone.status).toBeGreaterThanOrEqual(400);
      expect(((await gone.json()) as { error: string }).error).toMatch(/step/);
      expect(await hits()).toBe(2);
    });
  });

  it('without KINFER_RESPONSE_CACHE_BYTES an enabled model runs every request', async () => {
    const server = await startTestServer({ modelRepository: repo.dir });
    try {
      for (let i = 0; i < 2; i++) expect((await postJson(`${server.url}/v2/models/cached/infer`, body([1, 1, 1, 1]))).status).toBe(200);
      const s = await statsOf(server.url, 'cached');
      expect([s.execution_count, s.inference_stats.cache_hit.count, s.inference_stats.cache_miss.count]).toEqual([2, 0, 0]);
      expect(await (await fetch(`${server.url}/metrics`)).text()).not.toMatch(/kinfer_response_cache/);
    } finally {
      await server.close();
    }
  });
});
