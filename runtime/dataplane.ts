/**
 * @module dataplane
 * The verbs every transport calls: live, ready, metadata, infer, and the
 * repository operations. Transports decode into `InferRequest` and encode the
 * `InferResponse`; everything between (validation against the model's
 * metadata, batching, the backend) happens here and below.
 */
import type { ModelMetadata } from './backends/backend.js';
import { checkClassifiable, classificationCount, classify } from './core/classification.js';
import { InvalidArgument, Unsupported } from './core/errors.js';
import type { InferContext, InferRequest, InferResponse } from './core/infer.js';
import { checkTensor, shapeMatches, type Tensor, type TensorSpec } from './core/tensor.js';
import { checkModelName, type IndexEntry, type ModelRepository } from './repository/model-repository.js';
import type { ModelHandle } from './repository/model-handle.js';
import { versionPolicyJson } from './repository/version-policy.js';
import { sequenceBatchingJson } from './repository/sequence-plan.js';
import { tritonType } from './core/datatypes.js';
import type { OverrideFiles } from './repository/override-files.js';
import type { QueuePolicy } from './repository/model-config.js';
import type { Parameters } from './core/tensor.js';
import type { BatchResult } from './batching/batcher.js';
import { namesSequence, sequenceFlags } from './batching/sequence-batcher.js';
import { failureReasonOf, type ModelStat } from './observability/statistics.js';
import { rejectReasonOf } from './batching/queue.js';
import type { ResponseCache } from './cache/response-cache.js';

export const SERVER_NAME = 'kinfer';
export const SERVER_VERSION = '0.1.0';
export const EXTENSIONS = ['binary_tensor_data', 'classification', 'model_configuration', 'model_repository', 'model_repository(unload_dependents)', 'statistics', 'trace', 'logging', 'cloudevents', 'hardware'];

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** Triton's `ModelConfig` as its HTTP API writes it (snake_case, numeric dims), the fields kinfer has. */
export interface TritonModelConfig {
  name: string;
  platform: string;
  version_policy: Record<string, unknown>;
  max_batch_size: number;
  input: { name: string; data_type: string; format: string; dims: number[]; reshape?: { shape: number[] }; optional?: boolean }[];
  output: { name: string; data_type: string; dims: number[]; reshape?: { shape: number[] }; label_filename?: string }[];
  instance_group: { name: string; kind: string; count: number }[];
  parameters: Record<string, { string_value: string }>;
  dynamic_batching?: {
    preferred_batch_size: number[];
    max_queue_delay_microseconds: number;
    default_queue_policy?: QueuePolicyJson;
    priority_levels?: number;
    default_priority_level?: number;
    priority_queue_policy?: Record<string, QueuePolicyJson>;
  };
  response_cache?: { enable: boolean };
  sequence_batching?: Record<string, unknown>;
  ensemble_scheduling?: { step: { model_name: string; model_version: number; input_map: Record<string, string>; output_map: Record<string, string> }[] };
}


export interface InferOutcome {
  response: InferResponse;
  batch: BatchResult;
}

/** Answers readiness beyond "models loaded": startup done, not draining, required models present. */
export interface ReadinessGate {
  live(): boolean | Promise<boolean>;
  ready(): boolean | Promise<boolean>;
}

/** How deep cacheScopeOf follows ensembles of ensembles; the repository refuses cycles, this only bounds the walk. */
const MAX_ENSEMBLE_DEPTH = 64;

export class DataPlane {
  constructor(
    readonly repository: ModelRepository,
    private readonly gate: ReadinessGate,
    /** `sharedMemory`: the server takes tensors in client shared memory (listed as an extension). */
    private readonly defaults: { requestTimeoutMs: number; sharedMemory?: boolean; modelControlOff?: boolean } = { requestTimeoutMs: 0 },
    /** Triton's response cache (absent: off), for models whose config enables it. */
    private readonly cache?: ResponseCache,
  ) {}

  async live(): Promise<boolean> {
    return this.gate.live();
  }

  async ready(): Promise<boolean> {
    return this.gate.ready();
  }

