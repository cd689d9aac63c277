/**
 * The gRPC port over TLS and mutual TLS, on 127.0.0.1 with the test-only certificate
 * (test/helpers/tls/, a self-signed CA certificate for 127.0.0.1 that also serves as the
 * client's certificate and as the client CA).
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { TLS_CERT, TLS_KEY, inferenceClient, unary } from '../helpers/grpc-client.js';
import { startTestServer, tempDir } from '../helpers/server.js';

const [CERT, KEY] = [TLS_CERT, TLS_KEY];

async function live(port: number, credentials: grpc.ChannelCredentials): Promise<boolean> {
  const c = inferenceClient(port, undefined, credentials);
  try {
    return (await unary(c, 'ServerLive', {})).live;
  } finally {
    c.close();
  }
}

describe('gRPC over TLS', () => {
  let repo: { dir: string; cleanup: () => Promise<void> };
  let tls: RunningServer;
  let mutual: RunningServer;
  const ca = readFileSync(CERT);

  beforeAll(async () => {
    repo = await tempDir();
    tls = await startTestServer({ modelRepository: repo.dir, grpcPort: 0, grpcTls: { cert: CERT, key: KEY } });
    mutual = await startTestServer({ modelRepository: repo.dir, grpcPort: 0, grpcTls: { cert: CERT, key: KEY, clientCa: CERT } });
  }, 60_000);

  afterAll(async () => {
    await tls?.close();
    await mutual?.close();
    await repo?.cleanup();
  });

  it('answers a client that trusts its certificate, and no cleartext client', async () => {
    expect(await live(tls.grpcPort!, grpc.credentials.createSsl(ca))).toBe(true);
    await expect(live(tls.grpcPort!, grpc.credentials.createInsecure())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    // A client that does not trust the certificate stops at the handshake.
    await expect(live(tls.grpcPort!, grpc.credentials.createSsl())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('with a client CA, answers only clients that present a certificate from it', async () => {
    const withCert = grpc.credentials.createSsl(ca, readFileSync(KEY), readFileSync(CERT));
    expect(await live(mutual.grpcPort!, withCert)).toBe(true);
    await expect(live(mutual.grpcPort!, grpc.credentials.createSsl(ca))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses to start with TLS files but no gRPC port, or with a key of another certificate', async () => {
    await expect(startTestServer({ modelRepository: repo.dir, grpcTls: { cert: CERT, key: KEY } })).rejects.toThrow(/gRPC TLS files are given but gRPC is off/);
    await expect(startTestServer({ modelRepository: repo.dir, grpcPort: 0, grpcTls: { cert: CERT, key: CERT } })).rejects.toThrow(/gRPC TLS key .*cert\.pem: not a PEM private key/);
  });
});
