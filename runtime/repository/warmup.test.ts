/**
 * @module repository/warmup.test
 * `model_warmup`: parsing from pbtxt and JSON, and `runWarmup` against
 * FakeBackend, which records what each instance receives (how often, which
 * tensors) and can fail.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Internal, InvalidArgument, Unavailable } from '../core/errors.js';
import { FakeBackend } from '../../test/helpers/fake-backend.js';
import { parseModelConfig } from './config-files.js';
import { defaultConfig, type ModelConfig, type WarmupInput, type WarmupSample } from './model-config.js';
import { MAX_WARMUP_BYTES_ELEMENTS, MAX_WARMUP_COUNT, MAX_WARMUP_ELEMENTS, runWarmup } from './warmup.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-warmup-'));
  await mkdir(join(dir, 'warmup'));
  await writeFile(join(dir, 'warmup', 'x.bin'), Buffer.from(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer));
  // Two BYTES elements, "ab" and "", each a 4-byte little-endian length and its bytes.
  await writeFile(join(dir, 'warmup', 'words.bin'), Buffer.from([2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('model_warmup in config files', () => {
  it("reads Triton's pbtxt form: name, batch_size, count and each input's data kind", () => {
    const c = parseModelConfig(
      `max_batch_size: 8
model_warmup [
  {
    name: "zeros"
    batch_size: 2
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } }
    inputs { key: "ids" value: { data_type: TYPE_INT64 dims: 4 random_data: true } }
  },
  { name: "file" batch_size: 1 count: 3 inputs [ { key: "x" value { data_type: TYPE_FP32 dims: [ 6 ] input_data_file: "x.bin" } } ] }
]`,
      'config.pbtxt',
      'm',
    );
    expect(c.warmup).toEqual<WarmupSample[]>([
      {
        name: 'zeros',
        batchSize: 2,
        count: 0,
        inputs: [
          { name: 'x', datatype: 'FP32', dims: [3], data: { kind: 'zero' } },
          { name: 'ids', datatype: 'INT64', dims: [4], data: { kind: 'random' } },
        ],
      },
      { name: 'file', batchSize: 1, count: 3, inputs: [{ name: 'x', datatype: 'FP32', dims: [6], data: { kind: 'file', file: 'x.bin' } }] },
    ]);
  });

  it('reads the JSON form (inputs as a map, camelCase keys) and leaves warmup unset without samples', () => {
    const c = parseModelConfig(
      JSON.stringify({ modelWarmup: [{ name: 'w', batchSize: 1, inputs: { x: { dataType: 'TYPE_FP32', dims: ['2'], zeroData: true } } }] }),
      'config.json',
      'm',
    );
    expect(c.warmup).toEqual([{ name: 'w', batchSize: 1, count: 0, inputs: [{ name: 'x', datatype: 'FP32', dims: [2], data: { kind: 'zero' } }] }]);
    expect(parseModelConfig('model_warmup [ ]', 'config.pbtxt', 'm').warmup).toBeUndefined();
  });

  it('refuses samples it could not run, naming the sample and input', () => {
    const bad = (inputs: string) => () => parseModelConfig(`model_warmup { name: "s" batch_size: 1 ${inputs} }`, 'config.pbtxt', 'm');
    expect(bad('')).toThrow(/model_warmup 's': no inputs/);
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: 2 } }')).toThrow(/input 'x': expected exactly one of zero_data, random_data, input_data_file, got none/);
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: 2 zero_data: true random_data: true } }')).toThrow(/got zero_data, random_data/);
    expect(bad('inputs { key: "x" value { data_type: TYPE_WHAT dims: 2 zero_data: true } }')).toThrow(/input 'x': expected a data_type/);
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: -1 zero_data: true } }')).toThrow(/dims\[0\]: expected an integer ≥ 0/);
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: 2 input_data_file: "../secret" } }')).toThrow(/inside <model>\/warmup\//);
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: 2 zero_data: true } }')).not.toThrow();
    expect(bad('inputs { key: "x" value { data_type: TYPE_FP32 dims: 2 zero_data: false } }')).toThrow(/got none/);
    expect(bad('')).toThrow(InvalidArgument);
  });
});

function configWith(warmup: WarmupSample[], maxBatchSize = 8): ModelConfig {
  return { ...defaultConfig('m'), maxBatchSize, warmup };
}

const sample = (over: Partial<WarmupSample> = {}): WarmupSample => ({
  name: 's',
  batchSize: 2,
  count: 0,
  inputs: [{ name: 'x', datatype: 'FP32', dims: [3], data: { kind: 'zero' } }],
  ...over,
});

describe('runWarmup', () => {
  it('runs each sample count times (0 = once) on every instance, with the batch dim prepended', async () => {
    const a = new FakeBackend();
    const b = new FakeBackend();
    const { runs } = await runWarmup([a, b], configWith([sample(), sample({ name: 't', batchSize: 1, count: 3 })]), dir);
    expect(runs).toBe(8);
    for (const r of [a, b]) {
      expect(r.batches.map((x) => x[0]!.shape)).toEqual([[2, 3], [1, 3], [1, 3], [1, 3]]);
      expect(Array.from(r.batches[0]![0]!.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0]);
    }
  });

  it('uses the dims as given when the model does not batch, and refuses a batch there', async () => {
    const r = new FakeBackend();
    await runWarmup([r], configWith([sample({ batchSize: 0 })], 0), dir);
    expect(r.batches[0]![0]!.shape).toEqual([3]);
    const err = await runWarmup([r], configWith([sample({ batchSize: 2 })], 0), dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toBe("model 'm': model_warmup 's': batch_size 2 needs max_batch_size > 0; a model without batching takes batch_size 1 (or 0)");
    await expect(runWarmup([r], configWith([sample({ batchSize: 9 })]), dir)).rejects.toThrow(/batch_size 9 is outside 1..max_batch_size \(8\)/);
  });

  it('fills random data deterministically: floats in [0, 1), integers 0..100, BOOL 0/1', async () => {
    const inputs: WarmupInput[] = [
      { name: 'x', datatype: 'FP32', dims: [50], data: { kind: 'random' } },
      { name: 'i', datatype: 'INT64', dims: [50], data: { kind: 'random' } },
      { name: 'b', datatype: 'BOOL', dims: [50], data: { kind: 'random' } },
    ];
    const [r1, r2] = [new FakeBackend(), new FakeBackend()];
    await runWarmup([r1], configWith([sample({ batchSize: 1, inputs: [...inputs] })]), dir);
    await runWarmup([r2], configWith([sample({ batchSize: 1, inputs: [...inputs] })]), dir);
    const [x, i, b] = r1.batches[0]!;
    const xs = Array.from(x!.data as Float32Array);
    expect(xs.every((v) => v >= 0 && v < 1) && new Set(xs).size > 40).toBe(true);
    expect(Array.from(i!.data as BigInt64Array).every((v) => v >= 0n && v <= 100n)).toBe(true);
    expect(new Set(Array.from(b!.data as Uint8Array))).toEqual(new Set([0, 1]));
    expect(r2.batches[0]!.map((t) => Array.from(t.data as ArrayLike<unknown>))).toEqual(r1.batches[0]!.map((t) => Array.from(t.data as ArrayLike<unknown>)));
  });

  it('reads input_data_file from <model>/warmup/ as the binary extension lays tensors out (numbers and BYTES)', async () => {
    const r = new FakeBackend();
    await runWarmup(
      [r],
      configWith([
        sample({
          batchSize: 2,
          inputs: [
            { name: 'x', datatype: 'FP32', dims: [3], data: { kind: 'file', file: 'x.bin' } },
            { name: 'w', datatype: 'BYTES', dims: [], data: { kind: 'file', file: 'words.bin' } },
          ],
        }),
      ]),
      dir,
    );
    const [x, w] = r.batches[0]!;
    expect(Array.from(x!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((w!.data as Uint8Array[]).map((e) => Buffer.from(e).toString())).toEqual(['ab', '']);
  });

  it('refuses a missing, mis-sized or escaping file with InvalidArgument naming the sample and input', async () => {
    const file = (f: string, dims = [3]) => configWith([sample({ inputs: [{ name: 'x', datatype: 'FP32', dims, data: { kind: 'file', file: f } }] })]);
    await expect(runWarmup([new FakeBackend()], file('nope.bin'), dir)).rejects.toThrow(/^model 'm': model_warmup 's': input 'x': cannot read warmup\/nope.bin: ENOENT$/);
    await expect(runWarmup([new FakeBackend()], file('x.bin', [4]), dir)).rejects.toThrow(/input 'x' \(warmup\/x.bin\): binary_data_size 24 does not match shape \(8 elements/);
    await expect(runWarmup([new FakeBackend()], file('../x.bin'), dir)).rejects.toThrow(/must name a file inside warmup\//);
    await expect(runWarmup([new FakeBackend()], file('/etc/hostname'), dir)).rejects.toBeInstanceOf(InvalidArgument);
  });

  it("fails with the backend's error kind, prefixed with the model and sample, and stops at the first failure", async () => {
    const a = new FakeBackend();
    a.failWith = () => new Unavailable('device busy');
    const b = new FakeBackend();
    const err = await runWarmup([a, b], configWith([sample()]), dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toBe("model 'm': model_warmup 's': device busy");
    expect(b.batches).toHaveLength(0);
    a.failWith = () => new TypeError('bug');
    await expect(runWarmup([a], configWith([sample()]), dir)).rejects.toBeInstanceOf(Internal);
  });

  it('refuses a sample whose count or input is too large, before running it (they blocked the server, ran it out of memory, or were a 500)', async () => {
    const r = new FakeBackend();
    const refused = async (s: WarmupSample, message: string) => {
      const err = await runWarmup([r], configWith([s], 0), dir).catch((e: unknown) => e);
      expect(err, message).toBeInstanceOf(InvalidArgument);
      expect((err as Error).message).toBe(`model 'm': model_warmup 's': ${message}`);
    };
    await refused(sample({ batchSize: 0, count: 1e9 }), `count 1000000000 is more than ${MAX_WARMUP_COUNT}`);
    const input = (datatype: WarmupInput['datatype'], dims: number[]): WarmupSample => sample({ batchSize: 0, inputs: [{ name: 'x', datatype, dims, data: { kind: 'zero' } }] });
    await refused(input('FP32', [1e9]), `input 'x': shape [1000000000] has 1000000000 elements; a warm-up sample takes at most ${MAX_WARMUP_ELEMENTS}`);
    await refused(input('FP32', [1e9, 1e9]), `input 'x': shape [1000000000,1000000000] has 1000000000000000000 elements; a warm-up sample takes at most ${MAX_WARMUP_ELEMENTS}`);
    await refused(input('BYTES', [MAX_WARMUP_BYTES_ELEMENTS + 1]), `input 'x': shape [${MAX_WARMUP_BYTES_ELEMENTS + 1}] has ${MAX_WARMUP_BYTES_ELEMENTS + 1} elements; a warm-up sample takes at most ${MAX_WARMUP_BYTES_ELEMENTS} BYTES elements`);
    expect(r.batches).toHaveLength(0);
    // At the limits they run.
    await runWarmup([r], configWith([sample({ batchSize: 0, count: MAX_WARMUP_COUNT })], 0), dir);
    await runWarmup([r], configWith([input('UINT8', [MAX_WARMUP_ELEMENTS])], 0), dir);
    expect(r.batches).toHaveLength(MAX_WARMUP_COUNT + 1);
  });
});
