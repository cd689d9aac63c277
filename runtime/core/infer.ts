/**
 * @module core/infer
 * The internal inference request and response, decoded from any transport
 * (v2 JSON, binary extension, CloudEvent) and encoded back to it.
 */
import type { Parameters, Tensor } from './tensor.js';

export interface RequestedOutput {
  name: string;
  /** `binary_data`, `classification`, ... as the client sent them. */
  parameters?: Parameters;
}

/** A request's place in a sequence (Triton's `sequence_id`, `sequence_start`, `sequence_end`), for stateful models. */
export interface SequenceFlags {
  /** The correlation id: a non-zero unsigned integer or a non-empty string. */
  id: number | string;
  start: boolean;
  end: boolean;
}

export interface InferRequest {
  id?: string;
  modelName: string;
  modelVersion?: string;
  inputs: Tensor[];
  /** When present, only these outputs are returned, in this order. */
  outputs?: RequestedOutput[];
  parameters?: Parameters;
}

export interface InferResponse {
  modelName: string;
  modelVersion?: string;
  id?: string;
  outputs: Tensor[];
  parameters?: Parameters;
}

/**
 * Per-request context the transport hands to the data plane: when the answer
 * stops being useful, and a signal that fires when the client goes away.
 */
export interface InferContext {
  /** Absolute deadline, `performance.now()` milliseconds. */
  deadline?: number;
  signal?: AbortSignal;
  requestId?: string;
  /**
   * Called once the data plane has accepted the request (inputs, outputs and parameters
   * checked), just before it is queued or looked up in the response cache: an error after
   * this call comes from running the request, not from the request as sent.
   */
  admitted?: () => void;
}
