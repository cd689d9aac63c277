/**
 * @module storage/pull
 * `pull(storageUri, { dest })`: the artifact a storage URI names, as a local
 * folder the backend can load. Picks the scheme's provider, downloads into a
 * temp folder beside `dest`, and renames it into place only when complete; a
 * failure or crash leaves `dest` (and the model serving from it) untouched.
 *
 * @example
 * const { dir, cached } = await pull('s3://models/resnet50', { dest: '/mnt/models/resnet50', cacheDir: '/var/cache/kinfer' });
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { positiveByteQuantity } from '../core/byte-quantity.js';
import { Cancelled, Internal, InvalidArgument, KinferError, Unavailable } from '../core/errors.js';
import { logger as defaultLogger, type Logger } from '../observability/logger.js';
import { archiveKind, extractArchive } from './archive.js';
import { AzureBlobSource, isAzureBlobUri } from './azure.js';
import { ArtifactCache, linkTree } from './cache.js';
import { filePath, localArtifact } from './file.js';
import { HttpSource } from './http.js';
import { pvcPath, pvcRoot } from './pvc.js';
import type { RemoteSource } from './source.js';
import { ByteBudget, displayUri, Progress, reasonOf, Redactor, type PullContext } from './transfer.js';

export interface PullOptions {
  /** The final model folder; the artifact's files end up directly in it. */
  dest: string;
  /** Artifact cache folder; default env `KINFER_CACHE_DIR`; none when unset. */
  cacheDir?: string;
  /**
   * Bound on the cache's bytes: after a pull that stored or used an entry, least recently used
   * entries are evicted until the rest fit. Default env `KINFER_CACHE_MAX_BYTES` (bytes, or a
   * quantity such as `500Mi`, `2Gi`, `1G`); no bound when unset.
   */
  cacheMaxBytes?: number;
  /** Credentials and endpoints are read from here (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  signal?: AbortSignal;
  /** Total time for the pull; default env `KINFER_PULL_TIMEOUT_SECONDS` (1800 s). */
  timeoutMs?: number;
  /** Size limit on downloaded and unpacked bytes; default env `KINFER_PULL_MAX_BYTES` (50 GiB). */
  maxBytes?: number;
  /** Retries after the first attempt of each request; default env `KINFER_PULL_RETRIES` (4). */
  retries?: number;
  /** Copy a local folder into `dest` instead of using it in place (default false). */
  copy?: boolean;
  /** Interval of progress logs; default env `KINFER_PULL_PROGRESS_SECONDS` (10 s); 0 turns them off. */
  progressIntervalMs?: number;
  /** A body that sends nothing this long is retried; default env `KINFER_PULL_STALL_SECONDS` (60 s). */
  stallMs?: number;
  /** Base of the exponential backoff; default env `KINFER_PULL_BACKOFF_MS` (500 ms). */
  backoffMs?: number;
  /**
   * Leave what `dest` held before at `result.previous` (a sibling folder) instead of removing it,
   * so a caller whose load of the new files fails can put it back (`restorePrevious`).
   */
  keepPrevious?: boolean;
}

export interface PullResult {
  /** The folder holding the model: `dest`, or the source folder itself for a local folder. */
  dir: string;
  /** True when the files came from the cache after the server confirmed they are current. */
  cached: boolean;
  /** Bytes downloaded over the network (0 for a cache hit or a local path). */
  bytes: number;
  /** With `keepPrevious`: where the replaced folder now is (absent when `dest` did not exist). */
  previous?: string;
}

/** Variables whose values never appear in a message or log line, whatever the scheme. */
const SECRET_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AZ_CLIENT_SECRET', 'AZURE_CLIENT_SECRET', 'AZURE_STORAGE_ACCESS_KEY'];

export const SUPPORTED_SCHEMES = ['file://', 'pvc://', 'http://', 'https://', 's3://', 'gs://', '(plain path)'] as const;

/**
 * Pulls `storageUri` into `opts.dest`.
 *
 * Contract: on success `dest` holds exactly the new artifact (an existing
 * `dest` is replaced by rename: old aside, new in, old removed). On any failure
 * `dest` is as it was and every temp file is gone. Pulls to the same `dest`
 * within this process run one at a time. A local folder (`file://`, `pvc://`,
 * plain path) is not copied unless `opts.copy`: the result's `dir` is the
 * source folder and `dest` is untouched. Errors: InvalidArgument (unknown
 * scheme, malformed URI, unsafe archive), NotFound, Unavailable (auth,
 * transient after retries, timeout), PayloadTooLarge, Cancelled. No message
 * or log line carries a key, token, password or header value.
 */
