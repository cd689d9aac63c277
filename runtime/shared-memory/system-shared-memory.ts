/**
 * @module shared-memory/system-shared-memory
 * The registry of Triton's system shared-memory regions. A client creates a
 * POSIX shared-memory object (`shm_open("/key")`, which is `/dev/shm/key` on
 * Linux), registers a range of it under a name, and then sends tensors by
 * reference. kinfer keeps a descriptor of each registered object open and
 * copies with pread/pwrite on it: the same page-cache pages the client has
 * mapped, so each side sees the other's bytes without a native mapping.
 * Off unless the server allows it (`--allow-client-shm`, as Triton's
 * `--allow-client-shm`): a region is memory a local process shares with the
 * server, and a pod's sidecar is the only client that can have one.
 *
 * @example
 * const shm = new SystemSharedMemory();
 * shm.register('in0', '/client_in', 0, 3136);
 * const bytes = shm.read({ region: 'in0', offset: 0, byteSize: 3136 }, "input 'x'");
 */
import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExists, InvalidArgument, NotFound, PayloadTooLarge, Unavailable, Unsupported } from '../core/errors.js';
import type { SharedMemoryAccess, SharedMemoryRef } from '../core/shared-memory.js';

export interface RegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

interface Region extends RegionStatus {
  fd: number;
  /** The open object it lies in (`dev:ino`): regions of one object share its descriptor. */
  object: string;
}

interface OpenObject {
  fd: number;
  regions: number;
}

// A POSIX shared-memory name: one path component (shm_open refuses inner slashes), leading '/' optional.
const KEY = /^\/?[^/\0]{1,255}$/;
const MAX_REGIONS = 4096;

export class SystemSharedMemory implements SharedMemoryAccess {
  private readonly regions = new Map<string, Region>();
  private readonly objects = new Map<string, OpenObject>();

  /**
   * `dir`: where shm_open's objects live (`/dev/shm` on Linux). `maxReadBytes`: the most one
   * request's inputs may take from regions together (the request body limit, KINFER_MAX_BODY_BYTES:
   * a reference is a few bytes of request, its data must not cost more than data sent inline could).
   */
  constructor(
    private readonly dir = '/dev/shm',
    private readonly maxReadBytes = Number.MAX_SAFE_INTEGER,
  ) {}

