import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import { startHttpFixture, type HttpFixture } from '../../test/helpers/http-fixture.js';
import { ArtifactCache } from './cache.js';
import { pull } from './pull.js';

let root: string;
let cacheDir: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-cache-'));
  cacheDir = path.join(root, 'cache');
});
afterEach(() => rm(root, { recursive: true, force: true }));

function capture() {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, records, evicted: () => records.filter((r) => r.msg === 'storage: cache entry evicted') };
}

/** A model folder holding one file of `bytes` bytes filled with `fill`. */
async function artifact(name: string, bytes: number, fill: number): Promise<string> {
  const dir = path.join(root, 'src', name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.onnx'), Buffer.alloc(bytes, fill));
  return dir;
}

/** Stores `name` (a URI of its own) and returns its entry folder. */
async function stored(cache: ArtifactCache, name: string, bytes: number, fill: number): Promise<string> {
  expect(await cache.store(`s3://b/${name}`, `s3://b/${name}`, `v-${name}`, await artifact(name, bytes, fill))).toBe(true);
  const entry = await cache.lookup(`s3://b/${name}`);
  return path.dirname(entry!.dir);
}

/** Sets an entry's last use to `secondsAgo` seconds ago. */
async function usedAgo(entryDir: string, secondsAgo: number): Promise<void> {
  const t = new Date(Date.now() - secondsAgo * 1000);
  await utimes(entryDir, t, t);
}

async function present(cache: ArtifactCache, ...names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) if (await cache.lookup(`s3://b/${n}`)) out.push(n);
  return out;
}