  serverMetadata(): ServerMetadata {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: this.defaults.sharedMemory ? [...EXTENSIONS, 'system_shared_memory'] : EXTENSIONS };
  }

  modelNames(): string[] {
    return this.repository.loadedNames();
  }

  /** `versions`: the one asked for, or, without one, every version serving (as Triton); the tensors are that version's (the highest without one). */
  modelMetadata(name: string, version?: string): ModelMetadataResponse {
    const handle = this.repository.get(checkModelName(name), version);
    const m = handle.metadata;
    const versions = version ? [handle.version] : this.repository.versions(handle.name);
    return { name: handle.name, versions, platform: m.platform, inputs: m.inputs, outputs: m.outputs };
  }

  /**
   * The serving version's configuration in Triton's JSON form (`GET .../config`, the
   * model_configuration extension): what the config file said, completed from the model
   * file as Triton completes it, so tools such as perf_analyzer read `max_batch_size`,
   * `input` and `output` from it.
   */
  modelConfig(name: string, version?: string): TritonModelConfig {
    const h = this.repository.get(checkModelName(name), version);
    const c = h.config;
    const batch = batchesDim0(h) ? c.maxBatchSize : 0;
    // Metadata shapes carry the batch dim; Triton's config dims leave it out when the model batches.
    const dims = (s: TensorSpec) => (batch > 0 ? s.shape.slice(1) : s.shape);
    const out: TritonModelConfig = {
      name: h.name,
      platform: c.platform ?? h.metadata.platform,
      version_policy: versionPolicyJson(c.versionPolicy),
      max_batch_size: batch,
      input: h.metadata.inputs.map((s) => {
        const reshape = c.reshape?.inputs[s.name];
        const optional = c.optionalInputs?.includes(s.name);
        return { name: s.name, data_type: tritonType(s.datatype), format: 'FORMAT_NONE', dims: dims(s), ...(reshape ? { reshape: { shape: reshape } } : {}), ...(optional ? { optional } : {}) };
      }),
      output: h.metadata.outputs.map((s) => {
        const label = c.outputLabelFiles?.[s.name];
        const reshape = c.reshape?.outputs[s.name];
        return { name: s.name, data_type: tritonType(s.datatype), dims: dims(s), ...(reshape ? { reshape: { shape: reshape } } : {}), ...(label ? { label_filename: label } : {}) };
      }),
      // An ensemble has no instances of its own.
      instance_group: c.ensemble ? [] : [{ name: h.name, kind: 'KIND_CPU', count: c.instanceCount }],
      parameters: Object.fromEntries(Object.entries(c.parameters).map(([k, v]) => [k, { string_value: v }])),
    };
    if (batch > 0 && c.dynamicBatching) {
      const d = c.dynamicBatching;
      out.dynamic_batching = { preferred_batch_size: d.preferredBatchSize, max_queue_delay_microseconds: d.maxQueueDelayMicroseconds };
      if (d.maxQueueSize > 0 || d.queueTimeout) out.dynamic_batching.default_queue_policy = queuePolicyJson({ maxQueueSize: d.maxQueueSize, ...d.queueTimeout });
      if (d.priority) {
        out.dynamic_batching.priority_levels = d.priority.levels;
        out.dynamic_batching.default_priority_level = d.priority.defaultLevel;
        const own = Object.entries(d.priority.policies);
        if (own.length > 0) out.dynamic_batching.priority_queue_policy = Object.fromEntries(own.map(([level, p]) => [level, queuePolicyJson(p)]));
      }
    }
    if (c.sequenceBatching) out.sequence_batching = sequenceBatchingJson(c.sequenceBatching);
    if (c.responseCache) out.response_cache = { enable: true };
    if (c.ensemble) {
      const step = c.ensemble.map((s) => ({ model_name: s.modelName, model_version: s.modelVersion ? Number(s.modelVersion) : -1, input_map: s.inputMap, output_map: s.outputMap }));
      out.ensemble_scheduling = { step };
    }
    return out;
  }

  /**
   * The serving version of `name` (and `version`), or NotFound / NotReady. Routes call it before
   * a client's model name becomes a metrics label, so unknown names cannot grow the series, and
   * label with the version it returns, which forgetModel removes on unload.
   */
  assertServing(name: string, version?: string): string {
    return this.repository.get(checkModelName(name), version).version;
  }

  /** True when the repository knows `name` (loading, serving or failed): a request for it is answered about it. */
  knows(name: string): boolean {
    return this.repository.has(name);
  }

  modelReady(name: string, version?: string): boolean {
    return this.repository.isReady(checkModelName(name), version);
  }

  /**
   * The serving version's declared inputs and whether it batches (dim 0 of each input is then
   * the batch dim), for transports that build tensors from the model's metadata (Triton's
   * generate extension). No inputs: the backend takes whatever it is sent (echo).
   */
  inputSpecs(name: string, version?: string): { inputs: readonly TensorSpec[]; batchable: boolean } {
    const h = this.repository.get(checkModelName(name), version);
    return { inputs: h.metadata.inputs, batchable: batchesDim0(h) };
  }

  /**
   * Spec of the model's single input, for the binary extension's raw-input mode. A batching
   * model's batch dim is 1 there ("treated as batch-1 request"), so the byte count can only
   * fill one other variable dim.
   */
  rawInputSpec(name: string, version?: string): TensorSpec | undefined {
    const h = this.repository.get(checkModelName(name), version);
    const inputs = h.metadata.inputs;
    if (inputs.length !== 1) return undefined;
    const spec = inputs[0]!;
    return batchesDim0(h) && spec.shape[0] === -1 ? { ...spec, shape: [1, ...spec.shape.slice(1)] } : spec;
  }

  /**
   * The response cache's scope for `handle`: its load, and for an ensemble the load of the model each step
   * would run now (nested ensembles too), so a reload or unload of a composing model misses the entries made
   * with the old one. Undefined when a step is not served: the request runs and the pipeline reports it.
   */
  private cacheScopeOf(handle: ModelHandle, depth: number): string | undefined {
    const steps = handle.config.ensemble;
    if (!steps) return handle.cacheScope;
    if (depth >= MAX_ENSEMBLE_DEPTH) return undefined;
    let scope = handle.cacheScope;
    for (const step of steps) {
      let inner: string | undefined;
      try {
        inner = this.cacheScopeOf(this.repository.get(step.modelName, step.modelVersion), depth + 1);
      } catch {
        return undefined;
      }
      if (inner === undefined) return undefined;
      scope += `\0${inner}`;
    }
    return scope;
  }

  /**
   * `clientSignal`: for transports whose abort signal costs something to make
   * (an AbortController per HTTP request): called only when the request can
   * actually wait in a queue. A batcher that would start it at once (in the
   * same tick: see `Batcher.startsAtOnce`) needs none: it runs alone, and a
   * running batch is not cancelled. `ctx.signal`, when given, wins.
   */
  async infer(request: InferRequest, ctx: InferContext = {}, clientSignal?: () => AbortSignal): Promise<InferOutcome> {
    const handle = this.repository.get(checkModelName(request.modelName), request.modelVersion);
    const started = performance.now();
    // One async function for the whole request (no inner one): a promise less per request on the hot path.
    try {
      validateInputs(request.inputs, handle.metadata, handle.config.optionalInputs);
      const outputNames = (request.outputs ?? []).map((o) => o.name);
      validateOutputNames(outputNames, handle.metadata);
      const classes = classificationsOf(request, handle.metadata);
      const deadline = deadlineOf(request.parameters, ctx, this.defaults.requestTimeoutMs);
      const priority = priorityOf(request.parameters);
      // An ensemble passes a request's sequence on to its steps (Triton's id 0 or "" is none); its
      // answer then depends on a stateful step's state, not only on its inputs: no cache.
      const sequence = handle.config.sequenceBatching || (handle.config.ensemble && namesSequence(request.parameters)) ? sequenceFlags(request.parameters, handle.name) : undefined;
      const cache = handle.config.responseCache && !sequence ? this.cache : undefined;
      ctx.admitted?.();
      let key: string | undefined;
      let lookupMs = 0;
      let batch: BatchResult | undefined;
      const scope = cache && this.cacheScopeOf(handle, 0);
      if (cache && scope) {
        const t0 = performance.now();
        key = cache.key(scope, request.inputs, outputNames);
        const hit = cache.get(key);
        lookupMs = performance.now() - t0;
        if (hit) {
          handle.statistics.cacheHit(lookupMs);
          // Answered without a batch: batchSize 0.
          batch = { outputs: hit, batchSize: 0, queueMs: 0, computeMs: 0 };
        }
      }
      if (!batch) {
        const batcher = handle.batcher;
        batch = await batcher.enqueue({
          inputs: request.inputs,
          outputNames,
          deadline,
          // A request in a sequence may wait behind the sequence's previous one (through an ensemble too): it needs the signal.
          signal: ctx.signal ?? (clientSignal && (!batcher.startsAtOnce || sequence) ? clientSignal() : undefined),
          sequence,
          priority,
        });
        if (cache && key) {
          const t0 = performance.now();
          cache.set(key, handle.cacheScope, batch.outputs);
          handle.statistics.cacheMiss(lookupMs + performance.now() - t0);
        }
      }
      let outputs = outputNames.length ? pick(batch.outputs, outputNames) : batch.outputs;
      if (classes) {
        outputs = outputs.map((t) => {
          const n = classes.get(t.name);
          return n ? classify(t, n, batchesDim0(handle), handle.labels.get(t.name)) : t;
        });
      }
      const response: InferResponse = { modelName: handle.name, modelVersion: handle.version, outputs };
      if (request.id !== undefined) response.id = request.id;
      handle.statistics.succeeded(started, performance.now());
      return { response, batch };
    } catch (err) {
      handle.statistics.failed(failureReasonOf(rejectReasonOf(err)), started, performance.now());
      throw err;
    }
  }

  /**
   * Triton's statistics extension: every serving model version, every version of `name`, or
   * `name` at `version` (NotFound / NotReady as for metadata), each counted from its load.
   */
  modelStatistics(name?: string, version?: string): ModelStat[] {
    let handles = this.repository.loaded();
    if (name !== undefined) {
      const one = this.repository.get(checkModelName(name), version);
      handles = version ? [one] : handles.filter((h) => h.name === one.name);
    }
    return handles.map((h) => h.statistics.snapshot(h.name, h.version));
  }

  /** The repository index; with `readyOnly`, only models in state READY (the index body's `ready`). */
  async repositoryIndex(readyOnly = false): Promise<IndexEntry[]> {
    const index = await this.repository.index();
    return readyOnly ? index.filter((e) => e.state === 'READY') : index;
  }

  /** `files`: Triton's `file:` overrides, path in the model folder → contents. */
  async load(name: string, parameters?: Parameters, files?: OverrideFiles): Promise<void> {
    this.checkModelControl('load');
    await this.repository.load(name, parameters, files);
  }

  /** `unloadDependents`: Triton's `unload_dependents`: an ensemble's composing models that only ensembles loaded go too, unless another ensemble runs them (ModelRepository.unload). */
  async unload(name: string, opts: { unloadDependents?: boolean } = {}): Promise<void> {
    this.checkModelControl('unload');
    return this.repository.unload(name, opts);
  }

  /** Triton's `--model-control-mode none`: the models loaded at start are the models served. */
  private checkModelControl(verb: string): void {
    if (this.defaults.modelControlOff) throw new Unsupported(`model ${verb} is off: the server runs with --model-control-mode none (the models loaded at start are the ones served)`);
  }
}

