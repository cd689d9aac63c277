/**
 * Batching, backpressure, deadlines and disconnects through a real server on
 * 127.0.0.1, observed in the responses and in /metrics.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelRepository } from '../../runtime/config.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import type { BatcherFactory } from '../../runtime/repository/model-repository.js';
import { makeBatcherFactory } from '../../runtime/server/batcher-factory.js';
import { createMetrics, type Metrics } from '../../runtime/observability/metrics.js';
import type { Backend } from '../../runtime/backends/backend.js';
import type { Tensor } from '../../runtime/core/tensor.js';
import { mlpReference, writeLookupModel, writeMlpModel, writeScaleModel, type MlpModel } from '../helpers/onnx-models.js';
import { metricValue, postJson, startTestServer, tempDir } from '../helpers/server.js';
import { tritonClient, unary } from '../helpers/grpc-client.js';

/** A 1×3×S×S ocr-det request in the binary extension, heavy enough to keep the one instance busy. */
function heavyRequest(size: number, extra: Record<string, unknown> = {}) {
  const x = new Float32Array(3 * size * size).fill(0.5);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, size, size], parameters: { binary_data_size: x.byteLength } }],
      outputs: [{ name: 'sigmoid_0.tmp_0', parameters: { binary_data: true } }],
      ...extra,
    }),
  );
  return {
    body: Buffer.concat([header, Buffer.from(x.buffer)]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) },
  };
}

/** Waits (bounded) until the model has `count` requests pending, i.e. they reached the batcher. */
async function untilPending(url: string, model: string, count = 1): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (metricValue(text, 'kinfer_pending_requests', { model }) >= count) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`fewer than ${count} requests became pending on ${model} within 1 s`);
}

/**
 * The server's batcher factory (queue bound from `defaults`) over the model's instances, each
 * run going through `run` with the instance's own infer to call.
 */
function throughInstances(metrics: Metrics, run: (inputs: Tensor[], names: readonly string[], infer: Backend['infer']) => Promise<Tensor[]>, defaults: { maxQueueSize?: number } = {}): BatcherFactory {
  return (o) =>
    makeBatcherFactory(metrics, defaults)({
      ...o,
      instances: o.instances.map((b) => ({
        load: (f) => b.load(f),
        unload: () => b.unload(),
        infer: (inputs, names) => run(inputs, names, (i, n) => b.infer(i, n)),
      })),
    });
}

