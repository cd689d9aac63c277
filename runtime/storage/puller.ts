/**
 * @module storage/puller
 * Adapts `pull` to the repository's Puller: storage URI + destination → the
 * folder that holds the model.
 */
import type { Logger } from 'pino';
import type { Puller } from '../repository/model-repository.js';
import { pull } from './pull.js';

export function storagePuller(opts: { cacheDir?: string; logger?: Logger; env?: NodeJS.ProcessEnv }): Puller {
  return async (uri, dest, signal) => {
    const result = await pull(uri, { dest, cacheDir: opts.cacheDir, logger: opts.logger, env: opts.env, signal });
    return result.dir;
  };
}
