/**
 * ONNX models stored as folders (Triton's directory form, `<v>/model.onnx/model.onnx` with
 * its external data beside it) through a real server on 127.0.0.1: exact answers, a folder
 * without its graph refused with 400 while the serving version keeps answering, a rewrite of
 * the external data reloading the version, and the same folder sent as `file:` parameters.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { mlpReference, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

const CONFIG = 'platform: "onnxruntime_onnx"\nmax_batch_size: 4\n';
// Integer inputs and weights in quarters: the answers are exact in FP32.
const X = [1, 2, 3, 4, -4, 3, -1, -2, 2, -1, -3, -5];
const WANT = [7.75, 0, 0, 6.75, 0, 3.5, 0, 1, 9.25];

describe("ONNX model folders (Triton's model.onnx/ directory form)", () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;

  beforeAll(async () => {
    repo = await tempDir();
    mlp = await writeMlpModel(join(repo.dir, 'folder', '1'), 'model.onnx/model.onnx', 'weights.bin');
    await writeFile(join(repo.dir, 'folder', 'config.pbtxt'), CONFIG);
    await writeMlpModel(join(repo.dir, 'named', '1'), 'net.onnx/model.onnx', 'net.data');
    await writeFile(join(repo.dir, 'named', 'config.pbtxt'), `${CONFIG}default_model_filename: "net.onnx"\n`);
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const infer = async (model: string) => {
    const res = await postJson(`${server.url}/v2/models/${model}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 4], data: X }] });
    return { status: res.status, body: (await res.json()) as { model_version?: string; outputs?: { data: number[] }[] } };
  };
  const load = async (model: string, parameters?: object) => {
    const res = await postJson(`${server.url}/v2/repository/models/${model}/load`, parameters ? { parameters } : {});
    return { status: res.status, body: (await res.json()) as { error?: string } };
  };

  it('serves the graph inside the folder with its external data, also when default_model_filename names the folder', async () => {
    expect(WANT).toEqual(Array.from(mlpReference(mlp, Float32Array.from(X))));
    for (const model of ['folder', 'named']) {
      expect(await infer(model)).toMatchObject({ status: 200, body: { model_version: '1', outputs: [{ data: WANT }] } });
    }
  });

  it('refuses a folder without model.onnx with 400 naming the path, the serving version answering on; reloads when the external data changes', async () => {
    const v2 = join(repo.dir, 'folder', '2', 'model.onnx');
    await mkdir(v2, { recursive: true });
    await writeFile(join(v2, 'weights.bin'), await readFile(join(repo.dir, 'folder', '1', 'model.onnx', 'weights.bin')));
    const refused = await load('folder');
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatch(/^model 'folder' version 2: model\.onnx is a folder and .*\/folder\/2\/model\.onnx\/model\.onnx is missing: /);
    expect(await infer('folder')).toMatchObject({ status: 200, body: { model_version: '1', outputs: [{ data: WANT }] } });

    await writeMlpModel(join(repo.dir, 'folder', '2'), 'model.onnx/model.onnx', 'weights.bin');
    expect(await load('folder')).toMatchObject({ status: 200, body: { load: true } });
    expect(await infer('folder')).toMatchObject({ status: 200, body: { model_version: '2', outputs: [{ data: WANT }] } });

    // The same graph with every weight doubled (the data file holds W's bytes, then B's): relu(2z) = 2·relu(z).
    const doubled = (a: Float32Array) => Buffer.from(Float32Array.from(a, (w) => w * 2).buffer);
    await writeFile(join(v2, 'weights.bin'), Buffer.concat([doubled(mlp.weights), doubled(mlp.bias)]));
    expect(await load('folder')).toMatchObject({ status: 200, body: { load: true } });
    expect(await infer('folder')).toMatchObject({ status: 200, body: { model_version: '2', outputs: [{ data: WANT.map((w) => w * 2) }] } });
  });

  it('loads the folder sent as file: parameters', async () => {
    const src = join(repo.dir, 'named', '1', 'net.onnx');
    expect((await readdir(src)).sort()).toEqual(['model.onnx', 'net.data']);
    const file = async (name: string) => (await readFile(join(src, name))).toString('base64');
    const config = JSON.stringify({ platform: 'onnxruntime_onnx', max_batch_size: 4 });
    const pushed = await load('pushed', { config, 'file:1/model.onnx/model.onnx': await file('model.onnx'), 'file:1/model.onnx/net.data': await file('net.data') });
    expect(pushed).toMatchObject({ status: 200, body: { name: 'pushed', load: true } });
    expect(await infer('pushed')).toMatchObject({ status: 200, body: { model_version: '1', outputs: [{ data: WANT }] } });
  });
});
