/**
 * Several versions of one model through a real server on 127.0.0.1 (`version_policy`):
 * each version answers with its own files, a request without a version gets the
 * highest, and metadata, index, statistics and metrics name each version.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { writeDatatypeModel, writeScaleModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

const FACTORS: Record<string, number> = { '1': 2, '2': 3, '3': 5 };
const X = [1, 2, 3, 4];

describe('model versions (version_policy)', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    for (const [v, k] of Object.entries(FACTORS)) await writeScaleModel(join(repo.dir, 'scale', v), k);
    await writeFile(join(repo.dir, 'scale', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 4\nversion_policy { latest { num_versions: 2 } }\n');
    await mkdir(join(repo.dir, 'echo'));
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  async function infer(path: string): Promise<{ status: number; body: { model_version?: string; outputs?: { data: number[] }[]; error?: string } }> {
    const res = await postJson(`${server.url}/v2/models/scale${path}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] });
    return { status: res.status, body: (await res.json()) as never };
  }

  it('answers each version with its own model, and a request without a version with the highest', async () => {
    expect(await infer('')).toMatchObject({ status: 200, body: { model_version: '3', outputs: [{ data: X.map((x) => x * 5) }] } });
    expect(await infer('/versions/2')).toMatchObject({ status: 200, body: { model_version: '2', outputs: [{ data: X.map((x) => x * 3) }] } });
    const gone = await infer('/versions/1');
    expect(gone.status).toBe(404);
    expect(gone.body.error).toBe("model 'scale' has no version '1' loaded (serving versions 2, 3)");
  });

  it("reads a version as Triton does, as an integer: '02' is version 2, -1 the highest", async () => {
    expect(await infer('/versions/02')).toMatchObject({ status: 200, body: { model_version: '2', outputs: [{ data: X.map((x) => x * 3) }] } });
    expect(await infer('/versions/-1')).toMatchObject({ status: 200, body: { model_version: '3' } });
    expect((await infer('/versions/-2')).status).toBe(404);
    expect((await infer('/versions/x1')).status).toBe(404);
    // Readiness reads it the same way.
    for (const v of ['02', '-1']) expect((await fetch(`${server.url}/v2/models/scale/versions/${v}/ready`)).status).toBe(200);
    expect((await fetch(`${server.url}/v2/models/scale/versions/-2/ready`)).status).not.toBe(200);
  });

  it('lists the versions in metadata, readiness, the index and the statistics', async () => {
    const meta = async (p: string) => (await (await fetch(`${server.url}/v2/models/scale${p}`)).json()) as { versions: string[] };
    expect((await meta('')).versions).toEqual(['2', '3']);
    expect((await meta('/versions/2')).versions).toEqual(['2']);
    expect((await fetch(`${server.url}/v2/models/scale/versions/2/ready`)).status).toBe(200);
    expect((await fetch(`${server.url}/v2/models/scale/versions/1/ready`)).status).not.toBe(200);
    const index = (await (await postJson(`${server.url}/v2/repository/index`, {})).json()) as { name: string; version?: string; state: string }[];
    expect(index.filter((e) => e.name === 'scale')).toEqual([
      { name: 'scale', version: '2', state: 'READY' },
      { name: 'scale', version: '3', state: 'READY' },
    ]);
    expect(((await (await fetch(`${server.url}/v2/models`)).json()) as { models: string[] }).models).toEqual(['echo', 'scale']);
    const stats = (await (await fetch(`${server.url}/v2/models/scale/stats`)).json()) as { model_stats: { version: string; inference_count: number }[] };
    expect(stats.model_stats.map((s) => s.version)).toEqual(['2', '3']);
    const one = (await (await fetch(`${server.url}/v2/models/scale/versions/2/stats`)).json()) as { model_stats: { version: string }[] };
    expect(one.model_stats.map((s) => s.version)).toEqual(['2']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/kinfer_model_load_duration_seconds_count\{model="scale",version="2",outcome="success"\} 1/);
    expect(metrics).toMatch(/kinfer_model_load_duration_seconds_count\{model="scale",version="3",outcome="success"\} 1/);
  });

  it('reloads under a policy from the load request: every version serves, and a dropped one loses its series', async () => {
    const load = (config: object) => postJson(`${server.url}/v2/repository/models/scale/load`, { parameters: { config: JSON.stringify(config) } });
    expect((await load({ platform: 'onnxruntime_onnx', max_batch_size: 4, version_policy: { all: {} } })).status).toBe(200);
    expect(await infer('/versions/1')).toMatchObject({ status: 200, body: { model_version: '1', outputs: [{ data: X.map((x) => x * 2) }] } });
    const config = (await (await fetch(`${server.url}/v2/models/scale/config`)).json()) as { version_policy: unknown };
    expect(config.version_policy).toEqual({ all: {} });
    expect((await load({ platform: 'onnxruntime_onnx', max_batch_size: 4, version_policy: { specific: { versions: [1] } } })).status).toBe(200);
    expect(await infer('')).toMatchObject({ status: 200, body: { model_version: '1' } });
    expect((await infer('/versions/3')).status).toBe(404);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).not.toMatch(/model="scale",version="3"/);
    expect(metrics).toMatch(/kinfer_model_load_duration_seconds_count\{model="scale",version="1",outcome="success"\} 2/);
  });

  it("loads a model sent with the load request (Triton's file: parameters, base64), versions and all", async () => {
    const scratch = await tempDir();
    try {
      const bytes = async (k: number) => (await readFile(await writeScaleModel(join(scratch.dir, String(k)), k))).toString('base64');
      const config = JSON.stringify({ platform: 'onnxruntime_onnx', max_batch_size: 4, version_policy: { all: {} } });
      const load = (parameters: object) => postJson(`${server.url}/v2/repository/models/pushed/load`, { parameters });
      // With a side file of 1.5 MiB: load bodies carry models, so their limit is the JSON one, not 1 MiB.
      const side = Buffer.alloc(1.5 * 1024 * 1024, 7).toString('base64');
      const res = await load({ config, 'file:1/model.onnx': await bytes(7), 'file:2/model.onnx': await bytes(11), 'file:2/extra/side.bin': side });
      expect(res.status).toBe(200);
      for (const [v, k] of [['1', 7], ['2', 11]] as const) {
        const out = await postJson(`${server.url}/v2/models/pushed/versions/${v}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] });
        expect(await out.json()).toMatchObject({ model_version: v, outputs: [{ data: X.map((x) => x * k) }] });
      }
      const refused = async (parameters: object) => {
        const r = await load(parameters);
        return [r.status, ((await r.json()) as { error: string }).error];
      };
      expect(await refused({ 'file:1/model.onnx': await bytes(7) })).toEqual([400, "model 'pushed': file: parameters need a config parameter (the model's config as JSON)"]);
      expect(await refused({ config, 'file:1/model.onnx': 'not base64!' })).toEqual([400, "load parameter 'file:1/model.onnx': expected the file's contents as base64 text"]);
      expect(await refused({ config, 'file:../model.onnx': 'AAAA' })).toEqual([400, "load parameter 'file:../model.onnx': expected a relative path inside the model folder, such as file:1/model.onnx"]);
      // Still the pushed versions: every refusal left them serving.
      expect(((await (await fetch(`${server.url}/v2/models/pushed`)).json()) as { versions: string[] }).versions).toEqual(['1', '2']);
      expect((await postJson(`${server.url}/v2/repository/models/pushed/unload`, {})).status).toBe(200);
    } finally {
      await scratch.cleanup();
    }
  });

  it('refuses a load whose policy selects none of the folders with 400, and keeps serving', async () => {
    const res = await postJson(`${server.url}/v2/repository/models/scale/load`, {
      parameters: { config: JSON.stringify({ platform: 'onnxruntime_onnx', version_policy: { specific: { versions: [9] } } }) },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/version_policy specific \{ versions: \[9\] \} selects none of the versions present \(1, 2, 3\)/);
    expect(await infer('')).toMatchObject({ status: 200, body: { model_version: '1' } });
  });
});

describe('metric series of failed loads', () => {
  it('a version whose warm-up fails leaves no series but its failure; an unload drops those too', async () => {
    const repo = await tempDir();
    await writeScaleModel(join(repo.dir, 'w', '1'), 2);
    const warm = 'model_warmup [ { name: "z" batch_size: 1 inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]\n';
    await writeFile(join(repo.dir, 'w', 'config.pbtxt'), `platform: "onnxruntime_onnx"\nmax_batch_size: 4\nversion_policy { all { } }\n${warm}`);
    const server = await startTestServer({ modelRepository: repo.dir });
    const metrics = async () => (await (await fetch(`${server.url}/metrics`)).text()).split('\n').filter((l) => l.includes('model="w"'));
    try {
      // Version 2 takes INT32: the FP32 warm-up fails after its batcher was made; version 1 keeps serving.
      await mkdir(join(repo.dir, 'w', '2'));
      await writeDatatypeModel(join(repo.dir, 'w', '2'), 'int32');
      const bad = await postJson(`${server.url}/v2/repository/models/w/load`, {});
      expect(bad.status).toBe(400);
      expect((await postJson(`${server.url}/v2/models/w/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] })).status).toBe(200);
      const v2 = (await metrics()).filter((l) => l.includes('version="2"'));
      expect(v2.length).toBeGreaterThan(0);
      expect(v2.every((l) => l.startsWith('kinfer_model_load_duration_seconds') && l.includes('outcome="failure"'))).toBe(true);
      // A config that does not parse fails before a version is chosen (version "").
      await writeFile(join(repo.dir, 'w', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: {\n');
      expect((await postJson(`${server.url}/v2/repository/models/w/load`, {})).status).toBe(400);
      expect((await metrics()).some((l) => l.includes('version=""'))).toBe(true);
      expect((await postJson(`${server.url}/v2/repository/models/w/unload`, {})).status).toBe(200);
      expect(await metrics()).toEqual([]);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});

describe('repository monitoring of versions (Triton POLL mode)', () => {
  it('reloads only the versions whose files changed; the others keep serving as they were', async () => {
    const repo = await tempDir();
    for (const [v, k] of [['1', 2], ['2', 3]] as const) await writeScaleModel(join(repo.dir, 'scale', v), k);
    await writeFile(join(repo.dir, 'scale', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 4\nversion_policy { all { } }\n');
    const server = await startTestServer({ modelRepository: repo.dir });
    const infer = async (v: string) => {
      const res = await postJson(`${server.url}/v2/models/scale/versions/${v}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] });
      return ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    };
    const count = async (v: string) => ((await (await fetch(`${server.url}/v2/models/scale/versions/${v}/stats`)).json()) as { model_stats: { inference_count: number }[] }).model_stats[0]!.inference_count;
    const loads = async (v: string) => Number(new RegExp(`kinfer_model_load_duration_seconds_count\\{model="scale",version="${v}",outcome="success"\\} (\\d+)`).exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
    try {
      for (const v of ['1', '2']) await infer(v);
      const v1 = server.repository.get('scale', '1');
      await writeScaleModel(join(repo.dir, 'scale', '2'), 7);
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, {})).status).toBe(200);
      // Version 1: the same handle, its statistics and load count as before; version 2: new files, counted from zero.
      expect(server.repository.get('scale', '1')).toBe(v1);
      expect([await count('1'), await loads('1')]).toEqual([1, 1]);
      expect([await count('2'), await loads('2')]).toEqual([0, 2]);
      expect(await infer('2')).toEqual(X.map((x) => x * 7));
      expect(await infer('1')).toEqual(X.map((x) => x * 2));
      // A file deeper in a version folder (ONNX external data, say) counts too.
      await mkdir(join(repo.dir, 'scale', '1', 'data'));
      await writeFile(join(repo.dir, 'scale', '1', 'data', 'w.bin'), 'a');
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, {})).status).toBe(200);
      const withData = server.repository.get('scale', '1');
      expect(withData).not.toBe(v1);
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, {})).status).toBe(200);
      expect(server.repository.get('scale', '1')).toBe(withData);
      await writeFile(join(repo.dir, 'scale', '1', 'data', 'w.bin'), 'ab');
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, {})).status).toBe(200);
      expect(server.repository.get('scale', '1')).not.toBe(withData);
      // A changed config loads every version anew.
      await writeFile(join(repo.dir, 'scale', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 2\nversion_policy { all { } }\n');
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, {})).status).toBe(200);
      expect(await loads('1')).toBe(4);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });

  it('serves a version folder that appears, keeps serving through a broken one, and reloads with the last load\'s parameters', async () => {
    const repo = await tempDir();
    await writeScaleModel(join(repo.dir, 'scale', '1'), 2);
    await writeFile(join(repo.dir, 'scale', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 4\n');
    const server = await startTestServer({ modelRepository: repo.dir, repositoryPollMs: 50 });
    const infer = async () => {
      const res = await postJson(`${server.url}/v2/models/scale/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] });
      return (await res.json()) as { model_version: string; outputs: { data: number[] }[] };
    };
    const versions = async () => ((await (await fetch(`${server.url}/v2/models/scale`)).json()) as { versions: string[] }).versions;
    const metric = async (re: RegExp) => re.test(await (await fetch(`${server.url}/metrics`)).text());
    /** Polls `check` every 50 ms, at most 100 times. */
    const until = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
      return check();
    };
    try {
      expect(await versions()).toEqual(['1']);
      await writeScaleModel(join(repo.dir, 'scale', '2'), 3);
      expect(await until(async () => (await versions()).join() === '2')).toBe(true);
      expect(await infer()).toMatchObject({ model_version: '2', outputs: [{ data: X.map((x) => x * 3) }] });

      // Half-copied files: the reload fails, version 2 keeps serving.
      await mkdir(join(repo.dir, 'scale', '3'));
      await writeFile(join(repo.dir, 'scale', '3', 'model.onnx'), 'not onnx');
      expect(await until(() => metric(/kinfer_model_load_duration_seconds_count\{model="scale",version="3",outcome="failure"\} 1/))).toBe(true);
      expect(await infer()).toMatchObject({ model_version: '2' });

      // A policy given through the load API survives the next reload from changed files.
      const load = await postJson(`${server.url}/v2/repository/models/scale/load`, {
        parameters: { config: JSON.stringify({ platform: 'onnxruntime_onnx', max_batch_size: 4, version_policy: { all: {} } }) },
      });
      expect(load.status).toBe(400); // version 3 is still broken: all or nothing
      // Version 1 was made anew and closed again when 3 failed: none of its series stays behind.
      expect(await metric(/model="scale",version="1"/)).toBe(false);
      await rm(join(repo.dir, 'scale', '3'), { recursive: true });
      // Version 2's file rewritten too, so the poll's reload loads it anew (an unchanged version would be kept as it is).
      await writeScaleModel(join(repo.dir, 'scale', '2'), 3);
      expect(await until(() => metric(/kinfer_model_load_duration_seconds_count\{model="scale",version="2",outcome="success"\} 2/))).toBe(true);
      expect(await versions()).toEqual(['2']);
      expect((await postJson(`${server.url}/v2/repository/models/scale/load`, { parameters: { config: JSON.stringify({ platform: 'onnxruntime_onnx', max_batch_size: 4, version_policy: { all: {} } }) } })).status).toBe(200);
      expect(await versions()).toEqual(['1', '2']);
      await writeScaleModel(join(repo.dir, 'scale', '3'), 5);
      expect(await until(async () => (await versions()).join() === '1,2,3')).toBe(true);
      expect(await infer()).toMatchObject({ model_version: '3', outputs: [{ data: X.map((x) => x * 5) }] });

      // An unload through the API holds while the folder stays, changed or not.
      expect((await postJson(`${server.url}/v2/repository/models/scale/unload`, {})).status).toBe(200);
      await writeScaleModel(join(repo.dir, 'scale', '4'), 7);
      await new Promise((r) => setTimeout(r, 300));
      expect((await fetch(`${server.url}/v2/models/scale`)).status).toBe(404);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});
