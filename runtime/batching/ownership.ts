/**
 * @module batching/ownership
 * Buffers the batcher allocates for one backend call (merged inputs) and never
 * reads again. A backend may take such a buffer (e.g. transfer it to a worker
 * thread) instead of copying it; every other buffer stays the caller's, and a
 * backend must copy it.
 */

const handedOver = new WeakSet<ArrayBufferLike>();

/** Marks `buffer` as free for the backend to take. */
export function handOver(buffer: ArrayBufferLike): void {
  handedOver.add(buffer);
}

/**
 * True once for a view that covers a whole handed-over buffer: the caller
 * then owns it (the mark is removed). False for anything else.
 */
export function takeOver(view: ArrayBufferView): boolean {
  const buffer = view.buffer;
  if (!handedOver.has(buffer) || view.byteOffset !== 0 || view.byteLength !== buffer.byteLength) return false;
  handedOver.delete(buffer);
  return true;
}
