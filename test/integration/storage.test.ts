/**
 * Storage pulls against real servers on 127.0.0.1: the HTTP fixture, moto_server
 * (S3, behind a counting proxy), and the GCS JSON-API fixture.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgument, NotFound, PayloadTooLarge, Unavailable } from '../../runtime/core/errors.js';
import { TOKEN_REFRESH_MARGIN_MS } from '../../runtime/storage/gcs-credentials.js';
import { pull } from '../../runtime/storage/pull.js';
import { startGcsFixture, type GcsFixture } from '../helpers/gcs-fixture.js';
import { makeTarGz, makeZip, startCountingProxy, startHttpFixture, type CountingProxy, type HttpFixture } from '../helpers/http-fixture.js';
import { motoAvailable, startMoto, type Moto } from '../helpers/moto.js';
import { capture, fast, tree } from '../helpers/pulls.js';
import { freePort, silentServer } from '../helpers/loopback.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-storage-it-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));



/** A GOOGLE_APPLICATION_CREDENTIALS file: an external_account key whose token exchange goes to `tokenUrl`. */
async function externalAccountKey(tokenUrl: string): Promise<string> {
  const subject = path.join(root, 'subject-token');
  await writeFile(subject, 'subject-jwt-value');
  const keyFile = path.join(root, 'creds.json');
  await writeFile(
    keyFile,
    JSON.stringify({
      type: 'external_account',
      audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: tokenUrl,
      credential_source: { file: subject },
    }),
  );
  return keyFile;
}

