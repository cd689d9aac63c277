/**
 * @module test/bench/file-server.test
 * The storage scenario's origin: whole GETs, resumed GETs (`Range: bytes=N-`),
 * HEAD and a range past the end, over a loopback server with `fileHandler`;
 * and the built script as the scenario starts it (`spawnScript`), HTTPS included.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_CA } from '../helpers/raw-http-server.js';
import { fileHandler } from './file-server.js';
import { spawnScript } from './lib.js';

// Three writes of 1 MiB and a short tail: the handler's chunking and backpressure are in play.
const data = new Uint8Array(3 * (1 << 20) + 12_345).map((_, i) => (i * 31 + 7) & 0xff);
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer(fileHandler(data));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.bin`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('bench file-server', () => {
  it('serves the whole file with its length and ETag', async () => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(data.byteLength));
    expect(res.headers.get('etag')).toBe(`"${data.byteLength}"`);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(data))).toBe(true);
  });

  it('resumes from a byte offset with 206 and Content-Range', async () => {
    const from = (1 << 20) + 3;
    const res = await fetch(url, { headers: { range: `bytes=${from}-` } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${from}-${data.byteLength - 1}/${data.byteLength}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(data.subarray(from)))).toBe(true);
  });

  it('answers HEAD with the length and no body, and a range past the end with 416', async () => {
    const head = await fetch(url, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), (await head.arrayBuffer()).byteLength]).toEqual([200, String(data.byteLength), 0]);
    const past = await fetch(url, { headers: { range: `bytes=${data.byteLength + 1}-` } });
    expect([past.status, past.headers.get('content-range')]).toEqual([416, `bytes */${data.byteLength}`]);
  });

  it('runs as the scenario starts it: spawnScript waits for its ports, HTTP and HTTPS serve the file, close stops it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-file-server-'));
    try {
      const file = join(dir, 'model.bin');
      await writeFile(file, data.subarray(0, 100_000));
      const origin = await spawnScript('file-server.js', [file], undefined, (line) => (line.startsWith('{') ? (JSON.parse(line) as { http: number; https: number }) : undefined), 30_000);
      try {
        const plain = await fetch(`http://127.0.0.1:${origin.value.http}/model.bin`);
        expect(Buffer.from(await plain.arrayBuffer()).equals(Buffer.from(data.subarray(0, 100_000)))).toBe(true);
        const overTls = await new Promise<Buffer>((resolve, reject) => {
          httpsGet({ host: '127.0.0.1', port: origin.value.https, path: '/model.bin', ca: TEST_CA }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
          }).on('error', reject);
        });
        expect(overTls.equals(Buffer.from(data.subarray(0, 100_000)))).toBe(true);
      } finally {
        await origin.close();
      }
      await expect(fetch(`http://127.0.0.1:${origin.value.http}/model.bin`)).rejects.toThrow();
      await expect(spawnScript('file-server.js', [join(dir, 'missing.bin')], undefined, () => 1, 30_000)).rejects.toThrow(/exited 1 before it listened/);
      const unreadable = () => {
        throw new Error('not the expected line');
      };
      await expect(spawnScript('file-server.js', [file], undefined, unreadable, 30_000)).rejects.toThrow(/printed a line its caller cannot read \(not the expected line\): \{"http"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
