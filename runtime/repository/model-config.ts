/**
 * @module repository/model-config
 * The normalised model configuration, whatever file it came from
 * (config.pbtxt, config.toml, config.json) or none. Shapes follow Triton: when
 * `maxBatchSize > 0` the declared input/output shapes exclude the batch dim.
 */
import type { Datatype } from '../core/datatypes.js';
import type { TensorSpec } from '../core/tensor.js';

/**
 * The timeout rules of Triton's `ModelQueuePolicy`: how long a request may wait in its queue
 * before `action` (reject: answered 503 uncomputed, Triton's UNAVAILABLE; delay: moved behind
 * the requests of its priority level that have not timed out).
 */
export interface QueueTimeout {
  action: 'reject' | 'delay';
  /** `default_timeout_microseconds`: 0 = none of the policy's own. */
  defaultMicroseconds: number;
  /**
   * `allow_timeout_override`: in Triton a request's shorter `timeout` replaces the default. Read and
   * reported; kinfer holds every request to its own `timeout` anyway (a deadline), so a shorter one wins.
   */
  allowOverride: boolean;
}

/** Triton's `ModelQueuePolicy`, whole: the queue bound (0: the server default) and the timeout rules. */
export interface QueuePolicy extends QueueTimeout {
  maxQueueSize: number;
}

/** Triton's priority levels of the dynamic batcher: a request's `priority` 1 (served first) to `levels`. */
export interface PriorityConfig {
  levels: number;
  /** The level of a request without a `priority` in 1..levels. */
  defaultLevel: number;
  /** `priority_queue_policy`: a level's own policy; other levels take the default policy. */
  policies: Record<number, QueuePolicy>;
}

export interface DynamicBatchingConfig {
  maxQueueDelayMicroseconds: number;
  preferredBatchSize: number[];
  /** Bounded queue (`default_queue_policy.max_queue_size`); 0 means the server default. */
  maxQueueSize: number;
  /** `default_queue_policy`'s timeout rules, when it sets any. */
  queueTimeout?: QueueTimeout;
  /** `priority_levels` > 0. */
  priority?: PriorityConfig;
}

/** One input of a warm-up sample (Triton's `ModelWarmup.Input`). */
export interface WarmupInput {
  name: string;
  datatype: Datatype;
  /** Without the batch dim when the model batches (`max_batch_size > 0`), as in `input`. */
  dims: number[];
  /** `zero_data`, `random_data`, or `input_data_file` (a file in `<model>/warmup/`, raw row-major bytes as in the binary extension). */
  data: { kind: 'zero' } | { kind: 'random' } | { kind: 'file'; file: string };
}

/** Triton's `model_warmup` entry: requests run on every instance before the model turns ready. */
export interface WarmupSample {
  name: string;
  /** Rows prepended as the batch dim when the model batches; 1 otherwise. */
  batchSize: number;
  /** Runs of this sample per instance; Triton's 0 means once. */
  count: number;
  inputs: WarmupInput[];
}

/**
 * Triton's `version_policy`: which of the model's version folders are served. `latest` keeps the
 * `numVersions` highest-numbered ones (Triton's default: 1), `all` every one, `specific` those listed.
 */
export type VersionPolicy = { kind: 'latest'; numVersions: number } | { kind: 'all' } | { kind: 'specific'; versions: number[] };

/** One step of Triton's `ensemble_scheduling`: a composing model and how its tensors map onto the ensemble's. */
export interface EnsembleStep {
  modelName: string;
  /** A version number, or '' for the highest serving (Triton's -1). */
  modelVersion: string;
  /** Composing model's input name → ensemble tensor name. */
  inputMap: Record<string, string>;
  /** Composing model's output name → ensemble tensor name. */
  outputMap: Record<string, string>;
}

/** What a sequence control input tells the model (Triton's `ControlInput.Control.Kind`). */
export type SequenceControlKind = 'start' | 'end' | 'ready' | 'corrid';

/**
 * One of Triton's `sequence_batching.control_input`: a model input the server fills for every
 * request of a sequence. START, END and READY carry `values` (false, true) in `datatype` (FP32,
 * INT32 or BOOL); CORRID carries the sequence id in `datatype` (UINT64, INT64, UINT32, INT32 or BYTES).
 */
