/**
 * @module repository/model-config
 * The normalised model configuration, whatever file it came from
 * (config.pbtxt, config.toml, config.json) or none. Shapes follow Triton: when
 * `maxBatchSize > 0` the declared input/output shapes exclude the batch dim.
 */
import type { TensorSpec } from '../core/tensor.js';

export interface DynamicBatchingConfig {
  maxQueueDelayMicroseconds: number;
  preferredBatchSize: number[];
  /** Bounded queue; 0 means the server default. */
  maxQueueSize: number;
}

export interface ModelConfig {
  name: string;
  /** `onnx_onnxv1`, `onnxruntime_onnx`, `vitis_xmodel`, `echo`, ... (see backends/select.ts). */
  platform?: string;
  maxBatchSize: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  dynamicBatching?: DynamicBatchingConfig;
  /** instance_group { count }: backend sessions run in parallel. */
  instanceCount: number;
  /** Free-form backend parameters (config `parameters`, load request `parameters`). */
  parameters: Record<string, string>;
}

export function defaultConfig(name: string): ModelConfig {
  return { name, maxBatchSize: 0, inputs: [], outputs: [], instanceCount: 1, parameters: {} };
}
