/**
 * @module server/grpc-tls
 * TLS for the gRPC port (Triton's `--grpc-use-ssl`, `--grpc-server-cert`, `--grpc-server-key`,
 * `--grpc-root-cert` with `--grpc-use-ssl-mutual`): the server's certificate chain and key, and
 * optionally the CA that client certificates must chain to (mutual TLS). Files are read and
 * checked at start, so a wrong path, a file that is not PEM or a key that does not belong to the
 * certificate stops the server with the file named, not with grpc-js's first failed handshake.
 *
 * @example
 * const tls = await readGrpcTls({ cert: '/etc/tls/tls.crt', key: '/etc/tls/tls.key' });
 * grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], !!tls.clientCa);
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InvalidArgument } from '../core/errors.js';

/** Paths, as given on the command line or in the environment. */
export interface GrpcTlsFiles {
  cert: string;
  key: string;
  /** Clients must present a certificate that chains to this CA bundle (mutual TLS). */
  clientCa?: string;
}

/** The files' contents, checked. */
export interface GrpcTls {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
}

export async function readGrpcTls(files: GrpcTlsFiles): Promise<GrpcTls> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new InvalidArgument(`gRPC TLS ${what} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  };
  const cert = await read(files.cert, 'certificate');
  const key = await read(files.key, 'key');
  const leaf = pemCertificate(cert, `gRPC TLS certificate ${files.cert}`);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new InvalidArgument(`gRPC TLS key ${files.key}: not a PEM private key (an encrypted key is not supported)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new InvalidArgument(`gRPC TLS key ${files.key} does not belong to the certificate ${files.cert}`);
  if (!files.clientCa) return { cert, key };
  const clientCa = await read(files.clientCa, 'client CA');
  pemCertificate(clientCa, `gRPC TLS client CA ${files.clientCa}`);
  return { cert, key, clientCa };
}

/** The (first) certificate of a PEM file. X509Certificate also takes DER, which TLS does not: the PEM armour is required. */
function pemCertificate(bytes: Buffer, what: string): X509Certificate {
  try {
    if (!bytes.includes('-----BEGIN CERTIFICATE-----')) throw new Error('not PEM');
    return new X509Certificate(bytes);
  } catch {
    throw new InvalidArgument(`${what}: not a PEM certificate`);
  }
}
