/**
 * @module knative/resources/trained-model
 * A TrainedModel (serving.kserve.io/v1alpha1): the function's model placed on
 * the function's multi-model InferenceService. KServe's model agent downloads
 * `storageUri` into `/mnt/models/<name>/` and calls
 * `POST /v2/repository/models/<name>/load` with `{}`.
 */
import type { FunctionSpec } from '../../functions/define.js';
import { InvalidArgument } from '../../runtime/core/errors.js';
import { labels, type Manifest } from './common.js';

/** What KServe's model agent can fetch (pkg/agent/storage: S3, GCS, HTTPS, HTTP; PVC and File are not implemented). */
export const MODEL_AGENT_SCHEMES = ['s3://', 'gs://', 'https://', 'http://'] as const;

/**
 * KServe's TrainedModel webhook (TmNameFmt): the agent loads the model under this name, so the
 * model name must be one too.
 */
const TRAINED_MODEL_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Undefined for a multi-model function (it starts empty), and for a storageUri the model agent
 * cannot fetch (file://, pvc://): such a TrainedModel would never load ("protocol not supported").
 * Throws for a model name KServe's webhook would refuse as a TrainedModel name.
 */
export function trainedModel(spec: FunctionSpec): Manifest | undefined {
  const uri = spec.model?.storageUri;
  if (!spec.model || !uri || !MODEL_AGENT_SCHEMES.some((s) => uri.toLowerCase().startsWith(s))) return undefined;
  if (!TRAINED_MODEL_NAME.test(spec.model.name)) {
    throw new InvalidArgument(
      `function ${spec.name}: model name ${JSON.stringify(spec.model.name)} cannot name its TrainedModel: KServe's webhook takes lower case letters, digits and "-", starting with a letter (the agent loads the model under that name)`,
    );
  }
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