export interface SequenceControl {
  input: string;
  kind: SequenceControlKind;
  datatype: Datatype;
  values?: readonly [number, number];
}

/**
 * One of Triton's `sequence_batching.state` (implicit state): the server feeds `input` the
 * sequence's state and keeps `output` as the next one, starting each sequence from `initial`
 * (zeros of `dims` unless the config gives a file in `<model>/initial_state/`).
 */
export interface SequenceState {
  input: string;
  output: string;
  datatype: Datatype;
  /** Without the batch dim when the model batches. */
  dims: number[];
  initial: { kind: 'zero' } | { kind: 'file'; file: string };
}

/**
 * Triton's `sequence_batching`: requests carry a correlation id (`sequence_id`) and START/END
 * flags; each sequence's requests run one at a time, in order, with its own state. `direct`
 * (Triton's default) admits instances × max batch size sequences at once, `oldest`
 * `maxCandidateSequences`; the others wait until one ends or goes idle.
 */
export interface SequenceBatchingConfig {
  strategy: 'direct' | 'oldest';
  /** A sequence with no request for this long is ended and its slot freed (Triton's default 1 s). */
  maxSequenceIdleMicroseconds: number;
  /** `oldest` only (required there, ≥ 1). */
  maxCandidateSequences: number;
  /**
   * How long a batch across sequences waits to fill (the strategy's `max_queue_delay_microseconds`;
   * `direct` waits only when `minimumSlotUtilization` is set, as in Triton).
   */
  maxQueueDelayMicroseconds: number;
  /** `direct` only: the share of slots (0–1] whose requests fire a batch before the delay ends. */
  minimumSlotUtilization: number;
  /** `oldest` only. */
  preferredBatchSize: number[];
  controls: SequenceControl[];
  states: SequenceState[];
}

export interface ModelConfig {
  name: string;
  /** `onnx_onnxv1`, `onnxruntime_onnx`, `vitis_xmodel`, `echo`, ... (see backends/select.ts). */
  platform?: string;
  maxBatchSize: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /**
   * Triton's `reshape` on `input`/`output` entries, tensor name → the shape the backend takes or
   * gives (without the batch dim when the model batches). Clients see and send `dims`; the
   * repository reshapes between the two (backends/reshape.ts).
   */
  reshape?: { inputs: Record<string, number[]>; outputs: Record<string, number[]> };
  /** Triton's `optional: true` inputs: a request may leave them out. */
  optionalInputs?: string[];
  /** Triton's `default_model_filename`: the model file's name in each version folder. */
  defaultModelFilename?: string;
  dynamicBatching?: DynamicBatchingConfig;
  /** instance_group { count }: backend sessions run in parallel. */
  instanceCount: number;
  /** Free-form backend parameters (config `parameters`, load request `parameters`). */
  parameters: Record<string, string>;
  /** Absent: Triton's default, the latest version only. */
  versionPolicy?: VersionPolicy;
  /** `ensemble_scheduling { step [...] }` (platform `ensemble`): the pipeline of composing models. */
  ensemble?: EnsembleStep[];
  /** `sequence_batching`: a stateful model, served one request per sequence at a time. */
  sequenceBatching?: SequenceBatchingConfig;
  /** `response_cache { enable: true }`: repeated requests are answered from the server's response cache (when it is sized). */
  responseCache?: boolean;
  /** `model_warmup` samples, when the config has any. */
  warmup?: WarmupSample[];
  /**
   * Output name → its `label_filename`: a file in the model folder, line i naming class i
   * (the classification extension's labels).
   */
  outputLabelFiles?: Record<string, string>;
  /**
   * Config fields neither kinfer nor Triton knows, ignored (e.g. `max_batch_sizes (did you mean
   * max_batch_size?)`); the repository logs them at each load. At most 100, each cut to 128
   * characters, then `and N more` when there were more.
   */
  unknownFields?: string[];
}

export function defaultConfig(name: string): ModelConfig {
  return { name, maxBatchSize: 0, inputs: [], outputs: [], instanceCount: 1, parameters: {} };
}
