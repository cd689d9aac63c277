/**
 * @module knative/resources/common
 * Pieces every generated resource shares: labels, the server container's env
 * (the contract between the manifests and the server's config), probes.
 */
import { PLATFORM_CONFIG_NAME, scalingTarget, type EnvSource, type EnvValue, type FunctionSpec } from '../../functions/define.js';
import { pvcClaim } from '../../runtime/storage/pvc.js';

/** Label set on every kinfer resource; `kinfer list` selects on it. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kinfer';
export const FUNCTION_LABEL = 'kinfer.dev/function';

export const HTTP_PORT = 8080;
/** A grpc-v2 function's serving port (KServe's gRPC runtimes use 8081). */
export const GRPC_PORT = 8081;
export const FIELD_MANAGER = 'kinfer';

export type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown } };

export function labels(spec: FunctionSpec): Record<string, string> {
  return {
    'app.kubernetes.io/name': spec.name,
    'app.kubernetes.io/part-of': 'kinfer',
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [FUNCTION_LABEL]: spec.name,
  };
}

/**
 * The model config the server applies to the function's model, in the JSON form
 * of Triton's config (`config.json`), so the server parses it like a config file
 * or a load request's `parameters.config`. Undefined when there is nothing to say
 * beyond what the model file tells.
 */
export function modelConfigJson(spec: FunctionSpec): string | undefined {
  if (!spec.model) return undefined;
  const parameters: Record<string, string> = { ...spec.backend.options };
  if (spec.backend.threads !== undefined) parameters.threads = String(spec.backend.threads);
  if (spec.backend.batchSize !== undefined) parameters.batch_size = String(spec.backend.batchSize);
  // Only the non-default policy is written, so existing manifests stay as they were.
  if (spec.batching?.policy === 'adaptive') parameters.batch_policy = 'adaptive';
  const cfg: Record<string, unknown> = {
    name: spec.model.name,
    platform: PLATFORM_CONFIG_NAME[spec.model.platform],
    max_batch_size: spec.batching?.maxBatchSize ?? 0,
    instance_group: [{ count: spec.backend.instances }],
  };
  // A stateful model batches under sequence_batching's strategy: Triton takes one of the two.
  if (spec.sequenceBatching) cfg.sequence_batching = spec.sequenceBatching;
  else if (spec.batching && spec.batching.maxBatchSize > 0)
    cfg.dynamic_batching = {
      max_queue_delay_microseconds: spec.batching.maxQueueDelayMicroseconds,
      preferred_batch_size: spec.batching.preferredBatchSizes,
    };
  if (Object.keys(parameters).length > 0) cfg.parameters = sortKeys(parameters);
  if (spec.responseCache) cfg.response_cache = { enable: true };
  return JSON.stringify(cfg);
}

/** The claim of a `pvc://<claim>/<path>` storageUri; the server reads it under DEFAULT_PVC_ROOT (runtime/storage/pvc.ts). */
export function modelPvcClaim(spec: FunctionSpec): string | undefined {
  return pvcClaim(spec.model?.storageUri ?? '');
}

export type EnvVar = { name: string; value: string } | { name: string; valueFrom: Exclude<EnvValue, string> };

/** Env of the server container, in a fixed order: generated names first, then the definition's, sorted. */
export function serverEnv(spec: FunctionSpec): EnvVar[] {
  // The server loads this function's lifecycle hooks (functions/<name>/index.ts).
  const env: EnvVar[] = [{ name: 'KINFER_FUNCTION', value: spec.name }];
  if (spec.multiModel) env.push({ name: 'MULTI_MODEL_SERVER', value: 'true' });
  if (spec.model) {
    env.push({ name: 'MODEL_NAME', value: spec.model.name });
    env.push({ name: 'STORAGE_URI', value: spec.model.storageUri ?? '' });
  }
  const cfg = modelConfigJson(spec);
  if (cfg) env.push({ name: 'KINFER_MODEL_CONFIG', value: cfg });
  if (spec.responseCache) env.push({ name: 'KINFER_RESPONSE_CACHE_BYTES', value: String(spec.responseCache.bytes) });
  const log = spec.payloadLogging;
  if (log) {
    env.push({ name: 'KINFER_PAYLOAD_LOG_URL', value: log.url }, { name: 'KINFER_PAYLOAD_LOG_MODE', value: log.mode });
    if (log.metadataHeaders.length > 0) env.push({ name: 'KINFER_PAYLOAD_LOG_METADATA_HEADERS', value: log.metadataHeaders.join(',') });
  }
  if (spec.protocol === 'grpc-v2') {
    // Knative sets PORT to the h2c port, which gRPC takes; REST (probes of the agent, /metrics) stays on 8080.
    env.push({ name: 'GRPC_PORT', value: String(GRPC_PORT) }, { name: 'KINFER_REST_PORT', value: String(HTTP_PORT) });
  }
  for (const k of Object.keys(spec.env).sort()) {
    const v = spec.env[k]!;
    env.push(typeof v === 'string' ? { name: k, value: v } : { name: k, valueFrom: v });
  }
  return env;
}

