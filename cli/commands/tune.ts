/**
 * @module cli/commands/tune
 * `kinfer tune <model>`: measures a served model at rising concurrency (1, 2, 4, ... closed-loop
 * callers, each for a few seconds) and derives the function's Knative concurrency target from
 * the measurement: the knee, the smallest concurrency that reaches 90% of the best throughput.
 * Past it more concurrent requests only queue in the replica (latency grows, throughput does
 * not), so that is how many one replica should be given before Knative adds another. Run it
 * against one replica (`kinfer serve` locally, or a function with maxScale 1), with inputs of
 * the size clients send.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { InferInput, KinferClient } from '../../client/index.js';
import { allocate, isDatatype } from '../../runtime/core/datatypes.js';
import { parseInputSpec } from './infer.js';
import { collect, makeClient, positiveInt, runVerb, UsageError, withConnection, type ConnectionFlags } from './common.js';

/** Share of the best throughput that counts as reached (the knee). */
const KNEE_SHARE = 0.9;
/** A step that adds less than this over the best so far does not count as growth. */
const GROWTH = 1.05;

export interface TuneStep {
  concurrency: number;
  requests: number;
  errors: number;
  /** The first failure's message, when there were any. */
  firstError?: string;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
}

interface TuneFlags extends ConnectionFlags {
  input?: string[];
  maxConcurrency: number;
  seconds: number;
  modelVersion?: string;
}

export function tuneCommand(): Command {
  const cmd = new Command('tune')
    .description("measure a model at rising concurrency and derive its Knative concurrency target (scaling.target)")
    .argument('<model>', 'model name')
    .option('-i, --input <spec>', 'an input as for `kinfer infer` (repeatable); default: zeros of the shapes in the metadata', collect)
    .option('--max-concurrency <n>', 'highest concurrency tried (powers of two up to it)', positiveInt, 64)
    .option('--seconds <s>', 'seconds per concurrency step', stepSeconds, 3)
    .option('--model-version <v>', 'model version');
  withConnection(cmd);
  return cmd.action(async (model: string, flags: TuneFlags) => {
    await runVerb('tune', flags, async (out) => {
      // No retries: a refused request (queue full) is the measurement's signal, not something to wait out.
      const client = makeClient(flags, { retries: 0 });
      try {
        const config = await client.modelConfig(model, { version: flags.modelVersion }).catch(() => undefined);
        if ((config?.response_cache as { enable?: boolean } | undefined)?.enable) {
          throw new Error(`model '${model}' enables the response cache: every repeated request would be answered from it, so this would measure the cache; load it with a config without response_cache`);
        }
        const inputs = flags.input?.length ? await Promise.all(flags.input.map(parseInputSpec)) : await zeroInputs(client, model, flags.modelVersion);
        // One request first: a model that refuses the inputs fails here, not as errors at every step.
        await client.infer(model, inputs, { version: flags.modelVersion });
        const steps: TuneStep[] = [];
        out.line(['concurrency', 'req/s', 'p50 ms', 'p99 ms', 'errors'].join('\t'));
        for (let c = 1; c <= flags.maxConcurrency; c *= 2) {
          const step = await measure(client, model, inputs, c, flags.seconds * 1000, flags.modelVersion);
          steps.push(step);
          out.line([c, step.throughput.toFixed(1), step.p50Ms.toFixed(2), step.p99Ms.toFixed(2), step.errors].join('\t'));
          if (step.errors > 0 || saturated(steps)) break;
        }
        if (steps[0]!.requests === 0) {
          throw new Error(`every request of the first step failed (${steps[0]!.firstError ?? 'no answer'}): no target can be derived`);
        }
        const knee = kneeOf(steps);
        out.data({ model, steps, knee, target: knee });
        out.line(`knee: ${knee} concurrent requests reach ${Math.round(KNEE_SHARE * 100)}% of the best throughput (${Math.max(...steps.map((s) => s.throughput)).toFixed(1)} req/s)`);
        out.line(`function definition: scaling: { metric: 'concurrency', target: ${knee} }`);
        out.line('(Knative keeps replicas at 70% of the target by default, container-concurrency-target-percentage, which leaves room for bursts)');
        const failed = steps.find((s) => s.errors > 0);
        if (failed) out.line(`stopped at concurrency ${failed.concurrency}: ${failed.errors} requests failed (queue full or timeouts); the steps before it are what counts`);
      } finally {
        client.close();
      }
    });
  });
}

/** Throughput stopped growing: the last two steps added less than 5% over the best before them. */
export function saturated(steps: readonly TuneStep[]): boolean {
  if (steps.length < 3) return false;
  const best = Math.max(...steps.slice(0, -2).map((s) => s.throughput));
  return steps.slice(-2).every((s) => s.throughput < best * GROWTH);
}

/** The smallest concurrency whose throughput reaches KNEE_SHARE of the best (steps without errors). */
export function kneeOf(steps: readonly TuneStep[]): number {
  const clean = steps.filter((s) => s.errors === 0);
  const usable = clean.length ? clean : steps;
  const best = Math.max(...usable.map((s) => s.throughput));
  return usable.find((s) => s.throughput >= best * KNEE_SHARE)!.concurrency;
}

/** `concurrency` closed-loop callers for `ms`: each sends its next request when the last answers. */
async function measure(client: KinferClient, model: string, inputs: InferInput[], concurrency: number, ms: number, version?: string): Promise<TuneStep> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + ms;
  const caller = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await client.infer(model, inputs, { version });
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        // A refusal answers at once: do not spin on it.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  // Nearest rank: the smallest latency with at least q of them at or below it.
  const at = (q: number) => (latencies.length ? latencies[Math.max(0, Math.ceil(q * latencies.length) - 1)]! : NaN);
  const step: TuneStep = { concurrency, requests: latencies.length, errors, throughput: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99) };
  if (firstError !== undefined) step.firstError = firstError;
  return step;
}

/** Zeros of each input's shape from the metadata, the batch dim 1; a variable dim elsewhere needs -i. */
export async function zeroInputs(client: KinferClient, model: string, version?: string): Promise<InferInput[]> {
  const meta = await client.modelMetadata(model, { version });
  const specs = meta.inputs ?? [];
  if (specs.length === 0) throw new UsageError(`model '${model}' declares no inputs (it takes any): give them with -i`);
  return specs.map((s) => {
    const shape = s.shape.map((d, i) => (d >= 0 ? d : i === 0 ? 1 : -1));
    if (shape.includes(-1)) throw new UsageError(`input '${s.name}' has variable dims [${s.shape.join(',')}]: give it with -i (the size clients send)`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!isDatatype(s.datatype)) throw new UsageError(`input '${s.name}' is ${s.datatype}, which kinfer cannot make zeros of: give it with -i`);
    const datatype = s.datatype;
    const data = datatype === 'BYTES' ? Array.from({ length: count }, () => '') : datatype === 'FP16' ? new Uint16Array(count) : allocate(datatype, count);
    return { name: s.name, datatype, shape, data } as InferInput;
  });
}

/** Seconds per step: more than 0 (fractions allowed), at most 600. */
function stepSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 600) throw new InvalidArgumentError(`expected seconds above 0 and at most 600, got '${value}'`);
  return n;
}
