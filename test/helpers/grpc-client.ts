/**
 * @module test/helpers/grpc-client
 * @grpc/grpc-js clients of `inference.GRPCInferenceService` on 127.0.0.1 for integration
 * tests: from the server's own definition, or from `triton-grpc.proto` (Triton's ModelConfig
 * and ModelStatistics messages, written apart from the server's), and one way to call them.
 *
 * @example
 * const client = inferenceClient(server.grpcPort!);
 * try { await unary(client, 'ModelReady', { name: 'echo' }); } finally { client.close(); }
 */
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { repoRoot } from '../../knative/specs.js';
import { GRPC_LOADER_OPTIONS } from '../../runtime/protocol/grpc/codec.js';
import { grpcPackageDefinition } from '../../runtime/server/grpc.js';

export const TRITON_TEST_PROTO = resolve(repoRoot(), 'test', 'helpers', 'triton-grpc.proto');
/** The test-only certificate for 127.0.0.1 (a self-signed CA certificate) and its key. */
export const TLS_CERT = resolve(repoRoot(), 'test', 'helpers', 'tls', 'cert.pem');
export const TLS_KEY = resolve(repoRoot(), 'test', 'helpers', 'tls', 'key.pem');

// Methods are looked up by name: the package definitions are loaded at run time.
export type InferenceClient = grpc.Client & Record<string, any>;

/** A client from `def`, the server's own definition by default, over h2c unless given TLS credentials. Close it when done. */
export function inferenceClient(port: number, def: protoLoader.PackageDefinition = grpcPackageDefinition(), credentials = grpc.credentials.createInsecure()): InferenceClient {
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, credentials);
}

/** A client through Triton's messages (`triton-grpc.proto`), for ModelConfig and ModelStatistics. */
export function tritonClient(port: number): InferenceClient {
  return inferenceClient(port, protoLoader.loadSync(TRITON_TEST_PROTO, GRPC_LOADER_OPTIONS));
}

/** One unary call with a 20 s deadline: its reply, or the ServiceError. */
export function unary(client: InferenceClient, method: string, request: unknown): Promise<any> {
  return new Promise((ok, fail) => client[method](request, { deadline: Date.now() + 20_000 }, (err: Error | null, res: unknown) => (err ? fail(err) : ok(res))));
}
