/**
 * @module storage/source
 * The contract each network scheme (http, s3, gcs, azure) implements, the helper
 * they share for a single object that may be an archive, and the listing and
 * download steps the bucket stores (s3, gcs, azure) share.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgument, NotFound } from '../core/errors.js';
import { archiveKind, extractArchive } from './archive.js';
import { forEachLimit, type PullContext } from './transfer.js';

export type FetchOutcome =
  /** The server confirmed the cached validator: nothing was downloaded. */
  | { unchanged: true }
  /** Files were written; `validator` (when the server gave one) keys the cache. */
  | { unchanged: false; validator?: string; bytes: number };

/**
 * A network scheme. `fetch` writes the artifact's files directly into `dir`
 * (an empty folder beside the destination) and never touches anything else
 * but `ctx.scratch`. When `cached` is given and the server says the artifact
 * still matches it, `fetch` must return `{ unchanged: true }` without
 * downloading any body. Errors: NotFound, Unavailable (auth, transient after
 * retries), InvalidArgument (bad archive, unsafe names), PayloadTooLarge.
 */
export interface RemoteSource {
  fetch(dir: string, ctx: PullContext, cached?: string): Promise<FetchOutcome>;
  /**
   * The cache entry's key, when not the URI itself: a source whose URI carries a
   * credential that rotates (an Azure SAS) keys by the URI without it. Safe only
   * because `fetch` asks the server, with the current credential, on every pull.
   */
  readonly cacheKey?: string;
}

/** A safe single path segment for an object's base name, or an InvalidArgument naming `what`. */
export function safeBasename(name: string, what: string): string {
  const base = name.split('/').pop() ?? '';
  if (!base || base === '.' || base === '..' || base.includes('\\') || base.includes('\0')) {
    throw new InvalidArgument(`${what}: cannot derive a file name from ${JSON.stringify(name)}`);
  }
  return base;
}

/** A relative object path turned into a path under `dir`, refusing anything that climbs out. */
export function safeJoin(dir: string, rel: string, what: string): string {
  const clean = path.posix.normalize(rel.replace(/\\/g, '/'));
  if (!rel || clean.startsWith('/') || clean === '..' || clean.startsWith('../') || clean === '.' || rel.includes('\0')) {
    throw new InvalidArgument(`${what}: object ${JSON.stringify(rel)} would be written outside the model folder; refused`);
  }
  return path.join(dir, clean);
}

/**
 * Refuses objects that would land on the same file (`a/x` and `a/./x`: downloaded together, they
 * would write one file at once) or on a file and a folder (`a` and `a/b`), before any download.
 */
function checkLayout(what: string, objects: readonly { name: string; rel: string }[]): void {
  const files = new Map<string, string>();
  const folders = new Map<string, string>();
  for (const o of objects) {
    const rel = path.posix.normalize(o.rel.replace(/\\/g, '/'));
    const same = files.get(rel);
    if (same !== undefined) throw new InvalidArgument(`${what}: objects ${JSON.stringify(same)} and ${JSON.stringify(o.name)} both land on ${JSON.stringify(rel)}; refused`);
    const under = folders.get(rel);
    if (under !== undefined) throw new InvalidArgument(`${what}: object ${JSON.stringify(o.name)} is a file at ${JSON.stringify(rel)}, where object ${JSON.stringify(under)} needs a folder; refused`);
    files.set(rel, o.name);
    for (let d = path.posix.dirname(rel); d !== '.' && d !== '/'; d = path.posix.dirname(d)) {
      const file = files.get(d);
      if (file !== undefined) throw new InvalidArgument(`${what}: object ${JSON.stringify(o.name)} needs a folder at ${JSON.stringify(d)}, where object ${JSON.stringify(file)} is a file; refused`);
      if (folders.has(d)) break;
      folders.set(d, o.name);
    }
  }
}

/**
 * Downloads one object with `download(file)`, then, if its name or content type
 * says archive, unpacks it into `dir` (the archive itself is not kept).
 * Otherwise the object lands at `dir/<name>`. Resolves to the bytes downloaded.
 */
export async function fetchSingle(
  ctx: PullContext,
  what: string,
  dir: string,
  name: string,
  contentType: string | null | undefined,
  download: (file: string) => Promise<number>,
): Promise<number> {
  const kind = archiveKind(name, contentType);
  if (!kind) return download(path.join(dir, safeBasename(name, what)));
  const tmp = path.join(ctx.scratch, `.archive-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const bytes = await download(tmp);
    ctx.logger.info({ uri: what, kind }, 'storage: unpacking archive');
    await extractArchive(tmp, kind, dir, { maxBytes: ctx.budget.max, signal: ctx.signal });
    return bytes;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** One object of a bucket listing. */
export interface ListedObject {
  /** The object's full name (key) in the bucket. */
  name: string;
  size: number;
  contentType?: string;
}

/**
 * The objects a bucket listing yields for `prefix`, each with `rel`, its path
 * under the model folder, sorted by name: every object under `prefix/`
 * (folder markers skipped), else the one object named exactly `prefix`.
 * Nothing found is NotFound, naming `where` (`bucket models`).
 */
export function selectListed<T extends ListedObject>(
  raw: readonly T[],
  prefix: string,
  what: string,
  where: string,
): (T & { rel: string })[] {
  const folder = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  const under = raw.filter((o) => o.name.startsWith(folder) && !o.name.endsWith('/'));
  let objects: (T & { rel: string })[];
  if (under.length > 0) objects = under.map((o) => ({ ...o, rel: o.name.slice(folder.length) }));
  else {
    const exact = raw.find((o) => o.name === prefix);
    objects = exact ? [{ ...exact, rel: path.posix.basename(exact.name) }] : [];
  }
  if (objects.length === 0) throw new NotFound(`${what}: no objects found under this prefix in ${where}`);
  return objects.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The cache validator of a listing: `<scheme>:` + a SHA-256 of the per-object `rows`. */
export function listingValidator(scheme: string, rows: readonly unknown[]): string {
  return `${scheme}:` + createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}

/**
 * Downloads the selected objects into `dir` within the byte budget: a prefix
 * naming exactly one object goes through `fetchSingle` (archives unpacked),
 * otherwise each object lands at its `rel` path, four at a time. Resolves to
 * the bytes downloaded.
 */
export async function fetchListed<T extends ListedObject & { rel: string }>(
  ctx: PullContext,
  what: string,
  dir: string,
  prefix: string,
  objects: readonly T[],
  download: (o: T, file: string) => Promise<number>,
): Promise<number> {
  const total = objects.reduce((n, o) => n + o.size, 0);
  ctx.budget.check(total, what);
  ctx.progress.setTotal(total);
  if (objects.length === 1 && objects[0]!.name === prefix) {
    const o = objects[0]!;
    return fetchSingle(ctx, what, dir, o.name, o.contentType, (file) => download(o, file));
  }
  checkLayout(what, objects);
  let bytes = 0;
  await forEachLimit(objects, 4, async (o) => {
    const file = safeJoin(dir, o.rel, what);
    await mkdir(path.dirname(file), { recursive: true });
    const n = await download(o, file);
    bytes += n;
  });
  return bytes;
}
