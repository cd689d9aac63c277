/**
 * @module knative/resources/trained-model
 * A TrainedModel (serving.kserve.io/v1alpha1): the function's model placed on
 * the function's multi-model InferenceService. KServe's model agent downloads
 * `storageUri` into `/mnt/models/<name>/` and calls
 * `POST /v2/repository/models/<name>/load` with `{}`.
 */
import type { FunctionSpec } from '../../functions/define.js';
import { labels, type Manifest } from './common.js';

/** What KServe's model agent can fetch (pkg/agent/storage: S3, GCS, HTTPS, HTTP; PVC and File are not implemented). */
export const MODEL_AGENT_SCHEMES = ['s3://', 'gs://', 'https://', 'http://'] as const;

/**
 * Undefined for a multi-model function (it starts empty), and for a storageUri the model agent
 * cannot fetch (file://, pvc://): such a TrainedModel would never load ("protocol not supported").
 */
export function trainedModel(spec: FunctionSpec): Manifest | undefined {
  const uri = spec.model?.storageUri;
  if (!spec.model || !uri || !MODEL_AGENT_SCHEMES.some((s) => uri.toLowerCase().startsWith(s))) return undefined;
  return {
    apiVersion: 'serving.kserve.io/v1alpha1',
    kind: 'TrainedModel',
    metadata: { name: spec.model.name, labels: labels(spec) },
    spec: {
      inferenceService: spec.name,
      model: { framework: spec.model.platform, memory: spec.model.memory, storageUri: uri },
    },
  };
}
