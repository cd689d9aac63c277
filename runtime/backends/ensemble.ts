/**
 * @module backends/ensemble
 * Triton's ensemble models (platform `ensemble`): a pipeline of composing models
 * joined by named tensors (`ensemble_scheduling { step [...] }`). A request runs
 * each step as soon as the tensors it reads exist, several at once where the
 * graph allows, and answers once every step is done. A step is an internal
 * request to the composing model through the data plane (`StepRunner`): its
 * validation, batcher, cache and statistics, so composing models batch across
 * concurrent ensemble requests as Triton's do.
 *
 * @example
 * const backend = new EnsembleBackend((req) => dataplane.infer(req).then((o) => o.response));
 * const meta = await backend.load(files); // files.config.ensemble: the steps
 */
import {
  AlreadyExists,
  Cancelled,
  DeadlineExceeded,
  Internal,
  InvalidArgument,
  KinferError,
  PayloadTooLarge,
  ResourceExhausted,
  Unavailable,
  Unsupported,
} from '../core/errors.js';
import type { InferRequest, InferResponse } from '../core/infer.js';
import type { Parameters, Tensor, TensorSpec } from '../core/tensor.js';
import type { EnsembleStep, ModelConfig } from '../repository/model-config.js';
import type { Backend, ModelFiles, ModelMetadata, RunContext } from './backend.js';
import { sequenceParameters } from '../batching/sequence-batcher.js';
import { markRejected, rejectReasonOf } from '../batching/queue.js';

export const ENSEMBLE_PLATFORM = 'ensemble';
/**
 * Ensemble requests running at once per ensemble (its backend instances: each runs one request,
 * as every instance does). Past it requests wait in the ensemble's queue; Triton's scheduler is
 * unbounded, a bound keeps a burst from holding unbounded intermediate tensors.
 */
export const ENSEMBLE_CONCURRENCY = 256;

/** Runs one internal request on a composing model, within the ensemble request's deadline and signal. */
export type StepRunner = (request: InferRequest, run?: RunContext) => Promise<InferResponse>;

export function isEnsemble(config: ModelConfig): boolean {
  return config.platform?.trim().toLowerCase() === ENSEMBLE_PLATFORM;
}

/** A step with its place in the config (what errors name). */
export interface PlannedStep extends EnsembleStep {
  index: number;
}

/**
 * Checks an ensemble's graph and returns its steps in an order where every step comes after
 * the steps producing what it reads. InvalidArgument, naming the step or tensor, for: no steps,
 * undeclared inputs or outputs, a step without input_map or output_map, a step on the ensemble
 * itself, a tensor produced twice or overwriting an ensemble input, a tensor nothing produces,
 * an ensemble input nothing reads, an ensemble output nothing produces, and cycles.
 */
export function planEnsemble(config: ModelConfig): PlannedStep[] {
  const name = config.name;
  const fail = (msg: string): never => {
    throw new InvalidArgument(`ensemble '${name}': ${msg}`);
  };
  const steps = config.ensemble ?? [];
  if (steps.length === 0) fail('ensemble_scheduling has no step');
  if (config.inputs.length === 0 || config.outputs.length === 0) fail('an ensemble declares its input and output tensors in its config');
  if (config.dynamicBatching) fail('dynamic_batching does not apply to an ensemble; its composing models batch');
  const inputs = new Set(config.inputs.map((t) => t.name));
  const producer = new Map<string, number>();
  steps.forEach((s, i) => {
    const at = `step ${i} (model '${s.modelName}')`;
    if (s.modelName === name) fail(`${at}: a step cannot run the ensemble itself`);
    if (Object.keys(s.inputMap).length === 0) fail(`${at}: input_map is empty`);
    if (Object.keys(s.outputMap).length === 0) fail(`${at}: output_map is empty`);
    for (const tensor of Object.values(s.outputMap)) {
      if (inputs.has(tensor)) fail(`${at}: output_map writes '${tensor}', an ensemble input`);
      const other = producer.get(tensor);
      if (other !== undefined) fail(`tensor '${tensor}' is produced by step ${other} and step ${i}`);
      producer.set(tensor, i);
    }
  });
  const read = new Set(steps.flatMap((s) => Object.values(s.inputMap)));
  steps.forEach((s, i) => {
    for (const tensor of Object.values(s.inputMap)) {
      if (!inputs.has(tensor) && !producer.has(tensor)) fail(`step ${i} (model '${s.modelName}') reads '${tensor}', which is neither an ensemble input nor any step's output`);
    }
  });
  for (const t of inputs) if (!read.has(t)) fail(`input '${t}' is read by no step`);
  for (const t of config.outputs) if (!producer.has(t.name)) fail(`output '${t.name}' is produced by no step`);

  // Kahn's order: a step is ready once every tensor it reads is an input or already produced.
  const order: PlannedStep[] = [];
  const available = new Set(inputs);
  const left = new Set(steps.keys());
  while (left.size > 0) {
    const ready = [...left].filter((i) => Object.values(steps[i]!.inputMap).every((t) => available.has(t)));
    if (ready.length === 0) fail(`steps ${[...left].join(', ')} never run: they wait on a cycle of each other's outputs`);
    for (const i of ready) {
      left.delete(i);
      order.push({ ...steps[i]!, index: i });
      for (const t of Object.values(steps[i]!.outputMap)) available.add(t);
    }
  }
  return order;
}

export class EnsembleBackend implements Backend {
  private name = '';
  private steps: PlannedStep[] = [];
  private outputs: string[] = [];

