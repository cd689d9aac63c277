/**
 * @module test/bench/file-server.test
 * The storage scenario's origin: whole GETs, resumed GETs (`Range: bytes=N-`),
 * HEAD and a range past the end, over a loopback server with `fileHandler`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileHandler } from './file-server.js';

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
});
