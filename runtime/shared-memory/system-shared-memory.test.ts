/**
 * @module shared-memory/system-shared-memory.test
 * The region registry over real files: a folder standing in for /dev/shm (what
 * shm_open creates there is a plain file, which the integration test uses).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlreadyExists, InvalidArgument, NotFound, PayloadTooLarge, Unsupported } from '../core/errors.js';
import { inputRefs, readInputBytes, sharedMemoryOf, sharedMemoryRefOf, withoutSharedMemory } from '../core/shared-memory.js';
import { SystemSharedMemory } from './system-shared-memory.js';

let dir: string;
let shm: SystemSharedMemory;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-shm-'));
  await writeFile(join(dir, 'obj'), Buffer.from(Array.from({ length: 64 }, (_, i) => i)));
  shm = new SystemSharedMemory(dir);
});
afterEach(async () => {
  shm.close();
  await rm(dir, { recursive: true, force: true });
});

describe('SystemSharedMemory', () => {
  it('registers a range of an object, reads and writes through it at the right place, and lists it', async () => {
    shm.register('r', '/obj', 16, 32);
    expect(shm.status()).toEqual([{ name: 'r', key: '/obj', offset: 16, byte_size: 32 }]);
    expect(shm.status('r')).toHaveLength(1);
    expect(Array.from(shm.read({ region: 'r', offset: 4, byteSize: 3 }, 'x'))).toEqual([20, 21, 22]);
    shm.write({ region: 'r', offset: 30, byteSize: 2 }, Uint8Array.of(200, 201), 'y');
    const file = await readFile(join(dir, 'obj'));
    expect([file[45], file[46], file[47]]).toEqual([45, 200, 201]);
    shm.unregister('r');
    shm.unregister('r'); // not registered: no error, as Triton
    expect(shm.status()).toEqual([]);
  });

  it('refuses what a client gets wrong, naming it', () => {
    shm.register('r', 'obj', 0, 64);
    const refusals: [() => unknown, RegExp][] = [
      [() => shm.register('s', '/a/b', 0, 1), /key "\/a\/b" is not a shared-memory object name/],
      [() => shm.register('s', '/..', 0, 1), /is not a shared-memory object name/],
      [() => shm.register('s', '/missing', 0, 1), /cannot open the shared-memory object '\/missing': ENOENT/],
      [() => shm.register('s', '/obj', 60, 8), /offset 60 \+ byte_size 8 runs past the end of '\/obj' \(64 bytes\)/],
      [() => shm.register('s', '/obj', -1, 8), /offset must be a non-negative integer/],
      [() => shm.read({ region: 'r', offset: 60, byteSize: 8 }, "input 'x'"), /shared_memory_offset 60 \+ shared_memory_byte_size 8 runs past the end of region 'r' \(64 bytes\)/],
      [() => shm.write({ region: 'r', offset: 0, byteSize: 2 }, new Uint8Array(3), "output 'y'"), /output 'y': 3 bytes do not fit the 2 bytes of shared_memory_byte_size/],
    ];
    for (const [f, re] of refusals) {
      expect(f, String(re)).toThrow(InvalidArgument);
      expect(f, String(re)).toThrow(re);
    }
    // Triton's ALREADY_EXISTS, the first check after the name: the first region stays as it was.
    expect(() => shm.register('r', '/obj', 0, 1)).toThrow(AlreadyExists);
    expect(() => shm.register('r', '/missing', 0, 1)).toThrow(/region 'r' is already registered; unregister it first/);
    expect(shm.status('r')).toEqual([{ name: 'r', key: 'obj', offset: 0, byte_size: 64 }]);
    expect(() => shm.status('nope')).toThrow(NotFound);
    // A region no one registered: NOT_FOUND, as Triton's shared memory manager answers.
    expect(() => shm.read({ region: 'nope', offset: 0, byteSize: 1 }, "input 'x'")).toThrow(NotFound);
    expect(() => shm.read({ region: 'nope', offset: 0, byteSize: 1 }, "input 'x'")).toThrow(/input 'x': shared memory region 'nope' is not registered/);
  });

  it('holds one descriptor per object, however many regions are cut from it; an object made again under the same key is another', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    for (let i = 0; i < 50; i++) shm.register(`r${i}`, '/obj', i, 1);
    expect(await fds()).toBe(before + 1);
    expect(Array.from(shm.read({ region: 'r7', offset: 0, byteSize: 1 }, 'x'))).toEqual([7]);
    // The client unlinks the object and creates it again with new bytes: new regions see the new object, old ones the old.
    await rm(join(dir, 'obj'));
    await writeFile(join(dir, 'obj'), Buffer.alloc(64, 9));
    shm.register('fresh', '/obj', 7, 1);
    expect(await fds()).toBe(before + 2);
    expect(Array.from(shm.read({ region: 'fresh', offset: 0, byteSize: 1 }, 'x'))).toEqual([9]);
    expect(Array.from(shm.read({ region: 'r7', offset: 0, byteSize: 1 }, 'x'))).toEqual([7]);
    for (let i = 0; i < 49; i++) shm.unregister(`r${i}`);
    expect(await fds()).toBe(before + 2);
    shm.unregister('r49');
    expect(await fds()).toBe(before + 1);
    shm.unregister();
    expect(await fds()).toBe(before);
  });

  it('opens no symbolic link and nothing but a regular file, as shm_open: a key cannot reach a file outside the folder', async () => {
    const outside = join(dir, '..', `kinfer-shm-outside-${process.pid}`);
    await writeFile(outside, 'secret');
    try {
      await symlink(outside, join(dir, 'link'));
      expect(() => shm.register('l', '/link', 0, 1)).toThrow("system shared memory region 'l': cannot open the shared-memory object '/link': it is a symbolic link");
      await mkdir(join(dir, 'sub'));
      expect(() => shm.register('d', '/sub', 0, 0)).toThrow("cannot open the shared-memory object '/sub': not a regular file");
      // A FIFO opens (non-blocking) and is then refused by its type.
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      expect(() => shm.register('f', '/fifo', 0, 0)).toThrow("system shared memory region 'f': '/fifo' is not a shared-memory object (not a regular file)");
      expect(shm.status()).toEqual([]);
    } finally {
      await rm(outside, { force: true });
    }
  });

  it('reads no more than one request may carry, all its inputs together, and checks a fixed-size tensor\'s byte count before reading', () => {
    const small = new SystemSharedMemory(dir, 16);
    try {
      small.register('r', '/obj', 0, 64);
      // Two inputs of 10 bytes naming the same region: 20 together, over 16.
      const twice = { shared_memory_region: 'r', shared_memory_byte_size: 10 };
      const refused = () => inputRefs([twice, undefined, twice], ["input 'a'", "input 'b'", "input 'c'"], { sharedMemory: small });
      expect(refused).toThrow(PayloadTooLarge);
      expect(refused).toThrow("the request's inputs in shared memory take 20 bytes together, over the limit of 16 bytes per request (KINFER_MAX_BODY_BYTES)");
      expect(inputRefs([twice, undefined], ["input 'a'", "input 'b'"], { sharedMemory: small })).toEqual([{ region: 'r', offset: 0, byteSize: 10 }, undefined]);
      expect(() => readInputBytes(small, { region: 'r', offset: 0, byteSize: 12 }, 'FP32', 2, "input 'x'")).toThrow("input 'x': shared_memory_byte_size is 12; 2 FP32 elements take 8");
      expect(Array.from(readInputBytes(small, { region: 'r', offset: 0, byteSize: 8 }, 'FP32', 2, "input 'x'"))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      small.close();
    }
  });
});

describe('shared-memory parameters', () => {
  it('reads region, byte size and offset, requiring the first two together', () => {
    expect(sharedMemoryRefOf(undefined, 'x')).toBeUndefined();
    expect(sharedMemoryRefOf({ binary_data: true }, 'x')).toBeUndefined();
    expect(sharedMemoryRefOf({ shared_memory_region: 'r', shared_memory_byte_size: 8 }, 'x')).toEqual({ region: 'r', offset: 0, byteSize: 8 });
    expect(sharedMemoryRefOf({ shared_memory_region: 'r', shared_memory_byte_size: 8, shared_memory_offset: 4 }, 'x')).toEqual({ region: 'r', offset: 4, byteSize: 8 });
    expect(() => sharedMemoryRefOf({ shared_memory_region: 'r' }, "input 'x'")).toThrow(/input 'x': parameters.shared_memory_byte_size: expected a non-negative integer/);
    expect(() => sharedMemoryRefOf({ shared_memory_byte_size: 8 }, 'x')).toThrow(/shared_memory_region: expected a region name/);
    expect(() => sharedMemoryRefOf({ shared_memory_offset: 8 }, 'x')).toThrow(/shared_memory_offset without/);
    expect(withoutSharedMemory({ shared_memory_region: 'r', shared_memory_byte_size: 8, keep: 1 })).toEqual({ keep: 1 });
    expect(() => sharedMemoryOf({}, "input 'x'")).toThrow(Unsupported);
  });
});
