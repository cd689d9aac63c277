/**
 * @module storage/source
 * The contract each network scheme (http, s3, gcs) implements, and the one
 * helper they share for a single object that may be an archive.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgument } from '../core/errors.js';
import { archiveKind, extractArchive } from './archive.js';
import type { PullContext } from './transfer.js';

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
