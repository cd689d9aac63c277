/**
 * @module repository/warmup
 * Triton's `model_warmup`: before a model version turns ready, each sample of
 * its config runs on every backend instance (`count` times, at least once),
 * so the first client request does not pay for first-run work (ONNX Runtime's
 * allocations and kernel set-up, the FPGA runner's first job). A sample that
 * fails fails the load, naming the sample, and the version that served before
 * keeps serving.
 *
 * Inputs: `zero_data` (zeros; empty strings for BYTES), `random_data`
 * (deterministic pseudo-random values: [0, 1) for floats, 0..100 for
 * integers, 0/1 for BOOL; empty strings for BYTES), or `input_data_file` in
 * `<model>/warmup/`, holding the tensor's bytes in row-major order as the
 * binary extension sends them (BYTES: 4-byte little-endian length, then the
 * bytes, per element). Warm-up runs go straight to the instances: they are
 * not batched and not counted in the request metrics.
 *
 * @example
 * const { runs } = await runWarmup(instances, config, '/models/resnet');
 */
import type { Backend } from '../backends/backend.js';
import { allocate, toHalf, type Datatype, type NumericArray, type TensorData } from '../core/datatypes.js';
import { Internal, InvalidArgument, KinferError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { ModelConfig, WarmupInput, WarmupSample } from './model-config.js';
import { readTensorFile } from './tensor-file.js';

/** The folder of a model that holds `input_data_file`s (Triton's name). */
export const WARMUP_DIR = 'warmup';

/**
 * A sample's `count` at most, and the elements of each of its inputs at most (BYTES elements are
 * objects of their own, ~100 bytes each): a load must end, and its samples fit in memory.
 */
export const MAX_WARMUP_COUNT = 1000;
export const MAX_WARMUP_ELEMENTS = 1 << 24;
export const MAX_WARMUP_BYTES_ELEMENTS = 1 << 20;

/**
 * Runs every warm-up sample on every instance, in order. Throws a KinferError
 * of the failure's kind, prefixed with the model and sample, on the first
 * failure. `modelDir` is the model's folder (`<repo>/<model>`).
 */
export async function runWarmup(instances: readonly Backend[], config: ModelConfig, modelDir: string): Promise<{ runs: number }> {
  let runs = 0;
  for (const sample of config.warmup ?? []) {
    const where = `model '${config.name}': model_warmup '${sample.name}'`;
    if (sample.count > MAX_WARMUP_COUNT) throw new InvalidArgument(`${where}: count ${sample.count} is more than ${MAX_WARMUP_COUNT}`);
    let inputs: Tensor[];
    try {
      inputs = await sampleInputs(sample, config, modelDir);
    } catch (err) {
      throw prefixed(where, err);
    }
    for (const instance of instances) {
      for (let i = 0; i < Math.max(1, sample.count); i++) {
        try {
          // The Backend contract leaves input buffers to the caller, so one set serves every run.
          await instance.infer(inputs, []);
        } catch (err) {
          throw prefixed(where, err);
        }
        runs++;
      }
    }
  }
  return { runs };
}

/** The sample's tensors: the batch dim prepended when the model batches. */
async function sampleInputs(sample: WarmupSample, config: ModelConfig, modelDir: string): Promise<Tensor[]> {
  let batch: number[] = [];
  if (config.maxBatchSize > 0) {
    if (sample.batchSize < 1 || sample.batchSize > config.maxBatchSize) {
      throw new InvalidArgument(`batch_size ${sample.batchSize} is outside 1..max_batch_size (${config.maxBatchSize})`);
    }
    batch = [sample.batchSize];
  } else if (sample.batchSize > 1) {
    throw new InvalidArgument(`batch_size ${sample.batchSize} needs max_batch_size > 0; a model without batching takes batch_size 1 (or 0)`);
  }
  return Promise.all(
    sample.inputs.map(async (input) => {
      const shape = [...batch, ...input.dims];
      const count = shape.reduce((a, b) => a * b, 1);
      const max = input.datatype === 'BYTES' ? MAX_WARMUP_BYTES_ELEMENTS : MAX_WARMUP_ELEMENTS;
      if (count > max) throw new InvalidArgument(`input '${input.name}': shape [${shape.join(',')}] has ${count} elements; a warm-up sample takes at most ${max}${input.datatype === 'BYTES' ? ' BYTES elements' : ''}`);
      return { name: input.name, datatype: input.datatype, shape, data: await inputData(input, count, modelDir) };
    }),
  );
}

async function inputData(input: WarmupInput, count: number, modelDir: string): Promise<TensorData> {
  const { datatype, data } = input;
  if (data.kind === 'file') return readTensorFile(`input '${input.name}'`, datatype, count, modelDir, WARMUP_DIR, data.file, 'input_data_file');
  if (datatype === 'BYTES') return Array.from({ length: count }, () => new Uint8Array(0));
  const out = allocate(datatype, count);
  if (data.kind === 'random') fillRandom(datatype, out);
  return out;
}

/** Deterministic values (a fixed LCG seed), so a warm-up is the same on every start. */
function fillRandom(datatype: Exclude<Datatype, 'BYTES'>, out: NumericArray): void {
  let s = 0x9e3779b9;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  for (let i = 0; i < out.length; i++) {
    const u = next();
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) out[i] = BigInt(Math.floor(u * 101));
    else if (datatype === 'FP32' || datatype === 'FP64') out[i] = u;
    else if (datatype === 'FP16') out[i] = toHalf(u);
    else if (datatype === 'BOOL') out[i] = u < 0.5 ? 0 : 1;
    else out[i] = Math.floor(u * 101);
  }
}

/** The same kind of error (so the same HTTP status), its message prefixed; anything else is ours: Internal. */
function prefixed(where: string, err: unknown): KinferError {
  const message = `${where}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof KinferError) return new (err.constructor as new (message: string) => KinferError)(message);
  return new Internal(message);
}
