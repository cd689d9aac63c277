/**
 * @module backends/onnx
 * `OnnxBackend`: ONNX Runtime (onnxruntime-node, CPU execution provider).
 * Metadata comes from the model file, checked against and refined by the
 * config's declared inputs/outputs (Triton semantics: with `max_batch_size > 0`
 * declared dims exclude the batch dim, served as `[-1, ...dims]`).
 *
 * Session options come from config/load `parameters`:
 * - `intra_op_thread_count` (or the original server's `threads`): threads per operator;
 * - `inter_op_thread_count`: threads across operators (only with `execution_mode: parallel`);
 * - `graph_optimization_level`: `disabled|basic|extended|layout|all` or ORT's numbers 0/1/2/99;
 * - `execution_mode`: `sequential|parallel` or Triton's 0/1.
 *
 * @example
 * const backend = new OnnxBackend();
 * const meta = await backend.load({ name: 'mlp', version: '1', dir, modelFile, config });
 * const [y] = await backend.infer([{ name: 'x', datatype: 'FP32', shape: [1, 4], data }], []);
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Datatype, NumericArray } from '../core/datatypes.js';
import { Internal, InvalidArgument, KinferError, NotFound, NotReady, Unsupported } from '../core/errors.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';
import type { ModelConfig } from '../repository/model-config.js';
import type { Backend, ModelFiles, ModelMetadata } from './backend.js';

export const ONNX_PLATFORMS = ['onnx_onnxv1', 'onnxruntime_onnx', 'onnx'] as const;

/** The platform reported in metadata when the config names none (Triton's name, known to KServe tooling). */
const DEFAULT_PLATFORM = 'onnxruntime_onnx';

const ORT_TO_V2: Partial<Record<ort.Tensor.Type, Datatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

const V2_TO_ORT: Record<Datatype, ort.Tensor.Type> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const LEVELS: Record<string, ort.InferenceSession.SessionOptions['graphOptimizationLevel']> = {
  disabled: 'disabled',
  basic: 'basic',
  extended: 'extended',
  layout: 'layout',
  all: 'all',
  '0': 'disabled',
  '1': 'basic',
  '2': 'extended',
  '99': 'all',
};

const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/**
 * CPUs this process may use: the cgroup v2 quota when one is set (a Knative
 * pod with `limits.cpu: 1` on a 64-core node must not start 64 threads),
 * else the CPUs the scheduler gives the process.
 */
export async function cpuBudget(cpuMaxFile = '/sys/fs/cgroup/cpu.max'): Promise<number> {
  const cpus = Math.max(1, availableParallelism());
  try {
    const [quota, period] = (await readFile(cpuMaxFile, 'utf8')).trim().split(/\s+/);
    if (quota && quota !== 'max' && period) {
      const n = Number(quota) / Number(period);
      if (Number.isFinite(n) && n > 0) return Math.max(1, Math.min(cpus, Math.floor(n)));
    }
  } catch {
    // No cgroup v2 file (macOS, cgroup v1): fall back to the CPU count.
  }
  return cpus;
}

/**
 * Session options from the config parameters. Defaults: graph optimisation
 * `all`, sequential execution, one inter-op thread, and intra-op threads =
 * the CPU budget divided among the instances (at least 1). On a 2-core box
 * with one instance that is 2 threads, so one request uses both cores; with
 * `instance_group { count: 2 }` it is 1 each, so parallel instances do not
 * oversubscribe. Idle spinning is turned off: spinning workers burn the CPU
 * that Knative's autoscaler and co-located models need.
 */
