/**
 * @module functions/define
 * The typed, zod-validated definition of a kinfer function: one model served as
 * one Knative Service. `knative/generate.ts` turns a definition into manifests;
 * the server reads the same values back from the env the manifests set.
 *
 * @example
 * export default defineFunction({
 *   name: 'ocr-det',
 *   model: { name: 'ocr-det', storageUri: 'pvc://models/ocr-det', platform: 'onnx' },
 *   scaling: { metric: 'concurrency', target: 4, maxScale: 8 },
 * });
 */
import * as z from 'zod';
import { BATCH_POLICIES } from '../runtime/batching/batcher.js';
import { parseModelConfig } from '../runtime/repository/config-files.js';
import { InvalidArgument } from '../runtime/core/errors.js';
import { MAX_TIMER_MS } from '../runtime/core/within.js';
import { PAYLOAD_LOG_MODES } from '../runtime/observability/payload-log.js';
import { CesqlSyntaxError, parseCesqlFilter } from './cesql.js';

/** The default image; `image` in a definition overrides it. */
export const DEFAULT_IMAGE = 'ghcr.io/kinfer/kinfer:0.1.0';

/** Kubernetes resource names used as Knative Service names: a DNS-1035 label (Knative adds suffixes, hence 50). */
const dnsLabel = z
  .string()
  .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1035 label: lower case letters, digits and "-", starting with a letter')
  .max(50);

/** Kubernetes quantity, e.g. `500m`, `2`, `1Gi`; not negative (Kubernetes refuses a negative request or limit in a pod). */
const QUANTITY = /^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
const quantity = z.string().regex(QUANTITY, 'must be a Kubernetes quantity of at least 0, such as 500m or 1Gi');

const SUFFIX: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A quantity's value as a number (close enough to compare a request with its limit). */
export function quantityValue(q: string): number {
  const m = /^\+?([0-9.]+)(.*)$/.exec(q)!;
  const [, digits, suffix] = m as unknown as [string, string, string];
  // `e3` is an exponent; `E` and `Ei` are suffixes (exa, exbi).
  return /^[eE][+-]?[0-9.]/.test(suffix) ? Number(`${digits}${suffix}`) : Number(digits) * SUFFIX[suffix]!;
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Go duration as Knative reads `scale-down-delay`, e.g. `0s`, `90s`, `15m`, `1h`, within what its
 * webhook accepts (annotation_validation.go): at most 1h, in whole seconds.
 */
const duration = z
  .string()
  .regex(/^([0-9]+(ms|s|m|h))+$/, 'must be a duration such as 30s, 15m or 1h')
  .refine((d) => durationMs(d) <= DURATION_MS.h!, "must be at most 1h (Knative's webhook refuses longer)")
  .refine((d) => durationMs(d) % 1000 === 0, "must be whole seconds (Knative's webhook refuses e.g. 1500ms)");

/** A `duration` in milliseconds. */
export function durationMs(d: string): number {
  let ms = 0;
  for (const [, n, unit] of d.matchAll(/([0-9]+)(ms|s|m|h)/g)) ms += Number(n) * DURATION_MS[unit!]!;
  return ms;
}

/** Extended resource names such as `xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_3_1-0` or `nvidia.com/gpu`. */
const extendedResource = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'must be <domain>/<name>');

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

/** A Kubernetes object name (DNS-1123 subdomain): a Secret, ConfigMap or ServiceAccount. */
const objectName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a Kubernetes object name: lower case letters, digits, "-" and "."')
  .max(253);
const keyRef = z
  .object({
    name: objectName,
    key: z.string().regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret or ConfigMap key: letters, digits, "-", "_" or "."').max(253),
    optional: z.boolean().optional(),
  })
  .strict();
/** An env value: a literal, or a Secret's or ConfigMap's key read by Kubernetes at pod start (its `valueFrom`). */
const envValue = z.union([z.string(), z.object({ secretKeyRef: keyRef }).strict(), z.object({ configMapKeyRef: keyRef }).strict()], {
  error: 'expected a string, { secretKeyRef: { name, key } } or { configMapKeyRef: { name, key } }',
});
export type EnvValue = z.infer<typeof envValue>;
const wholeRef = z.object({ name: objectName, optional: z.boolean().optional() }).strict();
/** Every key of a Secret or ConfigMap as env (Kubernetes' `envFrom`). */
const envSource = z.union([z.object({ secretRef: wholeRef }).strict(), z.object({ configMapRef: wholeRef }).strict()], {
  error: 'expected { secretRef: { name } } or { configMapRef: { name } }',
});
export type EnvSource = z.infer<typeof envSource>;