export async function pull(storageUri: string, opts: PullOptions): Promise<PullResult> {
  if (typeof storageUri !== 'string' || storageUri.trim() === '') {
    throw new InvalidArgument(`storage URI: expected a non-empty string, got ${JSON.stringify(storageUri)}`);
  }
  if (!opts?.dest) throw new InvalidArgument('storage: a destination folder (dest) is required');
  const uri = storageUri.trim();
  const env = opts.env ?? process.env;
  const redactor = new Redactor();
  for (const name of SECRET_ENV) redactor.add(env[name]);
  try {
    return await pullUnredacted(uri, opts, env, redactor);
  } catch (err) {
    throw scrub(err, uri, redactor);
  }
}

/**
 * Where a load request's local storage URI may point (KINFER_LOAD_LOCAL_ROOTS, folders separated by
 * `:`; empty: nowhere). Default: `/mnt`, where KServe mounts models and claims, and the PVC root.
 */
export function localLoadRootsOf(env: NodeJS.ProcessEnv): string[] {
  const set = env.KINFER_LOAD_LOCAL_ROOTS;
  if (set !== undefined) return set.split(':').filter(Boolean).map((r) => path.resolve(r));
  return [...new Set(['/mnt', pvcRoot(env)])];
}

/** The local path a `file://`, `pvc://` or plain-path URI names (not resolved); undefined for a remote scheme. */
export function localPathOf(uri: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const scheme = schemeOf(uri);
  if (scheme === 'pvc') return pvcPath(uri, env);
  return scheme === 'file' || scheme === '' ? filePath(uri) : undefined;
}

async function pullUnredacted(uri: string, opts: PullOptions, env: NodeJS.ProcessEnv, redactor: Redactor): Promise<PullResult> {
  const local = localPathOf(uri, env);
  if (local !== undefined) return pullLocal(uri, local, opts, env);
  const scheme = schemeOf(uri);
  const source = await remoteSource(scheme, uri);
  return withDestLock(path.resolve(opts.dest), () => pullRemote(uri, source, opts, env, redactor));
}

/** The scheme in lower case; '' for a plain path. Unknown or malformed → InvalidArgument naming the supported ones. */
export function schemeOf(uri: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri);
  if (!m) return '';
  const scheme = m[1]!.toLowerCase();
  const known = ['file', 'pvc', 'http', 'https', 's3', 'gs'];
  if (!known.includes(scheme)) {
    throw new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: unsupported scheme "${scheme}://"; supported: ${SUPPORTED_SCHEMES.join(', ')}`);
  }
  if (!uri.slice(m[0].length).startsWith('//')) {
    throw new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: malformed, expected ${scheme}://...`);
  }
  return scheme;
}

/**
 * S3 and GCS are imported on first use: @aws-sdk/client-s3 and
 * google-auth-library take ~250 ms to load, which every server start (and
 * every cold start of a function that pulls over HTTP or not at all) paid.
 * `azure.ts` is light and loads the Azure SDKs itself when it fetches.
 * `https://<account>.blob.core.windows.net/…` goes to Azure, as in KServe.
 */
async function remoteSource(scheme: string, uri: string): Promise<RemoteSource> {
  switch (scheme) {
    case 'http':
      return new HttpSource(uri);
    case 'https':
      return isAzureBlobUri(uri) ? new AzureBlobSource(uri) : new HttpSource(uri);
    case 's3':
      return new (await import('./s3.js')).S3Source(uri);
    case 'gs':
      return new (await import('./gcs.js')).GcsSource(uri);
    default:
      throw new Internal(`storage: no provider for scheme ${scheme}`);
  }
}

