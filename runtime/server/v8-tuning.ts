/**
 * @module server/v8-tuning
 * V8's tier-up budget for a serving process: the bytecode a function runs
 * before TurboFan optimises it, an eighth of Node 20's default (67584).
 *
 * A model server at c=1 runs each function of its request path ~100 times a
 * second, so at the default the path stayed in V8's baseline tier for
 * minutes; optimised code is smaller and touches fewer cache lines, which
 * matters most right after a model run has flushed the core's caches. Set
 * once the server is ready: set before startup, it optimised startup code
 * that runs once (spawn → ready +38 ms with ocr-det). README, Performance fixes.
 */
import { setFlagsFromString } from 'node:v8';

export const INTERRUPT_BUDGET = 8192;

/**
 * Lowers the budget unless the command line or NODE_OPTIONS sets
 * `--interrupt-budget` itself, or this is the build's code-cache training run
 * (`KINFER_WRITE_CODE_CACHE=1`, cli/code-cache.cts): V8 checks a cache against
 * the flags it was written under, and a server starts with the defaults.
 * Returns the flags it set.
 */
export function tuneV8ForServing(
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const given = execArgv.some((a) => a.startsWith('--interrupt-budget=')) || (env.NODE_OPTIONS ?? '').includes('--interrupt-budget=');
  if (given || env.KINFER_WRITE_CODE_CACHE === '1') return [];
  const flag = `--interrupt-budget=${INTERRUPT_BUDGET}`;
  setFlagsFromString(flag);
  return [flag];
}
