/**
 * @module storage/archive
 * Unpacks `.zip`, `.tar`, `.tar.gz`/`.tgz` into a model folder, refusing any
 * entry that would land outside it: absolute paths, `..` that climbs out,
 * symlinks or hard links whose target is outside, and entries written through
 * a symlink extracted earlier (the chained-link trick). Each refusal is an
 * InvalidArgument naming the entry; the caller discards the partial folder.
 * Entries are streamed to disk one at a time (tar: node-tar's Parser; zip: yauzl).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, mkdir, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadEntry } from 'tar';
import type yauzl from 'yauzl';
import { InvalidArgument } from '../core/errors.js';
import { importModule } from '../core/import-module.js';

export type ArchiveKind = 'zip' | 'tar';

export interface ExtractLimits {
  /** Upper bound on the unpacked bytes (zip bombs). */
  maxBytes: number;
  /** Upper bound on the number of entries. */
  maxEntries?: number;
  signal?: AbortSignal;
}

const ZIP_TYPES = new Set(['application/zip', 'application/x-zip-compressed', 'application/x-zip']);
const TAR_TYPES = new Set([
  'application/x-tar',
  'application/tar',
  'application/gzip',
  'application/x-gzip',
  'application/x-gtar',
  'application/x-tgz',
  'application/x-compressed-tar',
]);

/** The archive kind of a name (by extension) or, failing that, of a Content-Type; undefined for a plain file. */
export function archiveKind(name: string, contentType?: string | null): ArchiveKind | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith('.zip')) return 'zip';
  if (lower.endsWith('.tar') || lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar';
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  if (!type) return undefined;
  if (ZIP_TYPES.has(type)) return 'zip';
  if (TAR_TYPES.has(type)) return 'tar';
  return undefined;
}

/** Unpacks `file` into the existing folder `dir`. Resolves to the unpacked byte count. */
export async function extractArchive(file: string, kind: ArchiveKind, dir: string, limits: ExtractLimits): Promise<number> {
  const guard = new EntryGuard(dir, limits);
  if (kind === 'zip') await extractZip(file, guard);
  else await extractTar(file, guard);
  return guard.bytes;
}

function refuse(entry: string, why: string): InvalidArgument {
  return new InvalidArgument(`archive entry ${JSON.stringify(entry)} ${why}; refused`);
}

/** Path checks and bookkeeping shared by both formats. */
class EntryGuard {
  bytes = 0;
  private entries = 0;
  private readonly symlinks = new Set<string>();
  private readonly maxEntries: number;

  constructor(
    readonly root: string,
    private readonly limits: ExtractLimits,
  ) {
    this.maxEntries = limits.maxEntries ?? 100_000;
  }

  /** Normalised relative path of an entry, or a refusal; '' means the root itself. */
  relative(name: string): string {
    if (++this.entries > this.maxEntries) throw new InvalidArgument(`archive has more than ${this.maxEntries} entries; refused`);
    if (this.limits.signal?.aborted) throw this.limits.signal.reason ?? new Error('aborted');
    if (name.includes('\0')) throw refuse(name, 'contains a NUL byte');
    const slashed = name.replace(/\\/g, '/');
    if (slashed.startsWith('/') || /^[a-zA-Z]:/.test(slashed)) throw refuse(name, 'has an absolute path');
    const rel = path.posix.normalize(slashed).replace(/\/+$/, '');
    if (rel === '..' || rel.startsWith('../')) throw refuse(name, 'would be written outside the model folder');
    const clean = rel === '.' ? '' : rel.replace(/^\.\//, '');
    this.assertNoLinkInPath(name, clean, false);
    return clean;
  }

  /** Refuses paths that pass through a symlink extracted earlier (its target would decide where bytes land). */
  assertNoLinkInPath(entry: string, rel: string, includeLast: boolean): void {
    const parts = rel.split('/');
    const upto = includeLast ? parts.length : parts.length - 1;
    for (let i = 1; i <= upto; i++) {
      if (this.symlinks.has(parts.slice(0, i).join('/'))) throw refuse(entry, `passes through the symlink ${JSON.stringify(parts.slice(0, i).join('/'))}`);
    }
  }

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  count(n: number): void {
    this.bytes += n;
    if (this.bytes > this.limits.maxBytes) {
      throw new InvalidArgument(`archive unpacks to more than the size limit of ${this.limits.maxBytes} bytes; refused`);
    }
  }

  /** A folder at `rel` (and its parents); an earlier entry's file in the way refuses `entry`. */
  async ensureDir(entry: string, rel: string): Promise<void> {
    if (!rel) return;
    await mkdir(this.abs(rel), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST' || err.code === 'ENOTDIR') throw refuse(entry, `needs a folder at ${JSON.stringify(rel)} where an earlier entry is a file`);
      throw err;
    });
  }

