/**
 * @module knative/resources/inference-service
 * The KServe form of a function: an InferenceService (serving.kserve.io/v1beta1)
 * running kinfer's own container. Where KServe's model agent can fetch the
 * model (or the function is multi-model), the container runs with
 * `MULTI_MODEL_SERVER=true`, as the original server's KServe example, and the
 * model arrives as a TrainedModel (see trained-model.ts); the function's model
 * config still applies to it (MODEL_NAME + KINFER_MODEL_CONFIG). For a model the
 * agent cannot fetch (pvc://, file://) the container runs in function mode.
 * KServe reads a custom container's STORAGE_URI: for pvc:// its storage
 * initializer mounts the claim and points STORAGE_URI at it (so no volume is
 * declared here: a second mount at the same path would be refused); a file://
 * path inside the image goes as KINFER_STORAGE_URI, which KServe leaves alone
 * (its initializer would fail on a path that exists only in kinfer's image).
 */
import { PAYLOAD_LOG_ENV, scalingTarget, type FunctionSpec } from '../../functions/define.js';
import { envFrom, HTTP_PORT, kpaAnnotations, labels, revisionAnnotations, modelPvcClaim, probes, resources, serviceAccount, servingPort, serverEnv, type EnvVar, type Manifest } from './common.js';
import { trainedModel } from './trained-model.js';

export function inferenceService(spec: FunctionSpec): Manifest {
  const s = spec.scaling;
  const container: Record<string, unknown> = {
    name: 'kserve-container',
    image: spec.image,
    // KServe's agent logs payloads for the InferenceService's `logger`: the server does not too.
    env: (spec.model && !trainedModel(spec) ? functionEnv(spec) : agentEnv(spec)).filter((e) => !PAYLOAD_LOG_ENV.includes(e.name)),
    ...envFrom(spec),
    // KServe's model agent calls the repository API on 8080 (REST stays there in a grpc-v2 function);
    // KServe routes gRPC to a port named h2c.
    ports: [spec.protocol === 'grpc-v2' ? { ...servingPort(spec), protocol: 'TCP' } : { containerPort: HTTP_PORT, protocol: 'TCP' }],
    ...probes(spec, true),
  };
  const res = resources(spec);
  if (Object.keys(res).length > 0) container.resources = res;
  const predictor: Record<string, unknown> = {
    ...serviceAccount(spec),
    minReplicas: s.minScale,
    maxReplicas: s.maxScale,
    containerConcurrency: s.containerConcurrency,
    timeout: s.timeoutSeconds,
    ...(spec.payloadLogging ? { logger: payloadLogger(spec.payloadLogging) } : {}),
    containers: [container],
  };
  return {
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: {
      name: spec.name,
      labels: labels(spec),
      annotations: {
        'autoscaling.knative.dev/metric': s.metric,
        'autoscaling.knative.dev/target': String(scalingTarget(spec)),
        // KServe copies the InferenceService's annotations onto its Knative revisions (all but its
        // disallow list); min and max scale go as minReplicas/maxReplicas above.
        ...revisionAnnotations(spec),
        ...kpaAnnotations(spec),
        'serving.kserve.io/deploymentMode': 'Serverless',
      },
    },
    spec: { predictor },
  };
}

function payloadLogger(log: NonNullable<FunctionSpec['payloadLogging']>): Record<string, unknown> {
  return { url: log.url, mode: log.mode, ...(log.metadataHeaders.length > 0 ? { metadataHeaders: log.metadataHeaders } : {}) };
}

/** Function mode; STORAGE_URI only for pvc://, which KServe's storage initializer mounts (see the module note). */
function functionEnv(spec: FunctionSpec): EnvVar[] {
  if (modelPvcClaim(spec)) return serverEnv(spec);
  return serverEnv(spec).map((e) => (e.name === 'STORAGE_URI' ? { ...e, name: 'KINFER_STORAGE_URI' } : e));
}

/**
 * A multi-model server KServe's agent fills: no STORAGE_URI (the agent pulls), and the
 * function's model config for the model's name, so batching and threads survive the agent's `{}` load.
 */
function agentEnv(spec: FunctionSpec): EnvVar[] {
  return serverEnv({ ...spec, multiModel: true }).filter((e) => e.name !== 'STORAGE_URI');
}
