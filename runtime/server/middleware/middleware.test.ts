/**
 * @module server/middleware/middleware.test
 * The per-request middleware through a real server: request id (given, bad,
 * absent), Vary on every response, compression only when asked for (encoding
 * negotiation, Content-Length, the async path for large replies, what is never compressed).
 */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, tempDir } from '../../../test/helpers/server.js';
import type { RunningServer } from '../serve.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('per-request middleware', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const body = { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 300], data: Array.from({ length: 300 }, (_, i) => i / 7) }] };

  beforeAll(async () => {
    repo = await tempDir();
    await symlink(join(process.cwd(), 'models', 'echo'), join(repo.dir, 'echo'));
    server = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  it('echoes a valid x-request-id and replaces an invalid or missing one with a UUID', async () => {
    const url = `${server.url}/v2/models/echo/infer`;
    const given = await postJson(url, body, { 'x-request-id': 'abc-123=' });
    expect(given.status).toBe(200);
    expect(given.headers.get('x-request-id')).toBe('abc-123=');
    const bad = await postJson(url, body, { 'x-request-id': 'has space/slash' });
    expect(bad.headers.get('x-request-id')).toMatch(UUID);
    const none = await postJson(url, body);
    expect(none.headers.get('x-request-id')).toMatch(UUID);
    expect(none.headers.get('x-request-id')).not.toBe(bad.headers.get('x-request-id'));
    const missing = await postJson(`${server.url}/v2/models/nope/infer`, body);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-request-id')).toMatch(UUID);
  });

  // node:http client: no automatic Accept-Encoding, no automatic decompression.
  async function raw(path: string, headers: Record<string, string>, payload?: string | Buffer) {
    const { request } = await import('node:http');
    return new Promise<{ status?: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const req = request(`${server.url}${path}`, { method: payload === undefined ? 'GET' : 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
  const inflate = (enc: unknown, b: Buffer) => (enc === 'gzip' ? gunzipSync(b) : enc === 'deflate' ? inflateSync(b) : b);

  it('sends Vary: Accept-Encoding, and compresses only for a client that asks', async () => {
    const url = `${server.url}/v2/models/echo/infer`;
    const plain = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'accept-encoding': 'identity' } });
    expect(plain.headers.get('vary')).toBe('Accept-Encoding');
    expect(plain.headers.get('content-encoding')).toBeNull();
    const text = await plain.text();
    expect(Number(plain.headers.get('content-length'))).toBe(Buffer.byteLength(text));

    const json = { 'content-type': 'application/json' };
    const cases: [string | undefined, string | undefined][] = [
      ['gzip', 'gzip'],
      ['deflate', 'deflate'],
      ['gzip, deflate', 'gzip'], // httpx / requests default
      ['deflate;q=1, gzip;q=0.5', 'deflate'],
      ['gzip;q=0, deflate;q=0', undefined],
      ['br', undefined],
      ['*', 'gzip'],
      ['*;q=0.2, gzip;q=0', 'deflate'],
      [undefined, undefined],
    ];
    for (const [accept, expected] of cases) {
      const got = await raw('/v2/models/echo/infer', accept === undefined ? json : { ...json, 'accept-encoding': accept }, JSON.stringify(body));
      expect(got.status, accept).toBe(200);
      expect(got.headers['content-encoding'], accept).toBe(expected);
      expect(got.headers.vary, accept).toBe('Accept-Encoding');
      // Whole-body compression: a Content-Length, never chunked.
      expect(got.headers['transfer-encoding'], accept).toBeUndefined();
      expect(Number(got.headers['content-length']), accept).toBe(got.body.byteLength);
      expect(inflate(expected, got.body).toString('utf8'), accept).toBe(text);
      if (expected) expect(got.body.byteLength, accept).toBeLessThan(Buffer.byteLength(text) / 2);
    }
  });

  it('compresses large replies off the event loop, and other routes after the handler', async () => {
    const big = { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 20000], data: Array.from({ length: 20000 }, (_, i) => i / 3) }] };
    const got = await raw('/v2/models/echo/infer', { 'content-type': 'application/json', 'accept-encoding': 'deflate' }, JSON.stringify(big));
    expect(got.headers['content-encoding']).toBe('deflate');
    expect(Number(got.headers['content-length'])).toBe(got.body.byteLength);
    const out = JSON.parse(inflateSync(got.body).toString('utf8')) as { outputs: { data: number[] }[] };
    expect(out.outputs[0]!.data).toEqual(Array.from(Float32Array.from(big.inputs[0]!.data)));

    // /metrics (Prometheus text, several KiB) goes through the middleware's own path.
    const metrics = await raw('/metrics', { 'accept-encoding': 'gzip' });
    expect(metrics.headers['content-encoding']).toBe('gzip');
    expect(Number(metrics.headers['content-length'])).toBe(metrics.body.byteLength);
    expect(gunzipSync(metrics.body).toString('utf8')).toMatch(/^# HELP /m);
  });

  it('leaves small, binary, HEAD and probe replies uncompressed', async () => {
    const gz = { 'accept-encoding': 'gzip' };
    const small = await raw('/v2/models/echo/infer', { ...gz, 'content-type': 'application/json' }, JSON.stringify({ inputs: [{ name: 'a', datatype: 'FP32', shape: [2], data: [1, 2] }] }));
    expect(small.body.byteLength).toBeLessThan(1024);
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(small.body.toString('utf8'))).toMatchObject({ outputs: [{ name: 'a', data: [1, 2] }] });

    // Binary extension: a 4 KiB tensor body stays as raw bytes.
    const tensor = Buffer.from(new Float32Array(1024).fill(0.25).buffer);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 1024], parameters: { binary_data_size: tensor.byteLength } }], outputs: [{ name: 'a', parameters: { binary_data: true } }] }));
    const bin = await raw('/v2/models/echo/infer', { ...gz, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) }, Buffer.concat([header, tensor]));
    expect(bin.status).toBe(200);
    expect(bin.headers['content-encoding']).toBeUndefined();
    expect(bin.body.subarray(bin.body.byteLength - tensor.byteLength).equals(tensor)).toBe(true);

    const probe = await raw('/v2/health/ready', { 'accept-encoding': 'gzip, deflate' });
    expect(probe.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(probe.body.toString('utf8'))).toEqual({ ready: true });

    const { request } = await import('node:http');
    const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
      request(`${server.url}/metrics`, { method: 'HEAD', headers: gz }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      })
        .on('error', reject)
        .end();
    });
    expect(head['content-encoding']).toBeUndefined();
  });
});