describe('ArtifactCache eviction (maxBytes)', () => {
  it('evicts by last use, not by store order, until the bound holds, and logs uri, bytes and reason', async () => {
    const log = capture();
    const cache = new ArtifactCache(cacheDir, { maxBytes: 250, logger: log.logger });
    await usedAgo(await stored(cache, 'a', 100, 1), 100);
    await usedAgo(await stored(cache, 'b', 100, 2), 200); // stored after a, used before it
    await stored(cache, 'c', 100, 3);
    await cache.evict('s3://b/c');
    expect(await present(cache, 'a', 'b', 'c')).toEqual(['a', 'c']);
    expect(log.evicted()).toEqual([expect.objectContaining({ uri: 's3://b/b', bytes: 100, reason: 'least recently used', cacheBytes: 200, maxBytes: 250 })]);
    // Nothing renamed away is left behind.
    expect((await readdir(cacheDir)).filter((n) => n.includes('.'))).toEqual([]);
  });

  it('does nothing without a bound, or while the entries fit', async () => {
    const unbounded = new ArtifactCache(cacheDir);
    for (const [n, i] of [['a', 1], ['b', 2], ['c', 3]] as const) await stored(unbounded, n, 100, i);
    await unbounded.evict('s3://b/c');
    const fits = new ArtifactCache(cacheDir, { maxBytes: 300 });
    await fits.evict('s3://b/c');
    expect(await present(fits, 'a', 'b', 'c')).toEqual(['a', 'b', 'c']);
  });

  it('counts a hit (materialize) as a use', async () => {
    const cache = new ArtifactCache(cacheDir, { maxBytes: 250, logger: capture().logger });
    await usedAgo(await stored(cache, 'a', 100, 1), 300);
    await usedAgo(await stored(cache, 'b', 100, 2), 200);
    const hit = await cache.lookup('s3://b/a');
    await cache.materialize(hit!, path.join(root, 'models', 'a'));
    await stored(cache, 'c', 100, 3);
    await cache.evict('s3://b/c');
    expect(await present(cache, 'a', 'b', 'c')).toEqual(['a', 'c']);
  });

  it('never evicts the entry just stored, nor one held by a pull in progress; says when the rest is over the bound', async () => {
    const log = capture();
    const cache = new ArtifactCache(cacheDir, { maxBytes: 150, logger: log.logger });
    await usedAgo(await stored(cache, 'held', 100, 1), 400);
    await usedAgo(await stored(cache, 'other', 100, 2), 300);
    // The kept entry is made the oldest, so only the keep rule can save it.
    await usedAgo(await stored(cache, 'new', 100, 3), 500);
    const release = cache.hold('s3://b/held');
    const second = cache.hold('s3://b/held'); // a second pull of the same URI
    await cache.evict('s3://b/new');
    expect(await present(cache, 'held', 'other', 'new')).toEqual(['held', 'new']);
    expect(log.records.some((r) => r.msg === "storage: cache is over KINFER_CACHE_MAX_BYTES; what is left is in use" && r.cacheBytes === 200)).toBe(true);

    release();
    release(); // idempotent: the second pull still holds it
    await cache.evict('s3://b/new');
    expect(await present(cache, 'held')).toEqual(['held']);
    second();
    await cache.evict('s3://b/new');
    expect(await present(cache, 'held', 'new')).toEqual(['new']);
  });

  it('does not cache an artifact larger than the bound, and evicts nothing for it', async () => {
    const log = capture();
    const cache = new ArtifactCache(cacheDir, { maxBytes: 150, logger: log.logger });
    await stored(cache, 'a', 100, 1);
    expect(await cache.store('s3://b/big', 's3://b/big', 'v', await artifact('big', 200, 9))).toBe(false);
    await cache.evict('s3://b/big');
    expect(await present(cache, 'a', 'big')).toEqual(['a']);
    expect(log.records.find((r) => r.msg === 'storage: artifact is larger than KINFER_CACHE_MAX_BYTES, not cached')).toMatchObject({ uri: 's3://b/big', bytes: 200, maxBytes: 150 });
    expect(log.evicted()).toEqual([]);
    // The artifact grew past the bound: its older (now stale) entry goes rather than staying held forever.
    await stored(cache, 'grows', 40, 3);
    expect(await present(cache, 'a', 'grows')).toEqual(['a', 'grows']);
    expect(await cache.store('s3://b/grows', 's3://b/grows', 'v2', await artifact('grows2', 200, 4))).toBe(false);
    expect(await present(cache, 'a', 'grows')).toEqual(['a']);
  });

  it('an entry evicted after its lookup fails to materialize (the pull then downloads)', async () => {
    const cache = new ArtifactCache(cacheDir, { maxBytes: 150, logger: capture().logger });
    await usedAgo(await stored(cache, 'a', 100, 1), 100);
    const stale = await cache.lookup('s3://b/a');
    await stored(cache, 'b', 100, 2);
    await cache.evict('s3://b/b');
    const into = path.join(root, 'models', 'a');
    await mkdir(into, { recursive: true });
    await expect(cache.materialize(stale!, into)).rejects.toThrow(/ENOENT/);
  });

  it('sweeps removals a crash left behind and entries whose manifest is unreadable; leaves other stores in progress alone', async () => {
    const log = capture();
    const cache = new ArtifactCache(cacheDir, { maxBytes: 1000, logger: log.logger });
    await stored(cache, 'a', 10, 1);
    const hash = 'ab'.repeat(20);
    const junk = { doomed: `${hash}.evict-99999-0a0b0c0d`, replaced: `${hash}.old-99999-0a0b0c0d`, inProgress: `${hash}.tmp-99999-0a0b0c0d`, broken: 'cd'.repeat(20) };
    for (const name of Object.values(junk)) await mkdir(path.join(cacheDir, name, 'content'), { recursive: true });
    await writeFile(path.join(cacheDir, junk.broken, 'manifest.json'), '{"uri":');
    await cache.evict('s3://b/a');
    const names = await readdir(cacheDir);
    expect(names).toContain(junk.inProgress);
    expect(names).not.toContain(junk.doomed);
    expect(names).not.toContain(junk.replaced);
    expect(names).not.toContain(junk.broken);
    expect(log.evicted()).toEqual([expect.objectContaining({ uri: junk.broken, reason: 'unreadable manifest' })]);
    expect(await present(cache, 'a')).toEqual(['a']);
  });
});

