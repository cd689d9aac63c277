/**
 * @module test/helpers/onnx-models
 * Small ONNX models built in code with `onnx-proto` (ModelProto → bytes →
 * file), so tests know every weight and can compute expected outputs with
 * plain loops, independently of ONNX Runtime.
 *
 * @example
 * const mlp = await writeMlpModel(dir);      // y = relu(x·W + b), x: [batch, 4]
 * const fixed = await writeFixedModel(dir);  // sum = a + b, both [2, 3]
 * await writeMlpModel(dir, 'model.onnx/model.onnx', 'weights.bin'); // Triton's directory form, W and B external
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
export const DT = onnx.TensorProto.DataType;

/** Opset 14: Add accepts every numeric type, including uint8 and int8. */
const OPSET = 14;
const IR_VERSION = 8;

type Dim = number | string;

export function valueInfo(name: string, elemType: number, dims: Dim[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

function floatTensor(name: string, dims: number[], values: Float32Array): InstanceType<typeof onnx.TensorProto> {
  return onnx.TensorProto.create({
    name,
    dataType: DT.FLOAT,
    dims,
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  });
}

/**
 * Moves the initializers' bytes into `dataFile` beside the model at `modelPath`, one after the
 * other in order (ONNX external data: each tensor keeps `location`, relative to the model's
 * folder, and its `offset` and `length` in the file).
 */
async function externalize(modelPath: string, dataFile: string, tensors: InstanceType<typeof onnx.TensorProto>[]): Promise<InstanceType<typeof onnx.TensorProto>[]> {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const out = tensors.map((t) => {
    const bytes = t.rawData;
    chunks.push(bytes);
    const entry = [
      { key: 'location', value: dataFile },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes.length) },
    ];
    offset += bytes.length;
    return onnx.TensorProto.create({ name: t.name, dataType: t.dataType, dims: t.dims, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: entry });
  });
  await mkdir(dirname(modelPath), { recursive: true });
  await writeFile(join(dirname(modelPath), dataFile), Buffer.concat(chunks));
  return out;
}

export interface GraphSpec {
  name: string;
  nodes: { op: string; inputs: string[]; outputs: string[] }[];
  inputs: InstanceType<typeof onnx.ValueInfoProto>[];
  outputs: InstanceType<typeof onnx.ValueInfoProto>[];
  initializers?: InstanceType<typeof onnx.TensorProto>[];
}

/** Encodes a graph as an ONNX model file at `path`. */
export async function writeGraph(path: string, spec: GraphSpec): Promise<string> {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'kinfer-tests',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: spec.name,
      node: spec.nodes.map((n, i) => ({ name: `${n.op}_${i}`, opType: n.op, input: n.inputs, output: n.outputs })),
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers ?? [],
    },
  });
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, onnx.ModelProto.encode(model).finish());
  return path;
}

export interface MlpModel {
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** Row-major [inFeatures, outFeatures]. */
  weights: Float32Array;
  bias: Float32Array;
}

/**
 * `y = relu(x · W + b)` with x: FP32 [batch, 4] ("batch" symbolic), y: [batch, 3].
 * Weights mix signs so that Relu clips some outputs; they are multiples of 1/4, so integer
 * inputs give exact outputs. With `externalData`, W and B live in that file beside the model.
 */
export async function writeMlpModel(dir: string, file = 'model.onnx', externalData?: string): Promise<MlpModel> {
  const inFeatures = 4;
  const outFeatures = 3;
  const weights = Float32Array.from({ length: inFeatures * outFeatures }, (_, i) => ((i * 7) % 11) / 4 - 1.25);
  const bias = Float32Array.from([0.5, -1, 0.25]);
  const initializers = [floatTensor('W', [inFeatures, outFeatures], weights), floatTensor('B', [outFeatures], bias)];
  const path = await writeGraph(join(dir, file), {
    name: 'mlp',
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['xw'] },
      { op: 'Add', inputs: ['xw', 'B'], outputs: ['pre'] },
      { op: 'Relu', inputs: ['pre'], outputs: ['y'] },
    ],
    inputs: [valueInfo('x', DT.FLOAT, ['batch', inFeatures])],
    outputs: [valueInfo('y', DT.FLOAT, ['batch', outFeatures])],
    initializers: externalData ? await externalize(join(dir, file), externalData, initializers) : initializers,
  });
  return { path, inFeatures, outFeatures, weights, bias };
}

/** Reference MLP in plain loops: x is row-major [batch, inFeatures]. */
export function mlpReference(m: MlpModel, x: Float32Array): Float32Array {
  const batch = x.length / m.inFeatures;
  const out = new Float32Array(batch * m.outFeatures);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < m.outFeatures; o++) {
      let acc = m.bias[o]!;
      for (let i = 0; i < m.inFeatures; i++) acc += x[b * m.inFeatures + i]! * m.weights[i * m.outFeatures + o]!;
      out[b * m.outFeatures + o] = Math.max(0, acc);
    }
  }
  return out;
}

export type DatatypeFamily = 'int32' | 'int64' | 'float16' | 'float64' | 'bool' | 'uint8' | 'string';

export const DATATYPE_FAMILIES: readonly DatatypeFamily[] = ['int32', 'int64', 'float16', 'float64', 'bool', 'uint8', 'string'];

