import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver } from '../../test/helpers/otlp-receiver.js';
import { FakeBackend, xInput } from '../../test/helpers/fake-backend.js';
import { createBatcher } from '../batching/dynamic-batcher.js';
import {
  extractContext,
  flushTracing,
  initTracing,
  shutdownTracing,
  traceHeaders,
  traceIdOf,
  tracingEnabled,
  withSpan,
} from './tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

describe('tracing off (no OTLP endpoint)', () => {
  it('registers nothing and runs callbacks with a non-recording span', async () => {
    expect(initTracing({ OTEL_SERVICE_NAME: 'x' })).toEqual({ enabled: false });
    expect(tracingEnabled()).toBe(false);
    const r = withSpan('kinfer.decode', {}, (span) => {
      expect(span.isRecording()).toBe(false);
      return 41 + 1;
    });
    expect(r).toBe(42);
    await expect(withSpan('x', {}, async () => 'ok')).resolves.toBe('ok');
    expect(() => withSpan('x', {}, () => {
      throw new Error('passes through');
    })).toThrow('passes through');
    // Extraction still works, so access logs can carry the caller's trace id.
    expect(traceIdOf(extractContext({ traceparent: TRACEPARENT }))).toBe(TRACE_ID);
  });
});

describe('extractContext', () => {
  it('reads traceparent/tracestate from records of any case, Headers, and the CloudEvents binary extension', () => {
    expect(traceIdOf(extractContext({ TraceParent: TRACEPARENT }))).toBe(TRACE_ID);
    expect(traceIdOf(extractContext(new Headers({ traceparent: TRACEPARENT })))).toBe(TRACE_ID);
    expect(traceIdOf(extractContext({ 'ce-traceparent': TRACEPARENT }))).toBe(TRACE_ID);
    const ctx = extractContext({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
    expect(traceHeaders(ctx)).toEqual({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
  });

  it('ignores malformed values', () => {
    expect(traceIdOf(extractContext({ traceparent: 'nonsense' }))).toBeUndefined();
    expect(traceIdOf(extractContext({ traceparent: `00-${'0'.repeat(32)}-${PARENT_ID}-01` }))).toBeUndefined();
    expect(traceIdOf(extractContext({}))).toBeUndefined();
  });
});

describe('tracing on, exported to a local OTLP receiver', () => {
  let rx: OtlpReceiver;
  beforeAll(async () => {
    rx = await startOtlpReceiver();
  });
  afterAll(async () => {
    await shutdownTracing();
    await rx.close();
  });

  it('exports decode, queue, compute and encode spans under the incoming traceparent', async () => {
    const status = initTracing(
      { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url + '/', OTEL_SERVICE_NAME: 'ocr-det', K_REVISION: 'ocr-det-00002' },
      { batch: { scheduledDelayMillis: 20 } },
    );
    expect(status).toEqual({ enabled: true, url: `${rx.url}/v1/traces`, serviceName: 'ocr-det' });
    expect(tracingEnabled()).toBe(true);

    const fb = new FakeBackend();
    const batcher = createBatcher({
      instances: [fb],
      batchable: true,
      maxBatchSize: 4,
      maxQueueDelayMicroseconds: 1000,
      preferredBatchSizes: [],
      maxQueueSize: 8,
      name: 'ocr-det',
    });
    const parent = extractContext({ traceparent: TRACEPARENT });
    let inner: string | undefined;
    const out = await withSpan(
      'kinfer.infer',
      { 'kinfer.model': 'ocr-det' },
      async () => {
        const x = withSpan('kinfer.decode', {}, () => xInput([1, 2]));
        inner = traceIdOf();
        const r = await batcher.enqueue({ inputs: [x], outputNames: [] });
        return withSpan('kinfer.encode', {}, () => Array.from(r.outputs[0]!.data as Float32Array));
      },
      parent,
    );
    expect(out).toEqual([2, 4]);
    expect(inner).toBe(TRACE_ID);
    await expect(withSpan('kinfer.failing', {}, async () => Promise.reject(new Error('bad tensor')))).rejects.toThrow('bad tensor');
    await batcher.drain();
    await flushTracing();

    const names = ['kinfer.infer', 'kinfer.decode', 'kinfer.queue', 'kinfer.compute', 'kinfer.encode', 'kinfer.failing'];
    const spans = await rx.waitForSpans((s) => names.every((n) => s.some((x) => x.name === n)));
    const by = (n: string) => spans.find((s) => s.name === n)!;
    const root = by('kinfer.infer');
    expect(root.traceId).toBe(TRACE_ID);
    expect(root.parentSpanId).toBe(PARENT_ID);
    for (const n of ['kinfer.decode', 'kinfer.queue', 'kinfer.compute', 'kinfer.encode']) {
      expect(by(n).traceId, n).toBe(TRACE_ID);
      expect(by(n).parentSpanId, n).toBe(root.spanId);
    }
    expect(by('kinfer.compute').attributes['kinfer.batch_size']).toBe(2);
    // The SDK stamps span starts with Date.now() (whole ms), ends with start + a performance.now() delta: order holds to 1 ms.
    expect(BigInt(by('kinfer.queue').endTimeUnixNano)).toBeLessThanOrEqual(BigInt(by('kinfer.compute').startTimeUnixNano) + 1_000_000n);
    expect(root.resource['service.name']).toBe('ocr-det');
    expect(root.resource['knative.revision']).toBe('ocr-det-00002');
    expect(by('kinfer.failing').status).toMatchObject({ code: 2, message: 'bad tensor' });
    expect(by('kinfer.failing').traceId).not.toBe(TRACE_ID); // no parent: a new trace
    expect(rx.requests.every((r) => r.path === '/v1/traces' && r.contentType.includes('application/json'))).toBe(true);

    await shutdownTracing();
    expect(tracingEnabled()).toBe(false);
    expect(withSpan('after', {}, (span) => span.isRecording())).toBe(false);
  });
});