/** Every input known, none missing but the `optional` ones, datatypes and shapes as the metadata says. */
export function validateInputs(inputs: Tensor[], meta: ModelMetadata, optional?: readonly string[]): void {
  const seen = new Set<string>();
  for (const t of inputs) {
    if (seen.has(t.name)) throw new InvalidArgument(`input '${t.name}' is given more than once`);
    seen.add(t.name);
    checkTensor(t);
  }
  if (meta.inputs.length === 0) return; // the backend accepts any inputs (echo)
  for (const t of inputs) {
    const spec = meta.inputs.find((s) => s.name === t.name);
    if (!spec) {
      throw new InvalidArgument(
        `unknown input '${t.name}' (model inputs: ${meta.inputs.map((s) => s.name).join(', ')})`,
      );
    }
    if (spec.datatype !== t.datatype) {
      throw new InvalidArgument(`input '${t.name}': expected datatype ${spec.datatype}, got ${t.datatype}`);
    }
    if (!shapeMatches(spec.shape, t.shape)) {
      throw new InvalidArgument(`input '${t.name}': expected shape [${spec.shape.join(',')}], got [${t.shape.join(',')}]`);
    }
  }
  for (const spec of meta.inputs) {
    if (!seen.has(spec.name) && !optional?.includes(spec.name)) throw new InvalidArgument(`missing input '${spec.name}'`);
  }
}

