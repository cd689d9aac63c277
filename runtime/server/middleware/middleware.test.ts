/**
 * @module server/middleware/middleware.test
 * The per-request middleware through a real server: request id (given, bad,
 * absent), Vary on every response, compression only when asked for.
 */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
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

  it('sends Vary: Accept-Encoding, and gzip only to a client that asks for it', async () => {
    const url = `${server.url}/v2/models/echo/infer`;
    const plain = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'accept-encoding': 'identity' } });
    expect(plain.headers.get('vary')).toBe('Accept-Encoding');
    expect(plain.headers.get('content-encoding')).toBeNull();
    const text = await plain.text();
    expect(Number(plain.headers.get('content-length'))).toBe(Buffer.byteLength(text));

    // node:http client: no automatic Accept-Encoding, no automatic decompression.
    const { request } = await import('node:http');
    const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers.vary).toBe('Accept-Encoding');
    expect(JSON.parse(gunzipSync(raw.body).toString('utf8'))).toEqual(JSON.parse(text));

    const bare = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    expect(bare['content-encoding']).toBeUndefined();
    expect(bare.vary).toBe('Accept-Encoding');
  });
});