function num(v: string | undefined, dflt: number): number {
  if (v === undefined || v.trim() === '') return dflt;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

/** `opts.cacheMaxBytes`, else KINFER_CACHE_MAX_BYTES; a bad value is an error naming its source, not a silent "no bound". */
function cacheMaxBytesOf(opts: PullOptions, env: NodeJS.ProcessEnv): number | undefined {
  if (opts.cacheMaxBytes !== undefined) {
    if (!Number.isSafeInteger(opts.cacheMaxBytes) || opts.cacheMaxBytes <= 0) {
      throw new InvalidArgument(`storage: cacheMaxBytes: expected a positive whole number of bytes, got ${opts.cacheMaxBytes}`);
    }
    return opts.cacheMaxBytes;
  }
  const v = env.KINFER_CACHE_MAX_BYTES;
  if (v === undefined || v.trim() === '') return undefined;
  return positiveByteQuantity(v, 'KINFER_CACHE_MAX_BYTES');
}

interface Limits {
  timeoutMs: number;
  maxBytes: number;
  retries: number;
  progressMs: number;
  stallMs: number;
  backoffMs: number;
}

function limitsOf(opts: PullOptions, env: NodeJS.ProcessEnv): Limits {
  return {
    timeoutMs: opts.timeoutMs ?? num(env.KINFER_PULL_TIMEOUT_SECONDS, 1800) * 1000,
    maxBytes: opts.maxBytes ?? num(env.KINFER_PULL_MAX_BYTES, 50 * 2 ** 30),
    retries: Math.min(20, Math.floor(opts.retries ?? num(env.KINFER_PULL_RETRIES, 4))),
    progressMs: opts.progressIntervalMs ?? num(env.KINFER_PULL_PROGRESS_SECONDS, 10) * 1000,
    stallMs: opts.stallMs ?? num(env.KINFER_PULL_STALL_SECONDS, 60) * 1000,
    backoffMs: opts.backoffMs ?? num(env.KINFER_PULL_BACKOFF_MS, 500),
  };
}

async function pullLocal(uri: string, p: string, opts: PullOptions, env: NodeJS.ProcessEnv): Promise<PullResult> {
  const what = displayUri(uri);
  const art = await localArtifact(p, what);
  if (art.kind === 'dir' && !opts.copy) return { dir: art.path, cached: false, bytes: 0 };
  const limits = limitsOf(opts, env);
  const dest = path.resolve(opts.dest);
  return withDestLock(dest, () =>
    staged(dest, opts.keepPrevious, async (staging) => {
      if (art.kind === 'dir') {
        await linkTree(art.path, staging);
      } else {
        new ByteBudget(limits.maxBytes).check(art.size, what);
        const kind = archiveKind(art.path);
        if (kind) await extractArchive(art.path, kind, staging, { maxBytes: limits.maxBytes, signal: opts.signal });
        else await copyFile(art.path, path.join(staging, path.basename(art.path)));
      }
      // Cancelled meanwhile: the staging folder goes and the destination stays as it was.
      if (opts.signal?.aborted) throw new Cancelled(`${what}: pull cancelled`);
      return { dir: dest, cached: false, bytes: 0 };
    }),
  );
}

async function pullRemote(uri: string, source: RemoteSource, opts: PullOptions, env: NodeJS.ProcessEnv, redactor: Redactor): Promise<PullResult> {
  const what = displayUri(uri);
  const log = opts.logger ?? defaultLogger;
  const limits = limitsOf(opts, env);
  const dest = path.resolve(opts.dest);
  const cacheDir = opts.cacheDir ?? (env.KINFER_CACHE_DIR || undefined);
  const cacheMaxBytes = cacheDir ? cacheMaxBytesOf(opts, env) : undefined;
  const cache = cacheDir ? new ArtifactCache(path.resolve(cacheDir), { maxBytes: cacheMaxBytes, logger: log }) : undefined;

  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Unavailable(`${what}: pull timed out after ${Math.round(limits.timeoutMs / 1000)} s (KINFER_PULL_TIMEOUT_SECONDS)`)),
    limits.timeoutMs,
  );
  timer.unref();
  const onAbort = () => ac.abort(new Cancelled(`${what}: pull cancelled`));
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const progress = new Progress(log, what, limits.progressMs);
  const started = Date.now();
  const key = source.cacheKey ?? uri;
  const release = cache?.hold(key);

  try {
    return await staged(dest, opts.keepPrevious, async (staging, scratch) => {
      const ctx: PullContext = {
        env,
        logger: log,
        signal: ac.signal,
        retries: limits.retries,
        backoffMs: limits.backoffMs,
        stallMs: limits.stallMs,
        budget: new ByteBudget(limits.maxBytes),
        progress,
        redact: redactor,
        scratch,
      };
      const entry = cache ? await cache.lookup(key).catch(() => undefined) : undefined;
      log.info({ uri: what, dest, cacheEntry: Boolean(entry) }, 'storage: pull started');
      progress.start();
      let outcome = await source.fetch(staging, ctx, entry?.validator);
      let cached = false;
      if (outcome.unchanged) {
        try {
          await cache!.materialize(entry!, staging);
          cached = true;
        } catch (err) {
          // The entry vanished or broke between lookup and use: fetch for real.
          log.warn({ uri: what, reason: redactor.redact(reasonOf(err)) }, 'storage: cache entry unusable, downloading');
          await emptyDir(staging);
          outcome = await source.fetch(staging, ctx);
          if (outcome.unchanged) throw new Unavailable(`${what}: the source says unchanged, and there is no cached copy to use`);
        }
      }
      if (!outcome.unchanged && cache && outcome.validator) {
        await cache.store(key, what, outcome.validator, staging).catch((err: unknown) => {
          log.warn({ uri: what, reason: redactor.redact(reasonOf(err)) }, 'storage: could not write the cache entry');
        });
      }
      if (cache && (cached || (!outcome.unchanged && outcome.validator))) {
        // After a hit too, so a lowered bound takes effect on a restart that downloads nothing.
        await cache.evict(key).catch((err: unknown) => {
          log.warn({ uri: what, reason: redactor.redact(reasonOf(err)) }, 'storage: cache eviction failed');
        });
      }
      const bytes = outcome.unchanged ? 0 : outcome.bytes;
      log.info({ uri: what, dest, cached, bytes, seconds: (Date.now() - started) / 1000 }, 'storage: pull finished');
      return { dir: dest, cached, bytes };
    });
  } finally {
    release?.();
    progress.stop();
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

async function emptyDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
}

