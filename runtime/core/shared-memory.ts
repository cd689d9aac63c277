/**
 * @module core/shared-memory
 * Triton's shared-memory extension as the protocols see it: a tensor whose
 * bytes live in a registered region instead of the request or response.
 * Transport-neutral: v2 JSON/binary and gRPC read the same three parameters
 * and hand the bytes to and from a `SharedMemoryAccess` (the server's
 * registry, `runtime/shared-memory/`).
 */
import { elementSize, type Datatype } from './datatypes.js';
import { InvalidArgument, invalidArgument, Unsupported } from './errors.js';
import type { Parameters } from './tensor.js';

/** Where a tensor's bytes are: `byteSize` bytes at `offset` into the region named `region`. */
export interface SharedMemoryRef {
  region: string;
  offset: number;
  byteSize: number;
}

export interface SharedMemoryAccess {
  /** Copies the bytes `ref` names out of its region. InvalidArgument for an unknown region or a range past its end. */
  read(ref: SharedMemoryRef, what: string): Uint8Array;
  /** Writes `bytes` at `ref` (they must fit `ref.byteSize`). */
  write(ref: SharedMemoryRef, bytes: Uint8Array, what: string): void;
  /** Throws as `read` would, without reading: a requested output's region is checked before the model runs. */
  check(ref: SharedMemoryRef, what: string): void;
  /** PayloadTooLarge when one request's inputs would take more than the server reads for a request. */
  checkRequestBytes(total: number): void;
}

/**
 * The inputs' references (undefined for an input sent inline), with their byte sizes checked
 * together against the per-request limit before any is read: a reference is a few bytes of
 * request, and many of them naming one large object must not add up to more than a body could.
 */
export function inputRefs(params: (Parameters | undefined)[], whats: string[], opts: { sharedMemory?: SharedMemoryAccess | undefined }): (SharedMemoryRef | undefined)[] {
  const refs = params.map((p, i) => sharedMemoryRefOf(p, whats[i]!));
  const total = refs.reduce((n, r) => n + (r?.byteSize ?? 0), 0);
  if (refs.some((r) => r)) sharedMemoryOf(opts, whats[refs.findIndex((r) => r)]!).checkRequestBytes(total);
  return refs;
}

export const SHM_PARAMETERS = ['shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset'] as const;

/**
 * The tensor's shared-memory reference from its parameters, or undefined when it has none.
 * `shared_memory_region` and `shared_memory_byte_size` go together (Triton's rule); the offset
 * defaults to 0.
 */
export function sharedMemoryRefOf(params: Parameters | undefined, what: string): SharedMemoryRef | undefined {
  if (!params) return undefined;
  const region = params.shared_memory_region;
  const size = params.shared_memory_byte_size;
  const offset = params.shared_memory_offset ?? 0;
  if (region === undefined && size === undefined) {
    if (params.shared_memory_offset !== undefined) throw new InvalidArgument(`${what}: shared_memory_offset without shared_memory_region and shared_memory_byte_size`);
    return undefined;
  }
  if (typeof region !== 'string' || region === '') throw invalidArgument(`${what}: parameters.shared_memory_region`, 'a region name', region);
  if (!isByteCount(size)) throw invalidArgument(`${what}: parameters.shared_memory_byte_size`, 'a non-negative integer', size);
  if (!isByteCount(offset)) throw invalidArgument(`${what}: parameters.shared_memory_offset`, 'a non-negative integer', offset);
  return { region, offset, byteSize: size };
}

/** The server's regions, or Unsupported when it takes no tensors in shared memory. */
export function sharedMemoryOf(opts: { sharedMemory?: SharedMemoryAccess | undefined }, what: string): SharedMemoryAccess {
  if (!opts.sharedMemory) throw new Unsupported(`${what}: this server takes no tensors in shared memory (start it with --allow-client-shm); send the data in the request`);
  return opts.sharedMemory;
}

/**
 * The bytes of an input of `count` `datatype` elements from its region. A fixed-size datatype's
 * byte count is checked against the shape before anything is read: a reference is a few bytes
 * of request, and must not make the server read more than the tensor holds.
 */
export function readInputBytes(regions: SharedMemoryAccess, ref: SharedMemoryRef, datatype: Datatype, count: number, what: string): Uint8Array {
  const size = elementSize(datatype);
  if (size !== undefined && ref.byteSize !== count * size) {
    throw new InvalidArgument(`${what}: shared_memory_byte_size is ${ref.byteSize}; ${count} ${datatype} elements take ${count * size}`);
  }
  return regions.read(ref, what);
}

function isByteCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** `params` without the shared-memory keys (they describe the transport, not the tensor); undefined when nothing is left. */
export function withoutSharedMemory(params: Parameters | undefined): Parameters | undefined {
  if (!params) return undefined;
  const out: Parameters = {};
  let n = 0;
  for (const [k, v] of Object.entries(params)) {
    if ((SHM_PARAMETERS as readonly string[]).includes(k)) continue;
    out[k] = v;
    n++;
  }
  return n ? out : undefined;
}
