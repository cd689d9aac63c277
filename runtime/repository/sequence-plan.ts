/**
 * @module repository/sequence-plan
 * A stateful model's load (`sequence_batching` in its config): its control and state tensors
 * checked against the model's own inputs and outputs, the initial states read, and the
 * metadata clients see, which leaves those tensors out (the server fills them, as in Triton).
 */
import type { ModelMetadata } from '../backends/backend.js';
import { allocate, tritonType, type TensorData } from '../core/datatypes.js';
import { InvalidArgument } from '../core/errors.js';
import { elementCount, shapeMatches, type TensorSpec } from '../core/tensor.js';
import { DEFAULT_MAX_QUEUE_SIZE } from '../batching/queue.js';
import type { PlannedState, SequencePlan } from '../batching/sequence-batcher.js';
import type { ModelConfig, SequenceBatchingConfig, SequenceControlKind } from './model-config.js';
import { readTensorFile } from './tensor-file.js';
import { CONTROL_KINDS, FALSE_TRUE } from './config-files.js';

/** The folder of a model that holds initial-state `data_file`s (Triton's name). */
export const INITIAL_STATE_DIR = 'initial_state';

/** The model inputs and outputs the sequence batcher fills and keeps: controls and states. */
export function sequenceTensorNames(sequencing: SequenceBatchingConfig): { inputs: Set<string>; outputs: Set<string> } {
  return {
    inputs: new Set([...sequencing.controls.map((c) => c.input), ...sequencing.states.map((s) => s.input)]),
    outputs: new Set(sequencing.states.map((s) => s.output)),
  };
}

export interface PlannedSequences {
  plan: SequencePlan;
  /** The model's metadata without its control and state tensors. */
  served: ModelMetadata;
  /** The config the model's own batcher gets: the strategy's batching delay and preferred sizes. */
  innerConfig: ModelConfig;
}

/**
 * Throws InvalidArgument naming the control or state that does not fit the model (a missing
 * input or output, another datatype or shape) or an initial-state file that cannot be read.
 * A model that takes any tensor (echo, `inputs` empty) is not checked.
 */
