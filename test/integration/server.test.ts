/**
 * A real server on 127.0.0.1 serving the default repository (`models/`: echo
 * and the PaddleOCR detection model) plus a temp repository for load/unload.
 */
import { gzipSync, gunzipSync, deflateSync } from 'node:zlib';
import { cp, mkdir, readdir, readFile, symlink, writeFile, rm } from 'node:fs/promises';
import { pino } from 'pino';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelRepository } from '../../runtime/config.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';
import { storagePuller } from '../../runtime/storage/puller.js';
import { mlpReference, writeDatatypeModel, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';

const OCR_MODEL = join(defaultModelRepository(), 'ocr-det', '1', 'model.onnx');

describe('default repository (echo, ocr-det)', () => {
  let server: RunningServer;
  let url: string;
  beforeAll(async () => {
    server = await startTestServer({ modelRepository: defaultModelRepository() });
    url = server.url;
  });
  afterAll(() => server.close());

  it('answers health, server metadata and the model list', async () => {
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
    const ready = await fetch(`${url}/v2/health/ready`);
    expect(ready.status).toBe(200);
    const meta = (await (await fetch(`${url}/v2`)).json()) as { name: string; extensions: string[] };
    expect(meta.name).toBe('kinfer');
    expect(meta.extensions).toEqual(expect.arrayContaining(['binary_tensor_data', 'model_repository']));
    const list = (await (await fetch(`${url}/v2/models`)).json()) as { models: string[] };
    expect(list.models).toEqual(['echo', 'ocr-det']);
  });

  it('answers Triton\'s model configuration (GET .../config): the config file completed from the model, as perf_analyzer reads it', async () => {
    for (const path of ['/v2/models/ocr-det/config', '/v2/models/ocr-det/versions/1/config']) {
      const res = await fetch(url + path);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        name: 'ocr-det',
        platform: 'onnxruntime_onnx',
        version_policy: { latest: { num_versions: 1 } },
        max_batch_size: 8,
        input: [{ name: 'x', data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: [3, -1, -1] }],
        output: [{ name: 'sigmoid_0.tmp_0', data_type: 'TYPE_FP32', dims: [1, -1, -1] }],
        instance_group: [{ name: 'ocr-det', kind: 'KIND_CPU', count: 1 }],
        parameters: { batch_policy: { string_value: 'adaptive' } },
        dynamic_batching: { preferred_batch_size: [4, 8], max_queue_delay_microseconds: 2000 },
      });
    }
    // echo has no declared tensors and does not batch: dims are whole shapes, no dynamic_batching.
    const echo = (await (await fetch(`${url}/v2/models/echo/config`)).json()) as Record<string, unknown>;
    expect(echo).toMatchObject({ name: 'echo', platform: 'echo', max_batch_size: 0, input: [], output: [] });
    expect(echo.dynamic_batching).toBeUndefined();
    expect((await fetch(`${url}/v2/models/nope/config`)).status).toBe(404);
    expect(((await (await fetch(`${url}/v2`)).json()) as { extensions: string[] }).extensions).toContain('model_configuration');
  });

  it('reports ocr-det metadata with dynamic dims as -1, with and without a version', async () => {
    for (const path of ['/v2/models/ocr-det', '/v2/models/ocr-det/versions/1']) {
      const res = await fetch(url + path);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        name: 'ocr-det',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
        outputs: [{ name: 'sigmoid_0.tmp_0', datatype: 'FP32', shape: [-1, 1, -1, -1] }],
      });
    }
    expect((await fetch(`${url}/v2/models/ocr-det/ready`)).status).toBe(200);
    expect((await fetch(`${url}/v2/models/ocr-det/versions/1/ready`)).status).toBe(200);
    const v9 = await fetch(`${url}/v2/models/ocr-det/versions/9`);
    expect(v9.status).toBe(404);
    expect(((await v9.json()) as { error: string }).error).toMatch(/version '9'/);
    const unknown = await fetch(`${url}/v2/models/nope`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: "model 'nope' is not found" });
  });

  it('serves ocr-det with the same output as an in-process onnxruntime run', async () => {
    const [h, w] = [64, 96];
    const x = Float32Array.from({ length: 3 * h * w }, (_, i) => Math.sin(i * 0.37) * 0.5 + 0.5);
    const res = await postJson(`${url}/v2/models/ocr-det/infer`, {
      id: 'req-1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, h, w], data: Array.from(x) }],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      id: string;
      model_name: string;
      model_version: string;
      outputs: { name: string; datatype: string; shape: number[]; data: number[] }[];
      parameters?: unknown;
    };
    expect(body.id).toBe('req-1');
    expect(body.model_name).toBe('ocr-det');
    expect(body.model_version).toBe('1');
    expect('parameters' in body).toBe(false);
    const session = await ort.InferenceSession.create(OCR_MODEL);
    const direct = await session.run({ x: new ort.Tensor('float32', x, [1, 3, h, w]) });
    const expected = direct['sigmoid_0.tmp_0']!;
    expect(body.outputs[0]!.shape).toEqual(expected.dims);
    const got = Float32Array.from(body.outputs[0]!.data);
    const want = expected.data as Float32Array;
    expect(got.length).toBe(want.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    expect(maxDiff).toBeLessThan(1e-5);
    await session.release();
  });

  it('answers the binary extension with binary outputs on ocr-det', async () => {
    const [h, w] = [32, 32];
    const x = Float32Array.from({ length: 3 * h * w }, (_, i) => (i % 17) / 17);
    const header = new TextEncoder().encode(
      JSON.stringify({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, h, w], parameters: { binary_data_size: x.byteLength } }],
        outputs: [{ name: 'sigmoid_0.tmp_0', parameters: { binary_data: true } }],
      }),
    );
    const body = Buffer.concat([header, Buffer.from(x.buffer)]);
    const res = await fetch(`${url}/v2/models/ocr-det/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const len = Number(res.headers.get('inference-header-content-length'));
    const bytes = new Uint8Array(await res.arrayBuffer());
    const json = JSON.parse(new TextDecoder().decode(bytes.subarray(0, len))) as {
      outputs: { shape: number[]; parameters: { binary_data_size: number } }[];
    };
    expect(json.outputs[0]!.shape).toEqual([1, 1, h, w]);
    expect(json.outputs[0]!.parameters.binary_data_size).toBe(h * w * 4);
    expect(bytes.byteLength - len).toBe(h * w * 4);
  });

  it('echo returns every input with its name, datatype and shape, honouring requested outputs', async () => {
    const inputs = [
      { name: 'a', datatype: 'INT32', shape: [2, 2], data: [[1, -2], [3, 4]] },
      { name: 'b', datatype: 'BYTES', shape: [2], data: ['hello', 'wörld'] },
      { name: 'c', datatype: 'BOOL', shape: [3], data: [true, false, true] },
      { name: 'd', datatype: 'FP16', shape: [2], data: [1.5, -0.25] },
      { name: 'e', datatype: 'UINT64', shape: [1], data: [42] },
    ];
    const res = await postJson(`${url}/v2/models/echo/infer`, { inputs });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: unknown[] };
    expect(body.outputs).toEqual(inputs.map((t) => ({ ...t, data: t.data.flat() })));
    const only = await postJson(`${url}/v2/models/echo/infer`, { inputs, outputs: [{ name: 'b' }] });
    expect(((await only.json()) as { outputs: { name: string }[] }).outputs.map((o) => o.name)).toEqual(['b']);
  });

  it('inflates gzip and deflate request bodies and compresses responses on Accept-Encoding', async () => {
    const req = { inputs: [{ name: 'x', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] }] };
    for (const [enc, fn] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      const res = await fetch(`${url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': enc },
        body: fn(JSON.stringify(req)),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([1, 2, 3, 4]);
    }
    const big = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2000], data: new Array(2000).fill(0.5) }] };
    const { request } = await import('node:http');
    const raw = await new Promise<{ enc?: string; body: Buffer }>((resolve, reject) => {
      const r = request(`${url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      });
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ enc: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      });
      r.on('error', reject);
      r.end(JSON.stringify(big));
    });
    expect(raw.enc).toBe('gzip');
    const parsed = JSON.parse(gunzipSync(raw.body).toString()) as { outputs: { data: number[] }[] };
    expect(parsed.outputs[0]!.data).toHaveLength(2000);
  });

  it('never compresses health and readiness probes, even on Accept-Encoding', async () => {
    const { get } = await import('node:http');
    for (const path of ['/v2/health/live', '/v2/health/ready', '/v2/models/echo/ready']) {
      const got = await new Promise<{ status?: number; enc?: string; body: string }>((resolve, reject) => {
        get(`${url}${path}`, { headers: { 'accept-encoding': 'gzip, deflate' } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode, enc: res.headers['content-encoding'], body }));
        }).on('error', reject);
      });
      expect(got, path).toMatchObject({ status: 200, enc: undefined });
      expect(JSON.parse(got.body), path).toMatchObject(path.endsWith('live') ? { live: true } : { ready: true });
    }
  });

  it('maps every client mistake to a 4xx naming the problem', async () => {
    const infer = (model: string, body: unknown, headers?: Record<string, string>) =>
      postJson(`${url}/v2/models/${model}/infer`, body, headers);
    const cases: [Promise<Response>, number, RegExp][] = [
      [infer('ocr-det', '{"inputs": [', {}), 400, /JSON/i],
      [infer('ocr-det', { inputs: [{ name: 'x', datatype: 'FP64', shape: [1, 3, 2, 2], data: new Array(12).fill(0) }] }), 400, /datatype/],
      [infer('ocr-det', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 2, 2], data: [1, 2] }] }), 400, /12 elements|element/],
      [infer('ocr-det', { inputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [1] }] }), 400, /unknown input 'y'/],
      [infer('ocr-det', { inputs: [] }), 400, /missing input 'x'/],
      [infer('ocr-det', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4, 2, 2], data: new Array(16).fill(0) }] }), 400, /shape/],
      [infer('nope', { inputs: [] }), 404, /nope/],
      [infer('..%2Fx', { inputs: [] }), 400, /not valid|plain name/],
      [infer('echo', { inputs: [{ name: 'x', datatype: 'FLOAT', shape: [1], data: [1] }] }), 400, /datatype/],
      [infer('ocr-det', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 2, 2], data: new Array(12).fill(0) }], outputs: [{ name: 'zzz' }] }), 400, /unknown output 'zzz'/],
    ];
    for (const [pending, status, pattern] of cases) {
      const res = await pending;
      const body = (await res.json()) as { error: string };
      expect({ status: res.status, error: body.error }).toEqual({ status, error: expect.stringMatching(pattern) });
    }
  });

  it('echoes x-request-id and counts requests per model in /metrics', async () => {
    const res = await postJson(
      `${url}/v2/models/echo/infer`,
      { inputs: [{ name: 'q', datatype: 'INT8', shape: [1], data: [7] }] },
      { 'x-request-id': 'trace-me-123' },
    );
    expect(res.headers.get('x-request-id')).toBe('trace-me-123');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/kinfer_request_duration_seconds_count\{[^}]*model="echo"[^}]*status="200"[^}]*\} [1-9]/);
    expect(metrics).not.toMatch(/path="\/metrics"/);
  });

  it('never turns a client-chosen model name into a metrics series (unknown models, versions, loads)', async () => {
    const one = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] };
    for (let i = 0; i < 3; i++) {
      expect((await postJson(`${url}/v2/models/ghost-${i}/infer`, one)).status).toBe(404);
      expect((await postJson(`${url}/v2/models/echo/versions/v-${i}/infer`, one)).status).toBe(404);
      const event = { 'ce-specversion': '1.0', 'ce-id': `e${i}`, 'ce-source': '/t', 'ce-type': 't', 'ce-model': `spook-${i}` };
      expect((await postJson(`${url}/`, one, event)).status).toBe(404);
      expect((await postJson(`${url}/v2/repository/models/phantom-${i}/load`, {})).status).toBeGreaterThanOrEqual(400);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/kinfer_request_duration_seconds_count\{[^}]*model=""[^}]*status="404"[^}]*\} [1-9]/);
    expect(metrics).not.toMatch(/ghost-|spook-|phantom-|version="v-/);
    const index = (await (await postJson(`${url}/v2/repository/index`, {})).json()) as { name: string }[];
    expect(index.map((e) => e.name)).not.toContain('phantom-0');
  });

  it("routes a CloudEvent by its subject only when the subject names a served model (sources set their own subjects)", async () => {
    const one = { inputs: [{ name: 'q', datatype: 'INT8', shape: [1], data: [7] }] };
    const event = (subject: string) => ({ 'ce-specversion': '1.0', 'ce-id': 'e', 'ce-source': '/t', 'ce-type': 't', 'ce-subject': subject });
    const echo = await postJson(`${url}/`, one, event('echo'));
    expect(echo.status).toBe(200);
    expect(echo.headers.get('ce-source')).toBe('/models/echo');
    // Two models here and no `model` attribute: a subject like a file name cannot pick one.
    const photo = await postJson(`${url}/`, one, event('photo.jpg'));
    expect(photo.status).toBe(400);
    expect(((await photo.json()) as { error: string }).error).toMatch(/its subject "photo\.jpg" names no model served here/);
  });

  it('accepts CloudEvents in binary and structured mode and replies in kind', async () => {
    const data = { id: 'ce-req', inputs: [{ name: 'v', datatype: 'INT32', shape: [2], data: [5, 6] }] };
    const binary = await fetch(`${url}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-id': 'evt-1',
        'ce-source': '/test',
        'ce-type': 'io.kinfer.inference.request',
        'ce-model': 'echo',
        'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
      body: JSON.stringify(data),
    });
    expect(binary.status).toBe(200);
    expect(binary.headers.get('ce-type')).toBe('io.kinfer.inference.response');
    expect(binary.headers.get('ce-source')).toBe('/models/echo');
    expect(binary.headers.get('ce-inresponseto')).toBe('evt-1');
    expect(binary.headers.get('ce-requestid')).toBe('ce-req');
    expect(binary.headers.get('ce-traceparent')).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(binary.headers.get('ce-id')).not.toBe('evt-1');
    expect(((await binary.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([5, 6]);

    const structured = await fetch(`${url}/v2/models/echo/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'evt-2', source: '/test', type: 't', datacontenttype: 'application/json', data }),
    });
    expect(structured.status).toBe(200);
    expect(structured.headers.get('content-type')).toMatch(/application\/cloudevents\+json/);
    const event = (await structured.json()) as { type: string; inresponseto: string; data: { outputs: { data: number[] }[] } };
    expect(event.type).toBe('io.kinfer.inference.response');
    expect(event.inresponseto).toBe('evt-2');
    expect(event.data.outputs[0]!.data).toEqual([5, 6]);

    const missing = await fetch(`${url}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'x', 'ce-type': 't', 'ce-model': 'echo' },
      body: JSON.stringify(data),
    });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: string }).error).toMatch(/'source'/);

    // Header values are percent-encoded both ways (HTTP binding 3.1.3.2): any v2 request id fits in ce-requestid.
    const unicode = await fetch(`${url}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'evt%20%E2%82%AC', 'ce-source': '/test', 'ce-type': 't', 'ce-model': 'echo' },
      body: JSON.stringify({ ...data, id: 'req "€" 100%\n' }),
    });
    expect(unicode.status).toBe(200);
    expect(unicode.headers.get('ce-requestid')).toBe('req%20%22%E2%82%AC%22%20100%25%0A');
    expect(unicode.headers.get('ce-inresponseto')).toBe('evt%20%E2%82%AC');
    expect(((await unicode.json()) as { id: string }).id).toBe('req "€" 100%\n');
  });

  it('refuses an oversized body with 413 and keeps serving', async () => {
    const small = await startTestServer({ modelRepository: defaultModelRepository(), maxBodyBytes: 1024 });
    try {
      const res = await postJson(`${small.url}/v2/models/echo/infer`, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1000], data: new Array(1000).fill(1.25) }],
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toMatch(/exceeds the limit of 1024 bytes/);
      const bomb = await fetch(`${small.url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync(Buffer.alloc(1 << 20, 32)),
      });
      expect(bomb.status).toBe(413);
      expect((await fetch(`${small.url}/v2/health/live`)).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('caps the JSON part apart from the body (KINFER_MAX_JSON_BYTES): 413 for JSON, the same tensor binary passes', async () => {
    const capped = await startTestServer({ modelRepository: defaultModelRepository(), maxJsonBytes: 1024 });
    try {
      const data = new Array(1000).fill(1.25);
      const json = await postJson(`${capped.url}/v2/models/echo/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1000], data }] });
      expect(json.status).toBe(413);
      expect(((await json.json()) as { error: string }).error).toMatch(/over the limit of 1024 \(KINFER_MAX_JSON_BYTES\); send large tensors with the binary extension/);
      const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1000], parameters: { binary_data_size: 4000 } }] }));
      const binary = await fetch(`${capped.url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
        body: Buffer.concat([header, Buffer.from(Float32Array.from(data).buffer)]),
      });
      expect(binary.status).toBe(200);
    } finally {
      await capped.close();
    }
  });
});

