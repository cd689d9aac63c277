/**
 * @module repository/monitor
 * `--repository-monitoring`: polls the repository folder and loads model
 * folders that appear, unloads those that disappear. Polling (as Triton's
 * `--repository-poll-secs`) rather than fs.watch: it behaves the same on
 * every filesystem, including the network volumes models live on.
 */
import type { Logger } from 'pino';
import { listModelNames } from './layout.js';
import type { ModelRepository } from './model-repository.js';

export interface RepositoryMonitor {
  /** Runs one poll now (tests, and the first poll). */
  poll(): Promise<void>;
  stop(): void;
}

export function monitorRepository(repo: ModelRepository, logger: Logger, intervalMs = 2000): RepositoryMonitor {
  // Models this monitor saw in the folder: only those it unloads when they disappear.
  const seen = new Set<string>(repo.loadedNames());
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function pollOnce(): Promise<void> {
    const names = new Set(await listModelNames(repo.repoDir).catch(() => [] as string[]));
    const work: Promise<unknown>[] = [];
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      logger.info({ event: 'repository_added', model: name }, `model folder ${name} appeared`);
      work.push(repo.load(name).catch(() => undefined)); // the repository logs the failure and reports it in the index
    }
    for (const name of [...seen]) {
      if (names.has(name)) continue;
      seen.delete(name);
      logger.info({ event: 'repository_removed', model: name }, `model folder ${name} disappeared`);
      work.push(repo.unload(name).catch(() => undefined));
    }
    await Promise.all(work);
  }

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
