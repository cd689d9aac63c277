/**
 * @module storage/http.test
 * `pull()` of `http://` against raw `net` servers on 127.0.0.1, so framing is
 * under the test's control: body bytes in the header packet, odd splits, a
 * connection lost mid-body and resumed, chunked bodies (and a broken one that
 * must fail, not truncate), redirects (credentials dropped across origins), and
 * header values that would inject a header. The reader itself: http1.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rawServer, TEST_CA_FILE, type RawServer } from '../../test/helpers/raw-http-server.js';
import { pull, type PullOptions } from './pull.js';

let root: string;
const servers: RawServer[] = [];
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-http-'));
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await rm(root, { recursive: true, force: true });
});

/** A raw server (test/helpers/raw-http-server.ts) closed after the test. */
async function serve(reply: (sock: Socket, head: string, n: number) => void, tls = false): Promise<RawServer> {
  const s = await rawServer(reply, { tls });
  servers.push(s);
  return s;
}

function opts(dest: string, extra: Partial<PullOptions> = {}): PullOptions {
  return { dest, env: {}, retries: 3, backoffMs: 5, stallMs: 3000, progressIntervalMs: 0, logger: pino({ level: 'silent' }), ...extra };
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 11)) & 0xff;
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('http transport (http1.ts reader, hand-framed responses)', () => {
  it('takes body bytes from the header packet and from odd splits, byte for byte', async () => {
    const body = pattern(3 * 1024 * 1024 + 123);
    const { port, seen } = await serve(async (sock) => {
      // Headers and the first 1000 body bytes in one write, then uneven pieces.
      sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nETag: "v1"\r\n\r\n`), body.subarray(0, 1000)]));
      for (let off = 1000; off < body.length; ) {
        const n = Math.min(body.length - off, 1 + ((off * 13) % 700_000));
        if (!sock.write(body.subarray(off, off + n))) await new Promise((r) => sock.once('drain', r));
        off += n;
      }
      sock.end();
    });
    const dest = path.join(root, 'm');
    const r = await pull(`http://127.0.0.1:${port}/a/model.bin`, opts(dest));
    expect(r.bytes).toBe(body.length);
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]!).toMatch(/^GET \/a\/model\.bin HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\nConnection: close/);
  });

  it('resumes with Range + If-Range after the connection is lost mid-body', async () => {
    const body = pattern(2 * 1024 * 1024 + 5);
    const { port, seen } = await serve((sock, head, n) => {
      const range = /\r\nrange: bytes=(\d+)-/i.exec(head);
      const start = range ? Number(range[1]) : 0;
      const part = body.subarray(start);
      const status = range ? '206 Partial Content' : '200 OK';
      const cr = range ? `Content-Range: bytes ${start}-${body.length - 1}/${body.length}\r\n` : '';
      sock.write(`HTTP/1.1 ${status}\r\nContent-Length: ${part.length}\r\nAccept-Ranges: bytes\r\nETag: "v1"\r\n${cr}\r\n`);
      // The first answer stops after 300,001 bytes and drops the connection.
      if (n === 1) sock.write(part.subarray(0, 300_001), () => sleep(20).then(() => sock.destroy()));
      else sock.end(part);
    });
    const dest = path.join(root, 'm');
    const r = await pull(`http://127.0.0.1:${port}/model.bin`, opts(dest));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    expect(seen).toHaveLength(2);
    expect(seen[1]!).toMatch(/\r\nrange: bytes=300001-/i);
    expect(seen[1]!).toMatch(/\r\nif-range: "v1"/i);
  });

  it('reads a chunked body exactly', async () => {
    const body = pattern(200_000);
    const { port, seen } = await serve((sock) => {
      const half = body.length / 2;
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      sock.write(`${half.toString(16)}\r\n`);
      sock.write(body.subarray(0, half));
      sock.write(`\r\n${half.toString(16)}\r\n`);
      sock.write(body.subarray(half));
      sock.end('\r\n0\r\n\r\n');
    });
    const dest = path.join(root, 'm');
    const r = await pull(`http://127.0.0.1:${port}/model.bin`, opts(dest));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    expect(seen).toHaveLength(1);
    expect(seen[0]!).toMatch(/\r\nHost: /);
  });

  it('follows redirects and drops authorization when the origin changes', async () => {
    const body = pattern(4096);
    const target = await serve((sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      sock.end(body);
    });
    const origin = await serve((sock, _head, n) => {
      const location = n === 1 ? '/moved/model.bin' : `http://localhost:${target.port}/final/model.bin`;
      sock.end(`HTTP/1.1 ${n === 1 ? 301 : 307} Moved\r\nLocation: ${location}\r\nContent-Length: 0\r\n\r\n`);
    });
    const dest = path.join(root, 'm');
    const env = {
      '127.0.0.1-headers': JSON.stringify({ Authorization: 'Bearer tok-SECRET-1234', 'PRIVATE-TOKEN': 'gl-SECRET-5678' }),
      'localhost-headers': JSON.stringify({ 'X-Api-Key': 'its-own-key' }),
    };
    await pull(`http://127.0.0.1:${origin.port}/model.bin`, opts(dest, { env }));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(origin.seen.map((h) => h.split('\r\n')[0])).toEqual(['GET /model.bin HTTP/1.1', 'GET /moved/model.bin HTTP/1.1']);
    expect(origin.seen.every((h) => /\r\nauthorization: Bearer tok-SECRET-1234/i.test(h) && /\r\nprivate-token: gl-SECRET-5678/i.test(h))).toBe(true);
    expect(target.seen).toHaveLength(1);
    // Every header from the first host's env stays behind; the new host gets its own.
    expect(target.seen[0]!).not.toMatch(/authorization|private-token|SECRET/i);
    expect(target.seen[0]!).toMatch(/\r\nx-api-key: its-own-key/i);
  });

  it('closes the open response when the file name is refused before the download starts', async () => {
    let closed!: Promise<void>;
    const { port } = await serve((sock) => {
      closed = new Promise((resolve) => sock.once('close', () => resolve()));
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
      sock.write(pattern(1000)); // and never more: only the client can end this
    });
    await expect(pull(`http://127.0.0.1:${port}/bad%5Cname.onnx`, opts(path.join(root, 'm')))).rejects.toThrow(
      /cannot derive a file name from "bad\\\\name\.onnx"/,
    );
    const timeout = sleep(3000).then(() => 'still open');
    expect(await Promise.race([closed.then(() => 'closed'), timeout])).toBe('closed');
  });

  it('refuses a 304 to a request that sent no validator, keeping the old model', async () => {
    const body = pattern(2048);
    const { port } = await serve((sock, _head, n) => {
      if (n === 1) sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]));
      else sock.end('HTTP/1.1 304 Not Modified\r\n\r\n');
    });
    const dest = path.join(root, 'm');
    await pull(`http://127.0.0.1:${port}/model.bin`, opts(dest));
    await expect(pull(`http://127.0.0.1:${port}/model.bin`, opts(dest))).rejects.toThrow(/answered 304 Not Modified to a request without validators/);
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
  });

  it('ignores a Content-Length sent beside Transfer-Encoding: chunked (the chunks decide), in one request', async () => {
    const body = pattern(10_000);
    const { port, seen } = await serve((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n');
      sock.end(Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]));
    });
    const dest = path.join(root, 'm');
    const r = await pull(`http://127.0.0.1:${port}/model.bin`, opts(dest));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    expect(seen).toHaveLength(1);
  });

  it('fails a pull whose chunked body breaks, keeping the old model; retries a chunked body cut short', async () => {
    const body = pattern(100_000);
    const { port, seen } = await serve((sock, _head, n) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      sock.write(`${(50_000).toString(16)}\r\n`);
      sock.write(body.subarray(0, 50_000));
      // 1st: a bad chunk size; 2nd: the connection drops after a chunk; 3rd: the whole body.
      if (n === 1) sock.end('\r\nnot-hex\r\n');
      else if (n === 2) sock.end('\r\n');
      else sock.end(Buffer.concat([Buffer.from(`\r\n${(50_000).toString(16)}\r\n`), body.subarray(50_000), Buffer.from('\r\n0\r\n\r\n')]));
    });
    const dest = path.join(root, 'm');
    await expect(pull(`http://127.0.0.1:${port}/model.bin`, opts(dest))).rejects.toThrow(/malformed HTTP response from 127\.0\.0\.1:\d+: chunk size is not hexadecimal/);
    expect(seen).toHaveLength(1);
    const r = await pull(`http://127.0.0.1:${port}/model.bin`, opts(dest));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    expect(seen).toHaveLength(3);
  });

  it('refuses a <host>-headers value that would inject a header, before connecting', async () => {
    const { port, seen } = await serve((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const env = { '127.0.0.1-headers': JSON.stringify({ 'X-Token': 'abc\r\nX-Admin: 1' }) };
    await expect(pull(`http://127.0.0.1:${port}/model.bin`, opts(path.join(root, 'm'), { env }))).rejects.toThrow(
      /env 127\.0\.0\.1-headers: the value of header "X-Token" contains CR, LF or NUL/,
    );
    expect(seen).toHaveLength(0);
  });

  it('https: refuses an untrusted certificate at once (no retry, no request sent), naming the reason', async () => {
    const { port, seen } = await serve((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), true);
    const t0 = performance.now();
    await expect(pull(`https://127.0.0.1:${port}/model.bin`, opts(path.join(root, 'm'), { backoffMs: 2000 }))).rejects.toThrow(
      /https:\/\/127\.0\.0\.1:\d+\/model\.bin: self-signed certificate/,
    );
    // A retry would have slept at least 1.5 s (backoff 2 s with jitter).
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(seen).toHaveLength(0);
  });

  it('https: a pull in a process that trusts the certificate (NODE_EXTRA_CA_CERTS) gets the body byte for byte', async () => {
    const body = pattern(1024 * 1024 + 77);
    const { port, seen } = await serve(async (sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      for (let off = 0; off < body.length; ) {
        const n = Math.min(body.length - off, 1 + ((off * 11) % 300_000));
        if (!sock.write(body.subarray(off, off + n))) await new Promise((r) => sock.once('drain', r));
        off += n;
      }
      sock.end();
    }, true);
    const dest = path.join(root, 'm');
    // NODE_EXTRA_CA_CERTS is read once at process start, so the pull runs in a child (the bench's pull-child).
    const child = path.join(process.cwd(), 'dist', 'test', 'bench', 'pull-child.js');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [child, `https://localhost:${port}/model.bin`, dest], { env: { ...process.env, NODE_EXTRA_CA_CERTS: TEST_CA_FILE }, timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout),
      );
    });
    expect(JSON.parse(out)).toMatchObject({ bytes: body.length });
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^GET \/model\.bin HTTP\/1\.1\r\nHost: localhost:\d+\r\n/);
  });
});
