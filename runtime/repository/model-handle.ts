/**
 * @module repository/model-handle
 * One loaded model version: its metadata, backend instances and batcher.
 * Handles are immutable once READY; a reload builds a new handle and swaps it.
 */
import type { Backend, ModelMetadata } from '../backends/backend.js';
import type { Batcher } from '../batching/batcher.js';
import type { ModelConfig } from './model-config.js';
import { ModelStatistics } from '../observability/statistics.js';

/** Model state as the repository index reports it (Triton's names). */
export type ModelState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

export class ModelHandle {
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
  ) {}

  /** False while any backend instance reports itself unhealthy (e.g. its device keeps failing). */
  healthy(): boolean {
    return this.instances.every((b) => b.health?.().ready ?? true);
  }

  /** Lets queued and running requests finish, then releases every instance. */
  async close(): Promise<void> {
    try {
      await this.batcher.drain();
    } finally {
      await Promise.allSettled(this.instances.map((b) => b.unload()));
    }
  }
}
