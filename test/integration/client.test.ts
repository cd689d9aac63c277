/**
 * @module test/integration/client
 * KinferClient against a real kinfer server on 127.0.0.1 (a temp repository
 * with an `echo` model), through a recording proxy that shows the headers and
 * body framing the server received; plus stand-in servers for retries,
 * timeouts and refused connections.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KinferClient,
  KinferConnectionError,
  KinferHttpError,
  KinferInputError,
  KinferTimeoutError,
  toNumbers,
  toStrings,
  type InferInput,
} from '../../client/index.js';
import { startServer, type RunningServer } from '../../runtime/server/serve.js';
import { until } from '../helpers/until.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A raw node:http server on 127.0.0.1; `handler` answers, every request is recorded first. */
async function rawServer(handler: (req: Seen, res: http.ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let repo: string;
let server: RunningServer;
let proxy: Awaited<ReturnType<typeof rawServer>>;
let client: KinferClient;

beforeAll(async () => {
  repo = await mkdtemp(path.join(tmpdir(), 'kinfer-client-'));
  await mkdir(path.join(repo, 'echo'));
  await writeFile(path.join(repo, 'echo', 'config.pbtxt'), 'name: "echo"\nplatform: "echo"\n');
  server = await startServer({
    mode: 'repository',
    modelRepository: repo,
    port: 0,
    host: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    allowClientShm: true,
    sharedMemoryDir: repo,
  });
  await server.startup;
  // Forwards to the real server and records what it forwarded: what the server saw.
  const target = new URL(server.url);
  proxy = await rawServer((req, res) => {
    const fwd = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      },
    );
    fwd.on('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    fwd.end(req.body);
  });
  client = new KinferClient(proxy.url, { timeoutMs: 10_000 });
});

afterAll(async () => {
  client?.close();
  await proxy?.close();
  await server?.close();
  if (repo) await rm(repo, { recursive: true, force: true });
});

describe('health, metadata, repository', () => {
  it('answers live, ready, server metadata and the model list', async () => {
    expect(await client.serverLive()).toBe(true);
    expect(await client.serverReady()).toBe(true);
    const meta = await client.serverMetadata();
    expect(meta.name).toBeTypeOf('string');
    expect(meta.extensions).toContain('binary_tensor_data');
    expect(await client.modelList()).toEqual(['echo']);
  });

  it('reads model metadata and readiness; an unknown model is a KinferHttpError 404 with the server message', async () => {
    const meta = await client.modelMetadata('echo');
    expect(meta.name).toBe('echo');
    expect(meta.platform).toBe('echo');
    expect(await client.modelReady('echo')).toBe(true);
    const err = await client.modelMetadata('nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinferHttpError);
    expect((err as KinferHttpError).status).toBe(404);
    expect((err as KinferHttpError).message).toContain('nope');
    expect(JSON.parse((err as KinferHttpError).body)).toHaveProperty('error');
    expect(await client.modelReady('nope')).toBe(false); // kinfer: unknown → 503 {"ready": false}
  });

  it('indexes, unloads and loads with parameters', async () => {
    expect(await client.repositoryIndex()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'echo', state: 'READY' })]));
    await client.modelUnload('echo');
    expect(await client.modelList()).toEqual([]);
    expect(await client.repositoryIndex({ ready: true })).toEqual([]);
    await client.modelLoad('echo', { parameters: { threads: 2 } });
    const load = proxy.seen.filter((s) => s.url === '/v2/repository/models/echo/load').at(-1)!;
    expect(JSON.parse(load.body.toString())).toEqual({ parameters: { threads: 2 } });
    expect(await client.modelReady('echo')).toBe(true);
    const bad = await client.modelLoad('echo', { parameters: { batch_size: 'many' } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(KinferHttpError);
    expect((bad as KinferHttpError).status).toBe(400);
    expect((bad as KinferHttpError).message).toContain('batch_size');
    expect(await client.modelReady('echo')).toBe(true); // a failed reload leaves the model serving
    // Files sent with the load travel as Triton's file: parameters, base64.
    await client.modelLoad('pushed', { parameters: { config: JSON.stringify({ platform: 'echo' }) }, files: { '3/notes.txt': new TextEncoder().encode('hi') } });
    const sent = proxy.seen.filter((s) => s.url === '/v2/repository/models/pushed/load').at(-1)!;
    expect(JSON.parse(sent.body.toString()).parameters['file:3/notes.txt']).toBe(Buffer.from('hi').toString('base64'));
    expect((await client.modelMetadata('pushed')).versions).toEqual(['3']);
    await client.modelUnload('pushed');
  });

  it("reads and changes Triton's log and trace settings, and registers, lists and unregisters shared-memory regions", async () => {
    expect(await client.logSettings()).toMatchObject({ log_file: '', log_verbose_level: 0 });
    // A format change leaves this (silent) server's level as it is.
    expect(await client.updateLogSettings({ log_format: 'ISO8601' })).toMatchObject({ log_format: 'ISO8601', log_verbose_level: 0 });
    // No exporter here: tracing is off, and only OFF is accepted.
    expect(await client.traceSettings()).toMatchObject({ trace_level: ['OFF'] });
    expect((await client.updateTraceSettings({ trace_rate: '5' }, 'echo')).trace_rate).toBe('5');
    expect((await client.traceSettings('echo')).trace_rate).toBe('5');
    const sent = proxy.seen.filter((s) => s.url === '/v2/models/echo/trace/setting' && s.method === 'POST').at(-1)!;
    expect(JSON.parse(sent.body.toString())).toEqual({ trace_rate: '5' });
    await expect(client.updateTraceSettings({ trace_level: ['TIMESTAMPS'] })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/tracing is off/) });
    // A shared-memory object: here a file in the folder the server was told is /dev/shm.
    await writeFile(path.join(repo, 'obj'), Buffer.alloc(64));
    await client.systemSharedMemoryRegister('r', '/obj', 32, 16);
    expect(await client.systemSharedMemoryStatus()).toEqual([{ name: 'r', key: '/obj', offset: 16, byte_size: 32 }]);
    expect(await client.systemSharedMemoryStatus('r')).toHaveLength(1);
    await client.systemSharedMemoryUnregister('r');
    expect(await client.systemSharedMemoryStatus()).toEqual([]);
    await expect(client.systemSharedMemoryRegister('r', '/missing', 8)).rejects.toMatchObject({ status: 400 });
  });

  it('hasHardware is false when no device exists (404), and sends name and num', async () => {
    expect(await client.hasHardware('DPUCADF8H', 1)).toBe(false);
    const hw = proxy.seen.filter((s) => s.url === '/v2/hardware').at(-1)!;
    expect(JSON.parse(hw.body.toString())).toEqual({ name: 'DPUCADF8H', num: 1 });
  });

  it('waitUntilReady returns for a ready model and times out naming an unknown one', async () => {
    await client.waitUntilReady({ timeoutMs: 2000, model: 'echo' });
    await client.waitUntilReady({ timeoutMs: 2000 });
    const t0 = Date.now();
    const err = await client.waitUntilReady({ timeoutMs: 300, intervalMs: 50, model: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinferTimeoutError);
    expect((err as Error).message).toContain("model 'nope'");
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

const MAX_U64 = 2n ** 64n - 1n;
const BIG_I64 = -(2n ** 62n) - 12345n; // beyond 2^53: JSON numbers would lose it

function everyDatatype(): InferInput[] {
  return [
    { name: 'bool', datatype: 'BOOL', shape: [2, 2], data: [[true, false], [false, true]] },
    { name: 'u8', datatype: 'UINT8', data: new Uint8Array([0, 7, 255]) },
    { name: 'u16', datatype: 'UINT16', data: new Uint16Array([0, 65535]) },
    { name: 'u32', datatype: 'UINT32', data: [0, 4294967295] },
    { name: 'u64', datatype: 'UINT64', data: [0n, MAX_U64] },
    { name: 'i8', datatype: 'INT8', data: new Int8Array([-128, 127]) },
    { name: 'i16', datatype: 'INT16', data: [-32768, 32767] },
    { name: 'i32', datatype: 'INT32', data: new Int32Array([-2147483648, 5]) },
    { name: 'i64', datatype: 'INT64', data: new BigInt64Array([BIG_I64, -1n, 42n]) },
    { name: 'f16', datatype: 'FP16', data: [1.5, -2, 65504, 0.099975586] },
    { name: 'f16bits', datatype: 'FP16', data: new Uint16Array([0x3c00, 0x7c00]) },
    { name: 'f32', data: new Float32Array([1.25, NaN, -Infinity, 3.4e38]) },
    { name: 'f64', datatype: 'FP64', shape: [1, 3], data: [Math.PI, 1e-300, Infinity] },
    { name: 'text', datatype: 'BYTES', data: ['hello', 'wörld', ''] },
  ];
}

function checkEcho(outputs: { name: string; datatype: string; shape: number[]; data: unknown }[]): void {
  const byName = new Map(outputs.map((o) => [o.name, o]));
  expect([...byName.keys()].sort()).toEqual(everyDatatype().map((i) => i.name).sort());
  expect(byName.get('bool')).toMatchObject({ datatype: 'BOOL', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) });
  expect(byName.get('u8')!.data).toEqual(new Uint8Array([0, 7, 255]));
  expect(byName.get('u16')!.data).toEqual(new Uint16Array([0, 65535]));
  expect(byName.get('u32')!.data).toEqual(new Uint32Array([0, 4294967295]));
  expect(byName.get('u64')!.data).toEqual(new BigUint64Array([0n, MAX_U64]));
  expect(byName.get('i8')!.data).toEqual(new Int8Array([-128, 127]));
  expect(byName.get('i16')!.data).toEqual(new Int16Array([-32768, 32767]));
  expect(byName.get('i32')!.data).toEqual(new Int32Array([-2147483648, 5]));
  expect(byName.get('i64')!.data).toEqual(new BigInt64Array([BIG_I64, -1n, 42n]));
  const f16 = byName.get('f16') as never;
  expect(toNumbers(f16)).toEqual([1.5, -2, 65504, 0.0999755859375]);
  expect(byName.get('f16bits')!.data).toEqual(new Uint16Array([0x3c00, 0x7c00]));
  expect(byName.get('f32')).toMatchObject({ datatype: 'FP32', shape: [4] });
  expect(Array.from(byName.get('f32')!.data as Float32Array)).toEqual([1.25, NaN, -Infinity, Math.fround(3.4e38)]);
  expect(byName.get('f64')).toMatchObject({ shape: [1, 3], data: new Float64Array([Math.PI, 1e-300, Infinity]) });
  expect(toStrings(byName.get('text') as never)).toEqual(['hello', 'wörld', '']);
}

describe('infer', () => {
  it('round-trips every datatype through echo as JSON', async () => {
    const n = proxy.seen.length;
    const res = await client.infer('echo', everyDatatype(), { binary: false, id: 'req-json' });
    const sent = proxy.seen.slice(n).find((s) => s.url === '/v2/models/echo/infer')!;
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.headers['inference-header-content-length']).toBeUndefined();
    const wire = JSON.parse(sent.body.toString());
    expect(wire.inputs.find((i: { name: string }) => i.name === 'i64').data[0]).toBe(BIG_I64.toString());
    expect(res.id).toBe('req-json');
    expect(res.modelName).toBe('echo');
    checkEcho(res.outputs);
  });

  it('round-trips every datatype through echo with the binary extension (request and response)', async () => {
    const n = proxy.seen.length;
    const res = await client.infer('echo', everyDatatype(), { binary: true });
    const sent = proxy.seen.slice(n).find((s) => s.url === '/v2/models/echo/infer')!;
    expect(sent.headers['content-type']).toBe('application/octet-stream');
    const headerLength = Number(sent.headers['inference-header-content-length']);
    const head = JSON.parse(sent.body.subarray(0, headerLength).toString());
    expect(head.parameters.binary_data_output).toBe(true);
    expect(head.inputs.every((i: { data?: unknown; parameters: { binary_data_size: number } }) => i.data === undefined && i.parameters.binary_data_size >= 0)).toBe(true);
    checkEcho(res.outputs);
  });

  it('binary request with JSON outputs, and per-output choices', async () => {
    const res = await client.infer('echo', everyDatatype(), { binary: true, binaryOutputs: false });
    checkEcho(res.outputs);
    const picked = await client.infer('echo', everyDatatype(), { binary: false, outputs: [{ name: 'f32', binary: true }, 'text'] });
    expect(picked.outputs.map((o) => o.name)).toEqual(['f32', 'text']);
    expect(toStrings(picked.output('text'))).toEqual(['hello', 'wörld', '']);
  });

  it('switches to binary above the threshold, and for BYTES that are not UTF-8', async () => {
    const small = new KinferClient(proxy.url, { binaryThreshold: 1024 });
    try {
      const n = proxy.seen.length;
      await small.infer('echo', [{ name: 'x', data: new Float32Array(200) }]); // 800 bytes: JSON
      await small.infer('echo', [{ name: 'x', data: new Float32Array(300) }]); // 1200 bytes: binary
      const raw = new Uint8Array([0xff, 0xfe, 0x00]);
      const res = await small.infer('echo', [{ name: 'b', datatype: 'BYTES', data: [raw] }]);
      // Small, but JSON numbers cannot carry them exactly (Triton refuses the string forms kinfer accepts).
      const big = await small.infer('echo', [{ name: 'i', data: new BigInt64Array([2n ** 60n + 1n]) }]);
      await small.infer('echo', [{ name: 'f', data: new Float32Array([Number.NaN]) }]);
      await small.infer('echo', [{ name: 'i', data: new BigInt64Array([2n ** 60n + 1n]) }], { binary: false }); // as told: JSON
      const kinds = proxy.seen.slice(n).map((s) => s.headers['content-type']);
      expect(kinds).toEqual(['application/json', 'application/octet-stream', 'application/octet-stream', 'application/octet-stream', 'application/octet-stream', 'application/json']);
      expect(res.output('b').data).toEqual([raw]);
      expect(big.output('i').data).toEqual(new BigInt64Array([2n ** 60n + 1n]));
    } finally {
      small.close();
    }
  });

  it('a server-side refusal is a KinferHttpError 400 carrying the server message', async () => {
    const err = await client.infer('echo', [{ name: 'x', data: new Float32Array(2) }], { outputs: ['y'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinferHttpError);
    expect((err as KinferHttpError).status).toBe(400);
    expect((err as KinferHttpError).message).toContain("unknown output 'y'");
  });

  it("refuses the model names '.' and '..' (URL dot-segments) before sending, naming them", async () => {
    const n = proxy.seen.length;
    const input = [{ name: 'x', data: new Int32Array([1]) }];
    for (const call of [
      () => client.modelMetadata('..'),
      () => client.modelReady('.'),
      () => client.infer('..', input),
      () => client.modelLoad('..'),
      () => client.modelStatistics('.'),
      () => client.infer('echo', input, { version: '..' }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KinferInputError);
      expect((err as Error).message).toMatch(/^(model name|model version) "\.\.?" cannot be sent/);
    }
    expect(proxy.seen.length).toBe(n);
  });

  it('refuses malformed inputs before sending, naming the input', async () => {
    const n = proxy.seen.length;
    await expect(client.infer('echo', [{ name: 'x', datatype: 'INT8', data: [300] }])).rejects.toThrow(KinferInputError);
    await expect(client.infer('echo', [{ name: 'x', datatype: 'FP32', shape: [3], data: [1, 2] }])).rejects.toThrow(/input 'x': shape \[3\] needs 3 elements, data has 2/);
    await expect(client.infer('echo', [{ name: 'x', data: [1, 2] }])).rejects.toThrow(/give a datatype/);
    expect(proxy.seen.length).toBe(n);
  });

  it('gzips request bodies when asked, and the server inflates them', async () => {
    const gz = new KinferClient(proxy.url, { gzip: 16 });
    try {
      const n = proxy.seen.length;
      const res = await gz.infer('echo', [{ name: 'x', data: new Float64Array([1, 2, 3, 4]) }]);
      const sent = proxy.seen[n]!;
      expect(sent.headers['content-encoding']).toBe('gzip');
      expect(JSON.parse(zlib.gunzipSync(sent.body).toString()).inputs[0].name).toBe('x');
      expect(res.output('x').data).toEqual(new Float64Array([1, 2, 3, 4]));
    } finally {
      gz.close();
    }
  });
});

describe('an early answer to a large body', () => {
  it('a 20 MB+ body the server refuses (404) before reading it is not put back in the pool; later calls work, no stray EPIPE', async () => {
    // In a child process: an 'error' nothing listens to (the socket's write failing after the 404) ends it.
    const client = pathToFileURL(path.resolve(import.meta.dirname, '../../dist/client/index.js')).href;
    const script = `
      import { KinferClient, KinferHttpError } from ${JSON.stringify(client)};
      const c = new KinferClient(process.argv[1], { timeoutMs: 60_000 });
      const big = new Float32Array(16_000_000);
      for (let i = 0; i < 3; i++) {
        const err = await c.infer('nope', [{ name: 'x', data: big }]).catch((e) => e);
        if (!(err instanceof KinferHttpError) || err.status !== 404) throw new Error('attempt ' + i + ': ' + String(err));
      }
      const res = await c.infer('echo', [{ name: 'x', data: new Float32Array([1, 2]) }]);
      console.log(JSON.stringify(Array.from(res.output('x').data)));
      c.close();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, server.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('[1,2]');
  }, 60_000);
});

describe('CloudEvents', () => {
  for (const mode of ['binary', 'structured'] as const) {
    for (const binary of [false, true]) {
      it(`${mode} mode with ${binary ? 'binary' : 'JSON'} data: the reply event carries the response`, async () => {
        const n = proxy.seen.length;
        const reply = await client.inferEvent('echo', everyDatatype(), { mode, binary, eventId: `ev-${mode}-${binary}` });
        const sent = proxy.seen[n]!;
        expect(sent.url).toBe('/');
        if (mode === 'binary') {
          expect(sent.headers['ce-specversion']).toBe('1.0');
          expect(sent.headers['ce-model']).toBe('echo');
        } else {
          expect(sent.headers['content-type']).toContain('application/cloudevents+json');
          expect(JSON.parse(sent.body.toString()).model).toBe('echo');
        }
        expect(reply.mode).toBe(mode);
        expect(reply.attributes.type).toBe('io.kinfer.inference.response');
        expect(reply.attributes.source).toBe('/models/echo');
        expect(reply.attributes.inresponseto).toBe(`ev-${mode}-${binary}`);
        checkEcho(reply.result.outputs);
      });
    }
  }

  it('can target the infer route with a custom type', async () => {
    const n = proxy.seen.length;
    const reply = await client.inferEvent('echo', [{ name: 'x', data: new Int32Array([1, 2]) }], { target: 'infer', type: 'com.example.req' });
    expect(proxy.seen[n]!.url).toBe('/v2/models/echo/infer');
    expect(proxy.seen[n]!.headers['ce-type']).toBe('com.example.req');
    expect(reply.result.output('x').data).toEqual(new Int32Array([1, 2]));
  });
});

describe('Host header, retries and connection errors', () => {
  it('sends the Host header as given; the server sees it', async () => {
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"live":true}');
    });
    const c = new KinferClient(raw.url, { host: 'echo.default.example.com', headers: { Authorization: 'Bearer t' } });
    try {
      expect(await c.serverLive()).toBe(true);
      expect(raw.seen[0]!.headers.host).toBe('echo.default.example.com');
      expect(raw.seen[0]!.headers.authorization).toBe('Bearer t');
      // and through the real server's routing too
      const viaProxy = new KinferClient(proxy.url, { host: 'echo.default.example.com' });
      const n = proxy.seen.length;
      expect(await viaProxy.modelReady('echo')).toBe(true);
      expect(proxy.seen[n]!.headers.host).toBe('echo.default.example.com');
      viaProxy.close();
    } finally {
      c.close();
      await raw.close();
    }
  });

  it('retries 503 twice (honouring Retry-After) and then gets the 200', async () => {
    let hits = 0;
    const raw = await rawServer((_req, res) => {
      hits++;
      if (hits <= 2) {
        res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': hits === 1 ? '0' : '1' });
        res.end('{"error":"queue full"}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"model_name":"m","outputs":[{"name":"y","datatype":"INT32","shape":[1],"data":[7]}]}');
      }
    });
    const c = new KinferClient(raw.url, { retries: 2, retryBaseMs: 10 });
    try {
      const t0 = Date.now();
      const res = await c.infer('m', [{ name: 'x', data: new Int32Array([1]) }]);
      expect(res.output('y').data).toEqual(new Int32Array([7]));
      expect(hits).toBe(3);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950); // the second 503 asked for 1 s
      hits = 0;
      const few = new KinferClient(raw.url, { retries: 1, retryBaseMs: 10, maxRetryDelayMs: 50 });
      const err = await few.infer('m', [{ name: 'x', data: new Int32Array([1]) }]).catch((e: unknown) => e);
      few.close();
      expect(err).toBeInstanceOf(KinferHttpError);
      expect(err).toMatchObject({ status: 503, message: 'queue full', retryAfterSeconds: 1 });
      expect(hits).toBe(2);
    } finally {
      c.close();
      await raw.close();
    }
  });

  it("a model load's 503 is retried only when the server gives Retry-After (the server already retried its pull)", async () => {
    let retryAfter: string | undefined;
    const raw = await rawServer((_req, res) => {
      res.writeHead(503, { 'Content-Type': 'application/json', ...(retryAfter ? { 'Retry-After': retryAfter } : {}) });
      res.end('{"error":"s3://b/m: gave up after 5 attempts"}');
    });
    const c = new KinferClient(raw.url, { retries: 2, retryBaseMs: 5 });
    try {
      const err = await c.modelLoad('m').catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 503, message: 's3://b/m: gave up after 5 attempts' });
      expect(raw.seen.length).toBe(1);
      retryAfter = '0';
      await c.modelUnload('m').catch(() => undefined);
      expect(raw.seen.length).toBe(4); // 1 + two retries
    } finally {
      c.close();
      await raw.close();
    }
  });

  it('a readiness 503 is an answer (false), not retried', async () => {
    const raw = await rawServer((_req, res) => {
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end('{"ready":false}');
    });
    const c = new KinferClient(raw.url, { retries: 3 });
    try {
      expect(await c.serverReady()).toBe(false);
      expect(raw.seen.length).toBe(1);
    } finally {
      c.close();
      await raw.close();
    }
  });

  it('a refused connection is a KinferConnectionError naming the URL, after bounded retries', async () => {
    const raw = await rawServer(() => undefined);
    const url = raw.url;
    await raw.close(); // the port is now closed
    const c = new KinferClient(url, { retries: 2, retryBaseMs: 5 });
    const err = await c.infer('echo', [{ name: 'x', data: new Int32Array([1]) }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinferConnectionError);
    expect((err as KinferConnectionError).code).toBe('ECONNREFUSED');
    expect((err as KinferConnectionError).url).toBe(`${url}/v2/models/echo/infer`);
    expect((err as Error).message).toContain(url);
    c.close();
  });

  it('timeoutMs over 2^31 - 1 ms (which setTimeout fires at once) is a KinferInputError; timeoutMs 0 means no timeout', async () => {
    expect(() => new KinferClient(proxy.url, { timeoutMs: 3_000_000_000 })).toThrow(KinferInputError);
    expect(() => new KinferClient(proxy.url, { timeoutMs: 3_000_000_000 })).toThrow(/timeoutMs must be at most 2147483647 ms/);
    expect(() => new KinferClient(proxy.url, { maxRetryDelayMs: 2 ** 31 })).toThrow(/maxRetryDelayMs must be at most 2147483647 ms/);
    const n = proxy.seen.length;
    await expect(client.infer('echo', [{ name: 'x', data: new Int32Array([1]) }], { timeoutMs: 2 ** 31 })).rejects.toThrow(KinferInputError);
    await expect(client.modelLoad('echo', { timeoutMs: 2 ** 32 })).rejects.toThrow(/timeoutMs must be at most/);
    await expect(client.waitUntilReady({ timeoutMs: 2 ** 31 })).rejects.toThrow(KinferInputError);
    expect(proxy.seen.length).toBe(n);

    // Answers only once the test has seen the request arrive: a 0 that fired at once would have failed by then.
    let hold: (() => void) | undefined;
    const raw = await rawServer((_req, res) => {
      hold = () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"models":["m"]}');
      };
    });
    const c = new KinferClient(raw.url, { timeoutMs: 0, retries: 0 });
    try {
      let settled: unknown;
      const call = c.modelList().then(
        (v) => (settled = v),
        (e: unknown) => (settled = e),
      );
      await until(() => hold !== undefined || settled !== undefined);
      expect(settled).toBeUndefined();
      hold!();
      await call;
      expect(settled).toEqual(['m']);
    } finally {
      c.close();
      await raw.close();
    }
  });

  it('no answer within timeoutMs is a KinferTimeoutError; a non-idempotent call is not resent', async () => {
    const raw = await rawServer(() => undefined); // never answers
    const c = new KinferClient(raw.url, { timeoutMs: 150, retries: 2 });
    try {
      const err = await c.infer('m', [{ name: 'x', data: new Int32Array([1]) }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KinferTimeoutError);
      expect((err as Error).message).toContain('150 ms');
      expect(raw.seen.length).toBe(1);
    } finally {
      c.close();
      await raw.close();
    }
  });
});
