/**
 * @module functions/echo
 * The echo function: returns its inputs as outputs. No artifact to download
 * (`storageUri` points at an empty model folder the echo backend accepts); used
 * for smoke tests of routing, scaling and CloudEvents without a real model.
 */
import { defineFunction } from '../define.js';

export default defineFunction({
  name: 'echo',
  description: 'Returns its inputs as outputs; for smoke tests of routing, autoscaling and CloudEvents',
  model: { name: 'echo', storageUri: 'file:///opt/kinfer/models/echo', platform: 'echo', memory: '64Mi' },
  batching: { maxBatchSize: 8, maxQueueDelayMicroseconds: 500, preferredBatchSizes: [4, 8] },
  scaling: { metric: 'concurrency', target: 16, containerConcurrency: 0, minScale: 0, maxScale: 5, initialScale: 1, scaleDownDelay: '0s', timeoutSeconds: 30, startupSeconds: 60 },
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
  triggers: [{ name: 'requests', broker: 'default', filters: { type: 'io.kinfer.inference.request', subject: 'echo' } }],
});
