/**
 * grpc.health.v1.Health on the gRPC port, through a client built from the
 * health protocol's published definition (written out below, not the
 * server's copy): what a Kubernetes `grpc` probe and grpc-health-probe call.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { repoRoot } from '../../knative/specs.js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRPC_LOADER_OPTIONS } from '../../runtime/protocol/grpc/codec.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { grpcPackageDefinition } from '../../runtime/server/grpc.js';
import { startTestServer, tempDir } from '../helpers/server.js';

/** grpc/grpc-proto's grpc/health/v1/health.proto, comments dropped. */
const HEALTH = `
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}`;

type HealthClient = grpc.Client & {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

function healthClient(port: number): HealthClient {
  const def = protoLoader.fromJSON(protobuf.parse(HEALTH, { keepCase: true }).root.toJSON(), GRPC_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as HealthClient;
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => client.Check({ service }, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res.status))));
}

/** The statuses a Watch sends until it ends (or 5 s pass). */
function watchUntilEnd(stream: grpc.ClientReadableStream<{ status: string }>, seen: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`watch did not end within 5 s; saw ${seen.join(',')}`)), 5000);
    stream.on('data', (m: { status: string }) => seen.push(m.status));
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('gRPC health checking (grpc.health.v1)', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let client: HealthClient;

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({ modelRepository: repo.dir, grpcPort: 0, host: '127.0.0.1' });
    client = healthClient(server.grpcPort!);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    await repo?.cleanup();
  });

  it('Check answers SERVING for the server, the inference service, readiness and liveness; NOT_FOUND for another name', async () => {
    for (const service of ['', 'inference.GRPCInferenceService', 'readiness', 'liveness']) expect(await check(client, service)).toBe('SERVING');
    // Names an object inherits are names like any other (they once answered SERVING or INTERNAL).
    for (const service of ['nope', 'constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const err = await check(client, service).catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
      expect((err as grpc.ServiceError).details).toContain(`unknown health service '${service}'`);
    }
  });

  it('server reflection (v1 and v1alpha) lists both services and serves their descriptors, through the reflection protocol\'s own .proto', async () => {
    for (const version of ['v1', 'v1alpha']) {
      const def = protoLoader.loadSync(join(repoRoot(), 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', version, 'reflection.proto'), GRPC_LOADER_OPTIONS);
      const pkg = grpc.loadPackageDefinition(def) as any;
      const client = new pkg.grpc.reflection[version].ServerReflection(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
      try {
        const call = client.ServerReflectionInfo() as grpc.ClientDuplexStream<unknown, any>;
        const replies: any[] = [];
        const done = new Promise<void>((resolve, reject) => {
          call.on('data', (r: any) => {
            replies.push(r);
            if (replies.length === 2) resolve();
          });
          call.on('error', reject);
        });
        call.write({ list_services: '' });
        call.write({ file_containing_symbol: 'inference.GRPCInferenceService' });
        await done;
        call.end();
        expect(replies[0].list_services_response.service.map((x: { name: string }) => x.name).sort()).toEqual(['grpc.health.v1.Health', 'inference.GRPCInferenceService']);
        const files = replies[1].file_descriptor_response.file_descriptor_proto as Buffer[];
        expect(Buffer.concat(files).includes('ModelStreamInfer')).toBe(true);
        expect(Buffer.concat(files).includes('ModelStatisticsResponse')).toBe(true);
      } finally {
        client.close();
      }
    }
  });

  it('Watch sends the current status at once (SERVICE_UNKNOWN for another name, the call kept open); at shutdown NOT_SERVING, then ends, as an open inference stream does (UNAVAILABLE)', async () => {
    for (const service of ['nope', '__proto__', 'constructor']) {
      const unknown = client.Watch({ service });
      const first = await new Promise<string>((resolve) => unknown.once('data', (m: { status: string }) => resolve(m.status)));
      expect(first).toBe('SERVICE_UNKNOWN');
      const cancelled = new Promise<grpc.ServiceError>((resolve) => unknown.on('error', resolve));
      unknown.cancel();
      expect((await cancelled).code).toBe(grpc.status.CANCELLED);
    }

    const seen: string[] = [];
    const stream = client.Watch({ service: '' });
    const ended = watchUntilEnd(stream, seen);
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['SERVING']);
    // An open ModelStreamInfer stream (one answer already in) is ended by the shutdown too.
    const inference = new (grpc.loadPackageDefinition(grpcPackageDefinition()) as any).inference.GRPCInferenceService(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
    const infer = inference.ModelStreamInfer() as grpc.ClientDuplexStream<unknown, { error_message: string }>;
    const answers: { error_message: string }[] = [];
    const inferEnded = new Promise<grpc.ServiceError | 'ok'>((resolve) => {
      infer.on('data', (r: { error_message: string }) => answers.push(r));
      infer.on('end', () => resolve('ok'));
      infer.on('error', resolve);
    });
    infer.write({ model_name: 'echo', id: 'one', inputs: [{ name: 'a', datatype: 'INT32', shape: [1], contents: { int_contents: [7] } }] });
    for (let i = 0; i < 100 && answers.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(answers.map((a) => a.error_message)).toEqual(['']);
    const t0 = performance.now();
    await server.close();
    await ended;
    // Not half-closed by the client: UNAVAILABLE, so a request still on its way is sent elsewhere (OK would drop it).
    expect(await inferEnded).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'the server is shutting down; send the requests not answered on this stream to another replica' });
    inference.close();
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
    // The open Watch did not hold the shutdown until the 1 s kill.
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
