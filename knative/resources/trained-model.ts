/**
 * @module knative/resources/trained-model
 * A TrainedModel (serving.kserve.io/v1alpha1): the function's model placed on
 * the function's multi-model InferenceService. KServe's model agent downloads
 * `storageUri` into `/mnt/models/<name>/` and calls
 * `POST /v2/repository/models/<name>/load` with `{}`.
 */
import type { FunctionSpec } from '../../functions/define.js';
import { labels, type Manifest } from './common.js';

/** Undefined for a multi-model function: it starts empty. */
export function trainedModel(spec: FunctionSpec): Manifest | undefined {
  if (!spec.model) return undefined;
  return {
    apiVersion: 'serving.kserve.io/v1alpha1',
    kind: 'TrainedModel',
    metadata: { name: spec.model.name, labels: labels(spec) },
    spec: {
      inferenceService: spec.name,
      model: { framework: spec.model.platform, memory: spec.model.memory, storageUri: spec.model.storageUri! },
    },
  };
}
