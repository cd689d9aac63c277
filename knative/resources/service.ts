/**
 * @module knative/resources/service
 * The Knative Service (serving.knative.dev/v1) of one function.
 */
import { scalingTarget, type FunctionSpec } from '../../functions/define.js';
import { DEFAULT_PVC_ROOT } from '../../runtime/storage/pvc.js';
import { envFrom, kpaAnnotations, revisionAnnotations, labels, modelPvcClaim, probes, prometheusAnnotations, resources, serviceAccount, servingPort, serverEnv, type Manifest } from './common.js';

export function knativeService(spec: FunctionSpec): Manifest {
  const s = spec.scaling;
  const annotations: Record<string, string> = {
    'autoscaling.knative.dev/metric': s.metric,
    'autoscaling.knative.dev/target': String(scalingTarget(spec)),
    'autoscaling.knative.dev/min-scale': String(s.minScale),
    'autoscaling.knative.dev/max-scale': String(s.maxScale),
    ...revisionAnnotations(spec),
    ...kpaAnnotations(spec),
    ...prometheusAnnotations(),
  };
  const container: Record<string, unknown> = {
    image: spec.image,
    // Knative sets PORT from this port; the name selects HTTP/1.1 (`http1`) or HTTP/2 cleartext (`h2c`).
    ports: [servingPort(spec)],
    env: serverEnv(spec),
    ...envFrom(spec),
    ...probes(spec),
  };
  const res = resources(spec);
  if (Object.keys(res).length > 0) container.resources = res;
  const podSpec: Record<string, unknown> = {
    ...serviceAccount(spec),
    containerConcurrency: s.containerConcurrency,
    timeoutSeconds: s.timeoutSeconds,
    containers: [container],
  };
  // pvc://<claim>/<path> is read from the claim mounted at /mnt/pvc, read-only. Knative accepts
  // the volume only with its feature flag kubernetes.podspec-persistent-volume-claim enabled.
  const claim = modelPvcClaim(spec);
  if (claim) {
    container.volumeMounts = [{ name: 'model-pvc', mountPath: DEFAULT_PVC_ROOT, readOnly: true }];
    podSpec.volumes = [{ name: 'model-pvc', persistentVolumeClaim: { claimName: claim, readOnly: true } }];
  }
  const metadata: Record<string, unknown> = { name: spec.name, labels: labels(spec) };
  if (spec.description) metadata.annotations = { 'kinfer.dev/description': spec.description };
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: metadata as Manifest['metadata'],
    spec: {
      template: {
        metadata: { labels: labels(spec), annotations },
        spec: podSpec,
      },
    },
  };
}
