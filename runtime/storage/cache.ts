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
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface CacheEntry {
  validator: string;
  /** The folder holding the artifact's files. */
  dir: string;
  bytes: number;
}

interface Manifest {
  uri: string;
  validator: string;
  bytes: number;
  files: { path: string; size: number }[];
  storedAt: string;
}

const MAX_TREE_ENTRIES = 200_000;

export class ArtifactCache {
  constructor(readonly root: string) {}

  private entryDir(uri: string): string {
    return path.join(this.root, createHash('sha256').update(uri).digest('hex').slice(0, 40));
  }

  /** The entry for `uri`, if present and intact (every file there with its recorded size). */
  async lookup(uri: string): Promise<CacheEntry | undefined> {
    const dir = this.entryDir(uri);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    } catch {
      return undefined;
    }
    const content = path.join(dir, 'content');
    for (const f of manifest.files ?? []) {
      const st = await lstat(path.join(content, f.path)).catch(() => undefined);
      if (!st || st.size !== f.size) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        return undefined;
      }
    }
    return { validator: manifest.validator, dir: content, bytes: manifest.bytes };
  }

  /** Records `srcDir` as the artifact of `uri` under `validator`, replacing any older entry. */
  async store(uri: string, display: string, validator: string, srcDir: string): Promise<void> {
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
      await rm(old, { recursive: true, force: true });
    } finally {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Fills the empty folder `destDir` from the entry; resolves to the byte count. */
  async materialize(entry: CacheEntry, destDir: string): Promise<number> {
    const files = await linkTree(entry.dir, destDir);
    return files.reduce((n, f) => n + f.size, 0);
  }
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
