/**
 * Triton's generate extension through a real server on 127.0.0.1: `/generate` and
 * `/generate_stream` answering exactly (ONNX scale and string models, echo), the stream's one
 * event, refusals as JSON before the model runs and as an event after, and concurrent
 * requests merged by the dynamic batcher.
 */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelRepository } from '../../runtime/config.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { writeDatatypeModel, writeLookupModel, writeScaleModel } from '../helpers/onnx-models.js';
import { metricValue, postJson, startTestServer, tempDir } from '../helpers/server.js';

const SSE = 'text/event-stream; charset=utf-8';

/** The `data:` payloads of a Server-Sent Events body (events end with a blank line). */
function events(body: string): string[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      return e.slice('data: '.length);
    });
}

describe('generate extension', () => {
  let server: RunningServer;
  let url: string;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    await cp(join(defaultModelRepository(), 'echo'), join(repo.dir, 'echo'), { recursive: true });
    // y = 2x, FP32 [batch, 4]; requests wait up to 150 ms to be merged.
    await mkdir(join(repo.dir, 'scale', '1'), { recursive: true });
    await writeScaleModel(join(repo.dir, 'scale', '1'), 2);
    await writeFile(join(repo.dir, 'scale', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 150000 }\n');
    // y = x, BYTES [n].
    await mkdir(join(repo.dir, 'strings', '1'), { recursive: true });
    await writeDatatypeModel(join(repo.dir, 'strings', '1'), 'string');
    // A lookup whose out-of-range id fails ONNX Runtime's run: an error after the request is accepted.
    await mkdir(join(repo.dir, 'lookup', '1'), { recursive: true });
    await writeLookupModel(join(repo.dir, 'lookup', '1'));
    await writeFile(join(repo.dir, 'lookup', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n');
    server = await startTestServer({ modelRepository: repo.dir, maxJsonBytes: 64 * 1024 });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  it('answers /generate with one flat JSON object: id, model, version and each output (flat array, or bare when one element)', async () => {
    const want = { id: 'g1', model_name: 'scale', model_version: '1', y: [2, 4, 6, 8.5] };
    for (const path of ['/v2/models/scale/generate', '/v2/models/scale/versions/1/generate']) {
      const res = await postJson(url + path, { id: 'g1', x: [1, 2, 3, 4.25] });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(await res.json()).toEqual(want);
    }
    // Nested with the input's rank: a batch of two, written flat.
    const two = await postJson(`${url}/v2/models/scale/generate`, { x: [[1, 1, 1, 1], [0, 0, 0, -1]] });
    expect(await two.json()).toEqual({ model_name: 'scale', model_version: '1', y: [2, 2, 2, 2, 0, 0, 0, -2] });

    const one = await postJson(`${url}/v2/models/strings/generate`, { x: 'héllo, "world" €' });
    expect(await one.json()).toEqual({ model_name: 'strings', model_version: '1', y: 'héllo, "world" €' });
    const many = await postJson(`${url}/v2/models/strings/generate`, { x: ['a', 'ß'] });
    expect(await many.json()).toEqual({ model_name: 'strings', model_version: '1', y: ['a', 'ß'] });
  });

  it('answers /generate_stream with exactly one event carrying the same object', async () => {
    const body = { id: 's1', x: [0.5, 1, 1.5, 2], parameters: { tag: 'a' } };
    const plain = await (await postJson(`${url}/v2/models/scale/generate`, body)).text();
    const res = await postJson(`${url}/v2/models/scale/generate_stream`, body);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(SSE);
    const text = await res.text();
    expect(text).toBe(`data: ${plain}\n\n`);
    const [event, ...rest] = events(text);
    expect(rest).toEqual([]);
    expect(JSON.parse(event!)).toEqual({ id: 's1', model_name: 'scale', model_version: '1', y: [1, 2, 3, 4] });
  });

  it('feeds echo, which declares no inputs, every key typed from its value and shaped by its nesting', async () => {
    const body = { text_input: 'héllo', ids: [[1, 2], [3, 4]], scores: [0.5, 2], flag: true, parameters: { stream: false } };
    const res = await postJson(`${url}/v2/models/echo/generate`, body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ model_name: 'echo', model_version: '1', text_input: 'héllo', ids: [1, 2, 3, 4], scores: [0.5, 2], flag: true });
    const stream = await postJson(`${url}/v2/models/echo/generate_stream`, { text_input: 'x' });
    expect(events(await stream.text()).map((e) => JSON.parse(e))).toEqual([{ model_name: 'echo', model_version: '1', text_input: 'x' }]);
  });

  it('refuses client mistakes and unknown models as JSON errors with their status on both routes', async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ['/v2/models/nope/generate', { x: 1 }, 404, /model 'nope'/],
      ['/v2/models/scale/versions/7/generate', { x: [1, 2, 3, 4] }, 404, /version '7'/],
      ['/v2/models/scale/generate', { x: [1, 2, 3, 4], z: [1] }, 400, /^z: 'z' is not an input of model 'scale' \(inputs: x\)/],
      ['/v2/models/scale/generate', { x: ['a', 'b', 'c', 'd'] }, 400, /^x: element 0: expected a number for FP32, got "a"$/],
      ['/v2/models/scale/generate', { x: [1, 2, 3] }, 400, /^x: 3 elements cannot be shaped to fit \[-1,4\]$/],
      // A key that names no input is a parameter (Triton's rule), so the input is missing.
      ['/v2/models/scale/generate', { X: [1, 2, 3, 4].join() }, 400, /^missing input 'x'$/],
      ['/v2/models/strings/generate', { x: 5 }, 400, /^x: element 0: expected a string for BYTES, got 5$/],
      ['/v2/models/scale/generate', { x: [1, 2, 3, 4], parameters: { timeout: -1 } }, 400, /^parameters.timeout: expected a number of microseconds ≥ 0/],
      ['/v2/models/scale/generate', '{"x": [1, 2', 400, /^request body is not valid JSON/],
      ['/v2/models/scale/generate', { x: new Array(40_000).fill(1) }, 413, /over the limit of 65536/],
    ];
    for (const [path, body, status, message] of cases) {
      for (const p of [path, `${path}_stream`]) {
        const res = await postJson(url + p, body);
        expect(res.status, p).toBe(status);
        expect(res.headers.get('content-type'), p).toBe('application/json');
        expect(((await res.json()) as { error: string }).error, p).toMatch(message);
      }
    }
  });

  it('on /generate_stream, answers an error from running an accepted request as an error event with its status', async () => {
    const ok = await postJson(`${url}/v2/models/lookup/generate_stream`, { ids: [1, 2] });
    expect(JSON.parse(events(await ok.text())[0]!)).toEqual({ model_name: 'lookup', model_version: '1', y: [3, 4, 5, 6, 7, 8] });

    const bad = { ids: [4, 9] }; // the table has rows 0..4
    const stream = await postJson(`${url}/v2/models/lookup/generate_stream`, bad);
    expect(stream.status).toBe(400);
    expect(stream.headers.get('content-type')).toBe(SSE);
    const [event, ...rest] = events(await stream.text());
    expect(rest).toEqual([]);
    expect(JSON.parse(event!).error).toMatch(/model 'lookup': ONNX Runtime rejected the inputs: .*idx=9/);
    // /generate answers the same error as plain JSON.
    const plain = await postJson(`${url}/v2/models/lookup/generate`, bad);
    expect(plain.status).toBe(400);
    expect(plain.headers.get('content-type')).toBe('application/json');
    expect(((await plain.json()) as { error: string }).error).toMatch(/idx=9/);
  });

  it('merges concurrent generate requests into fewer executions, counted per route in /metrics and in the statistics', async () => {
    const before = await (await fetch(`${url}/metrics`)).text();
    const execBefore = metricValue(before, 'kinfer_execution_count_total', { model: 'scale' });
    const itemsBefore = metricValue(before, 'kinfer_inference_count_total', { model: 'scale' });
    const n = 8;
    const responses = await Promise.all(
      Array.from({ length: n }, (_, i) => postJson(`${url}/v2/models/scale/${i % 2 ? 'generate_stream' : 'generate'}`, { id: `c${i}`, x: [i + 1, i, i, -i - 1] })),
    );
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      const text = await res.text();
      const json = i % 2 ? events(text)[0]! : text;
      expect(JSON.parse(json)).toEqual({ id: `c${i}`, model_name: 'scale', model_version: '1', y: [2 * i + 2, 2 * i, 2 * i, -2 * i - 2] });
    }
    const after = await (await fetch(`${url}/metrics`)).text();
    expect(metricValue(after, 'kinfer_inference_count_total', { model: 'scale' }) - itemsBefore).toBe(n);
    const executions = metricValue(after, 'kinfer_execution_count_total', { model: 'scale' }) - execBefore;
    expect(executions).toBeGreaterThan(0);
    expect(executions).toBeLessThan(n);
    const counted = (protocol: string, text: string) => metricValue(text, 'kinfer_requests_total', { model: 'scale', protocol, status: '200' });
    expect(counted('generate', after) - counted('generate', before)).toBe(n / 2);
    expect(counted('generate-stream', after) - counted('generate-stream', before)).toBe(n / 2);
    const stats = (await (await fetch(`${url}/v2/models/scale/stats`)).json()) as { model_stats: { inference_count: number }[] };
    expect(stats.model_stats[0]!.inference_count).toBeGreaterThanOrEqual(n);
  });
});
