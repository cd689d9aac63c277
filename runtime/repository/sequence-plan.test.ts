/**
 * A stateful model's load plan: controls and states checked against the model's own tensors,
 * initial states read, the served metadata without them, and the strategy's batching.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelMetadata } from '../backends/backend.js';
import { parseModelConfig } from './config-files.js';
import { planSequences } from './sequence-plan.js';

const META: ModelMetadata = {
  platform: 'onnxruntime_onnx',
  inputs: [
    { name: 'X', datatype: 'FP32', shape: [-1, 2] },
    { name: 'S_IN', datatype: 'FP32', shape: [-1, 2] },
    { name: 'START', datatype: 'INT32', shape: [-1, 1] },
  ],
  outputs: [
    { name: 'Y', datatype: 'FP32', shape: [-1, 2] },
    { name: 'S_OUT', datatype: 'FP32', shape: [-1, 2] },
  ],
  batchable: true,
  maxBatchSize: 4,
};

const config = (seq: string, extra = 'max_batch_size: 4\ninstance_group [ { count: 2 } ]') => parseModelConfig(`${extra}\nsequence_batching { ${seq} }`, 'config.pbtxt', 'm');
const START = 'control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] } ] } ]';
const STATE = (init = '') => `state [ { input_name: "S_IN" output_name: "S_OUT" data_type: TYPE_FP32 dims: [2] ${init} } ]`;

describe('planSequences', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kinfer-seq-'));
    await mkdir(join(dir, 'initial_state'));
    await writeFile(join(dir, 'initial_state', 'ones.bin'), new Uint8Array(Float32Array.of(1, 1).buffer));
    await writeFile(join(dir, 'initial_state', 'one.bin'), new Uint8Array(Float32Array.of(1).buffer));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('serves the model without its control and state tensors, slots from instances × max batch size', async () => {
    const c = config(`${START} ${STATE()}`);
    const { plan, served, innerConfig } = await planSequences('m', META, c, c.sequenceBatching!, dir);
    expect(served.inputs.map((s) => s.name)).toEqual(['X']);
    expect(served.outputs.map((s) => s.name)).toEqual(['Y']);
    expect(plan.maxActive).toBe(8);
    expect(plan.idleMs).toBe(1000);
    expect(plan.states).toEqual([{ input: 'S_IN', output: 'S_OUT', datatype: 'FP32', shape: [1, 2], initial: new Float32Array(2) }]);
    // direct without minimum_slot_utilization fires at once, whatever its delay says (as Triton).
    expect(innerConfig.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 0, preferredBatchSize: [], maxQueueSize: 512 });
  });

  it('batches under the strategy: direct with a slot share, oldest with its own settings', async () => {
    const d = config(`direct { max_queue_delay_microseconds: 300 minimum_slot_utilization: 0.5 } ${STATE()}`);
    expect((await planSequences('m', META, d, d.sequenceBatching!, dir)).innerConfig.dynamicBatching).toMatchObject({ maxQueueDelayMicroseconds: 300, preferredBatchSize: [2] });
    const o = config(`oldest { max_candidate_sequences: 3 preferred_batch_size: [2] max_queue_delay_microseconds: 700 } ${STATE()}`);
    const planned = await planSequences('m', META, o, o.sequenceBatching!, dir);
    expect(planned.plan.maxActive).toBe(3);
    expect(planned.innerConfig.dynamicBatching).toMatchObject({ maxQueueDelayMicroseconds: 700, preferredBatchSize: [2] });
  });

  it('reads an initial state file, and refuses one of the wrong size or shape', async () => {
    const c = config(STATE('initial_state { data_type: TYPE_FP32 dims: [2] data_file: "ones.bin" }'));
    expect((await planSequences('m', META, c, c.sequenceBatching!, dir)).plan.states[0]!.initial).toEqual(Float32Array.of(1, 1));
    const big = config(`state [ { input_name: "S_IN" output_name: "S_OUT" data_type: TYPE_FP32 dims: [-1] initial_state { data_type: TYPE_FP32 dims: [3] data_file: "ones.bin" } } ]`);
    await expect(planSequences('m', META, big, big.sequenceBatching!, dir)).rejects.toThrow(/state 'S_IN': the model's 'S_IN' has shape \[-1,2\], the server would feed \[1,3\]/);
    const short = config(STATE('initial_state { data_type: TYPE_FP32 dims: [2] data_file: "one.bin" }'));
    await expect(planSequences('m', META, short, short.sequenceBatching!, dir)).rejects.toThrow(/^model 'm': state 'S_IN' \(initial_state\/one.bin\): .*8/);
    const missing = config(STATE('initial_state { zero_data: false data_file: "nope.bin" }'));
    await expect(planSequences('m', META, missing, missing.sequenceBatching!, dir)).rejects.toThrow(/cannot read initial_state\/nope.bin: ENOENT/);
  });

  it('refuses controls and states that do not fit the model, naming them', async () => {
    const plan = (seq: string) => {
      const c = config(seq);
      return planSequences('m', META, c, c.sequenceBatching!, dir);
    };
    await expect(plan('control_input [ { name: "GO" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] } ] } ]')).rejects.toThrow(
      "model 'm': sequence_batching control_input 'GO' names input 'GO', which the model does not have (its inputs: X, S_IN, START)",
    );
    await expect(plan('control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [0, 1] } ] } ]')).rejects.toThrow(/control_input 'START': the model's 'START' is INT32, the config says FP32/);
    await expect(plan('control_input [ { name: "X" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [0, 1] } ] } ]')).rejects.toThrow(/the model's 'X' has shape \[-1,2\], the server would feed \[1,1\]/);
    await expect(plan('state [ { input_name: "S_IN" output_name: "Z" data_type: TYPE_FP32 dims: [2] } ]')).rejects.toThrow(/state 'S_IN' names output 'Z', which the model does not have/);
    // A backend that takes anything (echo) is not checked.
    const c = config(START);
    await expect(planSequences('m', { ...META, inputs: [], outputs: [] }, c, c.sequenceBatching!, dir)).resolves.toBeDefined();
  });
});