const ELEM_TYPE: Record<DatatypeFamily, number> = {
  int32: DT.INT32,
  int64: DT.INT64,
  float16: DT.FLOAT16,
  float64: DT.DOUBLE,
  bool: DT.BOOL,
  uint8: DT.UINT8,
  string: DT.STRING,
};

export interface DatatypeModel {
  path: string;
  family: DatatypeFamily;
  /** The op that computes output `z` from `x` (`Add` is x + x, `Not` is !x), or undefined when there is only `y`. */
  op?: 'Add' | 'Not';
}

/**
 * Input `x` of the family's type, shape ["n"]; output `y = Identity(x)` and,
 * except for strings, `z = x + x` (bool: `z = not x`).
 */
export async function writeDatatypeModel(dir: string, family: DatatypeFamily, file = 'model.onnx'): Promise<DatatypeModel> {
  const t = ELEM_TYPE[family];
  const op = family === 'string' ? undefined : family === 'bool' ? 'Not' : 'Add';
  const nodes = [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }];
  const outputs = [valueInfo('y', t, ['n'])];
  if (op) {
    nodes.push({ op, inputs: op === 'Add' ? ['x', 'x'] : ['x'], outputs: ['z'] });
    outputs.push(valueInfo('z', t, ['n']));
  }
  const path = await writeGraph(join(dir, file), { name: `dt_${family}`, nodes, inputs: [valueInfo('x', t, ['n'])], outputs });
  return { path, family, ...(op ? { op } : {}) };
}

export interface FixedModel {
  path: string;
  shape: [number, number];
}

/** `sum = a + b`, both FP32 with the fixed shape [2, 3]: nothing is batchable. */
export async function writeFixedModel(dir: string, file = 'model.onnx'): Promise<FixedModel> {
  const shape: [number, number] = [2, 3];
  const path = await writeGraph(join(dir, file), {
    name: 'fixed',
    nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] }],
    inputs: [valueInfo('a', DT.FLOAT, shape), valueInfo('b', DT.FLOAT, shape)],
    outputs: [valueInfo('sum', DT.FLOAT, shape)],
  });
  return { path, shape };
}

export interface LookupModel {
  path: string;
  /** The [rows, 3] FP32 table: row r holds 3r, 3r+1, 3r+2. */
  rows: number;
}

/**
 * An embedding lookup: `y = Gather(table, ids)`, INT64 ids [batch, 2] → FP32
 * [batch, 2, 3]. An id outside [-rows, rows) makes ONNX Runtime fail the run:
 * an error that comes from one request's data, not its shape.
 */
export async function writeLookupModel(dir: string, file = 'model.onnx'): Promise<LookupModel> {
  const rows = 5;
  const table = Float32Array.from({ length: rows * 3 }, (_, i) => i);
  const path = await writeGraph(join(dir, file), {
    name: 'lookup',
    nodes: [{ op: 'Gather', inputs: ['table', 'ids'], outputs: ['y'] }],
    inputs: [valueInfo('ids', DT.INT64, ['batch', 2])],
    outputs: [valueInfo('y', DT.FLOAT, ['batch', 2, 3])],
    initializers: [floatTensor('table', [rows, 3], table)],
  });
  return { path, rows };
}

/** `y = x · factor`, FP32 `dims` → `dims` (default [batch, 4]): versions of one model told apart by their factor. */
export async function writeScaleModel(dir: string, factor: number, file = 'model.onnx', dims: Dim[] = ['batch', 4]): Promise<string> {
  return writeGraph(join(dir, file), {
    name: 'scale',
    nodes: [{ op: 'Mul', inputs: ['x', 'k'], outputs: ['y'] }],
    inputs: [valueInfo('x', DT.FLOAT, dims)],
    outputs: [valueInfo('y', DT.FLOAT, dims)],
    initializers: [floatTensor('k', [1], Float32Array.of(factor))],
  });
}

/**
 * A stateful model for Triton's sequence batcher: `OUTPUT = INPUT + STATE_IN` and
 * `STATE_OUT = OUTPUT` (FP32 [batch, 2]), with the START (INT32) and CORRID (UINT64)
 * controls echoed as `START_OUT` and `CORRID_OUT` ([batch, 1]). Fed its own STATE_OUT, it
 * sums a sequence's inputs.
 */
export async function writeAccumulatorModel(dir: string, file = 'model.onnx'): Promise<string> {
  return writeGraph(join(dir, file), {
    name: 'accumulator',
    nodes: [
      { op: 'Add', inputs: ['INPUT', 'STATE_IN'], outputs: ['OUTPUT'] },
      { op: 'Identity', inputs: ['OUTPUT'], outputs: ['STATE_OUT'] },
      { op: 'Identity', inputs: ['START'], outputs: ['START_OUT'] },
      { op: 'Identity', inputs: ['CORRID'], outputs: ['CORRID_OUT'] },
    ],
    inputs: [valueInfo('INPUT', DT.FLOAT, ['batch', 2]), valueInfo('STATE_IN', DT.FLOAT, ['batch', 2]), valueInfo('START', DT.INT32, ['batch', 1]), valueInfo('CORRID', DT.UINT64, ['batch', 1])],
    outputs: [valueInfo('OUTPUT', DT.FLOAT, ['batch', 2]), valueInfo('STATE_OUT', DT.FLOAT, ['batch', 2]), valueInfo('START_OUT', DT.INT32, ['batch', 1]), valueInfo('CORRID_OUT', DT.UINT64, ['batch', 1])],
  });
}