export async function sessionOptions(config: ModelConfig, cpus?: number): Promise<ort.InferenceSession.SessionOptions> {
  const p = config.parameters;
  const budget = cpus ?? (await cpuBudget());
  const positive = (key: string): number | undefined => {
    const raw = p[key];
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0 || n > 1024) {
      throw new InvalidArgument(`parameter ${key}: expected an integer from 0 to 1024 (0 = ONNX Runtime's default), got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  const intra = positive('intra_op_thread_count') ?? positive('threads') ?? Math.max(1, Math.floor(budget / Math.max(1, config.instanceCount)));
  const inter = positive('inter_op_thread_count') ?? 1;

  const levelRaw = p.graph_optimization_level;
  const level = levelRaw === undefined ? 'all' : LEVELS[levelRaw.trim().toLowerCase()];
  if (!level) {
    throw new InvalidArgument(
      `parameter graph_optimization_level: expected disabled, basic, extended, layout, all (or 0, 1, 2, 99), got ${JSON.stringify(levelRaw)}`,
    );
  }
  const modeRaw = p.execution_mode?.trim().toLowerCase();
  let executionMode: 'sequential' | 'parallel' = 'sequential';
  if (modeRaw === 'parallel' || modeRaw === '1') executionMode = 'parallel';
  else if (modeRaw !== undefined && modeRaw !== 'sequential' && modeRaw !== '0') {
    throw new InvalidArgument(`parameter execution_mode: expected sequential or parallel (or 0, 1), got ${JSON.stringify(p.execution_mode)}`);
  }
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: intra,
    interOpNumThreads: inter,
    graphOptimizationLevel: level,
    executionMode,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

interface FileValue {
  name: string;
  datatype: Datatype;
  /** From the file: -1 for symbolic or unknown dims. */
  shape: number[];
}

export class OnnxBackend implements Backend {
  private session: ort.InferenceSession | undefined;
  private name = '';
  private inputs: TensorSpec[] = [];
  private outputs: TensorSpec[] = [];
  /** The options the session was created with (for tests and logs). */
  options: ort.InferenceSession.SessionOptions | undefined;

  async load(files: ModelFiles): Promise<ModelMetadata> {
    if (this.session) throw new Internal(`model '${files.name}': OnnxBackend.load called twice`);
    const { name, config } = files;
    this.name = name;
    if (!files.modelFile) {
      throw new NotFound(`model '${name}' version ${files.version}: no .onnx file in ${files.dir}`);
    }
    const options = await sessionOptions(config);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(files.modelFile, options);
    } catch (err) {
      const msg = `model '${name}': ONNX Runtime cannot load ${basename(files.modelFile)}: ${messageOf(err)}`;
      // e.g. bfloat16 inputs: the Node binding has no JS type for them.
      throw /unsupported data type/i.test(msg) ? new Unsupported(msg) : new InvalidArgument(msg);
    }
    try {
      const fileInputs = session.inputMetadata.map((m) => fromOrtMetadata(name, 'input', m));
      const fileOutputs = session.outputMetadata.map((m) => fromOrtMetadata(name, 'output', m));
      const ins = reconcile(name, 'input', fileInputs, config.inputs, config.maxBatchSize);
      const outs = reconcile(name, 'output', fileOutputs, config.outputs, config.maxBatchSize);
      for (const f of fileInputs) {
        if (!ins.specs.some((s) => s.name === f.name)) {
          throw new InvalidArgument(`model '${name}': the config does not declare the model's input '${f.name}'`);
        }
      }
      const all = [...ins.specs, ...outs.specs];
      // Triton semantics: an explicit config with max_batch_size 0 says "no batch dim".
      const noBatching = ins.tritonNoBatch || outs.tritonNoBatch;
      const batchable = !noBatching && all.length > 0 && all.every((s) => s.shape.length > 0 && s.shape[0] === -1);
      this.session = session;
      this.options = options;
      this.inputs = ins.specs;
      this.outputs = outs.specs;
      const platform = config.platform && (ONNX_PLATFORMS as readonly string[]).includes(config.platform) ? config.platform : DEFAULT_PLATFORM;
      return { platform, inputs: ins.specs, outputs: outs.specs, batchable, maxBatchSize: config.maxBatchSize > 0 ? config.maxBatchSize : 0 };
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
  }

  async infer(inputs: Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    const session = this.session;
    if (!session) throw new NotReady(`model '${this.name}' is not loaded`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) {
      if (!this.inputs.some((s) => s.name === t.name)) {
        throw new InvalidArgument(`model '${this.name}': unknown input '${t.name}' (inputs: ${this.inputs.map((s) => s.name).join(', ')})`);
      }
      feeds[t.name] = toOrtTensor(this.name, t);
    }
    for (const s of this.inputs) {
      if (!feeds[s.name]) throw new InvalidArgument(`model '${this.name}': missing input '${s.name}'`);
    }
    const fetches = outputNames.length > 0 ? [...outputNames] : this.outputs.map((s) => s.name);
    for (const n of fetches) {
      if (!this.outputs.some((s) => s.name === n)) {
        throw new InvalidArgument(`model '${this.name}': unknown output '${n}' (outputs: ${this.outputs.map((s) => s.name).join(', ')})`);
      }
    }
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      results = await session.run(feeds, fetches);
    } catch (err) {
      throw runError(this.name, err);
    }
    return fetches.map((n) => fromOrtTensor(this.name, n, results[n]));
  }

  async unload(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await session.release();
  }
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}

/**
 * ORT's own input checks and kernel shape failures (incompatible dims that
 * the file leaves symbolic) are the client's doing; anything else is ours.
 */
const INPUT_FAULT = /invalid dimensions|invalid rank|unexpected input data type|missing in 'feeds'|invalid (input|output) name|broadcast|shape|dimension/i;