/** The server container's `envFrom`, `serviceAccountName` on its pod: as the definition gives them, when it does. */
export function envFrom(spec: FunctionSpec): { envFrom?: EnvSource[] } {
  return spec.envFrom.length > 0 ? { envFrom: spec.envFrom } : {};
}
export function serviceAccount(spec: FunctionSpec): { serviceAccountName?: string } {
  return spec.serviceAccountName ? { serviceAccountName: spec.serviceAccountName } : {};
}

export function resources(spec: FunctionSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const limits: Record<string, string | number> = { ...spec.resources.limits };
  for (const k of Object.keys(spec.resources.accelerators).sort()) limits[k] = String(spec.resources.accelerators[k]);
  if (Object.keys(spec.resources.requests).length > 0) out.requests = { ...spec.resources.requests };
  if (Object.keys(limits).length > 0) out.limits = limits;
  return out;
}

const PROBE_PERIOD_SECONDS = 5;

/**
 * Readiness, liveness and a startup probe that allows `startupSeconds` for pull + load.
 * Knative accepts a probe port only if it equals the container port, and fills it
 * in when omitted; KServe's schema requires it, so `withPort` names it there.
 */
export function probes(spec: FunctionSpec, withPort = false): Record<string, unknown> {
  // A grpc-v2 function is probed on its serving port through grpc.health.v1 (server/grpc-health.ts).
  const grpc = spec.protocol === 'grpc-v2';
  const check = (path: string, service: string) =>
    grpc ? { grpc: { port: GRPC_PORT, service } } : { httpGet: withPort ? { path, port: HTTP_PORT } : { path } };
  return {
    readinessProbe: { ...check('/v2/health/ready', 'readiness'), periodSeconds: PROBE_PERIOD_SECONDS, failureThreshold: 3 },
    livenessProbe: { ...check('/v2/health/live', 'liveness'), periodSeconds: 10, failureThreshold: 3 },
    // On the ready route: liveness must not restart a pod that is still pulling a large model.
    startupProbe: {
      ...check('/v2/health/ready', 'readiness'),
      periodSeconds: PROBE_PERIOD_SECONDS,
      failureThreshold: Math.ceil(spec.scaling.startupSeconds / PROBE_PERIOD_SECONDS),
    },
  };
}

/** The serving container's port: HTTP/1.1 REST, or h2c gRPC for a grpc-v2 function (the name tells Knative). */
export function servingPort(spec: FunctionSpec): { name: string; containerPort: number } {
  return spec.protocol === 'grpc-v2' ? { name: 'h2c', containerPort: GRPC_PORT } : { name: 'http1', containerPort: HTTP_PORT };
}

export function prometheusAnnotations(): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/path': '/metrics', 'prometheus.io/port': String(HTTP_PORT) };
}

export { scalingTarget };

/** The KPA settings a function sets, as the revision annotations Knative reads (none left to its defaults). */
/**
 * The revision annotations the Knative Service and the InferenceService both carry (KServe copies an
 * InferenceService's onto its revision): initial scale, scale-down delay, and the progress deadline,
 * which must outlast the startup probe's budget or Knative fails the revision (default 600 s).
 */
export function revisionAnnotations(spec: FunctionSpec): Record<string, string> {
  const s = spec.scaling;
  return {
    'autoscaling.knative.dev/initial-scale': String(s.initialScale),
    'autoscaling.knative.dev/scale-down-delay': s.scaleDownDelay,
    'serving.knative.dev/progress-deadline': `${s.startupSeconds + 60}s`,
  };
}

export function kpaAnnotations(spec: FunctionSpec): Record<string, string> {
  const s = spec.scaling;
  const out: Record<string, string> = {};
  if (s.window !== undefined) out['autoscaling.knative.dev/window'] = s.window;
  if (s.targetUtilizationPercentage !== undefined) out['autoscaling.knative.dev/target-utilization-percentage'] = String(s.targetUtilizationPercentage);
  if (s.panicWindowPercentage !== undefined) out['autoscaling.knative.dev/panic-window-percentage'] = String(s.panicWindowPercentage);
  if (s.panicThresholdPercentage !== undefined) out['autoscaling.knative.dev/panic-threshold-percentage'] = String(s.panicThresholdPercentage);
  return out;
}

export function sortKeys<T>(obj: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]!]));
}
