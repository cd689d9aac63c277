/**
 * Triton's restricted API groups through a real server on 127.0.0.1: REST's model-repository
 * and shared-memory routes behind one header, gRPC inference behind another
 * (`triton-grpc-protocol-<key>` metadata), everything else open.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { parseRestrictions } from '../../runtime/server/restricted.js';
import { inferenceClient, unary, type InferenceClient } from '../helpers/grpc-client.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

/** One unary call with metadata and a 20 s deadline: its reply, or the ServiceError. */
function call(client: InferenceClient, method: string, request: unknown, metadata: grpc.Metadata): Promise<any> {
  return new Promise((ok, fail) => client[method](request, metadata, { deadline: Date.now() + 20_000 }, (err: Error | null, res: unknown) => (err ? fail(err) : ok(res))));
}

const ECHO = { model_name: 'echo', inputs: [{ name: 'a', datatype: 'INT32', shape: [2], contents: { int_contents: [1, 2] } }] };

describe('restricted API groups', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let client: InferenceClient;

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'));
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    server = await startTestServer({
      modelRepository: repo.dir,
      grpcPort: 0,
      httpRestrictions: parseRestrictions(['model-repository,shared-memory:admin-key=s3cret'], '--http-restricted-api'),
      grpcRestrictions: parseRestrictions(['inference:infer-key=k1', 'model-repository:admin-key=s3cret'], '--grpc-restricted-protocol'),
    });
    client = inferenceClient(server.grpcPort!);
  });
  afterAll(async () => {
    client?.close();
    await server.close();
    await repo.cleanup();
  });

  it('answers a REST call to a restricted category only with its header and value (403 otherwise), and leaves the rest open', async () => {
    const index = (headers: Record<string, string> = {}) => postJson(`${server.url}/v2/repository/index`, {}, headers);
    for (const headers of [{}, { 'admin-key': 'wrong' }, { 'admin-key': 's3cre' }, { 'other-key': 's3cret' }] as Record<string, string>[]) {
      const res = await index(headers);
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ error: "This API is restricted, expecting header 'admin-key'" });
    }
    const ok = await index({ 'Admin-Key': 's3cret' }); // header names are case-insensitive
    expect(ok.status).toBe(200);
    expect((await ok.json()).map((e: { name: string }) => e.name)).toEqual(['echo']);
    // Unloading without the key changes nothing: the model still answers.
    expect((await postJson(`${server.url}/v2/repository/models/echo/unload`, {})).status).toBe(403);
    expect((await fetch(`${server.url}/v2/systemsharedmemory/status`)).status).toBe(403);
    // HEAD reaches the GET route in Hono: refused as GET is.
    expect((await fetch(`${server.url}/v2/systemsharedmemory/status`, { method: 'HEAD' })).status).toBe(403);
    const infer = await postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [2], data: [1, 2] }] });
    expect(infer.status).toBe(200);
    expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${server.url}/v2/models/echo/config`)).status).toBe(200);
  });

  it("ends a gRPC call to a restricted category UNAVAILABLE without its metadata, as Triton, on unary calls and streams alike", async () => {
    const denied = await call(client, 'ModelInfer', ECHO, new grpc.Metadata()).catch((e: grpc.ServiceError) => e);
    expect(denied.code).toBe(grpc.status.UNAVAILABLE);
    expect(denied.details).toBe("This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'");
    const md = new grpc.Metadata();
    md.set('triton-grpc-protocol-infer-key', 'k1');
    const res = await call(client, 'ModelInfer', ECHO, md);
    expect(res.outputs[0].contents.int_contents).toEqual([1, 2]);
    // The REST key is not the gRPC one: gRPC reads only triton-grpc-protocol-<key>.
    const wrongForm = new grpc.Metadata();
    wrongForm.set('admin-key', 's3cret');
    await expect(call(client, 'RepositoryIndex', {}, wrongForm)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect((await unary(client, 'ServerLive', {})).live).toBe(true); // health is open

    const stream = client.ModelStreamInfer(new grpc.Metadata());
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.on('data', () => undefined);
    stream.write(ECHO);
    const err = await ended;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toMatch(/triton-grpc-protocol-infer-key/);
  });
});
