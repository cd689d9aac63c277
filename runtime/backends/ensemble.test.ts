/**
 * @module backends/ensemble.test
 * The ensemble's graph checks and its scheduler, with a recorded step runner
 * standing in for the data plane (the integration test runs real models).
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, NotFound, Unavailable, ResourceExhausted } from '../core/errors.js';
import type { InferRequest, InferResponse } from '../core/infer.js';
import type { Tensor } from '../core/tensor.js';
import { defaultConfig, type EnsembleStep, type ModelConfig } from '../repository/model-config.js';
import { EnsembleBackend, planEnsemble } from './ensemble.js';

const spec = (name: string) => ({ name, datatype: 'FP32' as const, shape: [2] });
const step = (modelName: string, inputMap: Record<string, string>, outputMap: Record<string, string>): EnsembleStep => ({ modelName, modelVersion: '', inputMap, outputMap });

/** X → a → T; T → b → Y; X → c → Z: two branches, one of them two steps long. */
function diamond(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    ...defaultConfig('ens'),
    platform: 'ensemble',
    inputs: [spec('X')],
    outputs: [spec('Y'), spec('Z')],
    ensemble: [step('b', { in: 'T' }, { out: 'Y' }), step('a', { in: 'X' }, { out: 'T' }), step('c', { in: 'X' }, { out: 'Z' })],
    ...overrides,
  };
}

describe('planEnsemble', () => {
  it('orders the steps so that each comes after the steps producing what it reads', () => {
    expect(planEnsemble(diamond()).map((s) => [s.index, s.modelName])).toEqual([[1, 'a'], [2, 'c'], [0, 'b']]);
  });

  it('refuses graphs Triton refuses, naming the step or tensor', () => {
    const cases: [Partial<ModelConfig>, string][] = [
      [{ ensemble: [] }, 'ensemble_scheduling has no step'],
      [{ outputs: [] }, 'an ensemble declares its input and output tensors in its config'],
      [{ dynamicBatching: { maxQueueDelayMicroseconds: 0, preferredBatchSize: [], maxQueueSize: 0 } }, 'dynamic_batching does not apply to an ensemble'],
      [{ ensemble: [step('ens', { in: 'X' }, { out: 'Y' })] }, "step 0 (model 'ens'): a step cannot run the ensemble itself"],
      [{ ensemble: [step('a', {}, { out: 'Y' })] }, "step 0 (model 'a'): input_map is empty"],
      [{ ensemble: [step('a', { in: 'X' }, {})] }, "step 0 (model 'a'): output_map is empty"],
      [{ ensemble: [step('a', { in: 'X' }, { out: 'X' })] }, "step 0 (model 'a'): output_map writes 'X', an ensemble input"],
      [{ ensemble: [step('a', { in: 'X' }, { out: 'Y' }), step('c', { in: 'X' }, { out: 'Y' })] }, "tensor 'Y' is produced by step 0 and step 1"],
      [{ ensemble: [step('a', { in: 'X', more: 'W' }, { out: 'Y' }), step('c', { in: 'X' }, { out: 'Z' })] }, "step 0 (model 'a') reads 'W', which is neither an ensemble input nor any step's output"],
      [{ inputs: [spec('X'), spec('UNUSED')] }, "input 'UNUSED' is read by no step"],
      [{ ensemble: [step('a', { in: 'X' }, { out: 'Y' })] }, "output 'Z' is produced by no step"],
      [{ ensemble: [step('a', { in: 'X', loop: 'B' }, { out: 'A' }), step('b', { in: 'A' }, { out: 'B' }), step('y', { in: 'A' }, { out: 'Y' }), step('z', { in: 'B' }, { out: 'Z' })] }, "steps 0, 1, 2, 3 never run: they wait on a cycle of each other's outputs"],
    ];
    for (const [overrides, message] of cases) {
      expect(() => planEnsemble(diamond(overrides)), message).toThrow(InvalidArgument);
      expect(() => planEnsemble(diamond(overrides)), message).toThrow(message);
    }
  });
});

