/**
 * KServe's payload logging (runtime/observability/payload-log.ts) through a real server on
 * 127.0.0.1 and a recording sink on 127.0.0.1: the CloudEvents KServe's agent sends (types, id,
 * source, extensions, metadata headers, data as the bytes exchanged), for v2 JSON and binary, V1,
 * CloudEvents and failures; the modes; a sink that fails or stalls never holds up inference.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { decodeHeaderValue } from '../../runtime/protocol/cloudevent.js';
import { PayloadLogger, payloadLogConfig } from '../../runtime/observability/payload-log.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { metricValue, postJson, startTestServer, tempDir } from '../helpers/server.js';
import { binaryBody, le } from '../helpers/v2-bodies.js';
import { until } from '../helpers/until.js';

interface Received {
  headers: Record<string, string>;
  body: Buffer;
}

/** A sink recording every event; `hold` keeps its answers back until released. */
async function startSink(): Promise<{ url: string; events: Received[]; status: { code: number }; hold: { on: boolean; release: () => void }; close: () => Promise<void> }> {
  const events: Received[] = [];
  const status = { code: 202 };
  const held: (() => void)[] = [];
  const hold = { on: false, release: () => held.splice(0).forEach((f) => f()) };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = k.startsWith('ce-') ? decodeHeaderValue(k, v) : v;
      events.push({ headers, body: Buffer.concat(chunks) });
      const answer = () => res.writeHead(status.code).end();
      if (hold.on) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/default/logs`,
    events,
    status,
    hold,
    close: async () => {
      hold.release();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('payload logging (KServe logger)', () => {
  let repo: { dir: string; cleanup: () => Promise<void> };
  let sink: Awaited<ReturnType<typeof startSink>>;
  let server: RunningServer;
  const infer = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: [1.5, -2] }] };

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\nmax_batch_size: 0\n');
    sink = await startSink();
    server = await startTestServer({
      modelRepository: repo.dir,
      env: { KINFER_PAYLOAD_LOG_URL: sink.url, KINFER_PAYLOAD_LOG_METADATA_HEADERS: 'X-User,X-Tenant', K_SERVICE: 'echo-fn', K_REVISION: 'echo-fn-00001', POD_NAMESPACE: 'ml' },
    });
  });
  afterAll(async () => {
    await server.close();
    await sink.close();
    await repo.cleanup();
  });

  const eventsOf = (id: string) => sink.events.filter((e) => e.headers['ce-id'] === id);

  it("sends a v2 JSON request and its 200 response as KServe's agent does: binary-mode events with its id, types, source, extensions and the exact bytes", async () => {
    const body = JSON.stringify(infer);
    const res = await postJson(`${server.url}/v2/models/echo/infer`, body, { 'x-request-id': 'req-1', 'x-user': 'alice "a" 100%' });
    expect(res.status).toBe(200);
    const answer = Buffer.from(await res.arrayBuffer());
    await until(() => eventsOf('req-1').length === 2);
    const [request, response] = [REQ, RES].map((t) => eventsOf('req-1').find((e) => e.headers['ce-type'] === t)!);
    expect(request!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-source': 'echo-fn-00001-deployment',
      'ce-inferenceservicename': 'echo-fn',
      'ce-namespace': 'ml',
      'ce-component': 'predictor',
      'ce-endpoint': 'default',
      'content-type': 'application/json',
    });
    // Listed headers only, in KServe's form; the value's quote, space and % survive percent-encoding.
    expect(JSON.parse(request!.headers['ce-metadata']!)).toEqual({ 'X-User': ['alice "a" 100%'] });
    expect(Date.parse(request!.headers['ce-time']!)).toBeGreaterThan(Date.now() - 60_000);
    expect(request!.body.toString()).toBe(body);
    expect(response!.body.equals(answer)).toBe(true);
    expect(response!.headers['content-type']).toMatch(/^application\/json/);
    expect(response!.headers['ce-metadata']).toBe(request!.headers['ce-metadata']);
  });

  it('binary extension: both bodies as bytes, the response with its own Content-Type; a ce-id from the client is the id', async () => {
    const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [3], parameters: { binary_data_size: 12 } }], outputs: [{ name: 'x', parameters: { binary_data: true } }] }, [le('f32', [1, 2, 3])]);
    const res = await fetch(`${server.url}/v2/models/echo/infer`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': headerLength, 'ce-id': 'evt-7' }, body: Buffer.from(body) });
    expect(res.status).toBe(200);
    const answer = Buffer.from(await res.arrayBuffer());
    await until(() => eventsOf('evt-7').length === 2);
    const [request, response] = [REQ, RES].map((t) => eventsOf('evt-7').find((e) => e.headers['ce-type'] === t)!);
    expect(request!.body.equals(Buffer.from(body))).toBe(true);
    expect(request!.headers['content-type']).toBe('application/octet-stream');
    expect(response!.body.equals(answer)).toBe(true);
    expect(response!.headers['content-type']).toBe(res.headers.get('content-type'));
    expect(JSON.parse(request!.headers['ce-metadata']!)).toEqual({});
  });

  it('a failed request logs its request only; V1 logs both; health and metadata log nothing', async () => {
    const bad = await postJson(`${server.url}/v2/models/echo/infer`, '{"inputs": 3}', { 'x-request-id': 'bad-1' });
    expect(bad.status).toBe(400);
    const v1 = await postJson(`${server.url}/v1/models/echo:predict`, { instances: [[1, 2]] }, { 'x-request-id': 'v1-1' });
    expect(v1.status).toBe(200);
    const v1answer = Buffer.from(await v1.arrayBuffer());
    await fetch(`${server.url}/v2/health/ready`, { headers: { 'x-request-id': 'health-1' } });
    await fetch(`${server.url}/v2/models/echo`, { headers: { 'x-request-id': 'meta-1' } });
    await until(() => eventsOf('v1-1').length === 2 && eventsOf('bad-1').length === 1);
    expect(eventsOf('bad-1')[0]!.headers['ce-type']).toBe(REQ);
    expect(eventsOf('v1-1').find((e) => e.headers['ce-type'] === RES)!.body.equals(v1answer)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(eventsOf('bad-1')).toHaveLength(1);
    expect([...eventsOf('health-1'), ...eventsOf('meta-1')]).toEqual([]);
  });

  it("a percent-encoded ce-id is the id it encodes; a header sent twice is both values in metadata, as KServe's agent lists them", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${server.url}/v2/models/echo/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'ce-id': 'order%2042%20%22x%22', 'x-tenant': ['a', 'b'] } }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
      req.on('error', reject);
      req.end(JSON.stringify(infer));
    });
    expect(status).toBe(200);
    await until(() => eventsOf('order 42 "x"').length === 2);
    expect(JSON.parse(eventsOf('order 42 "x"')[0]!.headers['ce-metadata']!)).toEqual({ 'X-Tenant': ['a', 'b'] });
  });

  it('a sink that fails is counted and logged, and inference goes on', async () => {
    const before = await (await fetch(`${server.url}/metrics`)).text();
    sink.status.code = 500;
    try {
      const res = await postJson(`${server.url}/v2/models/echo/infer`, infer, { 'x-request-id': 'fail-1' });
      expect(res.status).toBe(200);
      await until(() => eventsOf('fail-1').length === 2);
      const after = async () => metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'kinfer_payload_log_events_total', { type: 'response', outcome: 'failed' });
      const was = metricValue(before, 'kinfer_payload_log_events_total', { type: 'response', outcome: 'failed' });
      for (let i = 0; i < 100 && (await after()) < was + 1; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await after()).toBe(was + 1);
    } finally {
      sink.status.code = 202;
    }
  });

  it('a sink that stalls holds no request: past 100 waiting events they are dropped and counted; released, the rest arrive', async () => {
    sink.hold.on = true;
    try {
      const t0 = Date.now();
      for (let i = 0; i < 60; i++) expect((await postJson(`${server.url}/v2/models/echo/infer`, infer, { 'x-request-id': `stall-${i}` })).status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(9_000); // the sends' 10 s timeout never came into it
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const dropped = metricValue(text, 'kinfer_payload_log_events_total', { type: 'request', outcome: 'dropped' }) + metricValue(text, 'kinfer_payload_log_events_total', { type: 'response', outcome: 'dropped' });
      // 120 events: 5 in flight, 100 waiting, 15 dropped.
      expect(dropped).toBe(15);
    } finally {
      sink.hold.on = false;
      sink.hold.release();
    }
    await until(() => sink.events.filter((e) => e.headers['ce-id']?.startsWith('stall-')).length === 105, 10_000, 20);
  });
});

describe('payload logging modes and settings', () => {
  it("mode 'request' sends requests only, 'response' responses only; a bad URL or mode stops the start naming the variable", async () => {
    const repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    const sink = await startSink();
    try {
      for (const mode of ['request', 'response'] as const) {
        const server = await startTestServer({ modelRepository: repo.dir, env: { KINFER_PAYLOAD_LOG_URL: sink.url, KINFER_PAYLOAD_LOG_MODE: mode } });
        try {
          const res = await postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [7] }] }, { 'x-request-id': `mode-${mode}` });
          expect(res.status).toBe(200);
        } finally {
          await server.close(); // flushes what it holds
        }
        expect(sink.events.filter((e) => e.headers['ce-id'] === `mode-${mode}`).map((e) => e.headers['ce-type'])).toEqual([mode === 'request' ? REQ : RES]);
        // The side a mode does not send is not kept for the request's life either.
        const logger = new PayloadLogger(payloadLogConfig({ KINFER_PAYLOAD_LOG_URL: sink.url, KINFER_PAYLOAD_LOG_MODE: mode })!, pino({ level: 'silent' }), new Registry());
        expect(logger.capture(() => undefined, 'r')).toMatchObject({ logRequest: mode === 'request', logResponse: mode === 'response' });
      }
      await expect(startTestServer({ modelRepository: repo.dir, env: { KINFER_PAYLOAD_LOG_URL: 'not a url' } })).rejects.toThrow('KINFER_PAYLOAD_LOG_URL "not a url" is not a URL');
      await expect(startTestServer({ modelRepository: repo.dir, env: { KINFER_PAYLOAD_LOG_URL: sink.url, KINFER_PAYLOAD_LOG_MODE: 'some' } })).rejects.toThrow('KINFER_PAYLOAD_LOG_MODE "some": expected one of all, request, response');
    } finally {
      await sink.close();
      await repo.cleanup();
    }
  });
});

const REQ = 'org.kubeflow.serving.inference.request';
const RES = 'org.kubeflow.serving.inference.response';