  /**
   * Registers `byteSize` bytes at `offset` of the object `key` under `name`. 503 when the server has
   * no descriptor left (one per object registered); AlreadyExists for a name already registered
   * (Triton's ALREADY_EXISTS: 400, gRPC ALREADY_EXISTS); InvalidArgument for a key that is not a
   * shared-memory name, an object that does not exist, or a range past its end.
   */
  register(name: string, key: string, offset: number, byteSize: number): void {
    if (name === '') throw new InvalidArgument('system shared memory: a region needs a name');
    if (this.regions.has(name)) throw new AlreadyExists(`system shared memory region '${name}' is already registered; unregister it first`);
    if (this.regions.size >= MAX_REGIONS) throw new InvalidArgument(`system shared memory: at most ${MAX_REGIONS} regions are registered at once`);
    if (!KEY.test(key) || key === '/.' || key === '/..' || key === '.' || key === '..') {
      throw new InvalidArgument(`system shared memory region '${name}': key ${JSON.stringify(key)} is not a shared-memory object name (such as "/my_region")`);
    }
    for (const [field, v] of [['offset', offset], ['byte_size', byteSize]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgument(`system shared memory region '${name}': ${field} must be a non-negative integer, got ${v}`);
    }
    let fd: number;
    try {
      // As shm_open: no symlink is followed (a link in a shared /dev/shm could name any file the
      // server may write), and opening never blocks (a FIFO would stall the event loop).
      fd = openSync(join(this.dir, key.replace(/^\//, '')), constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      if (code === 'EMFILE' || code === 'ENFILE') throw new Unavailable(`system shared memory region '${name}': the server has no file descriptor left (${code}); unregister regions no longer used`);
      const why = code === 'ELOOP' ? 'it is a symbolic link' : code === 'EISDIR' ? 'not a regular file' : code;
      throw new InvalidArgument(`system shared memory region '${name}': cannot open the shared-memory object '${key}': ${why}`);
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new InvalidArgument(`system shared memory region '${name}': '${key}' is not a shared-memory object (not a regular file)`);
    }
    const size = st.size;
    if (offset + byteSize > size) {
      closeSync(fd);
      throw new InvalidArgument(`system shared memory region '${name}': offset ${offset} + byte_size ${byteSize} runs past the end of '${key}' (${size} bytes)`);
    }
    // One descriptor per object, however many regions a client cuts from it (the same object: same
    // device and inode; a key unlinked and created again is another object, as for shm_open).
    const object = `${st.dev}:${st.ino}`;
    const open = this.objects.get(object);
    if (open) {
      closeSync(fd);
      open.regions++;
    } else {
      this.objects.set(object, { fd, regions: 1 });
    }
    this.regions.set(name, { name, key, offset, byte_size: byteSize, fd: this.objects.get(object)!.fd, object });
  }

  /** Unregisters `name`, or every region without one. Unregistering a name not registered is not an error (as Triton). */
  unregister(name?: string): void {
    for (const r of name === undefined ? [...this.regions.values()] : [this.regions.get(name)].filter((x) => x !== undefined)) {
      this.regions.delete(r.name);
      const open = this.objects.get(r.object)!;
      if (--open.regions === 0) {
        this.objects.delete(r.object);
        closeSync(open.fd);
      }
    }
  }

  /** Every region, or `name`'s (NotFound when it is not registered). */
  status(name?: string): RegionStatus[] {
    if (name === undefined) return [...this.regions.values()].map(statusOf);
    const r = this.regions.get(name);
    if (!r) throw new NotFound(`system shared memory region '${name}' is not registered`);
    return [statusOf(r)];
  }

  check(ref: SharedMemoryRef, what: string): void {
    this.locate(ref, what);
  }

  checkRequestBytes(total: number): void {
    if (total > this.maxReadBytes) {
      throw new PayloadTooLarge(`the request's inputs in shared memory take ${total} bytes together, over the limit of ${this.maxReadBytes} bytes per request (KINFER_MAX_BODY_BYTES)`);
    }
  }

  read(ref: SharedMemoryRef, what: string): Uint8Array {
    const { fd, position } = this.locate(ref, what);
    // Its own ArrayBuffer, so the typed array over it is aligned (no pooled slab).
    const out = Buffer.allocUnsafeSlow(ref.byteSize);
    let done = 0;
    while (done < ref.byteSize) {
      const n = io(() => readSync(fd, out, done, ref.byteSize - done, position + done), ref, what);
      if (n === 0) throw new InvalidArgument(`${what}: shared memory region '${ref.region}' ended after ${done} of ${ref.byteSize} bytes (the object shrank)`);
      done += n;
    }
    return out;
  }

  write(ref: SharedMemoryRef, bytes: Uint8Array, what: string): void {
    if (bytes.byteLength > ref.byteSize) {
      throw new InvalidArgument(`${what}: ${bytes.byteLength} bytes do not fit the ${ref.byteSize} bytes of shared_memory_byte_size`);
    }
    const { fd, position } = this.locate({ ...ref, byteSize: bytes.byteLength }, what);
    let done = 0;
    while (done < bytes.byteLength) done += io(() => writeSync(fd, bytes, done, bytes.byteLength - done, position + done), ref, what);
  }

  /** Unregisters everything (shutdown). */
  close(): void {
    this.unregister();
  }

  private locate(ref: SharedMemoryRef, what: string): { fd: number; position: number } {
    const r = this.regions.get(ref.region);
    if (!r) throw new NotFound(`${what}: shared memory region '${ref.region}' is not registered`);
    if (ref.offset + ref.byteSize > r.byte_size) {
      throw new InvalidArgument(`${what}: shared_memory_offset ${ref.offset} + shared_memory_byte_size ${ref.byteSize} runs past the end of region '${ref.region}' (${r.byte_size} bytes)`);
    }
    return { fd: r.fd, position: r.offset + ref.offset };
  }
}

/** The server's regions, or Unsupported when it does not allow client shared memory (REST and gRPC alike). */
export function allowedRegions(shm: SystemSharedMemory | undefined): SystemSharedMemory {
  if (!shm) throw new Unsupported('client shared memory is not allowed on this server (start it with --allow-client-shm)');
  return shm;
}

/** CUDA shared-memory registration and status of a named region: there is no GPU here. */
export function noCudaRegions(): never {
  throw new Unsupported('CUDA shared memory: this server has no GPU; use system shared memory');
}

/** A read or write of a region: a failure of the object itself (its tmpfs full, ...) is the server's, 503 naming the region. */
function io(op: () => number, ref: SharedMemoryRef, what: string): number {
  try {
    return op();
  } catch (err) {
    throw new Unavailable(`${what}: shared memory region '${ref.region}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function statusOf(r: Region): RegionStatus {
  return { name: r.name, key: r.key, offset: r.offset, byte_size: r.byte_size };
}