/** A step runner that multiplies every input by a factor per model, after `delayMs`, recording start and end order. */
function recorder(factors: Record<string, number>, opts: { delayMs?: number; fail?: Record<string, Error> } = {}) {
  const events: string[] = [];
  const requests: InferRequest[] = [];
  const run = async (req: InferRequest): Promise<InferResponse> => {
    requests.push(req);
    events.push(`start ${req.modelName}`);
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 5));
    events.push(`end ${req.modelName}`);
    const failure = opts.fail?.[req.modelName];
    if (failure) throw failure;
    const k = factors[req.modelName]!;
    const x = req.inputs[0]!;
    const outputs: Tensor[] = (req.outputs ?? []).map((o) => ({ name: o.name, datatype: 'FP32', shape: x.shape, data: Float32Array.from(x.data as Float32Array, (v) => v * k) }));
    return { modelName: req.modelName, outputs };
  };
  return { run, events, requests };
}

async function loaded(backend: EnsembleBackend, config = diamond()) {
  return backend.load({ name: 'ens', version: '1', dir: '/nowhere', config });
}

describe('EnsembleBackend', () => {
  const x: Tensor = { name: 'X', datatype: 'FP32', shape: [2], data: Float32Array.of(1, 2) };

  it('runs the pipeline, renaming tensors at each step, with independent branches in parallel', async () => {
    const r = recorder({ a: 2, b: 3, c: 5 });
    const backend = new EnsembleBackend(r.run);
    expect(await loaded(backend)).toEqual({ platform: 'ensemble', inputs: [spec('X')], outputs: [spec('Y'), spec('Z')], batchable: false, maxBatchSize: 0 });
    const out = await backend.infer([x], []);
    expect(out.map((t) => [t.name, Array.from(t.data as Float32Array)])).toEqual([['Y', [6, 12]], ['Z', [5, 10]]]);
    // a and c start together; b starts after a ends.
    expect(r.events.slice(0, 2).sort()).toEqual(['start a', 'start c']);
    expect(r.events.indexOf('start b')).toBeGreaterThan(r.events.indexOf('end a'));
    expect(r.requests.find((q) => q.modelName === 'b')).toMatchObject({ modelVersion: '', inputs: [{ name: 'in' }], outputs: [{ name: 'out' }] });
    // Only the outputs asked for, in that order.
    expect((await backend.infer([x], ['Z'])).map((t) => t.name)).toEqual(['Z']);
  });

  it("gives every step the request's priority and sequence (Triton's InitStep), and no parameters when it has neither", async () => {
    const r = recorder({ a: 2, b: 3, c: 5 });
    const backend = new EnsembleBackend(r.run);
    await loaded(backend);
    await backend.infer([x], [], { priority: 1 });
    expect(r.requests.map((q) => q.parameters)).toEqual([{ priority: 1 }, { priority: 1 }, { priority: 1 }]);
    r.requests.length = 0;
    await backend.infer([x], [], { priority: 2, sequence: { id: 7, start: true, end: false } });
    expect(r.requests.map((q) => q.parameters)).toEqual(Array(3).fill({ sequence_id: 7, sequence_start: true, priority: 2 }));
    r.requests.length = 0;
    await backend.infer([x], []);
    expect(r.requests.map((q) => q.parameters)).toEqual([undefined, undefined, undefined]);
  });

  it('adds the batch dim to the declared shapes when the ensemble batches', async () => {
    const meta = await loaded(new EnsembleBackend(recorder({}).run), diamond({ maxBatchSize: 4 }));
    expect(meta.inputs[0]!.shape).toEqual([-1, 2]);
    expect(meta).toMatchObject({ batchable: true, maxBatchSize: 4 });
  });

  it('answers with the failed step named once; a missing composing model makes the ensemble unavailable', async () => {
    const missing = new EnsembleBackend(recorder({ b: 3, c: 5 }, { fail: { a: new NotFound("model 'a' is not found") } }).run);
    await loaded(missing);
    const err = await missing.infer([x], []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toBe("ensemble 'ens' step 1 (model 'a'): model 'a' is not found");
    const full = new EnsembleBackend(recorder({ a: 2, b: 3 }, { fail: { c: new ResourceExhausted('queue full', 3) } }).run);
    await loaded(full);
    const busy = await full.infer([x], []).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(ResourceExhausted);
    expect((busy as ResourceExhausted).retryAfterSeconds).toBe(3);
    expect((busy as Error).message).toBe("ensemble 'ens' step 2 (model 'c'): queue full");
  });
});