/** Env the generator owns; a definition may not set these (Knative reserves PORT and K_*). */
/** The payload logger's settings, set from `payloadLogging`. */
export const PAYLOAD_LOG_ENV = ['KINFER_PAYLOAD_LOG_URL', 'KINFER_PAYLOAD_LOG_MODE', 'KINFER_PAYLOAD_LOG_METADATA_HEADERS'];
export const RESERVED_ENV = ['PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION', 'MODEL_NAME', 'STORAGE_URI', 'KINFER_STORAGE_URI', 'MULTI_MODEL_SERVER', 'KINFER_MODEL_CONFIG', 'KINFER_FUNCTION', 'KINFER_RESPONSE_CACHE_BYTES', 'GRPC_PORT', 'KINFER_REST_PORT', ...PAYLOAD_LOG_ENV];

export const Platform = z.enum(['onnx', 'xmodel', 'echo']);
export type Platform = z.infer<typeof Platform>;

/** Model platform → the Triton-style platform string the model config uses. */
export const PLATFORM_CONFIG_NAME: Record<Platform, string> = {
  onnx: 'onnxruntime_onnx',
  xmodel: 'vitis_xmodel',
  echo: 'echo',
};

const ModelSchema = z
  .object({
    /** The name clients use in `/v2/models/<name>`. */
    name: z.string().regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'must be letters, digits, "-", "_" or "."').max(63),
    /** `pvc://`, `https://`, `s3://`, `gs://`, `file://` or a path; empty only for multi-model functions. */
    storageUri: z.string().min(1).optional(),
    platform: Platform,
    /** KServe TrainedModel `memory`: what the model needs in the server. */
    memory: quantity.default('1Gi'),
  })
  .strict();

const BackendSchema = z
  .object({
    /** Intra-op threads per session (ONNX Runtime). */
    threads: z.number().int().min(1).max(256).optional(),
    /** Fixed batch size the backend runs (the original server's `batch_size`). */
    batchSize: z.number().int().min(1).max(4096).optional(),
    /** Backend sessions run in parallel (`instance_group { count }`). */
    instances: z.number().int().min(1).max(64).default(1),
    /** Free-form backend parameters, passed as model config `parameters`. */
    options: z.record(z.string(), z.string()).default({}),
  })
  .strict();

const BatchingSchema = z
  .object({
    maxBatchSize: z.number().int().min(0).max(4096),
    maxQueueDelayMicroseconds: z.number().int().min(0).max(10_000_000).default(0),
    preferredBatchSizes: z.array(z.number().int().min(1)).default([]),
    /** When a partial batch fires: `delay` (Triton's rule) or `adaptive` (see README, Batching policies). */
    policy: z.enum(BATCH_POLICIES).default(BATCH_POLICIES[0]),
  })
  .strict()
  .refine((b) => b.preferredBatchSizes.every((s) => s <= b.maxBatchSize), {
    message: 'preferredBatchSizes must not exceed maxBatchSize',
    path: ['preferredBatchSizes'],
  });

/**
 * Triton's response cache: repeated requests are answered without running the model. `bytes`
 * sizes the server's cache (KINFER_RESPONSE_CACHE_BYTES); the function's model gets
 * `response_cache { enable: true }` (a multi-model function's models opt in by their own config).
 */
const ResponseCacheSchema = z
  .object({
    bytes: z.number().int().min(1024).max(2 ** 40),
  })
  .strict();

/**
 * Triton's `sequence_batching` in its JSON form (snake_case or camelCase), written into the
 * function's model config as is: the model is stateful (README, Sequence batching). Checked at
 * definition by the server's own config parser.
 */
const SequenceBatchingSchema = z.record(z.string(), z.unknown());

/**
 * KServe's payload logging (an InferenceService's `predictor.logger`): each inference request and
 * 200 response as a CloudEvent to `url`, e.g. a Broker's ingress. The server does it itself
 * (observability/payload-log.ts); the KServe form sets `logger` and leaves it to KServe's agent.
 */
const PayloadLoggingSchema = z
  .object({
    url: z.string().url().refine((u) => /^https?:/i.test(u), 'must be an http or https URL'),
    mode: z.enum(PAYLOAD_LOG_MODES).default('all'),
    /** Request headers copied into each event's `metadata` attribute. */
    metadataHeaders: z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')).default([]),
  })
  .strict();