describe('http(s)://', () => {
  let fx: HttpFixture;
  beforeAll(async () => {
    fx = await startHttpFixture();
  });
  afterAll(() => fx.close());
  beforeEach(() => {
    fx.files.clear();
    fx.faults.clear();
    fx.requests.length = 0;
  });

  it('pulls a single file into dest/<basename>', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.from('onnx-bytes') });
    const dest = path.join(root, 'resnet');
    const r = await pull(`${fx.url}/m/model.onnx`, fast({ dest }));
    expect(r).toEqual({ dir: dest, cached: false, bytes: 10 });
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('onnx-bytes');
  });

  it('unpacks a .tar.gz by extension and a zip by Content-Type', async () => {
    fx.files.set('/m/model.tar.gz', { body: makeTarGz([{ name: '1/model.onnx', body: 'tgz' }, { name: 'config.pbtxt', body: 'c' }]) });
    fx.files.set('/m/latest', { body: makeZip([{ name: 'model.onnx', body: 'zip' }]), contentType: 'application/zip' });
    const a = path.join(root, 'a');
    const b = path.join(root, 'b');
    await pull(`${fx.url}/m/model.tar.gz`, fast({ dest: a }));
    await pull(`${fx.url}/m/latest`, fast({ dest: b }));
    expect(await tree(a)).toEqual(['1/model.onnx', 'config.pbtxt']);
    expect(await readFile(path.join(b, 'model.onnx'), 'utf8')).toBe('zip');
    expect((await readdir(root)).sort()).toEqual(['a', 'b']);
  });

  it('refuses an archive whose entry escapes, leaving nothing behind', async () => {
    fx.files.set('/m/evil.tgz', { body: makeTarGz([{ name: '../../escaped.txt', body: 'x' }]) });
    const err = await pull(`${fx.url}/m/evil.tgz`, fast({ dest: path.join(root, 'm') })).catch((e: unknown) => e);
    expect((err as Error).message).toContain('"../../escaped.txt"');
    expect(await readdir(root)).toEqual([]);
  });

  it('sends the <hostname>-headers env, and names the host (not the token) on 401', async () => {
    const token = 'Bearer tok-9f8e7d6c5b4a';
    fx.files.set('/private/model.onnx', { body: Buffer.from('secret model') });
    fx.faults.set('/private/model.onnx', { requireHeader: ['authorization', token] });
    const dest = path.join(root, 'p');
    const env = { '127.0.0.1-headers': JSON.stringify({ Authorization: token }) };
    await pull(`${fx.url}/private/model.onnx`, fast({ dest, env }));
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('secret model');

    const err = await pull(`${fx.url}/private/model.onnx`, fast({ dest: path.join(root, 'q') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/access denied by 127\.0\.0\.1:\d+ \(HTTP 401\)/);
  });

  it('is NotFound on 404', async () => {
    await expect(pull(`${fx.url}/nope.onnx`, fast({ dest: path.join(root, 'n') }))).rejects.toBeInstanceOf(NotFound);
  });

  it('retries 5xx and succeeds', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.from('after retries') });
    fx.faults.set('/m/model.onnx', { fail5xx: 2, status5xx: 502 });
    const dest = path.join(root, 'm');
    await pull(`${fx.url}/m/model.onnx`, fast({ dest }));
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('after retries');
    expect(fx.requests.map((r) => r.status)).toEqual([502, 502, 200]);
  });

  it('resumes a body dropped mid-way with Range and ends with the exact bytes', async () => {
    const body = Buffer.alloc(1 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    fx.files.set('/m/big.bin', { body });
    fx.faults.set('/m/big.bin', { dropAfter: 200_000, dropTimes: 2 });
    const dest = path.join(root, 'm');
    const r = await pull(`${fx.url}/m/big.bin`, fast({ dest }));
    expect(Buffer.compare(await readFile(path.join(dest, 'big.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    const ranged = fx.requests.filter((q) => q.headers.range);
    expect(ranged.length).toBe(2);
    expect(ranged[0]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(ranged.every((q) => q.status === 206)).toBe(true);
  });

  it('never half-loads: a download that keeps dropping fails and the old model stays', async () => {
    const dest = path.join(root, 'm');
    await mkdir(dest);
    await writeFile(path.join(dest, 'model.onnx'), 'old model');
    fx.files.set('/m/model.onnx', { body: Buffer.alloc(300_000, 7), ranges: false });
    fx.faults.set('/m/model.onnx', { dropAfter: 1000, dropTimes: 100 });
    const err = await pull(`${fx.url}/m/model.onnx`, fast({ dest, retries: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/gave up after 3 attempts/);
    expect(await readdir(root)).toEqual(['m']);
    expect(await readdir(dest)).toEqual(['model.onnx']);
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('old model');
  });

  it('retries a stalled body, and the total timeout stops a pull that hangs', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.from('eventually') });
    fx.faults.set('/m/model.onnx', { stallMs: 10_000, stallTimes: 1 });
    const dest = path.join(root, 'm');
    await pull(`${fx.url}/m/model.onnx`, fast({ dest, stallMs: 200 }));
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('eventually');

    fx.faults.set('/m/model.onnx', { stallMs: 10_000, stallTimes: 10 });
    const started = Date.now();
    const err = await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 't'), timeoutMs: 400 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/timed out after/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('enforces the size limit before and during the body', async () => {
    fx.files.set('/m/big.bin', { body: Buffer.alloc(5000) });
    const e1 = await pull(`${fx.url}/m/big.bin`, fast({ dest: path.join(root, 'm'), maxBytes: 1000 })).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(PayloadTooLarge);
    expect((e1 as Error).message).toMatch(/size limit of 1000 bytes/);
    // Without Content-Length the limit trips while reading.
    fx.files.set('/m/chunked.bin', { body: Buffer.alloc(5000), noLength: true });
    fx.faults.set('/m/chunked.bin', { chunkSize: 512 });
    const e2 = await pull(`${fx.url}/m/chunked.bin`, fast({ dest: path.join(root, 'm'), maxBytes: 1000 })).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(PayloadTooLarge);
    expect(fx.requests.at(-1)!.headers['content-length']).toBeUndefined();
    expect(await readdir(root)).toEqual([]);
  });

  it('cache: a restarted pod revalidates (304) and downloads no second body; a changed artifact is fetched again', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.from('v1') });
    const cacheDir = path.join(root, 'cache');
    const first = await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 'pod1', 'm'), cacheDir }));
    expect(first.cached).toBe(false);
    const second = await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 'pod2', 'm'), cacheDir }));
    expect(second).toEqual({ dir: path.join(root, 'pod2', 'm'), cached: true, bytes: 0 });
    expect(await readFile(path.join(root, 'pod2', 'm', 'model.onnx'), 'utf8')).toBe('v1');
    expect(fx.bodies('/m/model.onnx')).toBe(1);
    expect(fx.requests.at(-1)!.status).toBe(304);
    expect(fx.requests.at(-1)!.headers['if-none-match']).toBeTruthy();

    fx.files.set('/m/model.onnx', { body: Buffer.from('v2-changed') });
    const third = await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 'pod2', 'm'), cacheDir }));
    expect(third.cached).toBe(false);
    expect(await readFile(path.join(root, 'pod2', 'm', 'model.onnx'), 'utf8')).toBe('v2-changed');
    expect(fx.bodies('/m/model.onnx')).toBe(2);
  });

  it('cache without ETag falls back to Last-Modified', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.from('lm'), etag: null });
    const cacheDir = path.join(root, 'cache');
    await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 'a'), cacheDir }));
    const r = await pull(`${fx.url}/m/model.onnx`, fast({ dest: path.join(root, 'b'), cacheDir }));
    expect(r.cached).toBe(true);
    expect(fx.requests.at(-1)!.headers['if-modified-since']).toBe('Wed, 21 Oct 2015 07:28:00 GMT');
  });

  it('logs progress, and never logs or throws credentials (URL password, signed query, header token)', async () => {
    fx.files.set('/secure/model.onnx', { body: Buffer.alloc(64 * 1024, 1) });
    fx.faults.set('/secure/model.onnx', { fail5xx: 1, chunkSize: 8 * 1024, chunkDelayMs: 40 });
    const log = capture();
    const port = new URL(fx.url).port;
    const uri = `http://kuser:pa55-w0rd-XYZ@127.0.0.1:${port}/secure/model.onnx?X-Amz-Signature=SIG0123456789abcdef`;
    await pull(uri, fast({ dest: path.join(root, 'm'), logger: log.logger, progressIntervalMs: 50 }));
    const text = log.text();
    expect(text).toMatch(/download progress/);
    expect(text).toMatch(/"bytesPerSecond":\d+/);
    expect(text).toMatch(/transient failure, retrying/);
    expect(fx.requests.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from('kuser:pa55-w0rd-XYZ').toString('base64')}`);
    for (const secret of ['pa55-w0rd-XYZ', 'SIG0123456789abcdef', Buffer.from('kuser:pa55-w0rd-XYZ').toString('base64')]) {
      expect(text).not.toContain(secret);
    }

    fx.faults.set('/secure/model.onnx', { requireHeader: ['x-api-key', 'never'] });
    const log2 = capture();
    const env = { '127.0.0.1-headers': JSON.stringify({ 'x-api-key': 'hdr-secret-4242' }) };
    const err = await pull(uri, fast({ dest: path.join(root, 'n'), logger: log2.logger, env })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    const all = `${(err as Error).message}\n${(err as Error).stack}\n${log2.text()}`;
    for (const secret of ['pa55-w0rd-XYZ', 'SIG0123456789abcdef', 'hdr-secret-4242']) expect(all).not.toContain(secret);
  });
});

describe.skipIf(!motoAvailable())('s3:// (moto_server)', () => {
  let moto: Moto;
  let proxy: CountingProxy;
  let admin: S3Client;
  const KEY_ID = 'AKIAKINFERTEST00001';
  const SECRET = 'kinfer/Secret+Key/0001abcdef';
  const env = () => ({ AWS_ACCESS_KEY_ID: KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_ENDPOINT_URL: proxy.url, AWS_DEFAULT_REGION: 'us-east-1' });
  const put = (Key: string, Body: string | Buffer, Bucket = 'models') => admin.send(new PutObjectCommand({ Bucket, Key, Body, ...(Bucket === 'public' ? { ACL: 'public-read' as const } : {}) }));
  const objectGets = (key: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.split('?')[0] === `/models/${key}`).length;

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startCountingProxy(moto.endpoint);
    admin = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });
    await admin.send(new CreateBucketCommand({ Bucket: 'models' }));
    await put('resnet/config.pbtxt', 'platform: "onnx_onnxv1"');
    await put('resnet/1/model.onnx', 'resnet-weights');
    await put('resnet50/model.onnx', 'a sibling prefix that must not be pulled');
    await put('packed/model.tar.gz', makeTarGz([{ name: 'model.onnx', body: 'from tarball' }]));
    await put('single/model.onnx', 'one object');
    await admin.send(new CreateBucketCommand({ Bucket: 'public', ACL: 'public-read' }));
    await put('open/model.onnx', 'public object', 'public');
  }, 60_000);
  afterAll(async () => {
    admin?.destroy();
    await proxy?.close();
    await moto?.stop();
  });

  it('pulls every object under a prefix into its tree (not a sibling prefix)', async () => {
    const dest = path.join(root, 'resnet');
    const r = await pull('s3://models/resnet', fast({ dest, env: env() }));
    expect(await tree(dest)).toEqual(['1/model.onnx', 'config.pbtxt']);
    expect(await readFile(path.join(dest, '1/model.onnx'), 'utf8')).toBe('resnet-weights');
    expect(r.bytes).toBe('resnet-weights'.length + 'platform: "onnx_onnxv1"'.length);
    expect(proxy.requests.some((q) => q.headers.authorization?.includes(`Credential=${KEY_ID}/`))).toBe(true);
  });

  it('pulls a single object, and unpacks a single archive object', async () => {
    await pull('s3://models/single/model.onnx', fast({ dest: path.join(root, 'a'), env: env() }));
    expect(await readFile(path.join(root, 'a', 'model.onnx'), 'utf8')).toBe('one object');
    await pull('s3://models/packed/model.tar.gz', fast({ dest: path.join(root, 'b'), env: env() }));
    expect(await tree(path.join(root, 'b'))).toEqual(['model.onnx']);
  });

  it('is NotFound for an empty prefix or a missing bucket, and never shows the keys', async () => {
    const log = capture();
    const e1 = await pull('s3://models/nothing-here', fast({ dest: path.join(root, 'x'), env: env(), logger: log.logger })).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(NotFound);
    expect((e1 as Error).message).toMatch(/no objects found.*bucket models/);
    const e2 = await pull('s3://no-such-bucket/x', fast({ dest: path.join(root, 'y'), env: env(), logger: log.logger })).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(NotFound);
    expect((e2 as Error).message).toContain('no-such-bucket');
    const all = `${(e1 as Error).stack}${(e2 as Error).stack}${log.text()}`;
    expect(all).not.toContain(KEY_ID);
    expect(all).not.toContain(SECRET);
  });

  it('anonymous when no keys: requests are unsigned (public bucket); S3_ENDPOINT + S3_USE_HTTPS=0 work', async () => {
    const before = proxy.requests.length;
    const hostPort = new URL(proxy.url).host;
    await pull('s3://public/open', fast({ dest: path.join(root, 'anon'), env: { S3_ENDPOINT: hostPort, S3_USE_HTTPS: '0' } }));
    expect(await readFile(path.join(root, 'anon', 'model.onnx'), 'utf8')).toBe('public object');
    const mine = proxy.requests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((q) => q.headers.authorization === undefined)).toBe(true);
  });

  it('anonymous on a private bucket is Unavailable naming the bucket', async () => {
    const err = await pull('s3://models/single', fast({ dest: path.join(root, 'x'), env: { AWS_ENDPOINT_URL: proxy.url } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/access denied to bucket models \(HTTP 403\)/);
  });

  it('cache: a restart lists (cheap) but gets no object; a changed object is fetched again', async () => {
    await put('cached/model.onnx', 'c1');
    const cacheDir = path.join(root, 'cache');
    const a = await pull('s3://models/cached', fast({ dest: path.join(root, 'pod1'), env: env(), cacheDir }));
    expect(a.cached).toBe(false);
    const b = await pull('s3://models/cached', fast({ dest: path.join(root, 'pod2'), env: env(), cacheDir }));
    expect(b.cached).toBe(true);
    expect(await readFile(path.join(root, 'pod2', 'model.onnx'), 'utf8')).toBe('c1');
    expect(objectGets('cached/model.onnx')).toBe(1);

    await put('cached/model.onnx', 'c2-changed');
    const c = await pull('s3://models/cached', fast({ dest: path.join(root, 'pod2'), env: env(), cacheDir }));
    expect(c.cached).toBe(false);
    expect(await readFile(path.join(root, 'pod2', 'model.onnx'), 'utf8')).toBe('c2-changed');
    expect(objectGets('cached/model.onnx')).toBe(2);
  });
});

describe('s3:// against an endpoint that accepts and never answers', () => {
  it('gives up each request after the stall limit and fails the pull Unavailable, not after the pull timeout', async () => {
    const silent = await silentServer();
    try {
      const started = performance.now();
      const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${silent.port}`, AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' };
      const err = await pull('s3://models/m', fast({ dest: path.join(root, 'm'), env, stallMs: 300, retries: 1, timeoutMs: 120_000 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/TimeoutError.*300 ms/);
      expect(silent.sockets.length).toBeGreaterThanOrEqual(2); // the first attempt and one retry
      expect(performance.now() - started).toBeLessThan(60_000);
    } finally {
      await silent.close();
    }
  });
});