describe('model repository extension', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'mlp', '1'), { recursive: true });
    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await mkdir(join(repo.dir, 'xmodel-resnet'), { recursive: true });
    await writeFile(join(repo.dir, 'xmodel-resnet', 'model.xmodel'), 'not a real xmodel');
    server = await startTestServer({ modelRepository: repo.dir, mode: 'multi-model' });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const x = Float32Array.from([0.5, -1, 2, 0.25, 1, 1, -0.5, 3]);
  async function inferMlp(): Promise<Response> {
    return postJson(`${server.url}/v2/models/mlp/infer`, {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: Array.from(x) }],
    });
  }

  it('starts empty, loads on request, serves, and unloads', async () => {
    expect(((await (await fetch(`${server.url}/v2/models`)).json()) as { models: string[] }).models).toEqual([]);
    expect((await inferMlp()).status).toBe(404);
    const index0 = await (await postJson(`${server.url}/v2/repository/index`, {})).json();
    expect(index0).toEqual(expect.arrayContaining([{ name: 'mlp', state: 'UNAVAILABLE', reason: 'unloaded' }]));
    const load = await postJson(`${server.url}/v2/repository/models/mlp/load`, {});
    expect(load.status).toBe(200);
    const res = await inferMlp();
    expect(res.status).toBe(200);
    const out = (await res.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] };
    expect(out.outputs[0]!.shape).toEqual([2, 3]);
    const want = mlpReference(mlp, x);
    out.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    const index1 = await (await postJson(`${server.url}/v2/repository/index`, {})).json();
    expect(index1).toEqual(expect.arrayContaining([{ name: 'mlp', version: '1', state: 'READY' }]));
    expect((await postJson(`${server.url}/v2/repository/models/mlp/unload`, {})).status).toBe(200);
    expect((await inferMlp()).status).toBe(404);
    expect((await postJson(`${server.url}/v2/repository/models/mlp/unload`, {})).status).toBe(404);
  });

  it('keeps the previous version serving when a reload fails', async () => {
    expect((await postJson(`${server.url}/v2/repository/models/mlp/load`, {})).status).toBe(200);
    await mkdir(join(repo.dir, 'mlp', '2'), { recursive: true });
    await writeFile(join(repo.dir, 'mlp', '2', 'model.onnx'), 'garbage, not protobuf');
    const reload = await postJson(`${server.url}/v2/repository/models/mlp/load`, {});
    expect(reload.status).toBeGreaterThanOrEqual(400);
    expect(((await reload.json()) as { error: string }).error.length).toBeGreaterThan(0);
    const res = await inferMlp();
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model_version: string }).model_version).toBe('1');
    await rm(join(repo.dir, 'mlp', '2'), { recursive: true });
    await cp(join(repo.dir, 'mlp', '1'), join(repo.dir, 'mlp', '3'), { recursive: true });
    expect((await postJson(`${server.url}/v2/repository/models/mlp/load`, {})).status).toBe(200);
    expect(((await (await inferMlp()).json()) as { model_version: string }).model_version).toBe('3');
  });

  it('runs model_warmup before the load answers; a failing sample fails the reload and the previous version serves', async () => {
    const m = join(repo.dir, 'mlpw');
    await mkdir(join(m, '1'), { recursive: true });
    await mkdir(join(m, 'warmup'));
    await cp(mlp.path, join(m, '1', 'model.onnx'));
    await writeFile(join(m, 'warmup', 'x.bin'), Buffer.from(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]).buffer));
    const config = (input: string) =>
      `max_batch_size: 4\nmodel_warmup [ { name: "rows" batch_size: 2 count: 2 inputs { key: "${input}" value { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "x.bin" } } } ]\n`;
    await writeFile(join(m, 'config.pbtxt'), config('x'));
    expect((await postJson(`${server.url}/v2/repository/models/mlpw/load`, {})).status).toBe(200);
    const infer = () => postJson(`${server.url}/v2/models/mlpw/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: Array.from(x) }] });
    const first = await infer();
    expect(first.status).toBe(200);
    expect(((await first.json()) as { model_version: string }).model_version).toBe('1');

    await writeFile(join(m, 'config.pbtxt'), config('nope'));
    await cp(join(m, '1'), join(m, '2'), { recursive: true });
    const reload = await postJson(`${server.url}/v2/repository/models/mlpw/load`, {});
    expect(reload.status).toBe(400);
    expect(((await reload.json()) as { error: string }).error).toMatch(/^model 'mlpw': model_warmup 'rows': model 'mlpw': unknown input 'nope' \(inputs: x\)/);
    const still = await infer();
    expect(still.status).toBe(200);
    expect(((await still.json()) as { model_version: string }).model_version).toBe('1');
  });

  it('fails an xmodel-* load with a clear message and keeps serving the others', async () => {
    const res = await postJson(`${server.url}/v2/repository/models/xmodel-resnet/load`, {});
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).not.toBe(500);
    expect(((await res.json()) as { error: string }).error).toMatch(/FPGA|xmodel|XModel|addon|libvart|XRT/i);
    expect((await inferMlp()).status).toBe(200);
  });

  it('refuses model names that are not plain names', async () => {
    const res = await postJson(`${server.url}/v2/repository/models/..%2F..%2Fetc/load`, {});
    expect(res.status).toBe(400);
    const bad = await postJson(`${server.url}/v2/repository/models/mlp/load`, '{"parameters": 5}');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/parameters/);
  });
});

describe('a batching model (max_batch_size 8, labels): classification and raw binary requests', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'cls', '1'), { recursive: true });
    mlp = await writeMlpModel(join(repo.dir, 'cls', '1'));
    await writeFile(
      join(repo.dir, 'cls', 'config.pbtxt'),
      'max_batch_size: 8\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" } ]\n',
    );
    await writeFile(join(repo.dir, 'cls', 'labels.txt'), 'ant\nbee\ncat\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('answers an output requested with parameters.classification as its top classes with labels, per batch row', async () => {
    const x = Float32Array.from([1, 2, 3, 4, -1, 0.5, 2, -3]);
    const want = mlpReference(mlp, x);
    const expected = [0, 1].flatMap((r) =>
      [0, 1, 2]
        .sort((a, b) => want[r * 3 + b]! - want[r * 3 + a]! || a - b)
        .slice(0, 2)
        .map((i) => `${want[r * 3 + i]!.toFixed(6)}:${i}:${['ant', 'bee', 'cat'][i]}`),
    );
    const infer = (parameters: unknown) =>
      postJson(`${server.url}/v2/models/cls/infer`, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: Array.from(x) }],
        outputs: [{ name: 'y', parameters }],
      });
    const res = await infer({ classification: 2 });
    expect(res.status).toBe(200);
    const out = ((await res.json()) as { outputs: { name: string; datatype: string; shape: number[]; data: string[] }[] }).outputs[0]!;
    expect(out).toEqual({ name: 'y', datatype: 'BYTES', shape: [2, 2], data: expected });
    const bad = await infer({ classification: -2 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/parameters\.classification: expected a non-negative integer/);
    const meta = (await (await fetch(`${server.url}/v2`)).json()) as { extensions: string[] };
    expect(meta.extensions).toContain('classification');
  });

  it('treats a raw binary request (Inference-Header-Content-Length: 0) as batch 1, as the binary extension says', async () => {
    const raw = (floats: number[]) =>
      fetch(`${server.url}/v2/models/cls/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' },
        body: Buffer.from(Float32Array.from(floats).buffer),
      });
    const one = await raw([1, 2, 3, 4]);
    expect(one.status).toBe(200);
    const headerLength = Number(one.headers.get('inference-header-content-length'));
    const body = Buffer.from(await one.arrayBuffer());
    const header = JSON.parse(body.subarray(0, headerLength).toString()) as { outputs: { name: string; shape: number[] }[] };
    expect(header.outputs[0]).toMatchObject({ name: 'y', shape: [1, 3] });
    const y = new Float32Array(body.buffer.slice(body.byteOffset + headerLength, body.byteOffset + headerLength + 12));
    expect(Array.from(y)).toEqual(Array.from(mlpReference(mlp, Float32Array.from([1, 2, 3, 4]))));
    const two = await raw([1, 2, 3, 4, 5, 6, 7, 8]); // two rows' bytes: not a batch-1 input
    expect(two.status).toBe(400);
    expect(((await two.json()) as { error: string }).error.length).toBeGreaterThan(0);
  });
});

