/**
 * @module client
 * kinfer's TypeScript client for the KServe v2 / Open Inference Protocol
 * (exported as `kinfer/client`). Re-exports only.
 */
export {
  KinferClient,
  type CloudEventReply,
  type InferEventOptions,
  type InferOptions,
  type KinferClientOptions,
  type DurationStat,
  type ModelMetadata,
  type ModelStatistics,
  type RepositoryIndexEntry,
  type SharedMemoryRegionStatus,
  type ServerMetadata,
  type TensorMetadata,
  type WaitOptions,
} from './kinfer-client.js';
export {
  DATATYPES,
  InferResult,
  decodeInferResponse,
  encodeInferRequest,
  toJsonValues,
  toNumbers,
  toStrings,
  toTensor,
  type Datatype,
  type InferInput,
  type InputData,
  type Parameters,
  type RequestedOutput,
  type Tensor,
} from './tensors.js';
export {
  KinferClientError,
  KinferConnectionError,
  KinferHttpError,
  KinferInputError,
  KinferProtocolError,
  KinferTimeoutError,
} from './errors.js';
