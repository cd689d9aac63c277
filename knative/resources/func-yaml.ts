/**
 * @module knative/resources/func-yaml
 * `functions/<name>/func.yaml` in the format of Knative's `func` CLI, derived
 * from the typed definition so `func deploy` and the generated manifests scale
 * the same way. Generated like the manifests; never edited by hand.
 */
import { scalingTarget, type FunctionSpec } from '../../functions/define.js';
import { DEFAULT_PVC_ROOT } from '../../runtime/storage/pvc.js';
import { InvalidArgument } from '../../runtime/core/errors.js';
import { kpaAnnotations, modelPvcClaim, serverEnv, type EnvVar } from './common.js';
import type { EnvSource } from '../../functions/define.js';

export function funcYaml(spec: FunctionSpec): Record<string, unknown> {
  if (spec.protocol === 'grpc-v2') {
    throw new InvalidArgument(`function '${spec.name}': func.yaml describes an http1 port with HTTP health checks; deploy a grpc-v2 function with its manifests (kubectl, kn or kinfer deploy)`);
  }
  const s = spec.scaling;
  const limits: Record<string, unknown> = { ...spec.resources.limits };
  if (s.containerConcurrency > 0) limits.concurrency = s.containerConcurrency;
  const resources: Record<string, unknown> = {};
  if (Object.keys(spec.resources.requests).length > 0) resources.requests = { ...spec.resources.requests };
  if (Object.keys(limits).length > 0) resources.limits = limits;
  const deploy: Record<string, unknown> = {
    annotations: {
      'autoscaling.knative.dev/initial-scale': String(s.initialScale),
      'autoscaling.knative.dev/scale-down-delay': s.scaleDownDelay,
      ...kpaAnnotations(spec),
    },
    options: {
      scale: { min: s.minScale, max: s.maxScale, metric: s.metric, target: scalingTarget(spec) },
      resources,
    },
    // func's defaults are /health/liveness and /health/readiness, which kinfer does not serve.
    healthEndpoints: { liveness: '/v2/health/live', readiness: '/v2/health/ready' },
  };
  if (spec.serviceAccountName) deploy.serviceAccountName = spec.serviceAccountName;
  const run: Record<string, unknown> = { envs: [...serverEnv(spec).map((e) => funcEnv(e, spec.name)), ...spec.envFrom.map((e, i) => funcEnvFrom(e, i, spec.name))] };
  const claim = modelPvcClaim(spec);
  // `presistentVolumeClaim` is func's own spelling of the key (its Volume type's yaml tag).
  if (claim) run.volumes = [{ presistentVolumeClaim: { claimName: claim, readOnly: true }, path: DEFAULT_PVC_ROOT }];
  return {
    specVersion: '0.36.0',
    name: spec.name,
    runtime: 'typescript',
    image: spec.image,
    run,
    deploy,
  };
}

/**
 * func's own syntax for values read from the cluster: `{{ secret:<name>:<key> }}`, `{{ configMap:<name>:<key> }}`,
 * and a whole Secret or ConfigMap as an entry without a name. It has no `optional`: func requires every reference.
 */
function funcEnv(e: EnvVar, fn: string): { name: string; value: string } {
  if ('value' in e) return e;
  const [kind, ref] = 'secretKeyRef' in e.valueFrom ? ['secret', e.valueFrom.secretKeyRef] : ['configMap', e.valueFrom.configMapKeyRef];
  return { name: e.name, value: `{{ ${kind}:${funcRefName(fn, `env.${e.name}`, ref.name)}:${ref.key} }}` };
}

function funcEnvFrom(s: EnvSource, i: number, fn: string): { value: string } {
  const [kind, name] = 'secretRef' in s ? ['secret', s.secretRef.name] : ['configMap', s.configMapRef.name];
  return { value: `{{ ${kind}:${funcRefName(fn, `envFrom.${i}`, name)} }}` };
}

/** func's template takes a Secret's or ConfigMap's name as word characters and single "-": no "." (which Kubernetes allows). */
function funcRefName(fn: string, field: string, name: string): string {
  if (!/^(?:\w|-\w)+$/.test(name)) {
    throw new InvalidArgument(`function '${fn}': ${field}: func.yaml cannot name '${name}' (func's {{ secret:... }} takes letters, digits, "_" and "-"); rename it, or deploy with the manifests (kubectl, kn or kinfer deploy)`);
  }
  return name;
}