describe('a model without a config whose dim 0 is variable (max_batch_size 0): dim 0 is no batch dim', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'ints', '1'), { recursive: true });
    await writeDatatypeModel(join(repo.dir, 'ints', '1'), 'int32'); // x [n] -> y = x, z = x + x
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });
  const infer = (body: unknown, model = 'ints') => postJson(`${server.url}/v2/models/${model}/infer`, body);
  const x = (data: number[], extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'x', datatype: 'INT32', shape: [data.length], data }], ...extra });

  it('reports max_batch_size 0 and dims [-1], and takes a raw binary body of any length as shape [n]', async () => {
    const config = (await (await fetch(`${server.url}/v2/models/ints/config`)).json()) as { max_batch_size: number; input: { dims: number[] }[] };
    expect([config.max_batch_size, config.input[0]!.dims]).toEqual([0, [-1]]);
    const res = await fetch(`${server.url}/v2/models/ints/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' },
      body: Buffer.from(Int32Array.from([7, -3]).buffer),
    });
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get('inference-header-content-length'));
    const header = JSON.parse(bytes.subarray(0, headerLength).toString()) as { outputs: { name: string; shape: number[] }[] };
    expect(header.outputs.map((o) => [o.name, o.shape])).toEqual([['y', [2]], ['z', [2]]]);
    expect(Array.from(new Int32Array(bytes.buffer.slice(bytes.byteOffset + headerLength, bytes.byteOffset + headerLength + 8)))).toEqual([7, -3]);
  });

  it('classifies the whole output, not each element as a row', async () => {
    const res = await infer(x([5, 9, 1], { outputs: [{ name: 'z', parameters: { classification: 2 } }] }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: { shape: number[]; data: string[] }[] }).outputs[0]).toMatchObject({ shape: [2], data: ['18:1', '10:0'] });
  });

  it("takes Triton's timeout 0 (no timeout of the request's own) and refuses a negative one", async () => {
    expect((await infer(x([1], { parameters: { timeout: 0 } }))).status).toBe(200);
    const bad = await infer(x([1], { parameters: { timeout: -1 } }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/parameters\.timeout: expected a number of microseconds ≥ 0/);
  });

  it('answers many requested outputs by name, in the order asked (echo: one output per input)', async () => {
    const n = 2_000;
    const inputs = Array.from({ length: n }, (_, i) => ({ name: `t${i}`, datatype: 'INT32', shape: [1], data: [i] }));
    const outputs = Array.from({ length: n }, (_, i) => ({ name: `t${(i * 7) % n}` }));
    const res = await infer({ inputs, outputs }, 'echo');
    expect(res.status).toBe(200);
    const out = ((await res.json()) as { outputs: { name: string; data: number[] }[] }).outputs;
    expect(out.map((o) => [o.name, o.data[0]])).toEqual(outputs.map((o) => [o.name, Number(o.name.slice(1))]));
    const unknown = await infer({ inputs, outputs: [{ name: 'nope' }] }, 'echo');
    expect(unknown.status).toBe(400);
  });
});

describe('load with parameters.storage_uri', () => {
  it('pulls and serves; a reload whose new files fail to load puts the old files back, so the next plain load works', async () => {
    const repo = await tempDir();
    const src = await tempDir('kinfer-src-');
    await mkdir(join(src.dir, 'good'));
    await mkdir(join(src.dir, 'bad'));
    const good = await writeMlpModel(join(src.dir, 'good'));
    await writeFile(join(src.dir, 'bad', 'model.onnx'), 'garbage, not protobuf');
    const server = await startTestServer({ modelRepository: repo.dir, mode: 'multi-model', pull: storagePuller({ logger: pino({ level: 'silent' }) }), localLoadRoots: [src.dir] });
    const load = (body: unknown) => postJson(`${server.url}/v2/repository/models/m/load`, body);
    const infer = () => postJson(`${server.url}/v2/models/m/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    try {
      expect((await load({ parameters: { storage_uri: `file://${good.path}` } })).status).toBe(200);
      expect((await infer()).status).toBe(200);
      const bad = await load({ parameters: { storage_uri: `file://${join(src.dir, 'bad', 'model.onnx')}` } });
      expect(bad.status).toBeGreaterThanOrEqual(400);
      expect((await infer()).status).toBe(200);
      expect(await readFile(join(repo.dir, 'm', 'model.onnx'))).toEqual(await readFile(good.path));
      expect((await readdir(repo.dir)).sort()).toEqual(['m']); // nothing left beside it
      expect((await load({})).status).toBe(200);
      expect((await infer()).status).toBe(200);
      // A new name whose first pull fails to load leaves no folder behind for a restart to trip on.
      const fresh = await postJson(`${server.url}/v2/repository/models/n2/load`, { parameters: { storage_uri: `file://${join(src.dir, 'bad', 'model.onnx')}` } });
      expect(fresh.status).toBeGreaterThanOrEqual(400);
      expect((await readdir(repo.dir)).sort()).toEqual(['m']);
    } finally {
      await server.close();
      await repo.cleanup();
      await src.cleanup();
    }
  });

  it('reads local files only under KINFER_LOAD_LOCAL_ROOTS: not /etc, not through .. or a link leading out', async () => {
    const repo = await tempDir();
    const src = await tempDir('kinfer-src-');
    await mkdir(join(src.dir, 'good'));
    const good = await writeMlpModel(join(src.dir, 'good'));
    await symlink('/etc', join(src.dir, 'etc-link'));
    const server = await startTestServer({
      modelRepository: repo.dir,
      mode: 'multi-model',
      pull: storagePuller({ logger: pino({ level: 'silent' }) }),
      env: { ...process.env, KINFER_LOAD_LOCAL_ROOTS: `/nonexistent-kinfer-root:${src.dir}` },
    });
    // A config whose label file is /etc/passwd would be read back through classification: the load must not happen.
    const config = JSON.stringify({ platform: 'echo', output: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3], label_filename: 'passwd' }] });
    const load = (uri: string) => postJson(`${server.url}/v2/repository/models/leak/load`, { parameters: { storage_uri: uri, config } });
    try {
      for (const uri of ['file:///etc', '/etc', `file://${src.dir}/../../etc`, `file://${join(src.dir, 'etc-link')}`]) {
        const res = await load(uri);
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toMatch(/may name local files only under KINFER_LOAD_LOCAL_ROOTS \(\/nonexistent-kinfer-root, /);
      }
      expect((await fetch(`${server.url}/v2/models/leak/ready`)).status).not.toBe(200);
      // Inside the roots it loads as before.
      const ok = await postJson(`${server.url}/v2/repository/models/m/load`, { parameters: { storage_uri: `file://${good.path}` } });
      expect(ok.status).toBe(200);
    } finally {
      await server.close();
      await repo.cleanup();
      await src.cleanup();
    }
  });
});

