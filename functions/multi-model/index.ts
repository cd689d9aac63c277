/**
 * @module functions/multi-model
 * The KServe multi-model server: starts empty (`MULTI_MODEL_SERVER=true`);
 * KServe's model agent writes each TrainedModel under `/mnt/models/<name>/` and
 * loads it through `POST /v2/repository/models/<name>/load`.
 * One replica: what is loaded lives in that pod's memory, so a second replica
 * would answer 404 for models loaded into the first (and lose them on scale-down).
 * Its Trigger takes only events addressed to it (`subject: multi-model`); such an
 * event names the model in its `model` extension attribute.
 */
import { defineFunction } from '../define.js';

export default defineFunction({
  name: 'multi-model',
  description: 'Starts empty; models arrive as KServe TrainedModels or through the repository API',
  multiModel: true,
  scaling: { metric: 'concurrency', target: 8, containerConcurrency: 0, minScale: 1, maxScale: 1, initialScale: 1, scaleDownDelay: '0s', timeoutSeconds: 300, startupSeconds: 120 },
  resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '8Gi' } },
  triggers: [{ name: 'requests', broker: 'default', filters: { type: 'io.kinfer.inference.request', subject: 'multi-model' } }],
});