const ScalingSchema = z
  .object({
    metric: z.enum(['concurrency', 'rps']).default('concurrency'),
    /** Soft target per replica. Omitted: max(1, maxBatchSize) × instances for `concurrency`, 100 for `rps`. */
    target: z.number().int().min(1).max(100_000).optional(),
    /** Hard limit of requests in one replica; 0 = unlimited (Knative's meaning). */
    containerConcurrency: z.number().int().min(0).max(1000).default(0),
    minScale: z.number().int().min(0).max(1000).default(0),
    maxScale: z.number().int().min(0).max(1000).default(10),
    initialScale: z.number().int().min(0).max(1000).default(1),
    scaleDownDelay: duration.default('0s'),
    /** KPA's stable window (`autoscaling.knative.dev/window`): the span its average runs over; Knative's default 60s. */
    window: duration.refine((d) => durationMs(d) >= 6000, 'must be at least 6s (Knative refuses shorter)').optional(),
    /** The share of `target` a replica should carry on average; Knative's default 70. */
    targetUtilizationPercentage: z.number().min(1).max(100).optional(),
    /** The panic window as a share of `window`; Knative's default 10. */
    panicWindowPercentage: z.number().min(1).max(100).optional(),
    /** Panic (scale up at once, never down) when the panic window wants this share of the ready replicas; Knative's default 200. */
    panicThresholdPercentage: z.number().min(110).max(1000).optional(),
    /** Longest a request may take (Knative `timeoutSeconds`, KServe `timeout`). */
    timeoutSeconds: z.number().int().min(1).max(3600).default(300),
    /** Longest the container may take to pull and load the model before it is restarted. */
    startupSeconds: z.number().int().min(10).max(3600).default(600),
  })
  .strict()
  .refine((s) => s.maxScale === 0 || s.minScale <= s.maxScale, { message: 'minScale must not exceed maxScale', path: ['minScale'] })
  .refine((s) => s.maxScale === 0 || s.initialScale <= s.maxScale, { message: 'initialScale must not exceed maxScale', path: ['initialScale'] });

const ResourceList = z.object({ cpu: quantity.optional(), memory: quantity.optional() }).strict();