describe('KServe model agent contract (multi-model)', () => {
  it('loads files placed directly in /mnt/models/<name>/ with a SUCCESS.<sha> marker, and unloads after the folder is gone', async () => {
    const repo = await tempDir();
    const server = await startTestServer({ modelRepository: repo.dir, mode: 'multi-model' });
    try {
      const dir = join(repo.dir, 'agent-mlp');
      await mkdir(dir, { recursive: true });
      const mlp = await writeMlpModel(dir);
      await writeFile(join(dir, 'SUCCESS.6f1ed002ab5595859014ebf0951522d9'), '');
      expect((await postJson(`${server.url}/v2/repository/models/agent-mlp/load`, {})).status).toBe(200);
      const x = Float32Array.from([1, 2, 3, 4]);
      const res = await postJson(`${server.url}/v2/models/agent-mlp/infer`, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Array.from(x) }],
      });
      const out = (await res.json()) as { model_version: string; outputs: { data: number[] }[] };
      expect(out.model_version).toBe('1');
      const want = mlpReference(mlp, x);
      out.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      await rm(dir, { recursive: true });
      expect((await postJson(`${server.url}/v2/repository/models/agent-mlp/unload`, {})).status).toBe(200);
      expect((await fetch(`${server.url}/v2/models/agent-mlp/ready`)).status).not.toBe(200);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});

