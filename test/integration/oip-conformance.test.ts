/**
 * The REST surface against the Open Inference Protocol's own OpenAPI document
 * (../shared/specs/open-inference-protocol/open_inference_rest.yaml, KServe's
 * rest_predict_v2.yaml less one optional field): every answer of a real server on 127.0.0.1
 * validated with Ajv against the schema the document names for its path and status, with
 * unknown fields refused outside `parameters` (a client generated from the document may
 * reject them). Skipped, saying so, where ../shared is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defaultSpecsDir } from '../../knative/specs.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { writeMlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

const SPEC = join(defaultSpecsDir(), 'open-inference-protocol', 'open_inference_rest.yaml');
const haveSpec = existsSync(SPEC);
if (!haveSpec) console.warn(`test/integration/oip-conformance.test.ts: ${SPEC} not found (../shared/specs): conformance tests skipped`);

type Schema = Record<string, unknown>;

/** Every object schema that lists its properties gets `additionalProperties: false`; free maps (`parameters`) stay open. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([p, s]) => [p, closed(s)])) : closed(v);
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

describe.skipIf(!haveSpec)('Open Inference Protocol REST conformance (the OpenAPI document)', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const ajv = new Ajv({ strict: false, allErrors: true });
  /** Validates `body` against `#/components/schemas/<name>`; the errors, empty when it conforms. */
  const check = (name: string, body: unknown): string[] => {
    const validate = ajv.getSchema(`oip#/components/schemas/${name}`)!;
    return validate(body) ? [] : (validate.errors ?? []).map((e) => `${name}${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
  };
  /** The schema the document gives for a path's answer with this status. */
  const schemaOf = (path: string, method: 'get' | 'post', status: number): string => {
    const doc = parse(readFileSync(SPEC, 'utf8')) as { paths: Record<string, Record<string, { responses: Record<string, { content?: { 'application/json': { schema: { $ref: string } } } }> }>> };
    const ref = doc.paths[path]![method]!.responses[String(status)]!.content!['application/json'].schema.$ref;
    return ref.split('/').pop()!;
  };

  beforeAll(async () => {
    ajv.addSchema(closed(parse(readFileSync(SPEC, 'utf8'))) as Schema, 'oip');
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await writeFile(join(repo.dir, 'mlp', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('health, model ready and server metadata: 200s, and the metadata as metadata_server_response at /v2 and /v2/', async () => {
    for (const path of ['/v2/health/live', '/v2/health/ready', '/v2/models/echo/ready', '/v2/models/mlp/versions/1/ready']) expect((await fetch(`${server.url}${path}`)).status, path).toBe(200);
    const schema = schemaOf('/v2/', 'get', 200);
    for (const path of ['/v2', '/v2/']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(check(schema, await res.json())).toEqual([]);
    }
  });

  it('model metadata, with and without a version, for an ONNX model and echo: metadata_model_response', async () => {
    const schema = schemaOf('/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}', 'get', 200);
    for (const path of ['/v2/models/mlp', '/v2/models/mlp/versions/1', '/v2/models/echo']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      const body = await res.json();
      expect(check(schema, body), path).toEqual([]);
    }
  });

  it('inference of every datatype (flat and nested data, id, parameters, requested outputs) is an inference_response; the request an inference_request', async () => {
    const schema = schemaOf('/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer', 'post', 200);
    const values: Record<string, unknown[]> = {
      BOOL: [true, false],
      UINT8: [0, 255],
      UINT16: [1, 65535],
      UINT32: [2, 4294967295],
      UINT64: [3, 9007199254740991],
      INT8: [-128, 127],
      INT16: [-2, 3],
      INT32: [-4, 5],
      INT64: [-6, 7],
      FP16: [0.5, -1.5],
      FP32: [1.25, -2.5],
      FP64: [3.125, -4.5],
      BYTES: ['a', 'bc'],
    };
    for (const [datatype, data] of Object.entries(values)) {
      const request = { id: `r-${datatype}`, parameters: { note: 'x' }, inputs: [{ name: 'in', shape: [2], datatype, data }], outputs: [{ name: 'in' }] };
      expect(check('inference_request', request)).toEqual([]);
      const res = await postJson(`${server.url}/v2/models/echo/infer`, request);
      expect(res.status, datatype).toBe(200);
      const body = (await res.json()) as { id: string; outputs: { datatype: string; data: unknown[] }[] };
      expect(check(schema, body), datatype).toEqual([]);
      expect([body.id, body.outputs[0]!.datatype, body.outputs[0]!.data]).toEqual([`r-${datatype}`, datatype, data]);
    }
    const nested = { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [[1, 2, 3, 4], [5, 6, 7, 8]] }] };
    expect(check('inference_request', nested)).toEqual([]);
    for (const [path, body] of [['/v2/models/echo/infer', nested], ['/v2/models/mlp/versions/1/infer', { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] }]] as const) {
      const res = await postJson(`${server.url}${path}`, body);
      expect(res.status, path).toBe(200);
      expect(check(schema, await res.json()), path).toEqual([]);
    }
  });

  it('errors are the error objects the document names, {"error": string} and nothing else', async () => {
    const infer400 = schemaOf('/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer', 'post', 400);
    const cases: [string, RequestInit | undefined, number, string][] = [
      ['/v2/models/echo/infer', { method: 'POST', body: '{"inputs": [{"name": "x"}]}' }, 400, infer400],
      ['/v2/models/echo/infer', { method: 'POST', body: 'not json' }, 400, infer400],
      ['/v2/models/mlp/infer', { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }) }, 400, infer400],
      ['/v2/models/nope/infer', { method: 'POST', body: '{"inputs": []}' }, 404, infer400],
      ['/v2/models/nope', undefined, 404, 'metadata_model_error_response'],
      ['/v2/models/mlp/versions/9', undefined, 404, 'metadata_model_error_response'],
    ];
    for (const [path, init, status, schema] of cases) {
      const res = await fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json' } });
      expect(res.status, path).toBe(status);
      const body = (await res.json()) as { error: string };
      expect(check(schema, body), path).toEqual([]);
      expect(body.error.length, path).toBeGreaterThan(0);
    }
  });

  it('the check itself refuses what the document does not allow (so a pass means something)', () => {
    expect(check('inference_response', { model_name: 'm', outputs: [{ name: 'y', shape: [1], datatype: 'FP32', data: [1] }], extra: 1 })).not.toEqual([]);
    expect(check('inference_response', { outputs: [] })).not.toEqual([]);
    expect(check('metadata_tensor', { name: 'x', datatype: 'FP32', shape: [1.5] })).not.toEqual([]);
    expect(check('inference_error_response', { error: 'e', code: 400 })).not.toEqual([]);
  });
});