const ResourcesSchema = z
  .object({
    requests: ResourceList.prefault({}),
    limits: ResourceList.prefault({}),
    /** Extended resources, set as limits (Kubernetes requires request = limit for them). */
    accelerators: z.record(extendedResource, z.number().int().min(1).max(64)).default({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    // Kubernetes refuses the pod otherwise ("must be less than or equal to ... limit"), once deployed.
    for (const k of ['cpu', 'memory'] as const) {
      const request = r.requests[k];
      const limit = r.limits[k];
      if (request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit)) {
        ctx.addIssue({ code: 'custom', path: ['requests', k], message: `must not exceed limits.${k} (${limit})` });
      }
    }
  });

/** An ISO 8601 duration as Knative reads a delivery's `backoffDelay`: `PT0.2S`, `PT1S`, `PT1M30S`. */
const isoDuration = z.string().regex(/^PT(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$/, 'must be an ISO 8601 duration such as PT0.2S, PT1S or PT1M');

/** An ISO 8601 duration of `isoDuration`'s form, in milliseconds. */
export function isoDurationMs(d: string): number {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(d);
  if (!m) throw new InvalidArgument(`not an ISO 8601 duration such as PT0.2S: ${JSON.stringify(d)}`);
  // Whole milliseconds (timers take no fractions: PT1.001S is 1000.999…).
  return Math.round((Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000);
}

/**
 * A Trigger's delivery (Knative's DeliverySpec): it replaces the Broker's whole delivery (its
 * config-br-defaults: 10 retries, exponential from PT0.2S), so a retry left out is none.
 */
const DeliverySchema = z
  .object({
    /** Retries after the first attempt, before the event goes to the dead-letter sink (or is dropped). */
    retry: z.number().int().min(0).max(1000).optional(),
    backoffPolicy: z.enum(['exponential', 'linear']).optional(),
    /** The first retry's wait; exponential doubles it each time, linear adds it. */
    backoffDelay: isoDuration.optional(),
    /** How long one attempt may take before it counts as failed (and is retried); Knative's `delivery-timeout` feature. */
    timeout: isoDuration
      .refine((d) => isoDurationMs(d) >= 1, 'must be at least a millisecond')
      .refine((d) => isoDurationMs(d) <= MAX_TIMER_MS, 'must be at most 596 hours (a timer’s limit, 2^31−1 ms)')
      .optional(),
    /** Where an event goes when its delivery failed for good: another function (its Knative Service), or a URI. */
    deadLetterSink: z.union([z.object({ function: dnsLabel }).strict(), z.object({ uri: z.string().url() }).strict()]).optional(),
  })
  .strict();

/**
 * One of Knative's SubscriptionsAPI filter expressions (a Trigger's `spec.filters[]`): exactly one
 * dialect. `exact`, `prefix` and `suffix` compare one attribute's string value (case-sensitive; a
 * missing attribute does not match); `all` and `any` hold further filters, `not` one; `cesql` is a
 * CloudEvents SQL expression that must be true (functions/cesql.ts).
 */
export type WhereFilter =
  | { exact: Record<string, string> }
  | { prefix: Record<string, string> }
  | { suffix: Record<string, string> }
  | { all: WhereFilter[] }
  | { any: WhereFilter[] }
  | { not: WhereFilter }
  | { cesql: string };

export const WHERE_DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'cesql'] as const;
/** Deepest nesting of all/any/not a definition takes (the Broker recurses per event). */
export const MAX_WHERE_DEPTH = 16;
/** An attribute name as Knative's Trigger webhook takes it: lower-case letters and digits, starting with a letter. */
const ATTRIBUTE_NAME = /^[a-z][a-z0-9]*$/;

/** Checks a filter as Knative's webhook does (ValidateSubscriptionAPIFilter), with a cesql parsed now rather than per event. */
function checkWhere(f: unknown, path: Array<string | number>, ctx: z.RefinementCtx, depth: number): void {
  const issue = (message: string, at: Array<string | number> = path) => ctx.addIssue({ code: 'custom', path: at, message });
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return issue(`expected one of { ${WHERE_DIALECTS.join(' }, { ')} }`);
  const keys = Object.keys(f);
  const unknown = keys.filter((k) => !(WHERE_DIALECTS as readonly string[]).includes(k));
  if (unknown.length > 0) return issue(`unknown dialect ${unknown.join(', ')}: one of ${WHERE_DIALECTS.join(', ')}`);
  if (keys.length !== 1) return issue(keys.length === 0 ? `empty: give one of ${WHERE_DIALECTS.join(', ')}` : `one dialect per filter, not ${keys.join(' and ')}: list them apart (all must match) or in all / any`);
  const dialect = keys[0]!;
  const value = (f as Record<string, unknown>)[dialect];
  const at = [...path, dialect];
  if (depth > MAX_WHERE_DEPTH && (dialect === 'all' || dialect === 'any' || dialect === 'not')) return issue(`nested deeper than ${MAX_WHERE_DEPTH}`, at);
  switch (dialect) {
    case 'exact':
    case 'prefix':
    case 'suffix': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return issue(`expected { attribute: 'value' }`, at);
      const entries = Object.entries(value);
      // Knative's webhook: one attribute per dialect map (ValidateSingleAttributeMap); the value must not be empty.
      if (entries.length !== 1) return issue(`one attribute per ${dialect} filter, not ${entries.length}: give each its own entry (all must match)`, at);
      const [name, v] = entries[0]!;
      if (!ATTRIBUTE_NAME.test(name)) issue('must be a CloudEvents attribute name: lower-case letters and digits, starting with a letter', [...at, name]);
      if (typeof v !== 'string' || v === '') issue('must be a non-empty string', [...at, name]);
      return;
    }
    case 'all':
    case 'any':
      if (!Array.isArray(value) || value.length === 0) return issue('expected a non-empty list of filters', at);
      value.forEach((g, i) => checkWhere(g, [...at, i], ctx, depth + 1));
      return;
    case 'not':
      return checkWhere(value, at, ctx, depth + 1);
    default:
      if (typeof value !== 'string' || value.trim() === '') return issue('expected a CloudEvents SQL expression', at);
      try {
        parseCesqlFilter(value);
      } catch (err) {
        if (!(err instanceof CesqlSyntaxError)) throw err;
        issue(err.message, at);
      }
  }
}

const WhereSchema = z
  .array(z.custom<WhereFilter>(() => true))
  .min(1, 'give at least one filter, or leave where out')
  .max(100)
  .superRefine((list, ctx) => list.forEach((f, i) => checkWhere(f, [i], ctx, 1)));

const TriggerSchema = z
  .object({
    /** Suffix of the Trigger name: `<function>-<name>`. */
    name: dnsLabel,
    broker: dnsLabel.default('default'),
    /** Exact-match CloudEvent attribute filters, e.g. `{ type: 'io.kinfer.inference.request' }`. */
    filters: z.record(z.string().regex(/^[a-z0-9]{1,20}$/, 'must be a CloudEvents attribute name'), z.string()).default({}),
    /**
     * Knative's SubscriptionsAPI filters (the Trigger's `spec.filters`, Eventing 1.12+): all must
     * match, e.g. `[{ prefix: { type: 'io.kinfer.' } }, { cesql: "INT(priority) > 3" }]`. Not named
     * `filters`, which is the exact-match map above (Knative's `filter.attributes`); and as Knative
     * ignores that map once `spec.filters` is set, a Trigger takes one or the other.
     */
    where: WhereSchema.optional(),
    delivery: DeliverySchema.optional(),
  })
  .strict()
  .refine((t) => !(t.where && Object.keys(t.filters).length > 0), {
    message: "give filters or where, not both: Knative ignores a Trigger's filter.attributes once spec.filters is set; put the exact matches in where as { exact: { attribute: 'value' } }",
    path: ['where'],
  });

export const FunctionSpec = z
  .object({
    name: dnsLabel,
    description: z.string().max(200).optional(),
    /** `MULTI_MODEL_SERVER=true`: starts empty, models come through the repository API / TrainedModels. */
    multiModel: z.boolean().default(false),
    /**
     * What the Knative port speaks: `v2` (REST: v2, V1, CloudEvents) or `grpc-v2` (KServe's name:
     * inference.GRPCInferenceService over h2c; REST stays on 8080 inside the pod).
     */
    protocol: z.enum(['v2', 'grpc-v2']).default('v2'),
    model: ModelSchema.optional(),
    backend: BackendSchema.prefault({}),
    batching: BatchingSchema.optional(),
    responseCache: ResponseCacheSchema.optional(),
    payloadLogging: PayloadLoggingSchema.optional(),
    sequenceBatching: SequenceBatchingSchema.optional(),
    scaling: ScalingSchema.prefault({}),
    resources: ResourcesSchema.prefault({}),
    image: z.string().min(1).default(DEFAULT_IMAGE),
    /** Env of the server container: literal values, or `{ secretKeyRef }` / `{ configMapKeyRef }` (credentials stay in Secrets). */
    env: z.record(envName, envValue).default({}),
    /** Whole Secrets or ConfigMaps as env, after `env` (a name in both takes `env`'s value, as Kubernetes does). */
    envFrom: z.array(envSource).max(20).default([]),
    /**
     * The pod's Kubernetes ServiceAccount: workload identity (GKE, EKS IRSA, AKS) for storage
     * credentials, and, under KServe, the account whose annotated Secrets its agent uses for s3:// and gs://.
     */
    serviceAccountName: objectName.optional(),
    triggers: z.array(TriggerSchema).default([]),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (!f.multiModel && !f.model) ctx.addIssue({ code: 'custom', path: ['model'], message: 'required unless multiModel is true' });
    if (!f.multiModel && f.model && !f.model.storageUri)
      ctx.addIssue({ code: 'custom', path: ['model', 'storageUri'], message: 'required unless multiModel is true' });
    if (f.multiModel && f.model) ctx.addIssue({ code: 'custom', path: ['model'], message: 'a multi-model function starts empty: omit model' });
    if (f.protocol === 'grpc-v2' && f.triggers.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['triggers'], message: 'a grpc-v2 function serves gRPC on its Knative port; triggers deliver CloudEvents over HTTP there: use protocol v2' });
    }
    for (const k of ['KINFER_GRPC_TLS_CERT', 'KINFER_GRPC_TLS_KEY', 'KINFER_GRPC_TLS_CLIENT_CA']) {
      if (f.env[k] !== undefined) {
        const why = f.protocol === 'grpc-v2' ? 'Knative speaks h2c (cleartext) to a grpc-v2 function, and its gRPC probes cannot do TLS' : 'a v2 function serves no gRPC port';
        ctx.addIssue({ code: 'custom', path: ['env', k], message: `${why}: TLS belongs to the ingress or the mesh` });
      }
    }
    if (f.sequenceBatching) checkStateful(f, ctx);
    for (const k of Object.keys(f.env))
      if (RESERVED_ENV.includes(k)) ctx.addIssue({ code: 'custom', path: ['env', k], message: `${k} is set by the generator or by Knative` });
    const names = new Set<string>();
    for (const [i, t] of f.triggers.entries()) {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: ['triggers', i, 'name'], message: `duplicate trigger name ${t.name}` });
      names.add(t.name);
    }
  });

