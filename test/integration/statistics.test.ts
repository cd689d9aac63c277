/**
 * Triton's statistics extension (`GET /v2/models[/{m}[/versions/{v}]]/stats`)
 * through a real server on 127.0.0.1: the counts a client can check against
 * what it sent, and the invariants perf_analyzer relies on (success = queue =
 * compute counts; Σ batch_stats counts = execution_count; Σ size × count =
 * inference_count).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import type { ModelStat } from '../../runtime/observability/statistics.js';
import { writeLookupModel, writeMlpModel } from '../helpers/onnx-models.js';
import { metricValue, postJson, startTestServer, tempDir } from '../helpers/server.js';

async function stats(url: string, path = ''): Promise<ModelStat[]> {
  const res = await fetch(`${url}/v2/models${path}/stats`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { model_stats: ModelStat[] }).model_stats;
}

describe('statistics extension', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'mlp', '1'), { recursive: true });
    await writeMlpModel(join(repo.dir, 'mlp', '1'));
    // A 200 ms delay: concurrent requests merge.
    await writeFile(join(repo.dir, 'mlp', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 200000 }\n');
    await mkdir(join(repo.dir, 'lookup', '1'), { recursive: true });
    await writeLookupModel(join(repo.dir, 'lookup', '1'));
    await writeFile(join(repo.dir, 'lookup', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 200000 }\n');
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  it('lists every serving model at zero before traffic, and names the extension in the server metadata', async () => {
    const all = await stats(server.url);
    expect(all.map((s) => s.name)).toEqual(['echo', 'lookup', 'mlp']);
    const mlp = all.find((s) => s.name === 'mlp')!;
    expect(mlp).toMatchObject({ version: '1', last_inference: 0, inference_count: 0, execution_count: 0, batch_stats: [] });
    expect(mlp.inference_stats.success).toEqual({ count: 0, ns: 0 });
    expect(mlp.inference_stats.cache_hit).toEqual({ count: 0, ns: 0 });
    const meta = (await (await fetch(`${server.url}/v2`)).json()) as { extensions: string[] };
    expect(meta.extensions).toContain('statistics');
  });

  it('counts requests, items and merged executions consistently', async () => {
    const before = Date.now();
    // 6 concurrent callers, two of them with 2 rows: 8 items.
    const rows = [1, 2, 1, 1, 2, 1];
    const responses = await Promise.all(
      rows.map((n) => postJson(`${server.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [n, 4], data: new Array(4 * n).fill(0.5) }] })),
    );
    expect(responses.map((r) => r.status)).toEqual(rows.map(() => 200));
    // A shape the model refuses: a failed request, no execution.
    expect((await postJson(`${server.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }] })).status).toBe(400);

    const [s] = await stats(server.url, '/mlp');
    expect(s!.name).toBe('mlp');
    expect(s!.inference_count).toBe(8);
    expect(s!.execution_count).toBeGreaterThan(0);
    expect(s!.execution_count).toBeLessThan(6);
    const i = s!.inference_stats;
    expect(i.success.count).toBe(6);
    expect(i.fail.count).toBe(1);
    expect(i.queue.count).toBe(6);
    expect(i.compute_input.count).toBe(6);
    expect(i.compute_infer.count).toBe(6);
    expect(i.compute_output.count).toBe(6);
    expect(i.success.ns).toBeGreaterThan(0);
    // Each request's time includes its wait and its batch's run.
    expect(i.success.ns).toBeGreaterThanOrEqual(i.compute_infer.ns);
    expect(s!.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0)).toBe(s!.execution_count);
    expect(s!.batch_stats.reduce((n, b) => n + b.batch_size * b.compute_infer.count, 0)).toBe(8);
    for (const b of s!.batch_stats) expect(b.compute_input.count).toBe(b.compute_infer.count);
    expect(s!.last_inference).toBeGreaterThanOrEqual(before);
    expect(s!.last_inference).toBeLessThanOrEqual(Date.now());
    // The version path answers the same model; other models are untouched.
    expect((await stats(server.url, '/mlp/versions/1'))[0]!.inference_count).toBe(8);
    expect((await stats(server.url, '/echo'))[0]!.inference_stats.success.count).toBe(0);
  });

  it('counts a merged batch split for one bad caller as one failure and the others as successes', async () => {
    const ids = [[1, 2], [4, 9], [0, -1]]; // rows 0..4 exist: 9 is out of range
    const responses = await Promise.all(ids.map((v) => postJson(`${server.url}/v2/models/lookup/infer`, { inputs: [{ name: 'ids', datatype: 'INT64', shape: [1, 2], data: v }] })));
    expect(responses.map((r) => r.status)).toEqual([200, 400, 200]);
    // The three were merged and the batch split (else this test would not show reruns adding no wait).
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/kinfer_batch_splits_total\{[^}]*model="lookup"[^}]*\} [1-9]/);
    const [s] = await stats(server.url, '/lookup');
    expect(s!.inference_stats.success.count).toBe(2);
    expect(s!.inference_stats.fail.count).toBe(1);
    // Each caller waited once: the reruns in halves add no queue time.
    expect(s!.inference_stats.queue.count).toBe(3);
    expect(s!.execution_count).toBe(2);
    expect(s!.inference_count).toBe(2);
  });

  it("serves Triton's nv_inference_* metrics: the statistics' counts, durations in µs, requests awaiting execution", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const s of await stats(server.url)) {
      const l = { model: s.name, version: s.version };
      const i = s.inference_stats;
      const us = (ns: number) => Math.round(ns / 1000);
      expect({
        success: metricValue(text, 'nv_inference_request_success', l),
        count: metricValue(text, 'nv_inference_count', l),
        exec: metricValue(text, 'nv_inference_exec_count', l),
        request: metricValue(text, 'nv_inference_request_duration_us', l),
        queue: metricValue(text, 'nv_inference_queue_duration_us', l),
        infer: metricValue(text, 'nv_inference_compute_infer_duration_us', l),
        pending: metricValue(text, 'nv_inference_pending_request_count', l),
      }).toEqual({ success: i.success.count, count: s.inference_count, exec: s.execution_count, request: us(i.success.ns), queue: us(i.queue.ns), infer: us(i.compute_infer.ns), pending: 0 });
    }
    expect(metricValue(text, 'nv_inference_request_success', { model: 'mlp' })).toBe(6); // the earlier tests' traffic
    expect(text).toMatch(/^# TYPE nv_inference_request_duration_us counter$/m);

    // Three callers wait out the 200 ms batching delay: Triton's pending count sees them queued.
    const calls = [1, 2, 3].map(() => postJson(`${server.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }));
    let most = 0;
    for (let i = 0; i < 100 && most < 3; i++) {
      most = Math.max(most, metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'nv_inference_pending_request_count', { model: 'mlp' }));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(most).toBe(3);
    expect((await Promise.all(calls)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'nv_inference_pending_request_count', { model: 'mlp' })).toBe(0);
  });

  it("counts failures under Triton's reasons: refused before any batcher OTHER, a failed execution BACKEND, expired in the queue REJECTED, a client gone CANCELED", async () => {
    const url = `${server.url}/v2/models/mlp/infer`;
    const body = (parameters?: object) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], ...(parameters ? { parameters } : {}) });
    // 20 ms to live against the 200 ms batching delay: it expires queued.
    expect((await postJson(url, body({ timeout: 20_000 }))).status).toBe(504);
    // Gone while queued: the server sees the connection close and cancels it.
    const gone = new AbortController();
    const call = fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body()), signal: gone.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 50));
    gone.abort();
    expect(await call).toBe('aborted');
    let text = '';
    for (let i = 0; i < 100; i++) {
      text = await (await fetch(`${server.url}/metrics`)).text();
      if (metricValue(text, 'nv_inference_request_failure', { model: 'mlp', reason: 'CANCELED' }) > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const reasons = (model: string) => Object.fromEntries(['REJECTED', 'CANCELED', 'BACKEND', 'OTHER'].map((reason) => [reason, metricValue(text, 'nv_inference_request_failure', { model, version: '1', reason })]));
    // mlp: the [1, 5] shape of the first test (OTHER), and the two above; lookup: its out-of-range ids (BACKEND).
    expect(reasons('mlp')).toEqual({ REJECTED: 1, CANCELED: 1, BACKEND: 0, OTHER: 1 });
    expect(reasons('lookup')).toEqual({ REJECTED: 0, CANCELED: 0, BACKEND: 1, OTHER: 0 });
    for (const s of await stats(server.url)) {
      const sum = Object.values(reasons(s.name)).reduce((a, b) => a + b, 0);
      expect(sum, s.name).toBe(s.inference_stats.fail.count);
    }
    expect(text).toMatch(/^nv_inference_request_failure\{model="echo",version="1",reason="BACKEND"[^}]*\} 0$/m); // every reason's series, at 0 before any
    // The load's seconds, as Triton's gauge: the repository's own histogram saw the same load.
    expect(metricValue(text, 'nv_model_load_duration_secs', { model: 'mlp', version: '1' })).toBeCloseTo(metricValue(text, 'kinfer_model_load_duration_seconds_sum', { model: 'mlp', version: '1' }), 6);
    expect(metricValue(text, 'nv_model_load_duration_secs', { model: 'mlp', version: '1' })).toBeGreaterThan(0);
  });

  it('answers 404 for a model it does not serve, and starts a reloaded version from zero', async () => {
    const res = await fetch(`${server.url}/v2/models/nope/stats`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toMatch(/nope/);
    expect((await fetch(`${server.url}/v2/models/mlp/versions/7/stats`)).status).toBe(404);

    expect((await postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [2], data: [1, 2] }] })).status).toBe(200);
    expect((await stats(server.url, '/echo'))[0]!.inference_stats.success.count).toBe(1);
    expect((await postJson(`${server.url}/v2/repository/models/echo/unload`, {})).status).toBe(200);
    expect((await stats(server.url)).map((s) => s.name)).toEqual(['lookup', 'mlp']);
    expect(await (await fetch(`${server.url}/metrics`)).text()).not.toMatch(/^nv_inference_request_success\{[^}]*model="echo"/m); // gone with the unload
    expect((await postJson(`${server.url}/v2/repository/models/echo/load`, {})).status).toBe(200);
    expect((await stats(server.url, '/echo'))[0]!.inference_stats.success.count).toBe(0);
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/^nv_inference_request_success\{[^}]*model="echo"[^}]*\} 0$/m); // from zero
  });
});