  /** Removes whatever (non-directory) an earlier entry left at `rel`, so a later one never writes through it. */
  async clear(entry: string, rel: string): Promise<void> {
    const st = await lstat(this.abs(rel)).catch(() => undefined);
    if (!st) return;
    if (st.isDirectory()) throw refuse(entry, 'replaces a directory');
    await unlink(this.abs(rel));
    this.symlinks.delete(rel);
  }

  async file(entry: string, rel: string, body: Readable, mode: number | undefined): Promise<void> {
    if (!rel) throw refuse(entry, 'is a file at the archive root path');
    await this.ensureDir(entry, path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    await this.clear(entry, rel);
    // 'wx' (O_EXCL) never follows a symlink that might have appeared at this path.
    const out = createWriteStream(this.abs(rel), { flags: 'wx', mode: ((mode ?? 0o644) & 0o777) | 0o600 });
    const counter = async function* (this: EntryGuard, src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        this.count(chunk.length);
        yield chunk;
      }
    }.bind(this);
    await pipeline(body, counter, out);
  }

  async symlink(entry: string, rel: string, target: string): Promise<void> {
    if (!rel) throw refuse(entry, 'is a link at the archive root path');
    if (!target) throw refuse(entry, 'is a symlink without a target');
    if (target.startsWith('/') || /^[a-zA-Z]:/.test(target)) throw refuse(entry, `is a symlink to the absolute path ${JSON.stringify(target)}`);
    // The link is followed physically, where `x/..` through a symlink `x` is not `.`: only leading
    // `..` segments (applied to the link's own folder, a real one) keep the lexical check below true.
    const segments = target.replace(/\\/g, '/').split('/').filter((seg) => seg !== '' && seg !== '.');
    const firstName = segments.findIndex((seg) => seg !== '..');
    if (firstName >= 0 && segments.indexOf('..', firstName) >= 0) {
      throw refuse(entry, `is a symlink whose target has '..' after a name (${JSON.stringify(target)}); only leading '..' segments are allowed`);
    }
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target.replace(/\\/g, '/')));
    if (resolved === '..' || resolved.startsWith('../')) throw refuse(entry, `is a symlink pointing outside the model folder (${JSON.stringify(target)})`);
    this.assertLinkTarget(entry, resolved, target);
    await this.ensureDir(entry, path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    await this.clear(entry, rel);
    await symlink(target, this.abs(rel));
    this.symlinks.add(rel);
  }

  async hardlink(entry: string, rel: string, target: string): Promise<void> {
    if (!rel) throw refuse(entry, 'is a link at the archive root path');
    const slashed = target.replace(/\\/g, '/');
    if (slashed.startsWith('/') || /^[a-zA-Z]:/.test(slashed)) throw refuse(entry, `is a hard link to the absolute path ${JSON.stringify(target)}`);
    const resolved = path.posix.normalize(slashed).replace(/^\.\//, '');
    if (resolved === '..' || resolved.startsWith('../')) throw refuse(entry, `is a hard link pointing outside the model folder (${JSON.stringify(target)})`);
    this.assertLinkTarget(entry, resolved, target);
    const st = await lstat(this.abs(resolved)).catch(() => undefined);
    if (!st?.isFile()) throw refuse(entry, `is a hard link to ${JSON.stringify(target)}, which is not a file extracted before it`);
    await this.ensureDir(entry, path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    await this.clear(entry, rel);
    await link(this.abs(resolved), this.abs(rel));
  }

  private assertLinkTarget(entry: string, resolved: string, target: string): void {
    const parts = resolved === '.' ? [] : resolved.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (this.symlinks.has(parts.slice(0, i).join('/'))) {
        throw refuse(entry, `links to ${JSON.stringify(target)} through the symlink ${JSON.stringify(parts.slice(0, i).join('/'))}`);
      }
    }
  }
}

async function extractTar(file: string, guard: EntryGuard): Promise<void> {
  let failure: unknown;
  let current: ReadEntry | undefined;
  let pending: Promise<void> = Promise.resolve();
  let signalFailed!: () => void;
  const failed = new Promise<void>((resolve) => (signalFailed = resolve));
  const fail = (err: unknown) => {
    if (failure !== undefined) return;
    failure = err;
    signalFailed();
  };
  // Imported on first use: most pulls are single files, and start-up should not pay for the archive readers.
  const { Parser } = await importModule<typeof import('tar')>('tar');
  const parser = new Parser({ strict: true });
  parser.on('error', (err: unknown) => {
    fail(err);
    // An entry mid-body would otherwise wait forever for bytes that will not come.
    try {
      current?.destroy?.();
    } catch {
      // already gone
    }
  });
  parser.on('entry', (entry: ReadEntry) => {
    // The parser emits the next entry only after this one ends, so entries are handled in order.
    current = entry;
    pending = pending.then(() => handleTarEntry(entry, guard)).catch((err) => {
      fail(err);
      entry.resume();
    });
  });
  const input = createReadStream(file);
  try {
    for await (const chunk of input) {
      if (failure !== undefined) break;
      if (!parser.write(chunk as Buffer)) await Promise.race([event(parser, 'drain'), failed]);
    }
    if (failure === undefined) {
      const ended = event(parser, 'end');
      parser.end();
      await Promise.race([ended, failed]);
    }
    await Promise.race([pending, failed]);
  } finally {
    input.destroy();
  }
  if (failure !== undefined) throw mapTarError(failure, file);
}