/**
 * A stateful function: one replica (Knative routes without session affinity, so the requests of a
 * sequence would reach replicas that do not hold its state), batching only by max batch size (the
 * window is the strategy's), and a sequence_batching the server's parser takes.
 */
function checkStateful(f: { multiModel: boolean; model?: { name: string }; batching?: z.output<typeof BatchingSchema>; responseCache?: unknown; sequenceBatching?: Record<string, unknown>; scaling: { maxScale: number } }, ctx: z.RefinementCtx): void {
  if (f.multiModel) {
    ctx.addIssue({ code: 'custom', path: ['sequenceBatching'], message: "a multi-model function's models bring their own config: put sequence_batching in the model's config.pbtxt" });
    return;
  }
  if (f.scaling.maxScale !== 1) {
    ctx.addIssue({ code: 'custom', path: ['scaling', 'maxScale'], message: 'a stateful function (sequenceBatching) needs maxScale: 1: Knative routes requests without session affinity, so the requests of a sequence would reach replicas that do not hold its state' });
  }
  const b = f.batching;
  if (b && (b.maxQueueDelayMicroseconds > 0 || b.preferredBatchSizes.length > 0 || b.policy !== BATCH_POLICIES[0])) {
    ctx.addIssue({ code: 'custom', path: ['batching'], message: "a stateful function batches across sequences under sequenceBatching's strategy (direct or oldest, with their max_queue_delay_microseconds): give batching only maxBatchSize" });
  }
  const config = { max_batch_size: b?.maxBatchSize ?? 0, sequence_batching: f.sequenceBatching, ...(f.responseCache ? { response_cache: { enable: true } } : {}) };
  try {
    const parsed = parseModelConfig(JSON.stringify(config), 'sequenceBatching.json', f.model?.name ?? 'model');
    if (parsed.unknownFields) ctx.addIssue({ code: 'custom', path: ['sequenceBatching'], message: `unknown fields: ${parsed.unknownFields.join(', ')}` });
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['sequenceBatching'], message: err instanceof Error ? err.message : String(err) });
  }
}

