/**
 * @module storage/cache
 * The artifact cache under `KINFER_CACHE_DIR`: one entry per storage URI, with
 * the server's validator (HTTP ETag/Last-Modified + length, S3/GCS listing
 * hash) it was fetched under. A pull asks the server whether the validator
 * still holds (one cheap request) and, if so, fills the model folder from the
 * cache instead of downloading. Entries are written to a temp folder and
 * renamed into place, so a crash never leaves a half entry. Files are hard
 * linked between cache and model folder when both are on one file system
 * (no copy, no extra space), copied otherwise.
 *
 * With `maxBytes` (`KINFER_CACHE_MAX_BYTES`) the cache is bounded: `evict`
 * removes least recently used entries until the entries' bytes fit. An entry's
 * last use is its folder's mtime, set when it is stored and when a pull is
 * filled from it: one `utimes`, atomic, nothing rewritten. Removal renames the
 * entry away first, so other processes sharing the folder see it whole or not
 * at all; a model folder keeps its own hard links, so removing an entry never
 * touches a loaded model's files.
 *
 * @example
 * const cache = new ArtifactCache('/var/cache/kinfer', { maxBytes: 20 * 2 ** 30 });
 * const release = cache.hold(uri);
 * try {
 *   const entry = await cache.lookup(uri); // then materialize(entry, dir) or store(uri, shown, validator, dir)
 *   await cache.evict(uri);
 * } finally {
 *   release();
 * }
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { logger as defaultLogger, type Logger } from '../observability/logger.js';

export interface CacheEntry {
  validator: string;
  /** The folder holding the artifact's files. */
  dir: string;
  bytes: number;
}

export interface CacheOptions {
  /** Bound on the bytes of all entries (`KINFER_CACHE_MAX_BYTES`); none when undefined. */
  maxBytes?: number;
  logger?: Logger;
}

interface Manifest {
  uri: string;
  validator: string;
  bytes: number;
  files: { path: string; size: number }[];
  storedAt: string;
}

const MAX_TREE_ENTRIES = 200_000;
/** Entries one eviction looks at; a model cache holds tens, so more means something else shares the folder. */
const MAX_CACHE_ENTRIES = 10_000;
const ENTRY_NAME = /^[0-9a-f]{40}$/;
/** An entry renamed away for removal (`.evict-`) or replaced (`.old-`): garbage whoever made it. */
const DOOMED_NAME = /^[0-9a-f]{40}\.(?:evict|old)-\d+-[0-9a-f]+$/;

/** Entry folders held by pulls in progress in this process, with a count each: `evict` skips them. */
const held = new Map<string, number>();
/** One eviction at a time per cache folder in this process, so two do not both free the same space. */
const evictions = new Map<string, Promise<void>>();

export class ArtifactCache {
  private readonly log: Logger;

  constructor(
    readonly root: string,
    private readonly opts: CacheOptions = {},
  ) {
    this.log = opts.logger ?? defaultLogger;
  }

  private entryDir(uri: string): string {
    return path.join(this.root, createHash('sha256').update(uri).digest('hex').slice(0, 40));
  }