  /** `planned`: the steps planEnsemble made for this config, shared by an ensemble's request slots (planned here when absent). */
  constructor(
    private readonly run: StepRunner,
    private readonly planned?: PlannedStep[],
  ) {}

  async load(files: ModelFiles): Promise<ModelMetadata> {
    const { config } = files;
    this.name = files.name;
    this.steps = this.planned ?? planEnsemble(config);
    this.outputs = config.outputs.map((t) => t.name);
    const batch = config.maxBatchSize > 0;
    const served = (t: TensorSpec): TensorSpec => ({ ...t, shape: batch ? [-1, ...t.shape] : [...t.shape] });
    return { platform: ENSEMBLE_PLATFORM, inputs: config.inputs.map(served), outputs: config.outputs.map(served), batchable: batch, maxBatchSize: config.maxBatchSize };
  }

  async infer(inputs: Tensor[], outputNames: readonly string[], ctx?: RunContext): Promise<Tensor[]> {
    const tensors = new Map<string, Promise<Tensor>>(inputs.map((t) => [t.name, Promise.resolve(t)]));
    const parameters = stepParameters(ctx);
    const runs: Promise<unknown>[] = [];
    // Planned order: each step's producers are registered before it.
    for (const step of this.steps) {
      const i = step.index;
      // An optional ensemble input the request left out reaches the step as left out (the step's config must take it as optional too).
      const reads = Object.entries(step.inputMap)
        .filter(([, tensor]) => tensors.has(tensor))
        .map(async ([own, tensor]) => ({ ...(await tensors.get(tensor)!), name: own }));
      const done = Promise.all(reads)
        .then((stepInputs) =>
          this.run({ modelName: step.modelName, modelVersion: step.modelVersion, inputs: stepInputs, outputs: Object.keys(step.outputMap).map((n) => ({ name: n })), ...(parameters ? { parameters } : {}) }, ctx),
        )
        .catch((err: unknown) => {
          // A producer's failure reaches its consumers too: name the step where it happened, once.
          throw stepErrors.has(err as object) ? err : inStep(err, this.name, i, step);
        });
      runs.push(done);
      for (const [own, tensor] of Object.entries(step.outputMap)) {
        const out = done.then((res) => {
          const t = res.outputs.find((o) => o.name === own);
          if (!t) throw new Internal(`ensemble '${this.name}' step ${i} (model '${step.modelName}') returned no output '${own}'`);
          return { ...t, name: tensor };
        });
        out.catch(() => undefined); // a failed step is reported through `runs`; its outputs must not reject unobserved
        tensors.set(tensor, out);
      }
    }
    // Answer once every step has finished, failed or not: this request's slot must not free while
    // its steps still run. The first failed step, in the order they were started, names the error.
    const failed = (await Promise.allSettled(runs)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const wanted = outputNames.length ? outputNames : this.outputs;
    return Promise.all(wanted.map((n) => tensors.get(n)!));
  }

  async unload(): Promise<void> {
    this.steps = [];
  }
}

/** What each step's request carries of the ensemble request's: its sequence and its priority (Triton's InitStep). */
function stepParameters(ctx: RunContext | undefined): Parameters | undefined {
  if (!ctx || (!ctx.sequence && ctx.priority === undefined)) return undefined;
  return { ...(ctx.sequence ? sequenceParameters(ctx.sequence) : {}), ...(ctx.priority !== undefined ? { priority: ctx.priority } : {}) };
}

/**
 * A step's error as the ensemble's: the same kind with the step named in front, except that a
 * composing model that is missing or not ready makes the ensemble unavailable (503), not absent.
 */
function inStep(err: unknown, ensemble: string, i: number, step: EnsembleStep): KinferError {
  const wrapped = wrap(err, ensemble, i, step);
  stepErrors.add(wrapped);
  // Why the step's batcher refused it (a full queue, a deadline, a client gone) is the ensemble's failure reason too.
  const reason = rejectReasonOf(err);
  if (reason) markRejected(wrapped, reason);
  return wrapped;
}

/** Errors `inStep` made: passed on unchanged by the steps downstream of the failed one. */
const stepErrors = new WeakSet<object>();

function wrap(err: unknown, ensemble: string, i: number, step: EnsembleStep): KinferError {
  const where = `ensemble '${ensemble}' step ${i} (model '${step.modelName}'${step.modelVersion ? ` version ${step.modelVersion}` : ''})`;
  if (!(err instanceof KinferError)) return new Internal(`${where}: ${err instanceof Error ? err.message : String(err)}`);
  const msg = `${where}: ${err.message}`;
  switch (err.code) {
    case 'NOT_FOUND':
    case 'NOT_READY':
      return new Unavailable(msg);
    case 'UNAVAILABLE':
      return new Unavailable(msg, (err as Unavailable).retryAfterSeconds);
    case 'RESOURCE_EXHAUSTED':
      return new ResourceExhausted(msg, (err as ResourceExhausted).retryAfterSeconds);
    case 'INVALID_ARGUMENT':
      return new InvalidArgument(msg);
    case 'ALREADY_EXISTS':
      return new AlreadyExists(msg);
    case 'PAYLOAD_TOO_LARGE':
      return new PayloadTooLarge(msg);
    case 'DEADLINE_EXCEEDED':
      return new DeadlineExceeded(msg);
    case 'CANCELLED':
      return new Cancelled(msg);
    case 'UNSUPPORTED':
      return new Unsupported(msg);
    case 'INTERNAL':
      return new Internal(msg);
  }
}