function validateOutputNames(names: string[], meta: ModelMetadata): void {
  if (meta.outputs.length === 0) return;
  for (const n of names) {
    if (!meta.outputs.some((o) => o.name === n)) {
      throw new InvalidArgument(`unknown output '${n}' (model outputs: ${meta.outputs.map((o) => o.name).join(', ')})`);
    }
  }
}

/** Requested outputs with `parameters.classification` > 0 → the count, checked before any compute. */
function classificationsOf(request: InferRequest, meta: ModelMetadata): Map<string, number> | undefined {
  let out: Map<string, number> | undefined;
  for (const o of request.outputs ?? []) {
    const n = classificationCount(o.name, o.parameters);
    if (n === 0) continue;
    const spec = meta.outputs.find((s) => s.name === o.name);
    if (spec) checkClassifiable(o.name, spec.datatype);
    (out ??= new Map()).set(o.name, n);
  }
  return out;
}

/**
 * Whether dim 0 of the model's tensors is the batch dim: the backend can batch and the config says so
 * (`max_batch_size` > 0). A model without a config whose dim 0 is variable reports max_batch_size 0 and
 * dims [-1, ...] in its config, so dim 0 is then a dim like any other.
 */
function batchesDim0(h: ModelHandle): boolean {
  return h.metadata.batchable && h.config.maxBatchSize > 0;
}