  /**
   * Marks `uri`'s entry as in use by a pull of this process until the returned function is
   * called: `evict` leaves it alone. Holds count, so two pulls of one URI can both hold it.
   */
  hold(uri: string): () => void {
    const dir = this.entryDir(uri);
    held.set(dir, (held.get(dir) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (held.get(dir) ?? 1) - 1;
      if (n > 0) held.set(dir, n);
      else held.delete(dir);
    };
  }

  /** The entry for `uri`, if present and intact (every file there with its recorded size). */
  async lookup(uri: string): Promise<CacheEntry | undefined> {
    const dir = this.entryDir(uri);
    const manifest = await readManifest(dir);
    if (!manifest) return undefined;
    const content = path.join(dir, 'content');
    for (const f of manifest.files ?? []) {
      const st = await lstat(path.join(content, f.path)).catch(() => undefined);
      if (!st || st.size !== f.size) {
        await removeEntry(dir);
        return undefined;
      }
    }
    return { validator: manifest.validator, dir: content, bytes: manifest.bytes };
  }

  /**
   * Records `srcDir` as the artifact of `uri` under `validator`, replacing any older entry.
   * Resolves to false, storing nothing, when the artifact alone is over `maxBytes`.
   */
  async store(uri: string, display: string, validator: string, srcDir: string): Promise<boolean> {
    const max = this.opts.maxBytes;
    if (max !== undefined) {
      // Skipped rather than kept at the cost of every other entry: the bound is what the
      // operator sized the volume by (an emptyDir sizeLimit gets the pod evicted), and one
      // oversized model must not empty the cache for the models that fit. This pull still loads.
      const bytes = (await treeFiles(srcDir)).reduce((n, f) => n + f.size, 0);
      if (bytes > max) {
        this.log.warn({ uri: display, bytes, maxBytes: max }, 'storage: artifact is larger than KINFER_CACHE_MAX_BYTES, not cached');
        // The URI's older entry is stale now (another validator) and, held by every pull of the URI, never evicted.
        await removeEntry(this.entryDir(uri));
        return false;
      }
    }
    await mkdir(this.root, { recursive: true });
    const final = this.entryDir(uri);
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const files = await linkTree(srcDir, path.join(tmp, 'content'));
      const manifest: Manifest = {
        uri: display,
        validator,
        bytes: files.reduce((n, f) => n + f.size, 0),
        files,
        storedAt: new Date().toISOString(),
      };
      await writeFile(path.join(tmp, 'manifest.json'), JSON.stringify(manifest));
      const old = `${final}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
      await rename(final, old).catch(() => undefined);
      await rename(tmp, final);
      await touch(final);
      await rm(old, { recursive: true, force: true });
      return true;
    } finally {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Fills the empty folder `destDir` from the entry and marks it used; resolves to the byte count. */
  async materialize(entry: CacheEntry, destDir: string): Promise<number> {
    const files = await linkTree(entry.dir, destDir);
    await touch(path.dirname(entry.dir));
    return files.reduce((n, f) => n + f.size, 0);
  }

  /**
   * With `maxBytes`: removes least recently used entries until the entries' bytes are at most
   * `maxBytes`, never `keepUri`'s entry nor one held by a pull of this process. Lists the folder
   * once (at most MAX_CACHE_ENTRIES entries), and also removes what removals and replacements that
   * crashed left behind. Safe beside other processes using the folder: an entry used since the
   * listing is kept, one already gone is counted as freed, and a pull elsewhere whose entry goes
   * under it downloads again (its lookup and fill tolerate missing files).
   */
  async evict(keepUri?: string): Promise<void> {
    if (this.opts.maxBytes === undefined) return;
    const prior = evictions.get(this.root) ?? Promise.resolve();
    const run = prior.then(() => this.evictOnce(this.opts.maxBytes!, keepUri === undefined ? undefined : this.entryDir(keepUri)));
    const tail = run.catch(() => undefined);
    evictions.set(this.root, tail);
    try {
      await run;
    } finally {
      if (evictions.get(this.root) === tail) evictions.delete(this.root);
    }
  }

  private async evictOnce(max: number, keep: string | undefined): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return;
    }
    const entries: { dir: string; uri: string; bytes: number; usedMs: number }[] = [];
    let total = 0;
    let seen = 0;
    for (const name of names) {
      const dir = path.join(this.root, name);
      if (DOOMED_NAME.test(name)) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        continue;
      }
      if (!ENTRY_NAME.test(name)) continue;
      if (++seen > MAX_CACHE_ENTRIES) {
        this.log.warn({ cacheDir: this.root, entries: names.length, limit: MAX_CACHE_ENTRIES }, 'storage: cache folder has too many entries; evicting among the first ones only');
        break;
      }
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      const manifest = await readManifest(dir);
      if (!manifest) {
        // Never usable (lookup misses it) and of unknown size: no reason to keep it.
        if (dir !== keep && !held.has(dir) && (await removeEntry(dir))) {
          this.log.info({ uri: name, bytes: 0, reason: 'unreadable manifest' }, 'storage: cache entry evicted');
        }
        continue;
      }
      total += manifest.bytes;
      entries.push({ dir, uri: manifest.uri, bytes: manifest.bytes, usedMs: st.mtimeMs });
    }
    if (total <= max) return;
    entries.sort((a, b) => a.usedMs - b.usedMs || (a.dir < b.dir ? -1 : 1));
    for (const e of entries) {
      if (total <= max) break;
      if (e.dir === keep || held.has(e.dir)) continue;
      const now = await stat(e.dir).catch(() => undefined);
      if (!now) {
        total -= e.bytes; // removed or replaced elsewhere since the listing
        continue;
      }
      if (now.mtimeMs !== e.usedMs) continue; // used (or replaced) elsewhere since the listing: recent now
      if (held.has(e.dir)) continue; // a pull of this process took it up during the stat
      if (!(await removeEntry(e.dir))) continue;
      total -= e.bytes;
      this.log.info(
        { uri: e.uri, bytes: e.bytes, reason: 'least recently used', lastUsed: new Date(e.usedMs).toISOString(), cacheBytes: total, maxBytes: max },
        'storage: cache entry evicted',
      );
    }
    if (total > max) {
      this.log.warn({ cacheDir: this.root, cacheBytes: total, maxBytes: max }, 'storage: cache is over KINFER_CACHE_MAX_BYTES; what is left is in use');
    }
  }
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    return typeof m === 'object' && m !== null && Number.isFinite(m.bytes) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Marks an entry used now. A failure (the entry went meanwhile) only costs recency. */
async function touch(dir: string): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => undefined);
}

/**
 * Renames the entry away, then deletes it: a lookup elsewhere sees the whole entry or none.
 * False when it was already gone (another process took it first).
 */
async function removeEntry(dir: string): Promise<boolean> {
  const doomed = `${dir}.evict-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(dir, doomed);
  } catch {
    return false;
  }
  await rm(doomed, { recursive: true, force: true }).catch(() => undefined); // a leftover is swept by the next eviction
  return true;
}

/** The files under `src` with their sizes (relative paths with '/'), without following symlinks. */
async function treeFiles(src: string): Promise<{ path: string; size: number }[]> {
  const files: { path: string; size: number }[] = [];
  let seen = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(src, rel), { withFileTypes: true })) {
      if (++seen > MAX_TREE_ENTRIES) throw new Error(`more than ${MAX_TREE_ENTRIES} files in ${src}`);
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(r);
      else if (d.isFile()) files.push({ path: r, size: (await lstat(path.join(src, r))).size });
    }
  };
  await walk('');
  return files;
}

