/**
 * @module protocol/v1
 * KServe's V1 data plane (TensorFlow Serving's REST predict format): request
 * bodies in, response bodies out. Re-exports only.
 */
export { decodePredictRequest, UNNAMED_INPUT, type DecodedPredict, type V1Format } from './decode.js';
export { encodePredictResponse } from './encode.js';