/** Maps an error from `session.run` to InvalidArgument (input-caused) or Internal, keeping ORT's message. */
export function runError(model: string, err: unknown): KinferError {
  if (err instanceof KinferError) return err;
  const msg = messageOf(err);
  return INPUT_FAULT.test(msg)
    ? new InvalidArgument(`model '${model}': ONNX Runtime rejected the inputs: ${msg}`)
    : new Internal(`model '${model}': ONNX Runtime failed: ${msg}`);
}

function fromOrtMetadata(model: string, role: string, m: ort.InferenceSession.ValueMetadata): FileValue {
  if (!m.isTensor) throw new Unsupported(`model '${model}': ${role} '${m.name}' is not a tensor (sequences and maps are not supported)`);
  const datatype = ORT_TO_V2[m.type];
  if (!datatype) throw new Unsupported(`model '${model}': ${role} '${m.name}' has ONNX type ${m.type}, which has no v2 datatype`);
  return { name: m.name, datatype, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

/**
 * The served specs for one role. Without declared specs, the file's. With
 * them, each must name a value of the file with the same datatype and a
 * compatible shape; the served shape is the declared one, narrowed where the
 * file fixes a dim the config leaves variable.
 */
function reconcile(
  model: string,
  role: 'input' | 'output',
  file: FileValue[],
  declared: TensorSpec[],
  maxBatchSize: number,
): { specs: TensorSpec[]; tritonNoBatch: boolean } {
  if (declared.length === 0) return { specs: file.map((f) => ({ ...f, shape: [...f.shape] })), tritonNoBatch: false };
  let tritonNoBatch = maxBatchSize === 0;
  const specs = declared.map((d) => {
    const f = file.find((x) => x.name === d.name);
    const where = `model '${model}': config ${role} '${d.name}'`;
    if (!f) throw new InvalidArgument(`${where} is not an ${role} of the model file (${role}s: ${file.map((x) => x.name).join(', ')})`);
    if (f.datatype !== d.datatype) throw new InvalidArgument(`${where} has datatype ${d.datatype} but the model file says ${f.datatype}`);
    let served: number[];
    if (maxBatchSize > 0) {
      served = [-1, ...d.shape];
      if (f.shape.length > 0 && f.shape[0] !== -1) {
        throw new InvalidArgument(`${where}: max_batch_size ${maxBatchSize} needs a variable first dim, but the model file fixes it to ${f.shape[0]}`);
      }
    } else if (d.shape.length === f.shape.length - 1 && f.shape[0] === -1) {
      // The original Xilinx server's configs declare per-item shapes without max_batch_size.
      served = [-1, ...d.shape];
      tritonNoBatch = false;
    } else {
      served = [...d.shape];
    }
    // A file with no shape info (rank 0 reported) cannot be checked further.
    if (f.shape.length > 0) {
      if (served.length !== f.shape.length) {
        throw new InvalidArgument(
          `${where} has shape [${served.join(',')}] (as served) but the model file says [${f.shape.join(',')}]`,
        );
      }
      served = served.map((s, i) => {
        const fd = f.shape[i]!;
        if (s >= 0 && fd >= 0 && s !== fd) {
          throw new InvalidArgument(`${where}: dim ${i} is ${s} but the model file says ${fd}`);
        }
        return s < 0 ? fd : s;
      });
    }
    return { name: d.name, datatype: d.datatype, shape: served };
  });
  return { specs, tritonNoBatch };
}

function toOrtTensor(model: string, t: Tensor): ort.Tensor {
  const type = V2_TO_ORT[t.datatype];
  try {
    if (t.datatype === 'BYTES') {
      // ORT's JS API holds string tensors as JS strings: bytes are read as UTF-8.
      const strings = (t.data as Uint8Array[]).map((b) => utf8.decode(b));
      return new ort.Tensor('string', strings, t.shape);
    }
    return new ort.Tensor(type as Exclude<ort.Tensor.Type, 'string'>, t.data as NumericArray as ort.Tensor.DataType as never, t.shape);
  } catch (err) {
    throw new InvalidArgument(`model '${model}': input '${t.name}' (${t.datatype} [${t.shape.join(',')}]): ${messageOf(err)}`);
  }
}

function fromOrtTensor(model: string, name: string, value: ort.OnnxValue | undefined): Tensor {
  if (!value) throw new Internal(`model '${model}': ONNX Runtime returned no output '${name}'`);
  const datatype = ORT_TO_V2[value.type];
  if (!datatype) throw new Internal(`model '${model}': output '${name}' has ONNX type ${value.type}, which has no v2 datatype`);
  const shape = [...value.dims];
  if (datatype === 'BYTES') {
    return { name, datatype, shape, data: (value.data as string[]).map((s) => encoder.encode(s)) };
  }
  return { name, datatype, shape, data: value.data as NumericArray };
}