/** The outputs named, in that order; a Map, since echo answers as many outputs as a request sends inputs. */
function pick(outputs: Tensor[], names: string[]): Tensor[] {
  const byName = outputs.length > 8 ? new Map(outputs.map((o) => [o.name, o])) : undefined;
  return names.map((n) => {
    const t = byName ? byName.get(n) : outputs.find((o) => o.name === n);
    if (!t) throw new InvalidArgument(`unknown output '${n}' (outputs: ${outputs.map((o) => o.name).join(', ')})`);
    return t;
  });
}

/** Triton's `ModelQueuePolicy` in its JSON form; fields at their defaults left out, as Triton prints them. */
interface QueuePolicyJson {
  max_queue_size?: number;
  timeout_action?: 'REJECT' | 'DELAY';
  default_timeout_microseconds?: number;
  allow_timeout_override?: boolean;
}

function queuePolicyJson(p: Partial<QueuePolicy> & { maxQueueSize: number }): QueuePolicyJson {
  const out: QueuePolicyJson = {};
  if (p.maxQueueSize > 0) out.max_queue_size = p.maxQueueSize;
  if (p.action === 'delay') out.timeout_action = 'DELAY';
  if (p.defaultMicroseconds) out.default_timeout_microseconds = p.defaultMicroseconds;
  if (p.allowOverride) out.allow_timeout_override = true;
  return out;
}

/** Triton's request parameter `priority`: a level of the model's dynamic batcher (1 first; 0 is its default). */
function priorityOf(params: Parameters | undefined): number | undefined {
  const p = params?.priority;
  if (p === undefined) return undefined;
  if (typeof p !== 'number' || !Number.isSafeInteger(p) || p < 0) {
    throw new InvalidArgument(`parameters.priority: expected an integer ≥ 0 (1 is the first level, 0 the model's default), got ${JSON.stringify(p)}`);
  }
  return p;
}

/** Triton's request parameter `timeout` is in microseconds; the server default is in ms. */
function deadlineOf(params: Parameters | undefined, ctx: InferContext, defaultMs: number): number | undefined {
  const t = params?.timeout;
  // 0 is Triton's default: no timeout of the request's own.
  if (t !== undefined && t !== 0) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
      throw new InvalidArgument(`parameters.timeout: expected a number of microseconds ≥ 0 (0: none), got ${JSON.stringify(t)}`);
    }
    const d = performance.now() + t / 1000;
    return ctx.deadline === undefined ? d : Math.min(d, ctx.deadline);
  }
  if (ctx.deadline !== undefined) return ctx.deadline;
  return defaultMs > 0 ? performance.now() + defaultMs : undefined;
}
