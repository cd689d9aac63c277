/**
 * The gRPC transport (inference.GRPCInferenceService) through a real server on
 * 127.0.0.1 and a @grpc/grpc-js client. The inference RPCs are called through
 * the Open Inference Protocol's own .proto from ../shared/specs (the server's
 * copy is not used for them, so a field number that drifted from the spec
 * fails here); the repository RPCs, which only Triton's proto has, through the
 * server's definition. Without ../shared the spec-proto client is skipped with
 * a message and the server's definition is used for everything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelRepository } from '../../runtime/config.js';
import { toHalf } from '../../runtime/core/datatypes.js';
import { GRPC_LOADER_OPTIONS } from '../../runtime/protocol/grpc/codec.js';
import { grpcPackageDefinition } from '../../runtime/server/grpc.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { repoRoot } from '../../knative/specs.js';
import { mlpReference, writeLookupModel, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { startTestServer, tempDir } from '../helpers/server.js';
import { TRITON_TEST_PROTO } from '../helpers/grpc-client.js';

const SPEC_PROTO = resolve(repoRoot(), '..', 'shared', 'specs', 'open-inference-protocol', 'open_inference_grpc.proto');
/** Triton's ModelConfig and ModelStatistics RPCs as a Triton client compiles them (not the server's subset). */

/**
 * The spec's service plus Triton's ModelStreamInfer and its response message (field numbers from
 * Triton's grpc_service.proto), for the streaming test; the server's own definition without ../shared.
 */
