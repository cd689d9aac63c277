/**
 * Azure Blob pulls against Azurite (the Azure Storage emulator, a devDependency)
 * on 127.0.0.1, behind a counting proxy that can also cut a body short. The
 * storage URIs are the real form (`https://devstoreaccount1.blob.core.windows.net/…`);
 * `AZURE_STORAGE_BLOB_ENDPOINT` points them at the emulator. The service
 * principal runs end to end in a child process that trusts the test
 * certificate: its token comes from a fake Entra ID authority (HTTPS, via
 * `AZURE_AUTHORITY_HOST`) and Azurite over HTTPS checks it (basic OAuth).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  ContainerSASPermissions,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgument, NotFound, Unavailable } from '../../runtime/core/errors.js';
import { pull } from '../../runtime/storage/pull.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, azuriteMain, startAzurite, type Azurite } from '../helpers/azurite.js';
import { makeTarGz, makeZip } from '../helpers/http-fixture.js';
import { TEST_CA, TEST_CA_FILE, TEST_KEY } from '../helpers/raw-http-server.js';
import { capture, fast, tree } from '../helpers/pulls.js';
import { silentServer } from '../helpers/loopback.js';

const HOST = `https://${AZURITE_ACCOUNT}.blob.core.windows.net`;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-azure-it-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));


interface ProxyRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status?: number;
}

/** A proxy in front of Azurite that records requests and can cut the next body of a path after `n` bytes. */
async function startProxy(target: string) {
  const t = new URL(target);
  const requests: ProxyRequest[] = [];
  const cuts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const rec: ProxyRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers };
    requests.push(rec);
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      rec.status = ur.statusCode;
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const cut = cuts.get(rec.path.split('?')[0]!);
      if (cut === undefined || req.method !== 'GET' || ur.statusCode! >= 300) return void ur.pipe(res);
      cuts.delete(rec.path.split('?')[0]!);
      let sent = 0;
      ur.on('data', (chunk: Buffer) => {
        if (sent >= cut) return;
        const part = chunk.subarray(0, cut - sent);
        sent += part.length;
        res.write(part);
        if (sent >= cut) res.socket?.destroy();
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.keepAliveTimeout = 500;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    /** The account's blob endpoint through the proxy. */
    endpoint: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    requests,
    cuts,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}


const canStart = azuriteMain() !== undefined;
if (!canStart) console.warn('storage-azure.test.ts: azurite is not installed (run npm ci); Azure Blob tests are skipped');

describe.skipIf(!canStart)('Azure Blob (Azurite)', () => {
  let azurite: Azurite | undefined;
  let startError: unknown;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let admin: BlobServiceClient;
  const keyed = () => ({ AZURE_STORAGE_BLOB_ENDPOINT: proxy.endpoint, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY });
  const anonymous = () => ({ AZURE_STORAGE_BLOB_ENDPOINT: proxy.endpoint });
  const put = (container: string, name: string, body: string | Buffer, contentType?: string) =>
    admin.getContainerClient(container).getBlockBlobClient(name).upload(body, Buffer.byteLength(body), contentType ? { blobHTTPHeaders: { blobContentType: contentType } } : undefined);
  const blobGets = (container: string, name: string) =>
    proxy.requests.filter((r) => r.method === 'GET' && r.path.split('?')[0] === `/${AZURITE_ACCOUNT}/${container}/${name}`).length;
  const containerSas = (container: string, permissions: string) =>
    generateBlobSASQueryParameters(
      { containerName: container, permissions: ContainerSASPermissions.parse(permissions), expiresOn: new Date(Date.now() + 3600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();

  beforeAll(async () => {
    try {
      azurite = await startAzurite();
    } catch (err) {
      startError = err;
      return;
    }
    proxy = await startProxy(azurite.endpoint);
    admin = new BlobServiceClient(azurite.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    await admin.getContainerClient('models').create();
    await put('models', 'resnet/config.pbtxt', 'platform: "onnx_onnxv1"');
    await put('models', 'resnet/1/model.onnx', 'resnet-weights');
    await put('models', 'resnet50/model.onnx', 'a sibling prefix that must not be pulled');
    await put('models', 'packed/model.tar.gz', makeTarGz([{ name: 'model.onnx', body: 'from tarball' }]));
    await put('models', 'packed/latest', makeZip([{ name: 'model.onnx', body: 'zipped in azure' }]), 'application/zip');
    await put('models', 'single/model.onnx', 'one blob');
    await admin.getContainerClient('public').create({ access: 'container' });
    await put('public', 'open/model.onnx', 'public blob');
    await admin.getContainerClient('blobonly').create({ access: 'blob' });
    await put('blobonly', 'm/model.onnx', 'readable, not listable');
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await azurite?.stop();
  });
  beforeEach((ctx) => {
    // Not a silent pass: the run shows these tests as skipped, with the reason logged.
    if (startError) {
      console.warn(`storage-azure.test.ts: azurite did not start, skipping: ${(startError as Error).message}`);
      ctx.skip();
    }
  });

  it('pulls every blob under a prefix into its tree (not a sibling prefix), signed with the shared key', async () => {
    const dest = path.join(root, 'resnet');
    const r = await pull(`${HOST}/models/resnet`, fast({ dest, env: keyed() }));
    expect(await tree(dest)).toEqual(['1/model.onnx', 'config.pbtxt']);
    expect(await readFile(path.join(dest, '1/model.onnx'), 'utf8')).toBe('resnet-weights');
    expect(r.bytes).toBe('resnet-weights'.length + 'platform: "onnx_onnxv1"'.length);
    expect(proxy.requests.some((q) => q.headers.authorization?.startsWith(`SharedKey ${AZURITE_ACCOUNT}:`))).toBe(true);
  });

  it('pulls a single blob; unpacks an archive blob by its name and one by its Content-Type', async () => {
    await pull(`${HOST}/models/single/model.onnx`, fast({ dest: path.join(root, 'a'), env: keyed() }));
    expect(await tree(path.join(root, 'a'))).toEqual(['model.onnx']);
    expect(await readFile(path.join(root, 'a', 'model.onnx'), 'utf8')).toBe('one blob');
    await pull(`${HOST}/models/packed/model.tar.gz`, fast({ dest: path.join(root, 'b'), env: keyed() }));
    expect(await readFile(path.join(root, 'b', 'model.onnx'), 'utf8')).toBe('from tarball');
    await pull(`${HOST}/models/packed/latest`, fast({ dest: path.join(root, 'c'), env: keyed() }));
    expect(await readFile(path.join(root, 'c', 'model.onnx'), 'utf8')).toBe('zipped in azure');
  });

  it('is NotFound for an empty prefix or a missing container, and never shows the key', async () => {
    const log = capture();
    const e1 = await pull(`${HOST}/models/nothing-here`, fast({ dest: path.join(root, 'x'), env: keyed(), logger: log.logger })).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(NotFound);
    expect((e1 as Error).message).toMatch(/no objects found.*container models of storage account devstoreaccount1/);
    const e2 = await pull(`${HOST}/no-such-container/x`, fast({ dest: path.join(root, 'y'), env: keyed(), logger: log.logger })).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(NotFound);
    expect((e2 as Error).message).toContain('container no-such-container does not exist');
    const all = `${(e1 as Error).stack}${(e2 as Error).stack}${log.text()}`;
    expect(all).not.toContain(AZURITE_KEY);
    expect(await readdir(root)).toEqual([]);
  });

  it('a wrong key is Unavailable naming the container, and neither key shows in errors or logs', async () => {
    const wrong = Buffer.from('kinfer-wrong-key-0123456789abcdef').toString('base64');
    const log = capture();
    const err = await pull(`${HOST}/models/resnet`, fast({ dest: path.join(root, 'x'), env: { ...keyed(), AZURE_STORAGE_ACCESS_KEY: wrong }, logger: log.logger })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/access denied to container models of storage account devstoreaccount1 \(AuthorizationFailure, shared key\); check AZURE_STORAGE_ACCESS_KEY/);
    const all = `${(err as Error).message}\n${(err as Error).stack}\n${log.text()}`;
    expect(all).not.toContain(wrong);
    expect(all).not.toContain(AZURITE_KEY);
  });

  it('anonymous: a public container is read unsigned; a private one is Unavailable naming the container', async () => {
    const before = proxy.requests.length;
    await pull(`${HOST}/public/open`, fast({ dest: path.join(root, 'anon'), env: anonymous() }));
    expect(await readFile(path.join(root, 'anon', 'model.onnx'), 'utf8')).toBe('public blob');
    const mine = proxy.requests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((q) => q.headers.authorization === undefined)).toBe(true);

    const err = await pull(`${HOST}/models/resnet`, fast({ dest: path.join(root, 'x'), env: anonymous() })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/anonymous access to container models of storage account devstoreaccount1 refused \(AuthorizationFailure\).*set AZ_CLIENT_ID/);
  });

  it('a blob that may be read but not listed (public access "blob") is fetched as the one blob named', async () => {
    const log = capture();
    await pull(`${HOST}/blobonly/m/model.onnx`, fast({ dest: path.join(root, 'b'), env: anonymous(), logger: log.logger }));
    expect(await readFile(path.join(root, 'b', 'model.onnx'), 'utf8')).toBe('readable, not listable');
    expect(log.text()).toMatch(/listing refused, fetching the one blob/);
  });

  it('a SAS in the URI is sent (and no other credential), never logged, and not part of the cache key', async () => {
    const sas1 = containerSas('models', 'rl');
    const sig1 = new URLSearchParams(sas1).get('sig')!;
    const cacheDir = path.join(root, 'cache');
    const log = capture();
    const before = proxy.requests.length;
    const a = await pull(`${HOST}/models/resnet?${sas1}`, fast({ dest: path.join(root, 'a'), env: keyed(), cacheDir, logger: log.logger }));
    expect(a.cached).toBe(false);
    expect(await tree(path.join(root, 'a'))).toEqual(['1/model.onnx', 'config.pbtxt']);
    const mine = proxy.requests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((q) => q.headers.authorization === undefined && q.path.includes('sig='))).toBe(true);
    expect(log.text()).not.toContain(sig1);
    expect(log.text()).not.toContain(encodeURIComponent(sig1));

    // A renewed SAS (another expiry, so another signature) finds the same cache entry.
    await new Promise((r) => setTimeout(r, 1100));
    const sas2 = containerSas('models', 'rl');
    expect(sas2).not.toBe(sas1);
    const gets = blobGets('models', 'resnet/1/model.onnx');
    const b = await pull(`${HOST}/models/resnet?${sas2}`, fast({ dest: path.join(root, 'b'), env: anonymous(), cacheDir }));
    expect(b.cached).toBe(true);
    expect(blobGets('models', 'resnet/1/model.onnx')).toBe(gets);

    // A SAS without the list permission: refused, naming the container, signature hidden.
    const noList = containerSas('models', 'r');
    const err = await pull(`${HOST}/models/resnet?${noList}`, fast({ dest: path.join(root, 'c'), env: anonymous() })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/access denied to container models .*SAS/);
    const all = `${(err as Error).message}${(err as Error).stack}`;
    expect(all).not.toContain(new URLSearchParams(noList).get('sig')!);
  });

  it('AZURE_STORAGE_ACCESS_KEY holding a SAS token is used as one', async () => {
    const sas = containerSas('models', 'rl');
    const before = proxy.requests.length;
    await pull(`${HOST}/models/single`, fast({ dest: path.join(root, 's'), env: { ...anonymous(), AZURE_STORAGE_ACCESS_KEY: `?${sas}` } }));
    expect(await readFile(path.join(root, 's', 'model.onnx'), 'utf8')).toBe('one blob');
    const mine = proxy.requests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((q) => q.path.includes('sig=') && q.headers.authorization === undefined)).toBe(true);
  });

  it('cache: a restart lists (cheap) but gets no blob; a changed blob is fetched again', async () => {
    await put('models', 'cached/model.onnx', 'c1');
    const cacheDir = path.join(root, 'cache');
    const a = await pull(`${HOST}/models/cached`, fast({ dest: path.join(root, 'pod1'), env: keyed(), cacheDir }));
    expect(a.cached).toBe(false);
    const b = await pull(`${HOST}/models/cached`, fast({ dest: path.join(root, 'pod2'), env: keyed(), cacheDir }));
    expect(b).toEqual({ dir: path.join(root, 'pod2'), cached: true, bytes: 0 });
    expect(await readFile(path.join(root, 'pod2', 'model.onnx'), 'utf8')).toBe('c1');
    expect(blobGets('models', 'cached/model.onnx')).toBe(1);

    await put('models', 'cached/model.onnx', 'c2-changed');
    const c = await pull(`${HOST}/models/cached`, fast({ dest: path.join(root, 'pod2'), env: keyed(), cacheDir }));
    expect(c.cached).toBe(false);
    expect(await readFile(path.join(root, 'pod2', 'model.onnx'), 'utf8')).toBe('c2-changed');
    expect(blobGets('models', 'cached/model.onnx')).toBe(2);
  });

  it('resumes a body cut mid-way with Range and If-Match, ending with the exact bytes', async () => {
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 131) & 0xff;
    await put('models', 'big/model.bin', body);
    proxy.cuts.set(`/${AZURITE_ACCOUNT}/models/big/model.bin`, 700_000);
    const dest = path.join(root, 'big');
    const log = capture();
    const r = await pull(`${HOST}/models/big`, fast({ dest, env: keyed(), logger: log.logger }));
    expect(Buffer.compare(await readFile(path.join(dest, 'model.bin')), body)).toBe(0);
    expect(r.bytes).toBe(body.length);
    const gets = proxy.requests.filter((q) => q.method === 'GET' && q.path.startsWith(`/${AZURITE_ACCOUNT}/models/big/model.bin`));
    expect(gets).toHaveLength(2);
    expect(gets[1]!.headers['x-ms-range'] ?? gets[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(gets[1]!.headers['if-match']).toMatch(/^"0x[0-9A-F]+"$/);
    expect(log.text()).toMatch(/transient failure, retrying/);
  });
});

describe('Azure Blob: URIs, credentials and silent endpoints (no emulator)', () => {
  it('refuses a service principal without its tenant or secret, and a bad endpoint override, before any request', async () => {
    const e1 = await pull(`${HOST}/models/m`, fast({ dest: path.join(root, 'a'), env: { AZ_CLIENT_ID: 'app' } })).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(InvalidArgument);
    expect((e1 as Error).message).toContain('AZ_TENANT_ID');
    const e2 = await pull(`${HOST}/models/m`, fast({ dest: path.join(root, 'a'), env: { AZ_CLIENT_ID: 'app', AZ_TENANT_ID: 't' } })).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(InvalidArgument);
    expect((e2 as Error).message).toMatch(/without AZ_CLIENT_SECRET.*managed identity is not supported/);
    const e3 = await pull(`${HOST}/models/m`, fast({ dest: path.join(root, 'a'), env: { AZURE_STORAGE_BLOB_ENDPOINT: 'ftp://x' } })).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(InvalidArgument);
    expect((e3 as Error).message).toContain('AZURE_STORAGE_BLOB_ENDPOINT');
    const e4 = await pull('https://devstoreaccount1.blob.core.windows.net/', fast({ dest: path.join(root, 'a') })).catch((e: unknown) => e);
    expect(e4).toBeInstanceOf(InvalidArgument);
    expect((e4 as Error).message).toMatch(/expected https:\/\/<account>\.blob\.core\.windows\.net\/<container>\/<prefix>/);
  });

  it('a blob endpoint that accepts and never answers fails the pull Unavailable after the stall limit and one retry', async () => {
    const silent = await silentServer();
    try {
      const env = { AZURE_STORAGE_BLOB_ENDPOINT: `http://127.0.0.1:${silent.port}/${AZURITE_ACCOUNT}`, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY };
      const started = performance.now();
      const err = await pull(`${HOST}/models/m`, fast({ dest: path.join(root, 'm'), env, stallMs: 300, retries: 1, timeoutMs: 120_000 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/no answer in 300 ms \(gave up after 2 attempts\)/);
      expect(silent.sockets.length).toBeGreaterThanOrEqual(2);
      expect(performance.now() - started).toBeLessThan(60_000);
    } finally {
      await silent.close();
    }
  });

  it('service principal: a sign-in whose authority never answers fails after the stall limit, the secret nowhere', async () => {
    const silent = await silentServer();
    try {
      const secret = 'kinfer~sp~secret~0123456789';
      const env = { AZ_CLIENT_ID: 'app-id', AZ_CLIENT_SECRET: secret, AZ_TENANT_ID: 'tenant-1', AZURE_AUTHORITY_HOST: `https://127.0.0.1:${silent.port}` };
      const log = capture();
      const err = await pull(`${HOST}/models/m`, fast({ dest: path.join(root, 'm'), env, stallMs: 300, timeoutMs: 120_000, logger: log.logger })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/cannot get a Microsoft Entra ID token for storage account devstoreaccount1 .*no answer in 300 ms/);
      expect(silent.sockets.length).toBeGreaterThanOrEqual(1);
      expect(`${(err as Error).message}${(err as Error).stack}${log.text()}`).not.toContain(secret);
    } finally {
      await silent.close();
    }
  });
});

/** A fake Entra ID authority over HTTPS: OpenID metadata and a token endpoint that issues a JWT Azurite accepts. */
async function startAuthority() {
  const requests: { path: string; body: URLSearchParams }[] = [];
  const server = https.createServer({ cert: TEST_CA, key: TEST_KEY }, (req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      requests.push({ path: req.url ?? '/', body: new URLSearchParams(data) });
      const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)/.exec(req.url ?? '');
      res.setHeader('content-type', 'application/json');
      if (m?.[2]?.startsWith('v2.0')) {
        const t = m[1];
        return res.end(
          JSON.stringify({
            token_endpoint: `${base}/${t}/oauth2/v2.0/token`,
            authorization_endpoint: `${base}/${t}/oauth2/v2.0/authorize`,
            end_session_endpoint: `${base}/${t}/oauth2/v2.0/logout`,
            issuer: `${base}/${t}/v2.0`,
            jwks_uri: `${base}/${t}/discovery/v2.0/keys`,
          }),
        );
      }
      if (m && req.method === 'POST') {
        const now = Math.floor(Date.now() / 1000);
        const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const jwt = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ aud: 'https://storage.azure.com', iss: `https://sts.windows.net/${m[1]}/`, iat: now, nbf: now - 60, exp: now + 3600, appid: 'app-id' })}.c2lnbmF0dXJl`;
        return res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: jwt }));
      }
      res.statusCode = 404;
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** PUT over HTTPS to the TLS Azurite, trusting the test certificate (this process's fetch does not). */
function tlsPut(url: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'PUT', ca: TEST_CA, headers: { 'x-ms-version': '2021-08-06', 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!canStart)('Azure Blob: service principal end to end (Azurite over HTTPS, fake authority)', () => {
  let azurite: Azurite | undefined;
  let startError: unknown;
  let authority: Awaited<ReturnType<typeof startAuthority>>;
  const secret = 'kinfer~sp~secret~abcdef9876';

  beforeAll(async () => {
    try {
      azurite = await startAzurite({ tls: true });
    } catch (err) {
      startError = err;
      return;
    }
    authority = await startAuthority();
    const sas = generateAccountSASQueryParameters(
      {
        permissions: AccountSASPermissions.parse('rwcl'),
        resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
        services: AccountSASServices.parse('b').toString(),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    expect(await tlsPut(`${azurite.endpoint}/private?restype=container&${sas}`, '', {})).toBe(201);
    expect(await tlsPut(`${azurite.endpoint}/private/sp/model.onnx?${sas}`, 'sp-weights', { 'x-ms-blob-type': 'BlockBlob' })).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await authority?.close();
    await azurite?.stop();
  });
  beforeEach((ctx) => {
    if (startError) {
      console.warn(`storage-azure.test.ts: azurite (TLS) did not start, skipping: ${(startError as Error).message}`);
      ctx.skip();
    }
  });

  /** Runs one pull in a child that trusts the test certificate (NODE_EXTRA_CA_CERTS is read at process start). */
  function childPull(uri: string, dest: string, env: Record<string, string>): Promise<{ bytes: number }> {
    const child = path.join(process.cwd(), 'dist', 'test', 'bench', 'pull-child.js');
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [child, uri, dest],
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: TEST_CA_FILE, KINFER_PULL_ENV: JSON.stringify(env) }, timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout) as { bytes: number })),
      );
    });
  }

  it('AZ_CLIENT_ID/AZ_CLIENT_SECRET/AZ_TENANT_ID: the token comes from AZURE_AUTHORITY_HOST and Azurite accepts it', async () => {
    const dest = path.join(root, 'sp');
    const env = { AZURE_STORAGE_BLOB_ENDPOINT: azurite!.endpoint, AZ_CLIENT_ID: 'app-id', AZ_CLIENT_SECRET: secret, AZ_TENANT_ID: 'tenant-1', AZURE_AUTHORITY_HOST: authority.url };
    const r = await childPull(`${HOST}/private/sp`, dest, env);
    expect(r.bytes).toBe('sp-weights'.length);
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('sp-weights');
    const token = authority.requests.find((q) => q.path.startsWith('/tenant-1/oauth2/v2.0/token'));
    expect(token).toBeDefined();
    expect(token!.body.get('grant_type')).toBe('client_credentials');
    expect(token!.body.get('client_id')).toBe('app-id');
    expect(token!.body.get('client_secret')).toBe(secret);
    expect(token!.body.get('scope')).toContain('https://storage.azure.com/.default');

    // Without credentials the same container is refused: the token is what opened it.
    const err = await childPull(`${HOST}/private/sp`, path.join(root, 'anon'), { AZURE_STORAGE_BLOB_ENDPOINT: azurite!.endpoint }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/anonymous access to container private/);
  });

  it('AZURE_FEDERATED_TOKEN_FILE (workload identity): the projected token is sent as the client assertion', async () => {
    const tokenFile = path.join(root, 'federated-token');
    await writeFile(tokenFile, 'federated-jwt-from-kubelet');
    const dest = path.join(root, 'wi');
    const before = authority.requests.length;
    const env = { AZURE_STORAGE_BLOB_ENDPOINT: azurite!.endpoint, AZURE_CLIENT_ID: 'wi-app', AZURE_TENANT_ID: 'tenant-2', AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: authority.url };
    await childPull(`${HOST}/private/sp/model.onnx`, dest, env);
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('sp-weights');
    const token = authority.requests.slice(before).find((q) => q.path.startsWith('/tenant-2/oauth2/v2.0/token'));
    expect(token!.body.get('client_assertion')).toBe('federated-jwt-from-kubelet');
    expect(token!.body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  });
});