describe('pull() with a bounded cache', () => {
  let fx: HttpFixture;
  beforeEach(async () => {
    fx = await startHttpFixture();
  });
  afterEach(() => fx.close());

  const opts = (dest: string, extra: Record<string, unknown> = {}) => ({ dest, cacheDir, retries: 0, progressIntervalMs: 0, env: {}, logger: pino({ level: 'silent' }), ...extra });

  it('evicts the oldest entry after a store; the model folder hard-linked to it keeps its files intact', async () => {
    const log = capture();
    fx.files.set('/m1/model.onnx', { body: Buffer.alloc(3000, 1) });
    fx.files.set('/m2/model.onnx', { body: Buffer.alloc(3000, 2) });
    const m1 = path.join(root, 'models', 'm1');
    await pull(`${fx.url}/m1/model.onnx`, opts(m1, { cacheMaxBytes: 5000, logger: log.logger }));
    // The model file and the cache share an inode: the eviction below must not reach it.
    expect((await stat(path.join(m1, 'model.onnx'))).nlink).toBe(2);

    await pull(`${fx.url}/m2/model.onnx`, opts(path.join(root, 'models', 'm2'), { cacheMaxBytes: 5000, logger: log.logger }));
    expect(log.evicted()).toEqual([expect.objectContaining({ uri: `${fx.url}/m1/model.onnx`, bytes: 3000, reason: 'least recently used' })]);
    expect((await stat(path.join(m1, 'model.onnx'))).nlink).toBe(1);
    expect((await readFile(path.join(m1, 'model.onnx'))).equals(Buffer.alloc(3000, 1))).toBe(true);
    expect(await readdir(cacheDir)).toHaveLength(1);

    // m2 is still cached; m1 is downloaded again.
    expect((await pull(`${fx.url}/m2/model.onnx`, opts(path.join(root, 'models', 'm2b'), { cacheMaxBytes: 5000 }))).cached).toBe(true);
    expect((await pull(`${fx.url}/m1/model.onnx`, opts(path.join(root, 'models', 'm1b'), { cacheMaxBytes: 5000 }))).cached).toBe(false);
    expect(fx.bodies('/m1/model.onnx')).toBe(2);
  });

  it('reads KINFER_CACHE_MAX_BYTES as a quantity, and refuses a bad one naming the variable', async () => {
    fx.files.set('/m/model.onnx', { body: Buffer.alloc(10, 1) });
    const uri = `${fx.url}/m/model.onnx`;
    const bad = await pull(uri, opts(path.join(root, 'x'), { env: { KINFER_CACHE_MAX_BYTES: '10GB' } })).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgument);
    expect((bad as Error).message).toMatch(/^KINFER_CACHE_MAX_BYTES: expected a byte count such as .*2Gi.*, got "10GB"$/);
    await expect(pull(uri, opts(path.join(root, 'x'), { env: { KINFER_CACHE_MAX_BYTES: '0' } }))).rejects.toThrow(/KINFER_CACHE_MAX_BYTES: .*more than 0/);
    await expect(pull(uri, opts(path.join(root, 'x'), { cacheMaxBytes: -1 }))).rejects.toThrow(/cacheMaxBytes: expected a positive whole number/);
    expect(fx.requests).toEqual([]);

    // 9 bytes is under the 10-byte artifact: a bound read from the variable skips caching it.
    await pull(uri, opts(path.join(root, 'x'), { env: { KINFER_CACHE_MAX_BYTES: '9' } }));
    expect(await readdir(cacheDir).catch(() => [])).toEqual([]);
    await pull(uri, opts(path.join(root, 'x'), { env: { KINFER_CACHE_MAX_BYTES: '1Ki' } }));
    expect(await readdir(cacheDir)).toHaveLength(1);
  });
});