export type FunctionSpecInput = z.input<typeof FunctionSpec>;
export type FunctionSpec = z.output<typeof FunctionSpec>;

/** Lifecycle hooks as in Knative's Node functions; the server calls them (see runtime/server). */
export interface FunctionHooks {
  /** After the model loaded, before readiness turns true. */
  init?: () => void | Promise<void>;
  /** After SIGTERM drained in-flight requests. */
  shutdown?: () => void | Promise<void>;
  /** Extra liveness check; false → 503 on `/v2/health/live`. */
  liveness?: () => boolean | Promise<boolean>;
  /** Extra readiness check; false → 503 on `/v2/health/ready`. */
  readiness?: () => boolean | Promise<boolean>;
}

export interface FunctionDefinition {
  readonly kind: 'kinfer.function';
  readonly spec: FunctionSpec;
  readonly hooks: FunctionHooks;
}

/** Validate a definition; a mistake throws InvalidArgument naming the field path. */
export function defineFunction(input: FunctionSpecInput, hooks: FunctionHooks = {}): FunctionDefinition {
  return { kind: 'kinfer.function', spec: parseFunctionSpec(input), hooks };
}

export function parseFunctionSpec(input: unknown, source = 'function definition'): FunctionSpec {
  const r = FunctionSpec.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues
      .map((i) => {
        // Record-key issues carry the key rule's own message one level down.
        const inner = (i as { issues?: Array<{ message: string }> }).issues?.map((n) => n.message).join(', ');
        return `${i.path.join('.') || '(root)'}: ${i.message}${inner ? ` (${inner})` : ''}`;
      })
      .join('; ');
    throw new InvalidArgument(`${source}: ${issues}`);
  }
  return r.data;
}

export function isFunctionDefinition(value: unknown): value is FunctionDefinition {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'kinfer.function';
}

/** The autoscaling target: given, or derived from the batch the model runs at once (batch size × instances). */
export function scalingTarget(spec: FunctionSpec): number {
  if (spec.scaling.target !== undefined) return spec.scaling.target;
  if (spec.scaling.metric === 'rps') return 100;
  return Math.max(1, spec.batching?.maxBatchSize ?? spec.backend.batchSize ?? 1) * spec.backend.instances;
}