describe('gs:// (JSON API fixture)', () => {
  let gcs: GcsFixture;
  beforeAll(async () => {
    gcs = await startGcsFixture();
    gcs.put('mbucket', 'bert/config.json', '{"platform":"onnx_onnxv1"}');
    gcs.put('mbucket', 'bert/1/model.onnx', 'bert-weights');
    gcs.put('mbucket', 'bert/1/vocab.txt', 'a b c');
    gcs.put('mbucket', 'bertish/model.onnx', 'sibling');
    gcs.put('mbucket', 'packed/latest', makeZip([{ name: 'model.onnx', body: 'zipped in gcs' }]), 'application/zip');
  });
  afterAll(() => gcs.close());
  afterEach(() => {
    gcs.requireToken = undefined;
    gcs.pageSize = 1000;
  });

  it('pulls a prefix across listing pages (STORAGE_EMULATOR_HOST without scheme)', async () => {
    gcs.pageSize = 1;
    const dest = path.join(root, 'bert');
    await pull('gs://mbucket/bert', fast({ dest, env: { STORAGE_EMULATOR_HOST: new URL(gcs.url).host } }));
    expect(await tree(dest)).toEqual(['1/model.onnx', '1/vocab.txt', 'config.json']);
    expect(gcs.requests.filter((r) => r.path.includes('pageToken=')).length).toBeGreaterThan(1);
  });

  it('unpacks a single archive object by its Content-Type', async () => {
    const dest = path.join(root, 'p');
    await pull('gs://mbucket/packed/latest', fast({ dest, env: { GCS_ENDPOINT: gcs.url } }));
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('zipped in gcs');
  });

  it('refuses objects that land on one file (a/x and a/./x) or on a file and a folder (f and f/g), before any download', async () => {
    gcs.put('mbucket', 'dup/1/model.onnx', 'good');
    gcs.put('mbucket', 'dup/1/./model.onnx', 'other');
    gcs.put('mbucket', 'fd/a', 'file');
    gcs.put('mbucket', 'fd/a/b', 'under it');
    const env = { GCS_ENDPOINT: gcs.url };
    const gets = () => gcs.requests.filter((r) => r.path.includes('alt=media')).length;
    const before = gets();
    await expect(pull('gs://mbucket/dup', fast({ dest: path.join(root, 'dup'), env }))).rejects.toThrow(/objects "dup\/1\/(\.\/)?model.onnx" and "dup\/1\/(\.\/)?model.onnx" both land on "1\/model.onnx"; refused/);
    await expect(pull('gs://mbucket/fd', fast({ dest: path.join(root, 'fd'), env }))).rejects.toThrow(/object "fd\/a\/b" needs a folder at "a", where object "fd\/a" is a file; refused/);
    await expect(pull('gs://mbucket/fd', fast({ dest: path.join(root, 'fd'), env }))).rejects.toBeInstanceOf(InvalidArgument);
    expect(gets()).toBe(before);
  });

  it('is NotFound for a missing bucket or an empty prefix', async () => {
    const env = { GCS_ENDPOINT: gcs.url };
    await expect(pull('gs://nobucket/x', fast({ dest: path.join(root, 'a'), env }))).rejects.toBeInstanceOf(NotFound);
    await expect(pull('gs://mbucket/none', fast({ dest: path.join(root, 'b'), env }))).rejects.toBeInstanceOf(NotFound);
  });

  it('cache: a restart downloads no object; a new generation is fetched again', async () => {
    gcs.put('mbucket', 'c/model.onnx', 'g1');
    const env = { GCS_ENDPOINT: gcs.url };
    const cacheDir = path.join(root, 'cache');
    await pull('gs://mbucket/c', fast({ dest: path.join(root, 'a'), env, cacheDir }));
    const b = await pull('gs://mbucket/c', fast({ dest: path.join(root, 'b'), env, cacheDir }));
    expect(b.cached).toBe(true);
    expect(gcs.downloads('mbucket', 'c/model.onnx')).toBe(1);
    gcs.put('mbucket', 'c/model.onnx', 'g2');
    const c = await pull('gs://mbucket/c', fast({ dest: path.join(root, 'b'), env, cacheDir }));
    expect(c.cached).toBe(false);
    expect(await readFile(path.join(root, 'b', 'model.onnx'), 'utf8')).toBe('g2');
    expect(gcs.downloads('mbucket', 'c/model.onnx')).toBe(2);
  });

  it('GOOGLE_APPLICATION_CREDENTIALS: a token endpoint that never answers fails the pull after the stall limit', async () => {
    const silent = await silentServer();
    try {
      const keyFile = await externalAccountKey(`http://127.0.0.1:${silent.port}/token`);
      const env = { GCS_ENDPOINT: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile };
      const err = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'stuck'), env, stallMs: 300, timeoutMs: 120_000 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/cannot get a Google access token.*no answer in 300 ms/);
      expect(silent.sockets.length).toBeGreaterThanOrEqual(1);
    } finally {
      await silent.close();
    }
  });

  it('GOOGLE_APPLICATION_CREDENTIALS: gets a token, sends it, never logs it; anonymous is refused naming the bucket', async () => {
    const token = 'ya29.kinfer-test-token-77aa';
    gcs.requireToken = token;
    const keyFile = await externalAccountKey(`${gcs.url}/token`);
    const log = capture();
    const dest = path.join(root, 'auth');
    await pull('gs://mbucket/bert/1/model.onnx', fast({ dest, env: { GCS_ENDPOINT: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile }, logger: log.logger }));
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('bert-weights');
    expect(log.text()).not.toContain(token);

    const err = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'anon'), env: { GCS_ENDPOINT: gcs.url } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/access denied.*bucket mbucket/);
  });

  type MetadataAnswer = { status: number; body: string; flavor?: boolean };
  /** A stand-in for the GCE/GKE metadata server's token call: `answer` (or its nth call) decides status, body and whether it says Metadata-Flavor. */
  async function metadataServer(answers: MetadataAnswer | ((n: number) => MetadataAnswer)) {
    const seen: { url: string; flavor: string | undefined }[] = [];
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', flavor: req.headers['metadata-flavor'] as string | undefined });
      const answer = typeof answers === 'function' ? answers(seen.length) : answers;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (answer.flavor !== false) headers['metadata-flavor'] = 'Google';
      res.writeHead(req.headers['metadata-flavor'] === 'Google' ? answer.status : 403, headers);
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { host, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it('the metadata server (GKE workload identity, a node service account): its token is asked for with Metadata-Flavor, sent, never logged', async () => {
    const token = 'ya29.kinfer-metadata-token-5c1d';
    gcs.requireToken = token;
    // Starting up, it answers 503 first: retried.
    const md = await metadataServer((n) => (n === 1 ? { status: 503, body: 'starting' } : { status: 200, body: JSON.stringify({ access_token: token, expires_in: 3599, token_type: 'Bearer' }) }));
    try {
      const log = capture();
      const dest = path.join(root, 'md');
      await pull('gs://mbucket/bert/1/model.onnx', fast({ dest, env: { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: `http://${md.host}/` }, logger: log.logger }));
      expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('bert-weights');
      const call = { url: '/computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdevstorage.read_only', flavor: 'Google' };
      expect(md.seen).toEqual([call, call]);
      expect(log.text()).not.toContain(token);
    } finally {
      await md.close();
    }
  });

  it('a metadata server that refuses fails the pull naming it; none answering, or METADATA_SERVER_DETECTION=none, is anonymous', async () => {
    const refusing = await metadataServer({ status: 404, body: 'no service account' });
    const impostor = await metadataServer({ status: 200, body: JSON.stringify({ access_token: 'x-token-from-elsewhere' }), flavor: false });
    try {
      const err = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'r'), env: { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: refusing.host } })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toBe(`gs://mbucket/bert: the metadata server at ${refusing.host} gave no access token for bucket mbucket: HTTP 404: no service account`);
      const notMd = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'i'), env: { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: impostor.host } })).catch((e: unknown) => e);
      expect((notMd as Error).message).toMatch(/lacks the Metadata-Flavor: Google header/);

      // A public bucket: nothing listening where the metadata server would be reads it anonymously, and says so.
      const log = capture();
      const closed = `127.0.0.1:${await freePort()}`;
      await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'anon'), env: { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: closed }, logger: log.logger }));
      expect(await tree(path.join(root, 'anon'))).toEqual(['1/model.onnx', '1/vocab.txt', 'config.json']);
      expect(log.text()).toContain(`"event":"gcs_metadata_absent","host":"${closed}"`);
      // Detection off: the metadata server is not asked at all.
      await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'off'), env: { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: refusing.host, METADATA_SERVER_DETECTION: 'none' } }));
      expect(refusing.seen).toHaveLength(1);
    } finally {
      await refusing.close();
      await impostor.close();
    }
  });

  it('caches the metadata token per host: two pulls ask once; near its expiry it is asked for again', async () => {
    gcs.requireToken = 'ya29.kinfer-cached-1';
    let issued = 0;
    const md = await metadataServer(() => ({ status: 200, body: JSON.stringify({ access_token: `ya29.kinfer-cached-${++issued}`, expires_in: 3599, token_type: 'Bearer' }) }));
    const realNow = Date.now.bind(Date);
    let skew = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skew);
    try {
      const env = { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: md.host };
      await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'a'), env }));
      await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'b'), env }));
      expect(md.seen).toHaveLength(1); // one token for two listings and six downloads
      skew = 3599_000 - TOKEN_REFRESH_MARGIN_MS - 5_000; // still fresh
      await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'c'), env }));
      expect(md.seen).toHaveLength(1);
      skew = 3599_000 - TOKEN_REFRESH_MARGIN_MS + 5_000; // inside the refresh margin: a new one
      gcs.requireToken = 'ya29.kinfer-cached-2';
      await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'd'), env }));
      expect(md.seen).toHaveLength(2);
      expect(await readFile(path.join(root, 'd', 'model.onnx'), 'utf8')).toBe('bert-weights');
    } finally {
      clock.mockRestore();
      await md.close();
    }
  });

  it('downloads that find the token stale together share one token call; a renewal nothing answers mid-pull fails the pull (no anonymous 401s)', async () => {
    const md = await metadataServer(() => ({ status: 200, body: JSON.stringify({ access_token: 'ya29.kinfer-shared', expires_in: 3599 }) }));
    gcs.requireToken = 'ya29.kinfer-shared';
    const realNow = Date.now.bind(Date);
    const listed = () => gcs.requests.filter((r) => r.path.startsWith('/storage/v1/b/mbucket/o?')).length;
    let listedBefore = listed();
    let onListed = () => undefined as unknown;
    let jump = 3600_000;
    // Once this pull has listed, the cached token is past its time: every download asks for a new one.
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => (listed() > listedBefore ? (onListed(), realNow() + jump) : realNow()));
    try {
      const env = { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: md.host };
      await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'a'), env }));
      const downloads = gcs.requests.filter((r) => r.path.includes('alt=media')).length;
      expect(downloads).toBeGreaterThanOrEqual(3);
      expect(md.seen).toHaveLength(2); // the first token, then one renewal for all the downloads
      // Mid-pull, nothing answers at the metadata server any more.
      listedBefore = listed();
      jump = 3 * 3600_000; // past the renewed token's time too
      let closed = false;
      onListed = () => (closed ||= (void md.close(), true));
      const err = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'b'), env })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toContain('the metadata server stopped answering when the access token for bucket mbucket was renewed mid-pull');
    } finally {
      clock.mockRestore();
      await md.close().catch(() => undefined);
    }
  });

  it('a token Storage refuses (401) is dropped and the request sent once more with a fresh one; refused again, the pull fails', async () => {
    let issued = 0;
    const md = await metadataServer(() => ({ status: 200, body: JSON.stringify({ access_token: `ya29.kinfer-revoked-${++issued}`, expires_in: 3599 }) }));
    try {
      const env = { GCS_ENDPOINT: gcs.url, GCE_METADATA_HOST: md.host };
      gcs.requireToken = 'ya29.kinfer-revoked-1';
      await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'a'), env }));
      // Revoked while cached: the listing answers 401, the token is fetched again, the pull goes on.
      gcs.requireToken = 'ya29.kinfer-revoked-2';
      const log = capture();
      const listings = () => gcs.requests.filter((r) => r.path.startsWith('/storage/v1/b/mbucket/o?')).length;
      const before = listings();
      await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'b'), env, logger: log.logger }));
      expect(md.seen).toHaveLength(2);
      expect(listings() - before).toBe(2);
      expect(log.text()).toContain('"event":"gcs_token_refused"');
      expect(log.text()).not.toContain('ya29.kinfer-revoked');
      // A fresh token refused too: one retry only, then access denied naming the metadata server.
      gcs.requireToken = 'ya29.kinfer-never-issued';
      const err = await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'c'), env })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/access denied .*HTTP 401.*metadata server at 127\.0\.0\.1/);
      expect(md.seen).toHaveLength(3); // the cached token, then one fresh one
    } finally {
      await md.close();
    }
  });

  it('GOOGLE_APPLICATION_CREDENTIALS: the token is cached per key file; a rewritten key file is a new credential', async () => {
    gcs.requireToken = 'ya29.kinfer-key-file-cached';
    const keyFile = await externalAccountKey(`${gcs.url}/token`);
    const exchanges = () => gcs.requests.filter((r) => r.path === '/token').length;
    const before = exchanges();
    const env = { GCS_ENDPOINT: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile };
    await pull('gs://mbucket/bert', fast({ dest: path.join(root, 'a'), env }));
    await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'b'), env }));
    expect(exchanges() - before).toBe(1);
    // A Secret rotated in place: same path, new content.
    const key = JSON.parse(await readFile(keyFile, 'utf8')) as Record<string, unknown>;
    await writeFile(keyFile, JSON.stringify({ ...key, audience: `${String(key.audience)}-rotated` }));
    await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'c'), env }));
    expect(exchanges() - before).toBe(2);
  });

  it("with an emulator endpoint, gcloud's application_default_credentials.json is not sent there (only an explicit credential is)", async () => {
    gcs.requireToken = 'ya29.kinfer-gcloud-adc-31e0';
    const gcloud = path.join(root, 'gcloud');
    await mkdir(gcloud);
    await writeFile(path.join(gcloud, 'application_default_credentials.json'), await readFile(await externalAccountKey(`${gcs.url}/token`)));
    const exchanges = () => gcs.requests.filter((r) => r.path === '/token').length;
    const before = exchanges();
    const err = await pull('gs://mbucket/bert/1/model.onnx', fast({ dest: path.join(root, 'adc'), env: { STORAGE_EMULATOR_HOST: new URL(gcs.url).host, CLOUDSDK_CONFIG: gcloud } })).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/access denied.*anonymous access: set GOOGLE_APPLICATION_CREDENTIALS or a service account.*bucket mbucket/);
    expect(exchanges()).toBe(before); // the file's token exchange never ran
  });
});
