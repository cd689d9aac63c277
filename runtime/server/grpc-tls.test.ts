/**
 * The gRPC TLS files, read and checked at start: each wrong file is named before any handshake.
 * Uses the test-only certificate in test/helpers/tls/.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../knative/specs.js';
import { grpcTlsFiles } from '../../cli/serve.js';
import { readGrpcTls } from './grpc-tls.js';

const TLS = resolve(repoRoot(), 'test', 'helpers', 'tls');
const CERT = join(TLS, 'cert.pem');
const KEY = join(TLS, 'key.pem');

describe('readGrpcTls', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kinfer-tls-'));
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(join(dir, 'other.pem'), other);
    await writeFile(join(dir, 'junk.pem'), 'not a certificate\n');
    // The same certificate in DER: X509Certificate reads it, TLS would not.
    await writeFile(join(dir, 'cert.der'), new X509Certificate(await readFile(CERT)).raw);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a certificate, its key and a client CA', async () => {
    const tls = await readGrpcTls({ cert: CERT, key: KEY, clientCa: CERT });
    expect(tls.cert.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(tls.key.toString()).toMatch(/PRIVATE KEY-----/);
    expect(tls.clientCa?.equals(tls.cert)).toBe(true);
    expect((await readGrpcTls({ cert: CERT, key: KEY })).clientCa).toBeUndefined();
  });

  it('names the file that is missing, not PEM, or a key of another certificate', async () => {
    await expect(readGrpcTls({ cert: join(dir, 'nope.pem'), key: KEY })).rejects.toThrow(`gRPC TLS certificate ${join(dir, 'nope.pem')}: cannot read it (ENOENT)`);
    await expect(readGrpcTls({ cert: join(dir, 'junk.pem'), key: KEY })).rejects.toThrow(`gRPC TLS certificate ${join(dir, 'junk.pem')}: not a PEM certificate`);
    await expect(readGrpcTls({ cert: CERT, key: join(dir, 'junk.pem') })).rejects.toThrow(/gRPC TLS key .*junk\.pem: not a PEM private key/);
    await expect(readGrpcTls({ cert: CERT, key: join(dir, 'other.pem') })).rejects.toThrow(`gRPC TLS key ${join(dir, 'other.pem')} does not belong to the certificate ${CERT}`);
    await expect(readGrpcTls({ cert: CERT, key: KEY, clientCa: join(dir, 'junk.pem') })).rejects.toThrow(/gRPC TLS client CA .*junk\.pem: not a PEM certificate/);
    await expect(readGrpcTls({ cert: join(dir, 'cert.der'), key: KEY })).rejects.toThrow(/cert\.der: not a PEM certificate/);
    await expect(readGrpcTls({ cert: CERT, key: KEY, clientCa: join(dir, 'cert.der') })).rejects.toThrow(/client CA .*cert\.der: not a PEM certificate/);
  });

  it('takes the files from flags or environment only as a pair', () => {
    expect(grpcTlsFiles(undefined, undefined, undefined)).toBeUndefined();
    expect(grpcTlsFiles('c', 'k', undefined)).toEqual({ cert: 'c', key: 'k' });
    expect(grpcTlsFiles('c', 'k', 'ca')).toEqual({ cert: 'c', key: 'k', clientCa: 'ca' });
    expect(() => grpcTlsFiles('c', undefined, undefined)).toThrow(/needs both a certificate and its key/);
    expect(() => grpcTlsFiles(undefined, undefined, 'ca')).toThrow(/needs both a certificate and its key/);
  });
});