export async function planSequences(name: string, metadata: ModelMetadata, config: ModelConfig, sequencing: SequenceBatchingConfig, modelDir: string): Promise<PlannedSequences> {
  const model = `model '${name}'`;
  const batch = metadata.batchable ? [1] : [];
  const find = (specs: TensorSpec[], tensor: string, role: string, what: string): TensorSpec | undefined => {
    if (specs.length === 0) return undefined;
    const spec = specs.find((s) => s.name === tensor);
    if (!spec) throw new InvalidArgument(`${model}: sequence_batching ${what} names ${role} '${tensor}', which the model does not have (its ${role}s: ${specs.map((s) => s.name).join(', ')})`);
    return spec;
  };
  const check = (spec: TensorSpec | undefined, datatype: string, shape: number[], what: string) => {
    if (!spec) return;
    if (spec.datatype !== datatype) throw new InvalidArgument(`${model}: sequence_batching ${what}: the model's '${spec.name}' is ${spec.datatype}, the config says ${datatype}`);
    if (!shapeMatches(spec.shape, shape)) throw new InvalidArgument(`${model}: sequence_batching ${what}: the model's '${spec.name}' has shape [${spec.shape.join(',')}], the server would feed [${shape.join(',')}]`);
  };
  for (const c of sequencing.controls) {
    const what = `control_input '${c.input}'`;
    check(find(metadata.inputs, c.input, 'input', what), c.datatype, [...batch, 1], what);
  }
  const states: PlannedState[] = [];
  for (const st of sequencing.states) {
    const what = `state '${st.input}'`;
    const shape = [...batch, ...st.dims];
    check(find(metadata.inputs, st.input, 'input', what), st.datatype, shape, what);
    check(find(metadata.outputs, st.output, 'output', what), st.datatype, shape, what);
    const count = elementCount(shape);
    let initial: TensorData;
    if (st.initial.kind === 'file') initial = await readTensorFile(`${model}: ${what}`, st.datatype, count, modelDir, INITIAL_STATE_DIR, st.initial.file, 'initial_state.data_file');
    else initial = st.datatype === 'BYTES' ? Array.from({ length: count }, () => new Uint8Array(0)) : allocate(st.datatype, count);
    states.push({ input: st.input, output: st.output, datatype: st.datatype, shape, initial });
  }
  const { inputs: hiddenInputs, outputs: hiddenOutputs } = sequenceTensorNames(sequencing);
  const served: ModelMetadata = {
    ...metadata,
    inputs: metadata.inputs.filter((s) => !hiddenInputs.has(s.name)),
    outputs: metadata.outputs.filter((s) => !hiddenOutputs.has(s.name)),
  };
  const slots = Math.max(1, config.instanceCount) * Math.max(1, config.maxBatchSize);
  // The config cannot also hold dynamic_batching (and its queue size): the server default.
  const queueSize = DEFAULT_MAX_QUEUE_SIZE;
  const plan: SequencePlan = {
    model,
    batchable: metadata.batchable,
    controls: sequencing.controls,
    states,
    maxActive: sequencing.strategy === 'oldest' ? sequencing.maxCandidateSequences : slots,
    idleMs: sequencing.maxSequenceIdleMicroseconds / 1000,
    maxQueued: queueSize,
  };
  // Requests of different sequences batch in the model's own batcher. Triton's direct strategy
  // fires as soon as one slot is ready unless minimum_slot_utilization is set: then it fires at
  // that share of the slots, or after the delay.
  let delay = sequencing.maxQueueDelayMicroseconds;
  let preferred = sequencing.preferredBatchSize;
  if (sequencing.strategy === 'direct') {
    const share = sequencing.minimumSlotUtilization;
    delay = share > 0 ? delay : 0;
    preferred = share > 0 ? [Math.max(1, Math.ceil(share * config.maxBatchSize))] : [];
  }
  const innerConfig: ModelConfig = config.maxBatchSize > 1 ? { ...config, dynamicBatching: { maxQueueDelayMicroseconds: delay, preferredBatchSize: preferred, maxQueueSize: queueSize } } : config;
  return { plan, served, innerConfig };
}

// The parser's tables, inverted: kind → Triton's name, datatype → its false/true field.
const KIND_NAMES = Object.fromEntries(Object.entries(CONTROL_KINDS).map(([name, kind]) => [kind, name])) as Record<SequenceControlKind, string>;
const FALSE_TRUE_FIELDS = Object.fromEntries(Object.entries(FALSE_TRUE).map(([field, datatype]) => [datatype, field])) as Record<string, string>;

/** `sequence_batching` in Triton's JSON form (GET .../config, gRPC ModelConfig). */
export function sequenceBatchingJson(c: SequenceBatchingConfig): Record<string, unknown> {
  const control_input = c.controls.map((k) => {
    const control: Record<string, unknown> = { kind: KIND_NAMES[k.kind] };
    if (k.kind === 'corrid') control.data_type = tritonType(k.datatype);
    else {
      const field = FALSE_TRUE_FIELDS[k.datatype]!;
      control[field] = k.datatype === 'BOOL' ? k.values!.map((v) => v !== 0) : [...k.values!];
    }
    return { name: k.input, control: [control] };
  });
  const state = c.states.map((st) => ({
    input_name: st.input,
    output_name: st.output,
    data_type: tritonType(st.datatype),
    dims: st.dims,
    initial_state: [{ data_type: tritonType(st.datatype), dims: st.dims, ...(st.initial.kind === 'file' ? { data_file: st.initial.file } : { zero_data: true }) }],
  }));
  const strategy = c.strategy === 'oldest'
    ? { oldest: { max_candidate_sequences: c.maxCandidateSequences, preferred_batch_size: c.preferredBatchSize, max_queue_delay_microseconds: c.maxQueueDelayMicroseconds } }
    : { direct: { max_queue_delay_microseconds: c.maxQueueDelayMicroseconds, minimum_slot_utilization: c.minimumSlotUtilization } };
  return { max_sequence_idle_microseconds: c.maxSequenceIdleMicroseconds, control_input, state, ...strategy };
}
