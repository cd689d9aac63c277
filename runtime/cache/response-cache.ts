/**
 * @module cache/response-cache
 * Triton's response cache: results of earlier inferences, looked up by a hash
 * of the request (model, version, the inputs' names, datatypes, shapes and
 * bytes, and the outputs asked for), so a repeated request skips the batcher
 * and the backend. One cache per server, bounded in bytes
 * (KINFER_RESPONSE_CACHE_BYTES; 0, the default, turns it off, as Triton's
 * cache is off until sized), used only by models whose config has
 * `response_cache { enable: true }`. Least recently used entries go first.
 * Entries are scoped to one loaded model version (`scope`): a reload, even of
 * the same version number from new files, never sees the old results, and an
 * unload drops them.
 */
import { createHash } from 'node:crypto';
import { ownCopy } from '../core/bytes.js';
import type { Tensor } from '../core/tensor.js';
import { byteSize } from '../core/tensor.js';

/** What an entry costs beyond its tensors' bytes: key, map slot, tensor objects. */
const ENTRY_OVERHEAD = 256;
const TENSOR_OVERHEAD = 64;

interface Entry {
  outputs: Tensor[];
  bytes: number;
  scope: string;
}

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private used = 0;
  /** Lookups since start, for /metrics. */
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The key of a request: SHA-256 over the scope, the requested output names (sorted) and every
   * input (sorted by name) with its datatype, shape and bytes, each part length-prefixed.
   */
  key(scope: string, inputs: readonly Tensor[], outputNames: readonly string[]): string {
    const h = createHash('sha256');
    const text = (s: string) => {
      const b = Buffer.from(s, 'utf8');
      h.update(lengthOf(b.byteLength));
      h.update(b);
    };
    text(scope);
    const outs = [...outputNames].sort();
    h.update(lengthOf(outs.length));
    for (const o of outs) text(o);
    const sorted = [...inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    h.update(lengthOf(sorted.length));
    for (const t of sorted) {
      text(t.name);
      text(t.datatype);
      text(t.shape.join(','));
      if (Array.isArray(t.data)) {
        h.update(lengthOf(t.data.length));
        for (const e of t.data) {
          h.update(lengthOf(e.byteLength));
          h.update(e);
        }
      } else {
        const d = t.data;
        h.update(lengthOf(d.byteLength));
        h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      }
    }
    return h.digest('base64');
  }

  /** The outputs stored under `key`, now the most recently used; undefined on a miss. */
  get(key: string): Tensor[] | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.outputs;
  }

  /**
   * Stores a copy of `outputs`, evicting the least recently used entries to fit. An entry larger
   * than the whole cache is not stored. Returns whether it was. What `get` returns is shared by
   * every hit: callers must not change it (the encoders only read).
   */
  set(key: string, scope: string, outputs: Tensor[]): boolean {
    const bytes = ENTRY_OVERHEAD + outputs.reduce((n, t) => n + TENSOR_OVERHEAD + byteSize(t), 0);
    if (bytes > this.maxBytes) return false;
    this.remove(key);
    // Copies: an output may be a view into its whole batch's buffer, or a BYTES element a view
    // into the request body, which the entry must not hold.
    const kept = outputs.map((t) => ({ ...t, shape: [...t.shape], data: Array.isArray(t.data) ? t.data.map(ownCopy) : ownCopy(t.data) }) as Tensor);
    for (const [k] of this.entries) {
      if (this.used + bytes <= this.maxBytes) break;
      this.remove(k);
    }
    this.entries.set(key, { outputs: kept, bytes, scope });
    this.used += bytes;
    return true;
  }

  /** Drops every entry of `scope` (a model version being unloaded or replaced). */
  forget(scope: string): void {
    for (const [k, e] of this.entries) if (e.scope === scope) this.remove(k);
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.used -= e.bytes;
  }
}

function lengthOf(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n, true);
  return b;
}
