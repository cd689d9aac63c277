/**
 * Triton's sequence batcher through a real server on 127.0.0.1: an ONNX model that adds its
 * input to its implicit state (read from an initial_state file at START), with the START and
 * CORRID controls filled by the server, over HTTP and gRPC.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KinferClient } from '../../client/index.js';
import { inferenceClient, tritonClient, unary } from '../helpers/grpc-client.js';
import type { RunningServer } from '../../runtime/server/serve.js';
import { writeAccumulatorModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

// A 100 ms window: the requests of sequences running side by side share a run.
const CONFIG = `platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  oldest { max_candidate_sequences: 4 max_queue_delay_microseconds: 100000 }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 2 ]
            initial_state { data_type: TYPE_FP32 dims: [ 2 ] data_file: "hundreds.bin" } } ]
}
`;

interface V2Reply {
  outputs?: { name: string; datatype: string; shape: number[]; data: number[] }[];
  error?: string;
}

describe('sequence batching', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    repo = await tempDir();
    const model = join(repo.dir, 'acc');
    await writeAccumulatorModel(join(model, '1'));
    await writeFile(join(model, 'config.pbtxt'), CONFIG);
    await mkdir(join(model, 'initial_state'));
    await writeFile(join(model, 'initial_state', 'hundreds.bin'), new Uint8Array(Float32Array.of(100, 200).buffer));
    // An ensemble whose one step is the stateful model: the request's sequence reaches it.
    await mkdir(join(repo.dir, 'seqpipe'));
    await writeFile(join(repo.dir, 'seqpipe', 'config.pbtxt'), `platform: "ensemble"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
ensemble_scheduling { step [ { model_name: "acc" input_map { key: "INPUT" value: "X" } output_map { key: "OUTPUT" value: "Y" } } ] }
`);
    server = await startTestServer({ modelRepository: repo.dir, grpcPort: 0 });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  const infer = async (x: [number, number], parameters: Record<string, unknown>) => {
    const res = await postJson(`${server.url}/v2/models/acc/infer`, { inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], data: x }], parameters });
    const body = (await res.json()) as V2Reply;
    const out = Object.fromEntries((body.outputs ?? []).map((o) => [o.name, o.data]));
    return { status: res.status, body, out };
  };

  it('serves the model without its control and state tensors', async () => {
    const meta = (await (await fetch(`${server.url}/v2/models/acc`)).json()) as { inputs: { name: string }[]; outputs: { name: string }[] };
    expect(meta.inputs.map((t) => t.name)).toEqual(['INPUT']);
    expect(meta.outputs.map((t) => t.name).sort()).toEqual(['CORRID_OUT', 'OUTPUT', 'START_OUT']);
    const { config } = { config: (await (await fetch(`${server.url}/v2/models/acc/config`)).json()) as any };
    expect(config.sequence_batching).toEqual({
      max_sequence_idle_microseconds: 5_000_000,
      control_input: [
        { name: 'START', control: [{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }] },
        { name: 'CORRID', control: [{ kind: 'CONTROL_SEQUENCE_CORRID', data_type: 'TYPE_UINT64' }] },
      ],
      state: [{ input_name: 'STATE_IN', output_name: 'STATE_OUT', data_type: 'TYPE_FP32', dims: [2], initial_state: [{ data_type: 'TYPE_FP32', dims: [2], data_file: 'hundreds.bin' }] }],
      oldest: { max_candidate_sequences: 4, preferred_batch_size: [], max_queue_delay_microseconds: 100_000 },
    });
    expect(config.dynamic_batching).toBeUndefined();
  });

  it('sums each sequence from its initial state, two sequences side by side sharing runs', async () => {
    const stats = async () => ((await (await fetch(`${server.url}/v2/models/acc/stats`)).json()) as any).model_stats[0];
    const before = await stats();
    const run = async (id: number, xs: [number, number][]) => {
      const outs = [];
      for (let i = 0; i < xs.length; i++) {
        const r = await infer(xs[i]!, { sequence_id: id, sequence_start: i === 0, sequence_end: i === xs.length - 1 });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(Object.keys(r.out).sort()).toEqual(['CORRID_OUT', 'OUTPUT', 'START_OUT']);
        outs.push([r.out.OUTPUT, r.out.START_OUT, r.out.CORRID_OUT]);
      }
      return outs;
    };
    const [a, b] = await Promise.all([
      run(11, [[1, 2], [3, 4], [5, 6]]),
      run(12, [[10, 20], [30, 40], [50, 60]]),
    ]);
    expect(a).toEqual([[[101, 202], [1], [11]], [[104, 206], [0], [11]], [[109, 212], [0], [11]]]);
    expect(b).toEqual([[[110, 220], [1], [12]], [[140, 260], [0], [12]], [[190, 320], [0], [12]]]);
    const after = await stats();
    expect(after.inference_count - before.inference_count).toBe(6);
    // The two sequences' requests met in the 100 ms window: fewer runs than requests.
    expect(after.execution_count - before.execution_count).toBeLessThan(6);
  });

  it('serves twelve sequences at once through four slots: the backlog waits its turn and every sum is exact', async () => {
    const steps = 6;
    const run = async (id: number) => {
      const sums: number[] = [];
      for (let i = 0; i < steps; i++) {
        const r = await infer([id, i], { sequence_id: 1000 + id, sequence_start: i === 0, sequence_end: i === steps - 1 });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        sums.push(r.out.OUTPUT![1]!);
        expect(r.out.OUTPUT![0]).toBe(100 + id * (i + 1));
      }
      return sums;
    };
    const all = await Promise.all(Array.from({ length: 12 }, (_, id) => run(id)));
    // The second element sums 0..i from 200, for every sequence alike.
    for (const sums of all) expect(sums).toEqual([200, 201, 203, 206, 210, 215]);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^kinfer_sequences\{model="acc",version="1",state="active"\} 0$/m);
    expect(text).toMatch(/^kinfer_sequences\{model="acc",version="1",state="backlog"\} 0$/m);
    expect(text).toMatch(/^kinfer_pending_requests\{model="acc",version="1"\} 0$/m);
  }, 60_000);

  it('answers 400 for requests the sequence batcher cannot place', async () => {
    const none = await infer([1, 1], {});
    expect(none.status).toBe(400);
    expect(none.body.error).toBe("inference request to model 'acc' must specify a non-zero or non-empty correlation ID (parameters.sequence_id)");
    const unstarted = await infer([1, 1], { sequence_id: 999 });
    expect(unstarted.status).toBe(400);
    expect(unstarted.body.error).toMatch(/^inference request for sequence 999 to model 'acc' must specify the START flag on the first request of the sequence/);
    const word = await infer([1, 1], { sequence_id: 'abc', sequence_start: true });
    expect(word.status).toBe(400);
    expect(word.body.error).toMatch(/takes numeric correlation ids \(its CORRID control is UINT64\)/);
    // The state is the server's: a client cannot feed it.
    const res = await postJson(`${server.url}/v2/models/acc/infer`, {
      inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], data: [1, 1] }, { name: 'STATE_IN', datatype: 'FP32', shape: [1, 2], data: [0, 0] }],
      parameters: { sequence_id: 5, sequence_start: true },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as V2Reply).error).toBe("unknown input 'STATE_IN' (model inputs: INPUT)");
  });

  it('passes an ensemble request\'s sequence on to its stateful step', async () => {
    const send = async (x: number[], parameters: Record<string, unknown>) => {
      const res = await postJson(`${server.url}/v2/models/seqpipe/infer`, { inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 2], data: x }], parameters });
      return { status: res.status, body: (await res.json()) as V2Reply };
    };
    expect((await send([1, 1], { sequence_id: 'pipe-1', sequence_start: true })).status).toBe(400); // CORRID is UINT64
    const first = await send([1, 1], { sequence_id: 31, sequence_start: true });
    expect(first.body.outputs?.[0]?.data).toEqual([101, 201]);
    // A plain model request under the same id continues the same sequence: it is the model's, not the ensemble's.
    expect((await infer([2, 2], { sequence_id: 31 })).out.OUTPUT).toEqual([103, 203]);
    expect((await send([3, 3], { sequence_id: 31, sequence_end: true })).body.outputs?.[0]?.data).toEqual([106, 206]);
    const none = await send([1, 1], {});
    expect(none.status).toBe(400);
    expect(none.body.error).toBe("ensemble 'seqpipe' step 0 (model 'acc'): inference request to model 'acc' must specify a non-zero or non-empty correlation ID (parameters.sequence_id)");
  });

  it("runs a sequence through the client library's sequence option", async () => {
    const client = new KinferClient(server.url);
    const send = (x: number[], sequence: { id: number | string; start?: boolean; end?: boolean }) =>
      client.infer('acc', [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], data: x }], { sequence, outputs: ['OUTPUT'] });
    const sequences = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return [...text.matchAll(/^kinfer_sequences\{model="acc",version="1",state="(\w+)"\} (\d+)$/gm)].map((m) => `${m[1]}=${m[2]}`).sort();
    };
    expect((await send([5, 5], { id: 21, start: true })).output('OUTPUT').data).toEqual(Float32Array.of(105, 205));
    expect(await sequences()).toEqual(['active=1', 'backlog=0']);
    expect((await send([1, 2], { id: 21, end: true })).output('OUTPUT').data).toEqual(Float32Array.of(106, 207));
    expect(await sequences()).toEqual(['active=0', 'backlog=0']);
    await expect(send([1, 2], { id: 21 })).rejects.toMatchObject({ status: 400 });
  });

  it('takes the sequence parameters over gRPC, and its ModelConfig carries sequence_batching in Triton\'s messages', async () => {
    const triton = tritonClient(server.grpcPort!);
    const own = inferenceClient(server.grpcPort!);
    try {
      const { config } = await unary(triton, 'ModelConfig', { name: 'acc' });
      expect(config.scheduling_choice).toBe('sequence_batching');
      const sb = config.sequence_batching;
      expect(sb.strategy_choice).toBe('oldest');
      expect(sb.oldest.max_candidate_sequences).toBe(4);
      expect(sb.max_sequence_idle_microseconds).toBe('5000000');
      expect(sb.control_input.map((c: any) => [c.name, c.control[0].kind, c.control[0].data_type])).toEqual([
        ['START', 'CONTROL_SEQUENCE_START', 'TYPE_INVALID'],
        ['CORRID', 'CONTROL_SEQUENCE_CORRID', 'TYPE_UINT64'],
      ]);
      expect(sb.state[0]).toMatchObject({ input_name: 'STATE_IN', output_name: 'STATE_OUT', data_type: 'TYPE_FP32', dims: ['2'] });
      expect(sb.state[0].initial_state[0]).toMatchObject({ state_data: 'data_file', data_file: 'hundreds.bin' });
      const send = (x: number[], parameters: Record<string, unknown>) =>
        unary(own, 'ModelInfer', { model_name: 'acc', inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], contents: { fp32_contents: x } }], parameters });
      const field = { FP32: 'fp32_contents', INT32: 'int_contents', UINT64: 'uint64_contents' } as const;
      const out = (res: any) => Object.fromEntries(res.outputs.map((o: any) => [o.name, o.contents[field[o.datatype as keyof typeof field]]]));
      const first = await send([1, 1], { sequence_id: { uint64_param: '77' }, sequence_start: { bool_param: true } });
      expect(out(first)).toEqual({ OUTPUT: [101, 201], START_OUT: [1], CORRID_OUT: ['77'] });
      const last = await send([2, 2], { sequence_id: { int64_param: '77' }, sequence_end: { bool_param: true } });
      expect(out(last).OUTPUT).toEqual([103, 203]);
      await expect(send([1, 1], {})).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/must specify a non-zero or non-empty correlation ID/) });
    } finally {
      triton.close();
      own.close();
    }
  });

  it('runs a sequence sent at once on a ModelStreamInfer stream in stream order (tritonclient\'s streaming use)', async () => {
    const own = inferenceClient(server.grpcPort!);
    try {
      const stream = own.ModelStreamInfer() as grpc.ClientDuplexStream<unknown, any>;
      const got: any[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`stream not ended within 10 s; ${got.length} responses`)), 10_000);
        stream.on('data', (r: any) => got.push(r));
        stream.on('error', (e) => (clearTimeout(timer), reject(e)));
        stream.on('end', () => (clearTimeout(timer), resolve()));
      });
      // Two interleaved sequences, every request written before any answer.
      const xs = [1, 2, 3, 4];
      for (const [i, x] of xs.entries()) {
        for (const id of [41, 42]) {
          const parameters: Record<string, unknown> = { sequence_id: { int64_param: String(id) } };
          if (i === 0) parameters.sequence_start = { bool_param: true };
          if (i === xs.length - 1) parameters.sequence_end = { bool_param: true };
          stream.write({ model_name: 'acc', id: `${id}-${i}`, inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], contents: { fp32_contents: [x * (id - 40), x] } }], outputs: [{ name: 'OUTPUT' }], parameters });
        }
      }
      stream.end();
      await ended;
      expect(got.map((r) => r.error_message)).toEqual(new Array(8).fill(''));
      expect(got.map((r) => r.infer_response.id)).toEqual(['41-0', '42-0', '41-1', '42-1', '41-2', '42-2', '41-3', '42-3']);
      const sums = got.map((r) => r.infer_response.outputs[0].contents.fp32_contents);
      // Running sums of x·k and x from the initial state [100, 200]: 1, 3, 6, 10.
      expect(sums).toEqual([[101, 201], [102, 201], [103, 203], [106, 203], [106, 206], [112, 206], [110, 210], [120, 210]]);
    } finally {
      own.close();
    }
  });
});
