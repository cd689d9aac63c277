/**
 * @module repository/model-handle
 * One loaded model version: its metadata, backend instances and batcher.
 * Handles are immutable once READY; a reload builds a new handle and swaps it.
 */
import type { Backend, ModelMetadata } from '../backends/backend.js';
import type { Batcher } from '../batching/batcher.js';
import { Unavailable } from '../core/errors.js';
import { within } from '../core/within.js';
import type { ModelConfig } from './model-config.js';
import { ModelStatistics } from '../observability/statistics.js';

/** Model state as the repository index reports it (Triton's names). */
export type ModelState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

/** Distinguishes loads of the same name and version (a reload from new files). */
let loads = 0;

export class ModelHandle {
  /** This load's key space in the response cache: a reload never sees the results of the files it replaced. */
  readonly cacheScope: string;
  /** What it was loaded from (config and files; see the repository's `sourceOf`): a reload keeps it when they are unchanged. */
  source?: string;
  /** Seconds its load took (the whole load of its model, pull included); 0 until the load ends. */
  loadSeconds = 0;

  constructor(
    readonly name: string,
    readonly version: string,
    readonly metadata: ModelMetadata,
    readonly config: ModelConfig,
    readonly batcher: Batcher,
    private readonly instances: Backend[],
    /** Output name → class labels (`label_filename`), for the classification extension. */
    readonly labels: ReadonlyMap<string, readonly string[]> = new Map(),
    /** Triton's statistics extension for this version, from its load on. */
    readonly statistics: ModelStatistics = new ModelStatistics(),
  ) {
    this.cacheScope = `${name}\0${version}\0${++loads}`;
  }

  /** False while any backend instance reports itself unhealthy (e.g. its device keeps failing). */
  healthy(): boolean {
    return this.instances.every((b) => b.health?.().ready ?? true);
  }

  /**
   * Lets queued and running requests finish, then releases every instance. Past `drainMs` the
   * requests still waiting or running are answered Unavailable (a backend that never returns
   * must not hold an unload, a reload or a shutdown: `drained` false), and the instances are
   * released anyway; the release gets `drainMs` too (`released` false past it).
   */
  async close(drainMs = Infinity): Promise<{ drained: boolean; released: boolean }> {
    // drain() does not reject; a rejection would still count as drained, and the release goes on.
    const drained = await within(this.batcher.drain().then(() => true, () => true), drainMs, false);
    if (!drained) this.batcher.abandon(new Unavailable(`model '${this.name}' was unloaded: its requests did not finish within ${drainMs} ms (KINFER_DRAIN_TIMEOUT_MS)`));
    const released = await within(Promise.allSettled(this.instances.map((b) => b.unload())).then(() => true), drainMs, false);
    return { drained, released };
  }
}
