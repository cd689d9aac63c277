/**
 * @module knative/resources/inference-service
 * The KServe form of a function: an InferenceService (serving.kserve.io/v1beta1)
 * whose predictor is kinfer's own container with `MULTI_MODEL_SERVER=true`, as
 * the original server's KServe example. Models arrive as TrainedModels through
 * KServe's model agent (see trained-model.ts).
 */
import { scalingTarget, type FunctionSpec } from '../../functions/define.js';
import { HTTP_PORT, labels, probes, resources, type EnvVar, type Manifest } from './common.js';

export function inferenceService(spec: FunctionSpec): Manifest {
  const s = spec.scaling;
  const env: EnvVar[] = [{ name: 'MULTI_MODEL_SERVER', value: 'true' }];
  for (const k of Object.keys(spec.env).sort()) env.push({ name: k, value: spec.env[k]! });
  const container: Record<string, unknown> = {
    name: 'kserve-container',
    image: spec.image,
    env,
    // KServe's model agent calls the repository API on 8080.
    ports: [{ containerPort: HTTP_PORT, protocol: 'TCP' }],
    ...probes(spec, true),
  };
  const res = resources(spec);
  if (Object.keys(res).length > 0) container.resources = res;
  return {
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: {
      name: spec.name,
      labels: labels(spec),
      annotations: {
        'autoscaling.knative.dev/metric': s.metric,
        'autoscaling.knative.dev/target': String(scalingTarget(spec)),
        'serving.kserve.io/deploymentMode': 'Serverless',
      },
    },
    spec: {
      predictor: {
        minReplicas: s.minScale,
        maxReplicas: s.maxScale,
        containerConcurrency: s.containerConcurrency,
        timeout: s.timeoutSeconds,
        containers: [container],
      },
    },
  };
}
