/**
 * @module backends/backend
 * The one interface between the runtime and whatever computes: ONNX Runtime,
 * the FPGA (XModel) through `native/`, echo. Backends never import Hono or the
 * protocol; they see tensors only.
 */
import type { SequenceFlags } from '../core/infer.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';
import type { ModelConfig } from '../repository/model-config.js';

export interface ModelFiles {
  name: string;
  version: string;
  /** Folder that holds this version's files (e.g. `<repo>/<model>/1` or `<repo>/<model>`). */
  dir: string;
  /** The main model file, if the layout names one (e.g. `model.onnx`). */
  modelFile?: string;
  config: ModelConfig;
}

export interface ModelMetadata {
  platform: string;
  /** Shapes as served: -1 for variable dims, including the batch dim. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** True when dim 0 of every input and output is a batch dim the batcher may merge along. */
  batchable: boolean;
  /** Largest batch the backend accepts at once (0 = no limit known). */
  maxBatchSize: number;
}

/** What the batcher knows of a batch of one request: its deadline, its client's signal and its sequence. */
export interface RunContext {
  /** Absolute, `performance.now()` ms. */
  deadline?: number;
  signal?: AbortSignal;
  /** An ensemble request's sequence, which its steps pass on to stateful composing models (as Triton). */
  sequence?: SequenceFlags;
  /** An ensemble request's `priority`, which its steps carry to their composing models (as Triton). */
  priority?: number;
}

export interface Backend {
  /**
   * Opens the model. Throws a KinferError naming what is missing or wrong;
   * a throw leaves nothing open. Called once per instance.
   */
  load(files: ModelFiles): Promise<ModelMetadata>;
  /**
   * Runs one batch. `inputs` are already validated against the metadata and,
   * for batchable models, merged along dim 0 by the batcher. Returns the
   * named outputs (all outputs when `outputNames` is empty). Calls on one
   * instance are never concurrent; parallelism comes from more instances.
   * The caller owns the input buffers until the promise settles. `run`: for a batch of one
   * request, its deadline and signal (a backend that calls other models passes them on).
   */
  infer(inputs: Tensor[], outputNames: readonly string[], run?: RunContext): Promise<Tensor[]>;
  /** Releases sessions and devices. Safe to call twice. */
  unload(): Promise<void>;
  /**
   * Optional: whether this instance can serve now (e.g. its device is held and
   * runs are not failing). Model readiness is false while any instance says no.
   */
  health?(): { ready: boolean; lastError?: string };
}

export type BackendFactory = () => Backend;