/**
 * Recreates the tree under `src` at `dest` (which may exist and be empty):
 * directories made, files hard-linked (copied across file systems), symlinks
 * recreated. Returns the files with their sizes, relative paths with '/'.
 */
export async function linkTree(src: string, dest: string): Promise<{ path: string; size: number }[]> {
  const files: { path: string; size: number }[] = [];
  let seen = 0;
  let canLink = true;
  const walk = async (rel: string): Promise<void> => {
    await mkdir(path.join(dest, rel), { recursive: true });
    for (const d of await readdir(path.join(src, rel), { withFileTypes: true })) {
      if (++seen > MAX_TREE_ENTRIES) throw new Error(`more than ${MAX_TREE_ENTRIES} files in ${src}`);
      const r = rel ? `${rel}/${d.name}` : d.name;
      const from = path.join(src, r);
      const to = path.join(dest, r);
      if (d.isDirectory()) await walk(r);
      else if (d.isSymbolicLink()) await symlink(await readlink(from), to);
      else if (d.isFile()) {
        const st = await lstat(from);
        if (canLink) {
          try {
            await link(from, to);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EXDEV' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
            canLink = false;
          }
        }
        if (!canLink) await copyFile(from, to);
        files.push({ path: r, size: st.size });
      }
    }
  };
  await walk('');
  return files;
}