describe('KServe model agent contract: the function\'s own model config', () => {
  it('applies KINFER_MODEL_CONFIG to the agent\'s {} load of MODEL_NAME only; a load\'s own config still wins', async () => {
    const repo = await tempDir();
    const batching = (maxBatchSize: number) =>
      JSON.stringify({ name: 'agent-mlp', platform: 'onnxruntime_onnx', max_batch_size: maxBatchSize, dynamic_batching: { max_queue_delay_microseconds: 300_000 } });
    const server = await startTestServer({ modelRepository: repo.dir, mode: 'multi-model', modelName: 'agent-mlp', modelConfig: batching(8) });
    const executions = async (m: string) => {
      const line = (await (await fetch(`${server.url}/metrics`)).text()).split('\n').find((l) => l.startsWith('kinfer_execution_count_total{') && l.includes(`model="${m}"`));
      return Number(line?.split(' ').pop() ?? 0);
    };
    /** Three requests at once: one execution if the model batches (300 ms delay), three if not. */
    const threeAtOnce = async (m: string) => {
      const before = await executions(m);
      const rs = await Promise.all([1, 2, 3].map((v) => postJson(`${server.url}/v2/models/${m}/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [v, v, v, v] }] })));
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
      return (await executions(m)) - before;
    };
    try {
      for (const m of ['agent-mlp', 'other-mlp']) {
        await writeMlpModel(join(repo.dir, m));
        await writeFile(join(repo.dir, m, 'SUCCESS.6f1ed002ab5595859014ebf0951522d9'), '');
        expect((await postJson(`${server.url}/v2/repository/models/${m}/load`, {})).status).toBe(200);
      }
      expect(await threeAtOnce('agent-mlp')).toBe(1);
      expect(await threeAtOnce('other-mlp')).toBe(3);
      expect((await postJson(`${server.url}/v2/repository/models/agent-mlp/load`, { parameters: { config: batching(0) } })).status).toBe(200);
      expect(await threeAtOnce('agent-mlp')).toBe(3);
      // The original server's batch_size in a load applies over the default config (max 8 → 1: no merging).
      expect((await postJson(`${server.url}/v2/repository/models/agent-mlp/load`, { parameters: { batch_size: 1 } })).status).toBe(200);
      expect(await threeAtOnce('agent-mlp')).toBe(3);
      expect((await postJson(`${server.url}/v2/repository/models/agent-mlp/load`, {})).status).toBe(200);
      expect(await threeAtOnce('agent-mlp')).toBe(1);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});

describe('repository monitoring', () => {
  it('loads model folders that appear and unloads those that disappear', async () => {
    const repo = await tempDir();
    await mkdir(join(repo.dir, 'first'), { recursive: true });
    await writeFile(join(repo.dir, 'first', 'config.pbtxt'), 'platform: "echo"\n');
    const server = await startTestServer({ modelRepository: repo.dir, repositoryPollMs: 50 });
    const models = async () => ((await (await fetch(`${server.url}/v2/models`)).json()) as { models: string[] }).models;
    const waitFor = async (want: string[]) => {
      for (let i = 0; i < 100 && JSON.stringify(await models()) !== JSON.stringify(want); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return models();
    };
    try {
      expect(await models()).toEqual(['first']);
      await mkdir(join(repo.dir, 'second'), { recursive: true });
      await writeFile(join(repo.dir, 'second', 'config.pbtxt'), 'platform: "echo"\n');
      expect(await waitFor(['first', 'second'])).toEqual(['first', 'second']);
      await rm(join(repo.dir, 'first'), { recursive: true });
      expect(await waitFor(['second'])).toEqual(['second']);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});

describe("Triton's model control modes (repository mode)", () => {
  let repo: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    repo = await tempDir();
    for (const m of ['a', 'b', 'c']) {
      await mkdir(join(repo.dir, m));
      await writeFile(join(repo.dir, m, 'config.pbtxt'), 'platform: "echo"\n');
    }
  });
  afterAll(() => repo.cleanup());

  const index = async (url: string) => ((await (await postJson(`${url}/v2/repository/index`, {})).json()) as { name: string; state?: string }[]).map((e) => `${e.name}:${e.state ?? '-'}`);

  it('explicit: loads only the named models at start; the API loads the rest', async () => {
    const server = await startTestServer({ modelRepository: repo.dir, startupModels: ['b', 'c'] });
    try {
      expect(server.repository.loadedNames()).toEqual(['b', 'c']);
      expect(await index(server.url)).toContain('a:UNAVAILABLE'); // in the repository, not loaded
      expect((await postJson(`${server.url}/v2/repository/models/a/load`, {})).status).toBe(200);
      expect(server.repository.loadedNames()).toEqual(['a', 'b', 'c']);
    } finally {
      await server.close();
    }
    const all = await startTestServer({ modelRepository: repo.dir, startupModels: ['*'] });
    try {
      expect(all.repository.loadedNames()).toEqual(['a', 'b', 'c']);
    } finally {
      await all.close();
    }
  });

  it('none: loads every model at start and refuses the API load and unload with 400', async () => {
    const server = await startTestServer({ modelRepository: repo.dir, modelControlOff: true });
    try {
      expect(server.repository.loadedNames()).toEqual(['a', 'b', 'c']);
      for (const verb of ['load', 'unload']) {
        const res = await postJson(`${server.url}/v2/repository/models/a/${verb}`, {});
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe(`model ${verb} is off: the server runs with --model-control-mode none (the models loaded at start are the ones served)`);
      }
      expect(server.repository.loadedNames()).toEqual(['a', 'b', 'c']);
    } finally {
      await server.close();
    }
  });
});