const active = new Map<string, Promise<unknown>>();

/** Serialises pulls to the same destination within this process. */
async function withDestLock<T>(dest: string, fn: () => Promise<T>): Promise<T> {
  const prior = active.get(dest) ?? Promise.resolve();
  const run = prior.catch(() => undefined).then(fn);
  const tail = run.catch(() => undefined);
  active.set(dest, tail);
  try {
    return await run;
  } finally {
    if (active.get(dest) === tail) active.delete(dest);
  }
}

/**
 * Runs `fill(staging, scratch)` on a fresh folder beside `dest`, then swaps it
 * into place. Temp names start with `.<name>.pull-<pid>-`; leftovers of dead
 * processes (or of this one, as we hold the lock) are removed first.
 */
async function staged(dest: string, keepPrevious: boolean | undefined, fill: (staging: string, scratch: string) => Promise<PullResult>): Promise<PullResult> {
  const parent = path.dirname(dest);
  const base = path.basename(dest);
  await mkdir(parent, { recursive: true });
  await removeLeftovers(parent, base);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = path.join(parent, `.${base}.pull-${tag}`);
  const scratch = `${staging}.tmp`;
  await mkdir(staging);
  await mkdir(scratch);
  try {
    const result = await fill(staging, scratch);
    const previous = await swapIntoPlace(staging, dest, tag, keepPrevious);
    return previous ? { ...result, previous } : result;
  } finally {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Puts `previous` (from a pull with `keepPrevious`) back at `dest`, removing what the pull
 * put there: for a load of the new files that failed.
 */
export async function restorePrevious(dest: string, previous: string): Promise<void> {
  const resolved = path.resolve(dest);
  await withDestLock(resolved, () => swapIntoPlace(previous, resolved, `${process.pid}-${randomBytes(4).toString('hex')}`));
}

/** Old aside, new in, old removed (or returned, with `keep`); if the second rename fails, the old goes back. */
async function swapIntoPlace(staging: string, dest: string, tag: string, keep = false): Promise<string | undefined> {
  const old = path.join(path.dirname(dest), `.${path.basename(dest)}.old-${tag}`);
  let moved = false;
  try {
    await rename(dest, old);
    moved = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    await rename(staging, dest);
  } catch (err) {
    if (moved) await rename(old, dest).catch(() => undefined);
    throw err;
  }
  if (!moved) return undefined;
  if (keep) return old;
  // The new model is in place: a failed removal must not report the pull as failed (the next pull's leftover sweep retries it).
  await rm(old, { recursive: true, force: true }).catch(() => undefined);
  return undefined;
}

async function removeLeftovers(parent: string, base: string): Promise<void> {
  const prefixPull = `.${base}.pull-`;
  const prefixOld = `.${base}.old-`;
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const rest = name.startsWith(prefixPull) ? name.slice(prefixPull.length) : name.startsWith(prefixOld) ? name.slice(prefixOld.length) : undefined;
    const pid = rest !== undefined ? Number(/^(\d+)-[0-9a-f]+(\.tmp)?$/.exec(rest)?.[1]) : NaN;
    if (!Number.isInteger(pid)) continue;
    if (pid !== process.pid && alive(pid)) continue;
    await rm(path.join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every error leaves as a KinferError whose message and stack carry no secret. */
function scrub(err: unknown, uri: string, redactor: Redactor): KinferError {
  let out: KinferError;
  if (err instanceof KinferError) out = err;
  else {
    const code = (err as NodeJS.ErrnoException)?.code;
    const reason = reasonOf(err);
    out = typeof code === 'string' ? new Unavailable(`${displayUri(uri)}: ${reason}`) : new Internal(`${displayUri(uri)}: ${reason}`);
  }
  out.message = redactor.redact(out.message);
  if (out.stack) out.stack = redactor.redact(out.stack);
  return out;
}