/** Resolves on the event; never rejects (errors go through the 'error' listener). */
function event(emitter: EventEmitter, name: string): Promise<void> {
  return new Promise((resolve) => emitter.once(name, () => resolve()));
}

function mapTarError(err: unknown, file: string): unknown {
  if (err instanceof InvalidArgument) return err;
  const msg = err instanceof Error ? err.message : String(err);
  if (/TAR_|tar|zlib|header|checksum|unexpected end/i.test(msg) || (err as { code?: string }).code?.startsWith?.('TAR_')) {
    return new InvalidArgument(`archive ${path.basename(file)} is not a valid tar/tar.gz: ${msg}`);
  }
  return err;
}

async function handleTarEntry(entry: ReadEntry, guard: EntryGuard): Promise<void> {
  const name = entry.path;
  const rel = guard.relative(name);
  switch (entry.type) {
    case 'Directory':
    case 'GNUDumpDir':
      await guard.ensureDir(name, rel);
      entry.resume();
      return;
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      await guard.file(name, rel, entry as unknown as Readable, entry.mode);
      return;
    case 'SymbolicLink':
      await guard.symlink(name, rel, entry.linkpath ?? '');
      entry.resume();
      return;
    case 'Link':
      await guard.hardlink(name, rel, entry.linkpath ?? '');
      entry.resume();
      return;
    default:
      throw refuse(name, `has the unsupported type ${entry.type}`);
  }
}

async function openZip(file: string): Promise<yauzl.ZipFile> {
  const { default: zip } = await importModule<{ default: typeof import('yauzl') }>('yauzl');
  return new Promise((resolve, reject) => {
    zip.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) reject(mapZipError(err ?? new Error('cannot open'), file));
      else resolve(zip);
    });
  });
}

function mapZipError(err: Error, file: string): InvalidArgument {
  const m = /^(invalid relative path|absolute path|invalid characters in fileName): (.*)$/.exec(err.message);
  if (m) {
    const why = m[1] === 'absolute path' ? 'has an absolute path' : m[1] === 'invalid relative path' ? 'would be written outside the model folder' : 'has invalid characters';
    return refuse(m[2]!, why);
  }
  return new InvalidArgument(`archive ${path.basename(file)} is not a valid zip: ${err.message}`);
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

async function extractZip(file: string, guard: EntryGuard): Promise<void> {
  const zip = await openZip(file);
  try {
    await new Promise<void>((resolve, reject) => {
      let busy = false;
      zip.on('error', (err: Error) => reject(mapZipError(err, file)));
      zip.on('end', () => {
        if (!busy) resolve();
      });
      zip.on('entry', (entry: yauzl.Entry) => {
        busy = true;
        handleZipEntry(zip, entry, guard).then(
          () => {
            busy = false;
            zip.readEntry();
          },
          (err) => reject(err instanceof Error && !(err instanceof InvalidArgument) && /invalid|size|compressed/i.test(err.message) ? mapZipError(err, file) : err),
        );
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

async function handleZipEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, guard: EntryGuard): Promise<void> {
  const name = entry.fileName;
  const rel = guard.relative(name);
  if (name.endsWith('/')) {
    await guard.ensureDir(name, rel);
    return;
  }
  const unixMode = (entry.externalFileAttributes >>> 16) & 0xffff;
  const body = await new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(entry, (err, stream) => (err || !stream ? reject(err ?? new Error('no stream')) : resolve(stream))),
  );
  try {
    if ((unixMode & S_IFMT) === S_IFLNK) {
      if (entry.uncompressedSize > 4096) throw refuse(name, 'is a symlink with an over-long target');
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      await guard.symlink(name, rel, Buffer.concat(chunks).toString('utf8'));
      return;
    }
    await guard.file(name, rel, body, unixMode & 0o777 || undefined);
  } finally {
    // yauzl holds the archive's descriptor until every read stream ends: a refused entry's must end too.
    body.destroy();
  }
}
