import { describe, expect, it } from 'vitest';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FakeBackend, xInput } from '../../test/helpers/fake-backend.js';
import { createBatcher } from '../batching/dynamic-batcher.js';
import { batchObserver, createMetrics, forgetModel, requestSeries } from './metrics.js';

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };

async function values(registry: Registry, name: string): Promise<Value[]> {
  const m = registry.getSingleMetric(name) as Counter | Gauge | Histogram | undefined;
  if (!m) throw new Error(`metric ${name} is not registered`);
  return (await m.get()).values as Value[];
}

async function value(registry: Registry, name: string, labels: Record<string, string>, metricName = name): Promise<number | undefined> {
  const vs = await values(registry, name);
  return vs.find((v) => (v.metricName ?? name) === metricName && Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('createMetrics', () => {
  it('registers the issue list plus decode/encode, keeps the first exports, and uses K_SERVICE/K_REVISION as default labels', async () => {
    const m = createMetrics({ K_SERVICE: 'ocr-det', K_REVISION: 'ocr-det-00001' });
    for (const name of [
      'kinfer_request_duration_seconds',
      'kinfer_requests_total',
      'kinfer_queue_duration_seconds',
      'kinfer_compute_duration_seconds',
      'kinfer_batch_size',
      'kinfer_inference_count_total',
      'kinfer_execution_count_total',
      'kinfer_pending_requests',
      'kinfer_rejected_requests_total',
      'kinfer_model_load_duration_seconds',
      'kinfer_cold_start_seconds',
      'kinfer_decode_duration_seconds',
      'kinfer_encode_duration_seconds',
    ]) {
      expect(m.registry.getSingleMetric(name), name).toBeDefined();
    }
    m.requestDuration.labels({ model: 'ocr-det', version: '1', protocol: 'v2-json', status: '200' }).observe(0.02);
    m.requests.inc({ model: 'ocr-det', version: '1', protocol: 'v2-json', status: '200' });
    m.modelLoadDuration.observe({ model: 'ocr-det', version: '1', outcome: 'ok' }, 1.5);
    m.coldStart.set(2.25);
    const dl = { service: 'ocr-det', revision: 'ocr-det-00001' };
    const l = { model: 'ocr-det', version: '1' }; // .get() values carry no default labels; the text format does
    expect(
      await value(m.registry, 'kinfer_request_duration_seconds', { ...l, protocol: 'v2-json', status: '200' }, 'kinfer_request_duration_seconds_count'),
    ).toBe(1);
    expect(await value(m.registry, 'kinfer_cold_start_seconds', {})).toBe(2.25);
    expect(await value(m.registry, 'kinfer_model_load_duration_seconds', { ...l, outcome: 'ok' }, 'kinfer_model_load_duration_seconds_sum')).toBe(1.5);
    // The text format carries the default labels on every series.
    const text = await m.registry.metrics();
    for (const [k, v] of Object.entries(dl)) {
      expect(text).toMatch(new RegExp(`^kinfer_requests_total\\{[^}]*${k}="${v}"[^}]*\\} 1$`, 'm'));
      expect(text).toMatch(new RegExp(`^kinfer_cold_start_seconds\\{[^}]*${k}="${v}"[^}]*\\} 2.25$`, 'm'));
    }
  });
});

describe('batchObserver', () => {
  it('feeds the batching series from a real batcher run', async () => {
    const m = createMetrics({});
    const fb = new FakeBackend();
    fb.delayMs = 2;
    const b = createBatcher({
      instances: [fb],
      batchable: true,
      maxBatchSize: 8,
      maxQueueDelayMicroseconds: 2000,
      preferredBatchSizes: [],
      maxQueueSize: 64,
      observer: batchObserver(m, 'm', '1'),
    });
    const l = { model: 'm', version: '1' };
    expect(await value(m.registry, 'kinfer_execution_count_total', l)).toBe(0);
    await Promise.all(Array.from({ length: 32 }, (_, i) => b.enqueue({ inputs: [xInput([i])], outputNames: [] })));

    const executions = fb.batches.length;
    expect(executions).toBeLessThan(32);
    expect(await value(m.registry, 'kinfer_execution_count_total', l)).toBe(executions);
    expect(await value(m.registry, 'kinfer_inference_count_total', l)).toBe(32);
    expect(await value(m.registry, 'kinfer_batch_size', l, 'kinfer_batch_size_count')).toBe(executions);
    expect(await value(m.registry, 'kinfer_batch_size', l, 'kinfer_batch_size_sum')).toBe(32);
    expect(await value(m.registry, 'kinfer_compute_duration_seconds', l, 'kinfer_compute_duration_seconds_count')).toBe(executions);
    const computeSum = await value(m.registry, 'kinfer_compute_duration_seconds', l, 'kinfer_compute_duration_seconds_sum');
    expect(computeSum).toBeGreaterThanOrEqual(executions * 0.0015); // each batch slept ≥ 2 ms
    expect(await value(m.registry, 'kinfer_queue_duration_seconds', l, 'kinfer_queue_duration_seconds_count')).toBe(32);
    expect(await value(m.registry, 'kinfer_pending_requests', l)).toBe(0);

    // Pending while held; rejections by reason.
    fb.hold();
    const held = b.enqueue({ inputs: [xInput([1])], outputNames: [] });
    await new Promise((r) => setTimeout(r, 10)); // past the 2 ms delay: running, held
    const ac = new AbortController();
    const aborted = b.enqueue({ inputs: [xInput([2])], outputNames: [], signal: ac.signal }).catch((e: unknown) => e);
    expect(await value(m.registry, 'kinfer_pending_requests', l)).toBe(2);
    ac.abort();
    await aborted;
    fb.failWith = () => new Error('boom');
    fb.release();
    await held.catch(() => undefined);
    await b.enqueue({ inputs: [xInput([3])], outputNames: [], deadline: performance.now() - 1 }).catch(() => undefined);
    expect(await value(m.registry, 'kinfer_rejected_requests_total', { ...l, reason: 'cancelled' })).toBe(1);
    expect(await value(m.registry, 'kinfer_rejected_requests_total', { ...l, reason: 'backend_error' })).toBe(1);
    expect(await value(m.registry, 'kinfer_rejected_requests_total', { ...l, reason: 'deadline_exceeded' })).toBe(1);
    expect(await value(m.registry, 'kinfer_pending_requests', l)).toBe(0);
    // A failed batch is not counted as an execution.
    expect(await value(m.registry, 'kinfer_execution_count_total', l)).toBe(executions);
    await b.drain();

    requestSeries(m, 'm', '1', 'v2-json', 200).observe(0.01);
    requestSeries(m, 'm', '1', 'v2-binary', 400).observe(0.01);
    requestSeries(m, 'other', '1', 'v2-json', 200).observe(0.01);
    m.modelLoadDuration.observe({ ...l, outcome: 'success' }, 0.5);
    forgetModel(m, 'm', '1');
    expect(await value(m.registry, 'kinfer_execution_count_total', l)).toBeUndefined();
    // Every series of the unloaded version goes, request-level ones too; other models' stay.
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/model="m"/);
    expect(text).toMatch(/kinfer_requests_total\{[^}]*model="other"[^}]*\} 1/);
    requestSeries(m, 'm', '1', 'v2-json', 200).observe(0.01); // a reload serves again: the series comes back
    expect(await value(m.registry, 'kinfer_requests_total', { ...l, protocol: 'v2-json', status: '200' })).toBe(1);
  });
});
