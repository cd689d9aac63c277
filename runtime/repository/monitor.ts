/**
 * @module repository/monitor
 * `--repository-monitoring`: polls the repository folder, as Triton's POLL mode does:
 * loads model folders that appear, unloads those that disappear, and reloads a model
 * whose folder changed (a version folder added or removed, a model file replaced, the
 * config edited), with the parameters of its last load. A reload is transactional, so
 * files caught half-copied fail it and the previous versions keep serving until the
 * next change. Polling (as Triton's `--repository-poll-secs`) rather than fs.watch: it
 * behaves the same on every filesystem, including the network volumes models live on.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { listModelNames, modelFolderStamp } from './layout.js';
import type { ModelRepository } from './model-repository.js';

export interface RepositoryMonitor {
  /** Runs one poll now (tests, and the first poll). */
  poll(): Promise<void>;
  stop(): void;
}

/**
 * Stamps every model folder, runs `loadAll`, then polls every `intervalMs`: a change made after
 * the stamps, even while the models load, is seen at the first poll (at worst one reload too many).
 */
export async function monitorRepository(
  repo: ModelRepository,
  logger: Logger,
  intervalMs: number,
  loadAll: () => Promise<void>,
): Promise<RepositoryMonitor> {
  // Models this monitor saw in the folder: only those it unloads when they disappear.
  const seen = new Set<string>();
  // Each seen folder's stamp at the last poll (for a failed read, none: the next poll decides).
  const stamps = new Map<string, string>();
  const stampOf = (name: string) => modelFolderStamp(join(repo.repoDir, name)).catch(() => undefined);
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function pollOnce(): Promise<void> {
    const names = new Set(await listModelNames(repo.repoDir).catch(() => [] as string[]));
    const work: Promise<unknown>[] = [];
    for (const name of names) {
      const stamp = await stampOf(name);
      if (stamp === undefined) continue;
      const before = stamps.get(name);
      stamps.set(name, stamp);
      if (!seen.has(name)) {
        seen.add(name);
        logger.info({ event: 'repository_added', model: name }, `model folder ${name} appeared`);
        // A model the repository knows (loaded through the API meanwhile) keeps its load's parameters.
        const load = repo.has(name) ? repo.reload(name) : repo.load(name);
        work.push(load.catch(() => undefined)); // the repository logs the failure and reports it in the index
      } else if (before !== stamp && repo.has(name)) {
        // (A model unloaded through the API stays unloaded until its folder goes and comes back.)
        logger.info({ event: 'repository_changed', model: name }, `model folder ${name} changed: reloading`);
        work.push(repo.reload(name).catch(() => undefined));
      }
    }
    for (const name of [...seen]) {
      if (names.has(name)) continue;
      seen.delete(name);
      stamps.delete(name);
      logger.info({ event: 'repository_removed', model: name }, `model folder ${name} disappeared`);
      work.push(repo.unload(name).catch(() => undefined));
    }
    await Promise.all(work);
  }

  for (const name of await listModelNames(repo.repoDir)) {
    seen.add(name);
    const stamp = await stampOf(name);
    if (stamp !== undefined) stamps.set(name, stamp);
  }
  await loadAll();
  const poll = () => (running ??= pollOnce().finally(() => (running = undefined)));
  timer = setInterval(() => void poll(), intervalMs);
  timer.unref();
  return {
    poll,
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
