/**
 * @module storage/puller
 * Adapts `pull` to the repository's Puller: storage URI + destination → the
 * folder that holds the model, with what it replaced kept until the load of
 * the new files commits (removed) or rolls back (put back).
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Puller } from '../repository/model-repository.js';
import { pull, restorePrevious } from './pull.js';

export function storagePuller(opts: { cacheDir?: string; cacheMaxBytes?: number; logger?: Logger; env?: NodeJS.ProcessEnv }): Puller {
  return async (uri, dest, signal) => {
    const result = await pull(uri, { dest, cacheDir: opts.cacheDir, cacheMaxBytes: opts.cacheMaxBytes, logger: opts.logger, env: opts.env, signal, keepPrevious: true });
    const previous = result.previous;
    return {
      dir: result.dir,
      commit: async () => {
        if (previous) await rm(previous, { recursive: true, force: true });
      },
      rollback: async () => {
        if (previous) await restorePrevious(dest, previous);
        // Nothing was there before: the files that failed to load go, so a restart does not retry them.
        else if (result.dir === path.resolve(dest)) await rm(result.dir, { recursive: true, force: true });
      },
    };
  };
}