describe('batching and backpressure through HTTP', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'mlp', '1'), { recursive: true });
    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await writeFile(
      join(repo.dir, 'mlp', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 64\ndynamic_batching { max_queue_delay_microseconds: 20000 }\n',
    );
    // ocr-det with no batching, one instance and a queue of one: the second waiting request is refused.
    await mkdir(join(repo.dir, 'slow', '1'), { recursive: true });
    await symlink(join(defaultModelRepository(), 'ocr-det', '1', 'model.onnx'), join(repo.dir, 'slow', '1', 'model.onnx'));
    await writeFile(
      join(repo.dir, 'slow', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 0\ndynamic_batching { default_queue_policy { max_queue_size: 1 } }\n',
    );
    // An embedding lookup whose requests merge (a 200 ms delay): an id out of range fails ORT's run.
    await mkdir(join(repo.dir, 'lookup', '1'), { recursive: true });
    await writeLookupModel(join(repo.dir, 'lookup', '1'));
    await writeFile(
      join(repo.dir, 'lookup', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 200000 }\n',
    );
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  it('merges 32 concurrent requests into fewer executions, and each caller gets its own rows', async () => {
    const rows = Array.from({ length: 32 }, (_, i) => Float32Array.from([i, -i / 2, 1 + i / 10, (i % 5) - 2]));
    const responses = await Promise.all(
      rows.map((x, i) =>
        postJson(`${server.url}/v2/models/mlp/infer`, {
          id: `r${i}`,
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Array.from(x) }],
        }),
      ),
    );
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      const body = (await res.json()) as { id: string; outputs: { shape: number[]; data: number[] }[] };
      expect(body.id).toBe(`r${i}`);
      expect(body.outputs[0]!.shape).toEqual([1, 3]);
      const want = mlpReference(mlp, rows[i]!);
      body.outputs[0]!.data.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5));
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const items = metricValue(text, 'kinfer_inference_count_total', { model: 'mlp' });
    const executions = metricValue(text, 'kinfer_execution_count_total', { model: 'mlp' });
    expect(items).toBe(32);
    expect(executions).toBeGreaterThan(0);
    expect(executions).toBeLessThan(32);
    expect(text).toMatch(/kinfer_batch_size_bucket\{[^}]*model="mlp"/);
  });

  it('answers 400 only to the request whose data ORT refused in a merged batch; the others get their rows', async () => {
    const ids = [[1, 2], [4, 9], [0, -1]]; // the lookup table has rows 0..4: 9 is out of range
    const responses = await Promise.all(
      ids.map((v, i) => postJson(`${server.url}/v2/models/lookup/infer`, { id: `q${i}`, inputs: [{ name: 'ids', datatype: 'INT64', shape: [1, 2], data: v }] })),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 400, 200]);
    const rows = (r: number) => [3 * r, 3 * r + 1, 3 * r + 2];
    const ok = [(await responses[0]!.json()) as { outputs: { data: number[] }[] }, (await responses[2]!.json()) as { outputs: { data: number[] }[] }];
    expect(ok[0]!.outputs[0]!.data).toEqual([...rows(1), ...rows(2)]);
    expect(ok[1]!.outputs[0]!.data).toEqual([...rows(0), ...rows(4)]);
    expect(((await responses[1]!.json()) as { error: string }).error).toMatch(/model 'lookup': ONNX Runtime rejected the inputs: .*idx=9/);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    // The merged run of 3 failed (not counted as an execution) and was split: [q0, q1] failed again and was
    // split into q0 (ran) and q1 (refused); [q2] ran. Two executions succeeded, one request was refused.
    expect(metricValue(text, 'kinfer_batch_splits_total', { model: 'lookup' })).toBe(2);
    expect(metricValue(text, 'kinfer_execution_count_total', { model: 'lookup' })).toBe(2);
    expect(metricValue(text, 'kinfer_rejected_requests_total', { model: 'lookup', reason: 'backend_error' })).toBe(1);
  });

  it('answers 503 with Retry-After at once when the queue is full, and serves the rest', async () => {
    const req = heavyRequest(960);
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        fetch(`${server.url}/v2/models/slow/infer`, { method: 'POST', headers: req.headers, body: req.body }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    const refused = responses.find((r) => r.status === 503)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { error: string }).error).toMatch(/queue/i);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricValue(text, 'kinfer_rejected_requests_total', { model: 'slow', reason: 'queue_full' })).toBeGreaterThan(0);
  });

  it('answers 504 for a request whose deadline passed while queued, and never computes it', async () => {
    const before = metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'kinfer_inference_count_total', { model: 'slow' });
    const busy = heavyRequest(960);
    const first = fetch(`${server.url}/v2/models/slow/infer`, { method: 'POST', headers: busy.headers, body: busy.body });
    await untilPending(server.url, 'slow');
    const late = heavyRequest(32, { parameters: { timeout: 1000 } }); // 1 ms, in microseconds as Triton
    const res = await fetch(`${server.url}/v2/models/slow/infer`, { method: 'POST', headers: late.headers, body: late.body });
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: string }).error).toMatch(/deadline|timeout|timed out/i);
    expect((await first).status).toBe(200);
    const after = metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'kinfer_inference_count_total', { model: 'slow' });
    expect(after - before).toBe(1);
  });

  it('drops a queued request whose client went away before computing it', async () => {
    const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
    const before = await metrics();
    const busy = heavyRequest(960);
    const first = fetch(`${server.url}/v2/models/slow/infer`, { method: 'POST', headers: busy.headers, body: busy.body });
    await untilPending(server.url, 'slow');
    const gone = heavyRequest(32);
    const abort = new AbortController();
    const second = fetch(`${server.url}/v2/models/slow/infer`, {
      method: 'POST',
      headers: gone.headers,
      body: gone.body,
      signal: abort.signal,
    }).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 30));
    abort.abort();
    expect(await second).toBeInstanceOf(Error);
    expect((await first).status).toBe(200);
    let after = await metrics();
    for (let i = 0; i < 40 && metricValue(after, 'kinfer_rejected_requests_total', { model: 'slow', reason: 'cancelled' }) === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      after = await metrics();
    }
    const cancelled = (t: string) => metricValue(t, 'kinfer_rejected_requests_total', { model: 'slow', reason: 'cancelled' });
    expect(cancelled(after) - cancelled(before)).toBe(1);
    const items = (t: string) => metricValue(t, 'kinfer_inference_count_total', { model: 'slow' });
    expect(items(after) - items(before)).toBe(1);
  });
  it('batch_policy: an unknown value fails the load and keeps the old version serving; adaptive serves a lone client without the delay', async () => {
    const load = (parameters: Record<string, string>) => postJson(`${server.url}/v2/repository/models/mlp/load`, { parameters });
    const bad = await load({ batch_policy: 'eager' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/batch_policy: expected delay or adaptive, got "eager"/);
    const infer = () =>
      postJson(`${server.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    expect((await infer()).status).toBe(200);

    expect((await load({ batch_policy: 'adaptive' })).status).toBe(200);
    const queueSeconds = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return {
        sum: metricValue(text, 'kinfer_queue_duration_seconds_sum', { model: 'mlp' }),
        count: metricValue(text, 'kinfer_queue_duration_seconds_count', { model: 'mlp' }),
      };
    };
    const before = await queueSeconds();
    for (let i = 0; i < 5; i++) expect((await infer()).status).toBe(200);
    const after = await queueSeconds();
    expect(after.count - before.count).toBe(5);
    // The config's delay is 20 ms; Triton's rule would queue each of these lone requests for all of it.
    expect((after.sum - before.sum) / 5).toBeLessThan(0.01);
  });
});

describe('Retry-After from the pace of the model (a slow backend)', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const metrics = createMetrics({});
  /** Echo that first sleeps as many ms as its first value says, with a queue of 6. */
  const slowed = throughInstances(
    metrics,
    async (inputs, names, infer) => {
      const ms = (inputs[0]?.data as Int32Array | undefined)?.[0] ?? 0;
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      return infer(inputs, names);
    },
    { maxQueueSize: 6 },
  );

  beforeAll(async () => {
    repo = await tempDir();
    for (const name of ['fresh', 'paced']) {
      await mkdir(join(repo.dir, name), { recursive: true });
      await writeFile(join(repo.dir, name, 'config.pbtxt'), 'platform: "echo"\n');
    }
    server = await startTestServer({ modelRepository: repo.dir, metrics, createBatcher: slowed });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  /** One request running `runMs`, six queued behind it (0 ms each), and a seventh refused: its response. */
  async function refused(model: string, runMs: number): Promise<{ res: Response; answered: Promise<number[]> }> {
    const send = (ms: number) => postJson(`${server.url}/v2/models/${model}/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [ms] }] });
    const running = send(runMs);
    await untilPending(server.url, model);
    const queued = Array.from({ length: 6 }, () => send(0));
    await untilPending(server.url, model, 7);
    const res = await send(0);
    return { res, answered: Promise.all([running, ...queued].map(async (r) => (await r).status)) };
  }

  it('answers 503 with Retry-After 1 before any batch has run, then the queued items times the time per item', async () => {
    const first = await refused('fresh', 300);
    expect(first.res.status).toBe(503);
    expect(((await first.res.json()) as { error: string }).error).toMatch(/model 'fresh': queue is full \(6 requests waiting\)/);
    expect(first.res.headers.get('retry-after')).toBe('1');
    expect(await first.answered).toEqual([200, 200, 200, 200, 200, 200, 200]);

    // One run of 400 ms sets the pace; six queued then need 6 × 400 ms: Retry-After 3 (more if the run's timer fired late).
    const seed = await postJson(`${server.url}/v2/models/paced/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [400] }] });
    expect(seed.status).toBe(200);
    const second = await refused('paced', 400);
    expect(second.res.status).toBe(503);
    await second.res.arrayBuffer();
    expect(['3', '4', '5', '6']).toContain(second.res.headers.get('retry-after'));
    expect(await second.answered).toEqual([200, 200, 200, 200, 200, 200, 200]);
  });
});

describe('an unload whose requests never finish (a backend that hangs)', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const metrics = createMetrics({});
  /** Echo whose instances never answer a request carrying the value 13, as a stuck device would. */
  const hanging = throughInstances(metrics, (inputs, names, infer) => ((inputs[0]?.data as Int32Array | undefined)?.[0] === 13 ? new Promise<never>(() => {}) : infer(inputs, names)));

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir, metrics, createBatcher: hanging, drainTimeoutMs: 300 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  it('answers the stuck and the queued requests 503 after KINFER_DRAIN_TIMEOUT_MS, completes the unload, and loads again', async () => {
    const send = (v: number) => postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [v] }] });
    const stuck = send(13);
    await untilPending(server.url, 'echo');
    const queued = send(1);
    await untilPending(server.url, 'echo', 2);
    const t0 = performance.now();
    const unload = await postJson(`${server.url}/v2/repository/models/echo/unload`, {});
    expect(unload.status).toBe(200);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(5000);
    for (const res of [await stuck, await queued]) {
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(/model 'echo' was unloaded: its requests did not finish within 300 ms \(KINFER_DRAIN_TIMEOUT_MS\)/);
    }
    expect((await postJson(`${server.url}/v2/repository/models/echo/load`, {})).status).toBe(200);
    const again = await send(2);
    expect(again.status).toBe(200);
    expect(((await again.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([2]);
  });
});

describe("Triton's priority levels through HTTP and gRPC (a slowed ONNX model)", () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const metrics = createMetrics({});
  /** The first value of each row, in the order the backend ran them. */
  const ran: number[] = [];
  /** The model, first sleeping as many ms as a batch's first value says when that is over 100; records each row. */
  const slowed = throughInstances(metrics, async (inputs, names, infer) => {
    const x = inputs[0]!.data as Float32Array;
    for (let r = 0; r < x.length; r += 4) ran.push(x[r]!);
    const v = x[0]!;
    if (v > 100) await new Promise((r) => setTimeout(r, v));
    return infer(inputs, names);
  });

  beforeAll(async () => {
    repo = await tempDir();
    await writeScaleModel(join(repo.dir, 'ranked', '1'), 1);
    await writeFile(
      join(repo.dir, 'ranked', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 2\ndynamic_batching {\n  priority_levels: 2\n  default_priority_level: 2\n  priority_queue_policy { key: 1 value { max_queue_size: 8 timeout_action: DELAY default_timeout_microseconds: 2000000 } }\n}\n',
    );
    server = await startTestServer({ modelRepository: repo.dir, metrics, createBatcher: slowed, grpcPort: 0 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const send = (v: number, parameters?: Record<string, unknown>) =>
    postJson(`${server.url}/v2/models/ranked/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [v, 0, 0, 0] }], ...(parameters ? { parameters } : {}) });

  it('runs the requests of level 1 first (batched together), each level in arrival order, whatever order they came in', async () => {
    ran.length = 0;
    const running = send(300); // holds the one instance
    await untilPending(server.url, 'ranked');
    const queued: Promise<Response>[] = [];
    for (const [v, priority] of [[10, 2], [11, undefined], [12, 1], [13, 0], [14, 1]] as const) {
      queued.push(send(v, priority === undefined ? undefined : { priority }));
      await untilPending(server.url, 'ranked', queued.length + 1); // in this order
    }
    expect((await Promise.all([running, ...queued])).map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(ran).toEqual([300, 12, 14, 10, 11, 13]);
  });

  it('refuses a priority that is not an integer ≥ 0, and says its levels and policies in the config, REST and gRPC', async () => {
    for (const priority of [-1, 1.5, 'high']) {
      const res = await send(1, { priority });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(/parameters\.priority: expected an integer ≥ 0/);
    }
    const cfg = await (await fetch(`${server.url}/v2/models/ranked/config`)).json();
    expect(cfg.dynamic_batching).toMatchObject({ priority_levels: 2, default_priority_level: 2, priority_queue_policy: { 1: { max_queue_size: 8, timeout_action: 'DELAY', default_timeout_microseconds: 2000000 } } });
    const triton = tritonClient(server.grpcPort!);
    try {
      const { config } = await unary(triton, 'ModelConfig', { name: 'ranked' });
      expect(config.dynamic_batching.priority_levels).toBe('2');
      expect(config.dynamic_batching.default_priority_level).toBe('2');
      // protobufjs hands 64-bit map keys over as their 8 bytes, little-endian, in a string.
      const levelOf = (key: string) => [...key].reduce((n, c, i) => n + c.charCodeAt(0) * 2 ** (8 * i), 0);
      const policies = Object.entries(config.dynamic_batching.priority_queue_policy).map(([k, v]) => [levelOf(k), v]);
      expect(policies).toEqual([[1, { max_queue_size: 8, timeout_action: 'DELAY', default_timeout_microseconds: '2000000', allow_timeout_override: false }]]);
    } finally {
      triton.close();
    }
  });
});