function streamDefinition(): protoLoader.PackageDefinition {
  if (!existsSync(SPEC_PROTO)) return grpcPackageDefinition();
  const text =
    readFileSync(SPEC_PROTO, 'utf8').replace(/service GRPCInferenceService\s*\{/, (m) => `${m}\n  rpc ModelStreamInfer(stream ModelInferRequest) returns (stream ModelStreamInferResponse) {}\n`) +
    '\nmessage ModelStreamInferResponse { string error_message = 1; ModelInferResponse infer_response = 2; }\n';
  return protoLoader.fromJSON(protobuf.parse(text, { keepCase: true }).root.toJSON(), GRPC_LOADER_OPTIONS);
}

type Client = grpc.Client & Record<string, (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void>;

function clientFrom(def: protoLoader.PackageDefinition, port: number): Client {
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as Client;
}

function rpc(client: Client, method: string, req: unknown, meta = new grpc.Metadata()): Promise<any> {
  return new Promise((resolve, reject) => client[method]!(req, meta, { deadline: Date.now() + 20_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

async function rpcError(client: Client, method: string, req: unknown): Promise<grpc.ServiceError> {
  try {
    await rpc(client, method, req);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${method}: expected an error`);
}

const f32Bytes = (v: number[]) => Buffer.from(Float32Array.from(v).buffer);
const fromF32 = (b: Buffer) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

describe('gRPC: inference.GRPCInferenceService', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  let oip: Client;
  let own: Client;

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'mlp', '1'), { recursive: true });
    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await mkdir(join(repo.dir, 'lookup', '1'), { recursive: true });
    await writeLookupModel(join(repo.dir, 'lookup', '1'));
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    // ocr-det unbatched on one instance: a large image keeps it busy while later calls queue.
    await mkdir(join(repo.dir, 'slow', '1'), { recursive: true });
    await symlink(join(defaultModelRepository(), 'ocr-det', '1', 'model.onnx'), join(repo.dir, 'slow', '1', 'model.onnx'));
    await writeFile(join(repo.dir, 'slow', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 0\n');
    // A small JSON limit, which also bounds typed contents (their decoded arrays grow per element).
    server = await startTestServer({ modelRepository: repo.dir, grpcPort: 0, host: '127.0.0.1', maxJsonBytes: 4096 });
    own = clientFrom(grpcPackageDefinition(), server.grpcPort!);
    if (existsSync(SPEC_PROTO)) {
      oip = clientFrom(protoLoader.loadSync(SPEC_PROTO, GRPC_LOADER_OPTIONS), server.grpcPort!);
    } else {
      console.warn(`grpc.test: ${SPEC_PROTO} not found (../shared absent); inference RPCs use the server's own proto`);
      oip = own;
    }
  });
  afterAll(async () => {
    oip?.close();
    own?.close();
    await server?.close();
    await repo?.cleanup();
  });

  it('health and metadata: live, ready, server metadata, model metadata and readiness', async () => {
    expect(await rpc(oip, 'ServerLive', {})).toEqual({ live: true });
    expect(await rpc(oip, 'ServerReady', {})).toEqual({ ready: true });
    const meta = await rpc(oip, 'ServerMetadata', {});
    expect(meta.name).toBe('kinfer');
    expect(meta.extensions).toContain('model_repository');
    const md = await rpc(oip, 'ModelMetadata', { name: 'mlp' });
    expect(md).toMatchObject({ name: 'mlp', versions: ['1'], platform: 'onnxruntime_onnx' });
    expect(md.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: ['-1', '4'] }]);
    expect(md.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: ['-1', '3'] }]);
    expect(await rpc(oip, 'ModelReady', { name: 'mlp' })).toEqual({ ready: true });
    expect(await rpc(oip, 'ModelReady', { name: 'mlp', version: '2' })).toEqual({ ready: false });
    const err = await rpcError(oip, 'ModelMetadata', { name: 'nope' });
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toMatch(/model 'nope'/);
  });

  it('ModelInfer with typed contents answers in contents, with the model\'s exact values and the request id', async () => {
    const x = [1, -2, 3.5, 0.25, 0, 2, -1, 4];
    const res = await rpc(oip, 'ModelInfer', {
      model_name: 'mlp',
      id: 'req-7',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: x } }],
    });
    expect(res).toMatchObject({ model_name: 'mlp', model_version: '1', id: 'req-7', raw_output_contents: [] });
    expect(res.outputs).toHaveLength(1);
    expect(res.outputs[0]).toMatchObject({ name: 'y', datatype: 'FP32', shape: ['2', '3'] });
    const want = Array.from(mlpReference(mlp, Float32Array.from(x)));
    res.outputs[0].contents.fp32_contents.forEach((v: number, i: number) => expect(v).toBeCloseTo(want[i]!, 5));
  });

  it('ModelInfer with raw_input_contents answers in raw_output_contents (what Triton\'s clients send and read)', async () => {
    const x = [0.5, 1, -1, 2];
    const res = await rpc(oip, 'ModelInfer', {
      model_name: 'mlp',
      model_version: '1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
      outputs: [{ name: 'y' }],
      raw_input_contents: [f32Bytes(x)],
    });
    expect(res.outputs[0].contents).toBeNull();
    expect(res.raw_output_contents).toHaveLength(1);
    const want = Array.from(mlpReference(mlp, Float32Array.from(x)));
    fromF32(res.raw_output_contents[0]).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  });

  it('every datatype round-trips through echo: typed contents (FP16 aside) and raw bytes, 64-bit integers beyond 2^53 exact', async () => {
    const typed = [
      { name: 'b', datatype: 'BOOL', shape: [3], contents: { bool_contents: [true, false, true] } },
      { name: 'i8', datatype: 'INT8', shape: [2], contents: { int_contents: [-128, 127] } },
      { name: 'i32', datatype: 'INT32', shape: [2], contents: { int_contents: [-2147483648, 7] } },
      { name: 'i64', datatype: 'INT64', shape: [2], contents: { int64_contents: ['-9223372036854775808', '9007199254740993'] } },
      { name: 'u16', datatype: 'UINT16', shape: [1], contents: { uint_contents: [65535] } },
      { name: 'u64', datatype: 'UINT64', shape: [1], contents: { uint64_contents: ['18446744073709551615'] } },
      { name: 'f64', datatype: 'FP64', shape: [2], contents: { fp64_contents: [Math.PI, -0.1] } },
      { name: 's', datatype: 'BYTES', shape: [2], contents: { bytes_contents: [Buffer.from('héllo'), Buffer.from([0, 255])] } },
    ];
    const res = await rpc(oip, 'ModelInfer', { model_name: 'echo', inputs: typed });
    expect(res.raw_output_contents).toEqual([]);
    for (const [i, t] of typed.entries()) {
      expect(res.outputs[i]).toMatchObject({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) });
      const [field, values] = Object.entries(t.contents)[0]!;
      expect(res.outputs[i].contents[field], t.name).toEqual(values);
    }
    // Raw: FP16 (no typed field), BYTES framed with 4-byte lengths, INT64 little-endian.
    const half = Buffer.from(Uint16Array.from([toHalf(1.5), toHalf(-2)]).buffer);
    const words = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('ok'), Buffer.from([0, 0, 0, 0])]);
    const big = Buffer.from(BigInt64Array.from([2n ** 62n + 1n]).buffer);
    const raw = await rpc(oip, 'ModelInfer', {
      model_name: 'echo',
      inputs: [
        { name: 'h', datatype: 'FP16', shape: [2] },
        { name: 'w', datatype: 'BYTES', shape: [2] },
        { name: 'n', datatype: 'INT64', shape: [1, 1] },
      ],
      raw_input_contents: [half, words, big],
    });
    expect(raw.outputs.map((o: { datatype: string }) => o.datatype)).toEqual(['FP16', 'BYTES', 'INT64']);
    expect(raw.raw_output_contents).toEqual([half, words, big]);
    // FP16 has no typed field: in a typed request it is refused, naming the way to send it.
    const typedHalf = await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [{ name: 'f', datatype: 'FP32', shape: [1], contents: { fp32_contents: [2] } }, { name: 'h', datatype: 'FP16', shape: [2] }] });
    expect(typedHalf.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(typedHalf.details).toMatch(/input 'h' .*FP16 has no contents field; send it in raw_input_contents/);
  });

  it('answers client mistakes with INVALID_ARGUMENT or NOT_FOUND and the message the REST route gives, never INTERNAL', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ model_name: 'nope', inputs: [] }, grpc.status.NOT_FOUND, /model 'nope'/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } }] }, grpc.status.INVALID_ARGUMENT, /input 'x'.*shape/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], contents: { fp64_contents: [1, 2, 3, 4] } }] }, grpc.status.INVALID_ARGUMENT, /FP32 data goes in contents.fp32_contents, got fp64_contents/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2] } }] }, grpc.status.INVALID_ARGUMENT, /shape needs 4 elements, contents.fp32_contents has 2/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [f32Bytes([1, 2, 3])] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents\[0\] has 12 bytes; shape \[1,4\] of FP32 needs 4 × 4 = 16/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }, { name: 'z', datatype: 'FP32', shape: [1] }], raw_input_contents: [f32Bytes([1, 2, 3, 4])] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents has 1 entries for 2 inputs/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }], raw_input_contents: [f32Bytes([1, 2, 3, 4])] }, grpc.status.INVALID_ARGUMENT, /has contents \(fp32_contents\) while raw_input_contents is used/],
      [{ model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FLOAT', shape: [1, 4] }] }, grpc.status.INVALID_ARGUMENT, /datatype/],
      [{ model_name: 'echo', inputs: [{ name: 'c', datatype: 'INT8', shape: [1], contents: { int_contents: [300] } }] }, grpc.status.INVALID_ARGUMENT, /element 0: expected an integer in \[-128, 127\] for INT8/],
      [{ model_name: 'lookup', inputs: [{ name: 'ids', datatype: 'INT64', shape: [1, 2], contents: { int64_contents: ['1', '9'] } }] }, grpc.status.INVALID_ARGUMENT, /ONNX Runtime rejected the inputs: .*idx=9/],
    ];
    for (const [req, code, message] of cases) {
      const err = await rpcError(oip, 'ModelInfer', req);
      expect(err.code, JSON.stringify(req).slice(0, 120)).toBe(code);
      expect(err.details).toMatch(message);
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/kinfer_requests_total\{[^}]*model="mlp"[^}]*protocol="grpc"[^}]*status="400"[^}]*\} [1-9]/);
    expect(text).toMatch(/kinfer_requests_total\{[^}]*model="mlp"[^}]*protocol="grpc"[^}]*status="200"[^}]*\} [1-9]/);
  });

  it('weighs a request on the wire before decoding it: typed contents over KINFER_MAX_JSON_BYTES / 8 units, or over 1 MiB of names and shapes, are RESOURCE_EXHAUSTED; the same bytes raw pass', async () => {
    const values = Array.from({ length: 2000 }, (_, i) => i / 7); // 8,000 bytes packed (plus the field header), over the 4 KiB limit
    const err = await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [{ name: 'v', datatype: 'FP32', shape: [2000], contents: { fp32_contents: values } }] });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/typed contents weigh 2000 units to decode, over 512 \(KINFER_MAX_JSON_BYTES \/ 8.*\); send large tensors in raw_input_contents/);
    // 200 INT64 values weigh 4 each (a Long and a string per value once decoded): 800 units.
    const longs = await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [{ name: 'n', datatype: 'INT64', shape: [200], contents: { int64_contents: Array.from({ length: 200 }, (_, i) => String(i)) } }] });
    expect(longs.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(longs.details).toMatch(/weigh 800 units/);
    // Everything besides tensor data is bounded too (1 MiB): here one output name of 1.1 MB.
    const names = await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [], outputs: [{ name: 'o'.repeat(1_100_000) }] });
    expect(names.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(names.details).toMatch(/bytes besides its tensor data .* over 1048576/);
    const raw = await rpc(oip, 'ModelInfer', { model_name: 'echo', inputs: [{ name: 'v', datatype: 'FP32', shape: [2000] }], raw_input_contents: [f32Bytes(values)] });
    expect(fromF32(raw.raw_output_contents[0])).toEqual(Array.from(Float32Array.from(values)));
    // raw_input_contents entries past the inputs (refused before decoding: runtime/server/grpc.test.ts).
    const entries = await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [{ name: 'v', datatype: 'FP32', shape: [1] }], raw_input_contents: Array.from({ length: 200_000 }, () => Buffer.alloc(0)) });
    expect(entries.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(entries.details).toBe('raw_input_contents has 200000 entries for 1 inputs; when used, it carries every input not in shared memory, in order');
  });

  it('a queued call whose deadline passes, or which the client cancels, is dropped without being computed', async () => {
    const metric = async (name: string, extra = '') => {
      const line = (await (await fetch(`${server.url}/metrics`)).text()).split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('model="slow"') && l.includes(extra));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const image = (side: number) => ({ model_name: 'slow', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, side, side] }], raw_input_contents: [Buffer.alloc(3 * side * side * 4)] });
    const before = await metric('kinfer_inference_count_total');
    const busy = rpc(oip, 'ModelInfer', image(960)); // ~1 s of compute on this machine
    for (let i = 0; i < 200 && (await metric('kinfer_pending_requests')) < 1; i++) await new Promise((r) => setTimeout(r, 5));
    // A deadline shorter than the busy run: the client sees DEADLINE_EXCEEDED, the server drops the queued call.
    const late = await new Promise<grpc.ServiceError>((resolve) => oip.ModelInfer!(image(32), new grpc.Metadata(), { deadline: Date.now() + 100 }, (err) => resolve(err!)));
    expect(late.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // A call the client cancels while it waits.
    const cancelled = await new Promise<grpc.ServiceError>((resolve) => {
      const call = (oip as unknown as { ModelInfer: (r: unknown, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall }).ModelInfer(image(32), (err) => resolve(err!));
      setTimeout(() => call.cancel(), 50);
    });
    expect(cancelled.code).toBe(grpc.status.CANCELLED);
    expect((await busy).raw_output_contents).toHaveLength(1);
    // Only the busy call was computed; the two others were answered from the queue.
    expect((await metric('kinfer_inference_count_total')) - before).toBe(1);
    const dropped = (await metric('kinfer_rejected_requests_total', 'reason="deadline_exceeded"')) + (await metric('kinfer_rejected_requests_total', 'reason="cancelled"'));
    expect(dropped).toBe(2);
  });

  it('Triton\'s ModelConfig and ModelStatistics, read through Triton\'s own message definitions, say what the REST routes say', async () => {
    const triton = clientFrom(protoLoader.loadSync(TRITON_TEST_PROTO, GRPC_LOADER_OPTIONS), server.grpcPort!);
    try {
      await rpc(oip, 'ModelInfer', { model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 4], contents: { fp32_contents: new Array(12).fill(1) } }] });
      const { config } = await rpc(triton, 'ModelConfig', { name: 'mlp' });
      const rest = (await (await fetch(`${server.url}/v2/models/mlp/config`)).json()) as Record<string, any>;
      expect(config).toMatchObject({ name: 'mlp', platform: rest.platform, max_batch_size: rest.max_batch_size, backend: '' });
      // Triton's default policy, as the REST form writes it; the oneof names the policy chosen.
      expect(rest.version_policy).toEqual({ latest: { num_versions: 1 } });
      expect(config.version_policy).toMatchObject({ policy_choice: 'latest', latest: { num_versions: 1 } });
      expect(config.input).toEqual(rest.input.map((i: any) => ({ ...i, dims: i.dims.map(String), reshape: null, is_shape_tensor: false, allow_ragged_batch: false, optional: false })));
      expect(config.output.map((o: any) => [o.name, o.data_type, o.dims])).toEqual(rest.output.map((o: any) => [o.name, o.data_type, o.dims.map(String)]));
      expect(config.instance_group.map((g: any) => [g.kind, g.count])).toEqual(rest.instance_group.map((g: any) => [g.kind, g.count]));
      expect(config.scheduling_choice ?? undefined).toBe(rest.dynamic_batching ? 'dynamic_batching' : undefined);

      const { model_stats: grpcStats } = await rpc(triton, 'ModelStatistics', { name: 'mlp' });
      const restStats = ((await (await fetch(`${server.url}/v2/models/mlp/stats`)).json()) as { model_stats: any[] }).model_stats;
      expect(grpcStats).toHaveLength(1);
      const g = grpcStats[0];
      const r = restStats[0];
      expect(Number(g.inference_count)).toBeGreaterThanOrEqual(3);
      expect([g.name, g.version, Number(g.last_inference), Number(g.inference_count), Number(g.execution_count)]).toEqual([r.name, r.version, r.last_inference, r.inference_count, r.execution_count]);
      for (const k of ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output']) {
        expect([Number(g.inference_stats[k].count), Number(g.inference_stats[k].ns)]).toEqual([r.inference_stats[k].count, r.inference_stats[k].ns]);
      }
      expect(g.batch_stats.map((b: any) => [Number(b.batch_size), Number(b.compute_infer.count)])).toEqual(r.batch_stats.map((b: any) => [b.batch_size, b.compute_infer.count]));
      expect(g.memory_usage).toEqual([]);
      // An empty name asks for every model; an unknown one is NOT_FOUND.
      const all = await rpc(triton, 'ModelStatistics', {});
      expect(all.model_stats.map((s: { name: string }) => s.name).sort()).toEqual(['echo', 'lookup', 'mlp', 'slow']);
      const err = await rpcError(triton, 'ModelStatistics', { name: 'nope' });
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect((await rpcError(triton, 'ModelConfig', { name: 'nope' })).code).toBe(grpc.status.NOT_FOUND);
      expect((await rpc(oip, 'ServerMetadata', {})).extensions).toEqual(expect.arrayContaining(['statistics', 'model_configuration']));
    } finally {
      triton.close();
    }
  });

  it('ModelStreamInfer (Triton\'s): one response per request, in request order behind a slow one; a failed request answers error_message and the stream goes on; half-close ends it', async () => {
    const client = clientFrom(streamDefinition(), server.grpcPort!);
    try {
      const stream = (client as unknown as { ModelStreamInfer(): grpc.ClientDuplexStream<unknown, any> }).ModelStreamInfer();
      const got: any[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stream not ended within 10 s; ${got.length} responses`)), 10_000);
        stream.on('data', (r: any) => got.push(r));
        stream.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        stream.on('end', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      // A slow ocr-det run first, then fast ones: answers still come in request order, as Triton writes them.
      const side = 480;
      stream.write({ model_name: 'slow', id: 'first', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, side, side] }], raw_input_contents: [Buffer.alloc(3 * side * side * 4)] });
      const rows = [[1, 2, 3, 4], [0, -1, 0.5, 2], [4, 4, 4, 4]];
      rows.forEach((x, i) => stream.write({ model_name: 'mlp', id: `s${i}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [f32Bytes(x)] }));
      stream.write({ model_name: 'mlp', id: 'bad', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 5] }], raw_input_contents: [f32Bytes([1, 2, 3, 4, 5])] });
      stream.write({ model_name: 'nope', id: 'ghost', inputs: [] });
      stream.write({ model_name: 'mlp', id: 'after', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [f32Bytes(rows[0]!)] });
      // Refused on the wire before decoding (typed contents over the limit), still answered with its id.
      stream.write({ model_name: 'mlp', id: 'big', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: new Array(1000).fill(1) } }] });
      stream.end();
      await ended;
      expect(got).toHaveLength(8);
      expect(got.map((r) => r.infer_response.id)).toEqual(['first', 's0', 's1', 's2', 'bad', 'ghost', 'after', 'big']);
      expect(got[7].error_message).toMatch(/typed contents weigh/);
      expect(got[7].infer_response.model_name).toBe('mlp');
      expect(got[0].error_message).toBe('');
      // Triton's mark on every answer of a model that answers once, which streaming clients loop on.
      expect(got.map((r) => r.infer_response.parameters?.triton_final_response?.bool_param)).toEqual(new Array(8).fill(true)); // failed answers too
      const byId = new Map(got.map((r) => [r.infer_response.id, r]));
      for (const [i, x] of rows.entries()) {
        const r = byId.get(`s${i}`)!;
        expect(r.error_message).toBe('');
        const want = mlpReference(mlp, Float32Array.from(x));
        fromF32(r.infer_response.raw_output_contents[0]).forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5));
      }
      expect(byId.get('bad')!.error_message).toMatch(/input 'x': expected shape \[-1,4\], got \[1,5\]/);
      expect(byId.get('bad')!.infer_response).toMatchObject({ id: 'bad', model_name: 'mlp' });
      expect(byId.get('ghost')!.error_message).toMatch(/model 'nope'/);
      expect(byId.get('after')!.error_message).toBe('');
    } finally {
      client.close();
    }
  });

  it('ModelStreamInfer stops reading while the client does not read its answers, and answers everything once it does', async () => {
    const { SERVICE_PROTO } = await import('../../runtime/protocol/grpc/service-proto.js');
    const type = protobuf.parse(SERVICE_PROTO, { keepCase: true }).root.lookupType('inference.ModelInferRequest');
    const size = 256 * 1024;
    const msg = type.encode(type.fromObject({ model_name: 'echo', inputs: [{ name: 'a', datatype: 'UINT8', shape: [size] }], raw_input_contents: [Buffer.alloc(size, 7)] })).finish();
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
    frame.writeUInt32BE(msg.length, 1);
    const answered = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith('kinfer_requests_total{') && l.includes('model="echo"') && l.includes('protocol="grpc"')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    };
    const before = await answered();
    const { connect } = await import('node:http2');
    const session = connect(`http://127.0.0.1:${server.grpcPort}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelStreamInfer', 'content-type': 'application/grpc', te: 'trailers' });
      req.pause(); // answers not read
      const n = 200; // 50 MiB of requests, as many answers
      let sent = 0;
      const pump = () => {
        while (sent < n) {
          sent++;
          if (!req.write(frame)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
      // Let it run as far as it will (2 s; without the pause it read and answered all 200 within ~1.4 s here): it stops far short.
      await new Promise((r) => setTimeout(r, 2000));
      expect((await answered()) - before).toBeLessThan(n / 2);
      let bytes = 0;
      const done = new Promise<void>((resolve) => req.on('end', resolve));
      req.on('data', (c: Buffer) => (bytes += c.byteLength));
      req.resume();
      await done;
      expect(await answered()).toBe(before + n);
      expect(bytes).toBeGreaterThan(n * size);
    } finally {
      session.close();
    }
  });

  it('repository RPCs (Triton\'s): index, unload, load with a config parameter, and NOT_FOUND for a model with no folder', async () => {
    const index = await rpc(own, 'RepositoryIndex', {});
    expect(index.models.map((m: { name: string; state: string }) => `${m.name}:${m.state}`).sort()).toEqual(['echo:READY', 'lookup:READY', 'mlp:READY', 'slow:READY']);
    await rpc(own, 'RepositoryModelUnload', { model_name: 'echo' });
    expect(await rpc(oip, 'ModelReady', { name: 'echo' })).toEqual({ ready: false });
    expect((await rpcError(oip, 'ModelInfer', { model_name: 'echo', inputs: [] })).code).toBe(grpc.status.NOT_FOUND);
    expect((await rpc(own, 'RepositoryIndex', { ready: true })).models.map((m: { name: string }) => m.name).sort()).toEqual(['lookup', 'mlp', 'slow']);
    await rpc(own, 'RepositoryModelLoad', { model_name: 'echo', parameters: { config: { string_param: JSON.stringify({ platform: 'echo' }) } } });
    expect(await rpc(oip, 'ModelReady', { name: 'echo' })).toEqual({ ready: true });
    const missing = await rpcError(own, 'RepositoryModelLoad', { model_name: 'ghost' });
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    // Triton's file: overrides: the model's files as bytes, with a config.
    const onnx = await readFile(mlp.path);
    await rpc(own, 'RepositoryModelLoad', {
      model_name: 'pushed',
      parameters: { config: { string_param: JSON.stringify({ platform: 'onnxruntime_onnx', max_batch_size: 4 }) }, 'file:3/model.onnx': { bytes_param: onnx } },
    });
    const x = [0.5, -1, 2, 0.25];
    const pushed = await rpc(oip, 'ModelInfer', { model_name: 'pushed', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: x } }] });
    expect(pushed.model_version).toBe('3');
    expect(pushed.outputs[0].contents.fp32_contents).toEqual(Array.from(mlpReference(mlp, Float32Array.from(x))).map((v) => expect.closeTo(v, 5)));
    const noConfig = await rpcError(own, 'RepositoryModelLoad', { model_name: 'echo', parameters: { 'file:1/model.onnx': { bytes_param: Buffer.from('x') } } });
    expect([noConfig.code, noConfig.details]).toEqual([grpc.status.INVALID_ARGUMENT, "model 'echo': file: parameters need a config parameter (the model's config as JSON)"]);
    const stray = await rpcError(own, 'RepositoryModelLoad', { model_name: 'echo', parameters: { blob: { bytes_param: Buffer.from('x') } } });
    expect([stray.code, stray.details]).toEqual([grpc.status.INVALID_ARGUMENT, "load parameter 'blob': bytes are taken only for file:<path> parameters"]);
    await rpc(own, 'RepositoryModelUnload', { model_name: 'pushed' });
  });
});
