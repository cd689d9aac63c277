/**
 * @module protocol/v2
 * The KServe v2 / Open Inference Protocol REST codec: request bodies in,
 * response bodies out. Re-exports only.
 */
export { decodeInferRequest, type BinaryOutputPrefs, type DecodedInfer, type DecodeOptions } from './decode.js';
export { dataToJson, encodeInferResponse, encodeJson, type EncodedBody } from './encode.js';
export {
  concatBody,
  HEADER_LENGTH_HEADER,
  readBinaryTensor,
  readBytesElements,
  splitBody,
  tensorBytes,
  writeBytesElements,
  type SplitBody,
} from './binary.js';
export {
  formatPath,
  inferenceRequestSchema,
  parametersSchema,
  parseInferenceRequest,
  requestInputSchema,
  requestOutputSchema,
  type WireInferenceRequest,
  type WireInferenceResponse,
  type WireParameters,
  type WireRequestInput,
  type WireRequestOutput,
  type WireResponseOutput,
} from './schema.js';
