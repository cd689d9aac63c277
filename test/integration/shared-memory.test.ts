/**
 * Triton's system shared-memory extension through a real server on 127.0.0.1,
 * with real POSIX shared-memory objects: files in /dev/shm, which is what
 * shm_open creates and what tritonclient's shared-memory utilities map. The
 * test writes inputs into an object, registers ranges of it, and reads the
 * outputs the server wrote back.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { inferenceClient, unary } from '../helpers/grpc-client.js';
import { mlpReference, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

const SHM = '/dev/shm';
const KEY = `kinfer-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const X = Float32Array.of(0.5, -1, 2, 0.25, 1, 1, -2, 3); // [2, 4]
const f32 = (b: Uint8Array) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

describe.skipIf(!existsSync(SHM))('system shared memory (Triton extension, real /dev/shm objects)', () => {
  let server: RunningServer;
  let plain: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  const object = join(SHM, KEY);
  const url = (p: string) => `${server.url}${p}`;

  beforeAll(async () => {
    repo = await tempDir();
    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await writeFile(join(repo.dir, 'mlp', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n');
    // 256 bytes: the input at 0 (32 bytes), room for outputs from 128.
    const bytes = Buffer.alloc(256);
    Buffer.from(X.buffer).copy(bytes, 0);
    await writeFile(object, bytes);
    server = await startTestServer({ modelRepository: repo.dir, allowClientShm: true, grpcPort: 0 });
    plain = await startTestServer({ modelRepository: repo.dir });
  });
  afterAll(async () => {
    await Promise.all([server.close(), plain.close()]);
    await rm(object, { force: true });
    await repo.cleanup();
  });

  const register = (name: string, body: object, base = server.url) => postJson(`${base}/v2/systemsharedmemory/region/${name}/register`, body);
  const want = () => Array.from(mlpReference(mlp, X));

  it('registers regions, lists them, and names the extension', async () => {
    expect((await register('in', { key: `/${KEY}`, offset: 0, byte_size: 32 })).status).toBe(200);
    expect((await register('out', { key: `/${KEY}`, offset: 128, byte_size: 128 })).status).toBe(200);
    const status = (await (await fetch(url('/v2/systemsharedmemory/status'))).json()) as { name: string }[];
    expect(status).toEqual([
      { name: 'in', key: `/${KEY}`, offset: 0, byte_size: 32 },
      { name: 'out', key: `/${KEY}`, offset: 128, byte_size: 128 },
    ]);
    expect(await (await fetch(url('/v2/systemsharedmemory/region/out/status'))).json()).toEqual([status[1]]);
    expect(((await (await fetch(url('/v2'))).json()) as { extensions: string[] }).extensions).toContain('system_shared_memory');
    expect(await (await fetch(url('/v2/cudasharedmemory/status'))).json()).toEqual([]);
  });

  it('reads an input from a region and writes the output into another, answering without data', async () => {
    const res = await postJson(url('/v2/models/mlp/infer'), {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } }],
      outputs: [{ name: 'y', parameters: { shared_memory_region: 'out', shared_memory_byte_size: 64, shared_memory_offset: 16 } }],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: Record<string, unknown>[] };
    expect(body.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [2, 3], parameters: { shared_memory_region: 'out', shared_memory_byte_size: 24 } }]);
    const written = (await readFile(object)).subarray(128 + 16, 128 + 16 + 24);
    f32(written).forEach((v, i) => expect(v).toBeCloseTo(want()[i]!, 5));
    // The binary extension's header form, with no binary section: the input still comes from the region.
    const header = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } }], outputs: [{ name: 'y', parameters: { binary_data: true } }] });
    const bin = await fetch(url('/v2/models/mlp/infer'), { method: 'POST', headers: { 'inference-header-content-length': String(header.length), 'content-type': 'application/octet-stream' }, body: header });
    expect(bin.status).toBe(200);
    const raw = new Uint8Array(await bin.arrayBuffer());
    const headerLength = Number(bin.headers.get('inference-header-content-length'));
    f32(raw.subarray(headerLength)).forEach((v, i) => expect(v).toBeCloseTo(want()[i]!, 5));
  });

  it('refuses client mistakes with 400 naming the tensor and region', async () => {
    const infer = async (input: object, outputs?: object[]) => {
      const res = await postJson(url('/v2/models/mlp/infer'), { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], ...input }], ...(outputs ? { outputs } : {}) });
      return [res.status, ((await res.json()) as { error: string }).error];
    };
    const inShm = { parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } };
    expect(await infer({ ...inShm, data: Array.from(X) })).toEqual([400, "input 'x' (inputs[0]): has its data in shared memory and in the body; send one"]);
    expect(await infer({ parameters: { shared_memory_region: 'ghost', shared_memory_byte_size: 32 } })).toEqual([404, "input 'x' (inputs[0]): shared memory region 'ghost' is not registered"]);
    expect(await infer({ parameters: { shared_memory_region: 'in', shared_memory_byte_size: 16 } })).toEqual([400, expect.stringMatching(/input 'x' \(inputs\[0\]\).*16/)]);
    expect(await infer({ parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32, shared_memory_offset: 8 } })).toEqual([400, expect.stringMatching(/runs past the end of region 'in' \(32 bytes\)/)]);
    expect(await infer(inShm, [{ name: 'y', parameters: { shared_memory_region: 'out', shared_memory_byte_size: 8 } }])).toEqual([400, "output 'y': 24 bytes do not fit the 8 bytes of shared_memory_byte_size"]);
    expect(await infer(inShm, [{ name: 'y', parameters: { shared_memory_region: 'out' } }])).toEqual([400, expect.stringMatching(/output 'y' \(outputs\[0\]\): parameters.shared_memory_byte_size: expected a non-negative integer/)]);
    // Triton's ALREADY_EXISTS, which its HTTP frontend answers 400 (gRPC: below).
    const dup = await register('in', { key: `/${KEY}`, offset: 0, byte_size: 32 });
    expect([dup.status, ((await dup.json()) as { error: string }).error]).toEqual([400, "system shared memory region 'in' is already registered; unregister it first"]);
    expect((await register('bad', { key: '/../etc/passwd', byte_size: 1 })).status).toBe(400);
    expect((await register('bad', { key: `/${KEY}-missing`, byte_size: 1 })).status).toBe(400);
  });

  it('answers over gRPC with the same regions: raw outputs keep their places, the shm one empty', async () => {
    const client = inferenceClient(server.grpcPort!);
    const call = (method: string, req: unknown) => unary(client, method, req);
    try {
      const status = await call('SystemSharedMemoryStatus', {});
      expect(Object.keys(status.regions).sort()).toEqual(['in', 'out']);
      expect(status.regions.out).toMatchObject({ key: `/${KEY}`, offset: '128', byte_size: '128' });
      await call('SystemSharedMemoryRegister', { name: 'out2', key: `/${KEY}`, offset: '192', byte_size: '64' });
      const res = await call('ModelInfer', {
        model_name: 'mlp',
        inputs: [{ name: 'x', datatype: 'FP32', shape: ['2', '4'], parameters: { shared_memory_region: { string_param: 'in' }, shared_memory_byte_size: { int64_param: '32' } } }],
        outputs: [{ name: 'y', parameters: { shared_memory_region: { string_param: 'out2' }, shared_memory_byte_size: { int64_param: '64' } } }],
      });
      expect(res.outputs[0].parameters.shared_memory_byte_size.int64_param).toBe('24');
      expect(res.raw_output_contents.map((b: Uint8Array) => b.byteLength)).toEqual([0]);
      f32((await readFile(object)).subarray(192, 192 + 24)).forEach((v, i) => expect(v).toBeCloseTo(want()[i]!, 5));
      const dup = await new Promise<grpc.ServiceError>((ok) => client.SystemSharedMemoryRegister({ name: 'out2', key: `/${KEY}`, offset: '0', byte_size: '8' }, (err: grpc.ServiceError) => ok(err)));
      expect([dup.code, dup.details]).toEqual([grpc.status.ALREADY_EXISTS, "system shared memory region 'out2' is already registered; unregister it first"]);
      await call('SystemSharedMemoryUnregister', { name: 'out2' });
      const cuda = await new Promise<grpc.ServiceError>((ok) => client.CudaSharedMemoryRegister({ name: 'g', byte_size: '8' }, (err: grpc.ServiceError) => ok(err)));
      expect(cuda.code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  it('unregisters one region, then all; a request naming a gone region is refused', async () => {
    expect((await postJson(url('/v2/systemsharedmemory/region/out/unregister'), {})).status).toBe(200);
    expect(((await (await fetch(url('/v2/systemsharedmemory/status'))).json()) as { name: string }[]).map((r) => r.name)).toEqual(['in']);
    expect((await postJson(url('/v2/systemsharedmemory/unregister'), {})).status).toBe(200);
    expect(await (await fetch(url('/v2/systemsharedmemory/status'))).json()).toEqual([]);
    const res = await postJson(url('/v2/models/mlp/infer'), { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } }] });
    expect(res.status).toBe(404); // Triton's NOT_FOUND for a region not registered
  });

  it('is off unless allowed: registration refused, tensors in shared memory refused, status empty', async () => {
    const reg = await register('in', { key: `/${KEY}`, byte_size: 32 }, plain.url);
    expect([reg.status, ((await reg.json()) as { error: string }).error]).toEqual([400, 'client shared memory is not allowed on this server (start it with --allow-client-shm)']);
    expect(await (await fetch(`${plain.url}/v2/systemsharedmemory/status`)).json()).toEqual([]);
    const res = await postJson(`${plain.url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/this server takes no tensors in shared memory \(start it with --allow-client-shm\)/);
    expect(((await (await fetch(`${plain.url}/v2`)).json()) as { extensions: string[] }).extensions).not.toContain('system_shared_memory');
  });
});
