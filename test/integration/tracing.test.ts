/**
 * Tracing through the real server: OTEL_EXPORTER_OTLP_ENDPOINT turns the
 * exporter on; an incoming W3C traceparent (HTTP header or CloudEvents
 * extension) becomes the parent of kinfer's spans, which reach a local OTLP
 * receiver stand-in; the access log carries the trace id.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelRepository } from '../../runtime/config.js';
import { flushTracing } from '../../runtime/observability/tracing.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { postJson, startTestServer } from '../helpers/server.js';
import { inferenceClient, unary } from '../helpers/grpc-client.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

describe('tracing (OTLP/HTTP to a local receiver stand-in)', () => {
  let rx: OtlpReceiver;
  let server: RunningServer;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    rx = await startOtlpReceiver();
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    server = await startTestServer({
      modelRepository: defaultModelRepository(),
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'kinfer-test'},
      logger: pino({ level: 'info' }, sink),
      grpcPort: 0,
    });
  });
  afterAll(async () => {
    await server.close(); // flushes and unregisters the tracer provider
    await rx.close();
  });

  it('continues the caller trace with infer, decode, queue, compute and encode spans', async () => {
    const res = await postJson(
      `${server.url}/v2/models/echo/infer`,
      { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] },
      { traceparent: `00-${TRACE}-${PARENT}-01` },
    );
    expect(res.status).toBe(200);
    await flushTracing();
    const spans = await rx.waitForSpans((s) => ['kinfer.encode', 'kinfer.compute'].every((n) => s.some((x) => x.name === n && x.traceId === TRACE)), 5000);
    const ours = spans.filter((s) => s.traceId === TRACE);
    const root = ours.find((s) => s.name === 'kinfer.infer')!;
    expect(root.parentSpanId).toBe(PARENT);
    expect(root.attributes['kinfer.model']).toBe('echo');
    for (const stage of ['kinfer.decode', 'kinfer.queue', 'kinfer.compute', 'kinfer.encode']) {
      const span = ours.find((s) => s.name === stage);
      expect(span, stage).toBeDefined();
    }
    expect(ours.find((s) => s.name === 'kinfer.decode')!.parentSpanId).toBe(root.spanId);
    const access = lines.find((l) => l.msg === 'request' && l.path === '/v2/models/echo/infer');
    expect(access?.traceId).toBe(TRACE);
  });

  it('takes the parent from the CloudEvents distributed-tracing extension and carries it on the reply', async () => {
    const trace = 'a'.repeat(32);
    const res = await fetch(`${server.url}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-id': 'e1',
        'ce-source': '/t',
        'ce-type': 't',
        'ce-model': 'echo',
        'ce-traceparent': `00-${trace}-${'b'.repeat(16)}-01`,
      },
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [2] }] }),
    });
    expect(res.status).toBe(200);
    const reply = res.headers.get('ce-traceparent');
    expect(reply).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    await flushTracing();
    const spans = await rx.waitForSpans((s) => s.some((x) => x.name === 'kinfer.infer' && x.traceId === trace), 5000);
    expect(spans.find((s) => s.name === 'kinfer.infer' && s.traceId === trace)!.parentSpanId).toBe('b'.repeat(16));
  });

  it("samples by Triton's trace settings per model: every trace_rate-th request, the skipped ones without any span", async () => {
    const set = async (path: string, body: object) => {
      const res = await postJson(`${server.url}${path}/trace/setting`, body);
      return [res.status, await res.json()];
    };
    expect(await (await fetch(`${server.url}/v2/trace/setting`)).json()).toMatchObject({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_mode: 'opentelemetry' });
    expect(await set('/v2/models/echo', { trace_rate: '2' })).toEqual([200, expect.objectContaining({ trace_rate: '2', trace_level: ['TIMESTAMPS'] })]);
    const traces = ['1', '2', '3', '4'].map((d) => d.repeat(32));
    await flushTracing();
    const before = rx.spans().length;
    for (const t of traces) {
      const res = await postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] }, { traceparent: `00-${t}-${PARENT}-01` });
      expect(res.status).toBe(200);
    }
    await flushTracing();
    await rx.waitForSpans((s) => s.some((x) => x.traceId === traces[3] && x.name === 'kinfer.compute'), 5000);
    const sampled = traces.filter((t) => rx.spans().some((x) => x.traceId === t && x.name === 'kinfer.infer'));
    expect(sampled).toEqual([traces[1], traces[3]]);
    // A skipped request leaves no span at all: its stage spans inherit "not sampled" rather than start traces of their own.
    await new Promise((r) => setTimeout(r, 100));
    await flushTracing();
    expect(new Set(rx.spans().slice(before).map((x) => x.traceId))).toEqual(new Set([traces[1], traces[3]]));
    // The server's setting is unchanged; the model's can be read back, over gRPC too, and cleared with null.
    expect(((await (await fetch(`${server.url}/v2/trace/setting`)).json()) as { trace_rate: string }).trace_rate).toBe('1');
    const client = inferenceClient(server.grpcPort!);
    try {
      const call = (req: unknown) => unary(client, 'TraceSetting', req);
      expect((await call({ model_name: 'echo' })).settings.trace_rate.value).toEqual(['2']);
      const cleared = await call({ model_name: 'echo', settings: { trace_rate: { value: [] }, trace_count: { value: ['5'] } } });
      expect([cleared.settings.trace_rate.value, cleared.settings.trace_count.value]).toEqual([['1'], ['5']]);
    } finally {
      client.close();
    }
    expect(await set('/v2/models/nope', { trace_rate: '2' })).toEqual([404, { error: "model 'nope' is not found" }]);
    expect(await set('/v2', { trace_level: ['TENSORS'] })).toEqual([400, expect.objectContaining({ error: expect.stringMatching(/TENSORS is not traced/) })]);
    expect(((await (await fetch(`${server.url}/v2`)).json()) as { extensions: string[] }).extensions).toContain('trace');
  });
});
