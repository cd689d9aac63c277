/**
 * @module storage/transfer
 * What every network scheme shares: the pull context (limits, signal, logger),
 * retries with backoff on transient failures, a byte budget (size limit),
 * progress logs, a stall watchdog, credential redaction, and the one routine
 * that streams a body into a file with resume on retry.
 */
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cancelled, KinferError, PayloadTooLarge, Unavailable } from '../core/errors.js';
import type { Logger } from '../observability/logger.js';

/** Everything a scheme needs while it fetches. Built once per pull by `pull.ts`. */
export interface PullContext {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Aborts on the caller's signal or on the total timeout. */
  signal: AbortSignal;
  /** Retries after the first attempt, per request. */
  retries: number;
  /** Base of the exponential backoff, in ms. */
  backoffMs: number;
  /** A body that sends nothing for this long is abandoned and retried. */
  stallMs: number;
  budget: ByteBudget;
  progress: Progress;
  redact: Redactor;
  /** Where a scheme may put temporary files (beside the destination, same file system). */
  scratch: string;
}

/** Thrown by schemes for failures worth another attempt (5xx, throttling, dropped connection). */
export class TransientError extends Error {
  override name = 'TransientError';
}

/** Replaces known secrets (keys, tokens, header values, URL passwords) with `***`. */
export class Redactor {
  private readonly secrets = new Set<string>();

  add(secret: string | undefined): void {
    // Very short values would blank out ordinary words; none of the secrets we know are that short.
    if (secret && secret.length >= 4) this.secrets.add(secret);
  }

  redact(text: string): string {
    let out = text;
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
    return out;
  }
}

/** A URI as it may appear in logs and errors: no userinfo, no query (signed URLs carry tokens there). */
export function displayUri(uri: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)(?:[^/?#]*@)?([^?#]*)([?#].*)?$/.exec(uri);
  if (!m) return uri.replace(/[?#].*$/, '');
  return `${m[1]}${m[2]}${m[3] ? '?…' : ''}`;
}

/** The size limit: counts bytes across all files of one pull. */
export class ByteBudget {
  private used = 0;
  constructor(readonly max: number) {}

  get bytes(): number {
    return this.used;
  }

  /** Fails before any byte is written when a declared size is already over the limit. */
  check(declared: number, what: string): void {
    if (this.used + declared > this.max) throw tooLarge(what, this.max);
  }

  add(n: number, what: string): void {
    this.used += n;
    if (this.used > this.max) throw tooLarge(what, this.max);
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

function tooLarge(what: string, max: number): PayloadTooLarge {
  return new PayloadTooLarge(`${what}: artifact exceeds the size limit of ${max} bytes (KINFER_PULL_MAX_BYTES)`);
}

/** Logs bytes and rate at a fixed interval while bytes flow; silent for quick pulls. */
export class Progress {
  private bytes = 0;
  private total: number | undefined;
  private readonly started = Date.now();
  private lastBytes = 0;
  private lastAt = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly uri: string,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.timer = setInterval(() => this.log(), this.intervalMs);
    this.timer.unref();
  }

  setTotal(total: number | undefined): void {
    this.total = total;
  }

  add(n: number): void {
    this.bytes += n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private log(): void {
    const now = Date.now();
    const rate = ((this.bytes - this.lastBytes) * 1000) / Math.max(1, now - this.lastAt);
    this.lastBytes = this.bytes;
    this.lastAt = now;
    this.logger.info(
      {
        uri: this.uri,
        bytes: this.bytes,
        totalBytes: this.total,
        bytesPerSecond: Math.round(rate),
        elapsedSeconds: Math.round((now - this.started) / 1000),
      },
      'storage: download progress',
    );
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** HTTP statuses worth retrying: 408, 429 and 5xx. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The first byte a `Content-Range: bytes <start>-…` header names, or undefined without one. */
export function contentRangeStart(value: string | undefined): number | undefined {
  const m = value ? /^bytes (\d+)-/.exec(value) : null;
  return m ? Number(m[1]) : undefined;
}

/** Network-level failures (reset, refused, truncated body, stall) are worth another attempt. */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof KinferError) return false;
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    const msg = (e as { message?: unknown }).message;
    if (typeof msg === 'string' && /terminated|socket hang up|other side closed|premature close|aborted/i.test(msg)) {
      // An abort of our own signal is not transient; it is handled by the caller.
      if ((e as { name?: string }).name === 'AbortError') return false;
      return true;
    }
  }
  return false;
}

/** The reason of an error as one line, for messages. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: unknown }).cause;
    const causeMsg = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${causeMsg}${typeof code === 'string' && !err.message.includes(code) ? ` (${code})` : ''}`;
  }
  return String(err);
}

/** Throws Cancelled or a timeout Unavailable if the pull's signal fired. */
export function throwIfAborted(ctx: PullContext, what: string): void {
  if (ctx.signal.aborted) throw abortError(ctx, what);
}

export function abortError(ctx: PullContext, what: string): KinferError {
  const reason = ctx.signal.reason as unknown;
  if (reason instanceof KinferError) return reason;
  return new Cancelled(`${what}: pull cancelled`);
}

/**
 * Runs `fn` up to `1 + ctx.retries` times while it fails transiently, sleeping
 * `backoffMs * 2^n` (capped at 10 s, with jitter) between attempts. Non-transient
 * errors pass through at once. After the last attempt: Unavailable naming `what`.
 */
export async function withRetry<T>(ctx: PullContext, what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
  let lastErr: unknown;
  for (let attempt = 0; attempt <= ctx.retries; attempt++) {
    throwIfAborted(ctx, what);
    try {
      return await fn(attempt);
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(ctx, what);
      if (!isTransient(err)) throw err;
      lastErr = err;
      if (attempt === ctx.retries) break;
      const delay = Math.min(10_000, ctx.backoffMs * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      ctx.logger.warn(
        { what, attempt: attempt + 1, of: ctx.retries + 1, retryInMs: Math.round(delay), reason: ctx.redact.redact(reasonOf(err)) },
        'storage: transient failure, retrying',
      );
      try {
        await sleep(delay, undefined, { signal: ctx.signal });
      } catch {
        throw abortError(ctx, what);
      }
    }
  }
  throw new Unavailable(`${what}: ${reasonOf(lastErr)} (gave up after ${ctx.retries + 1} attempts)`);
}

/**
 * A body that pushes its bytes (http1.ts): `pump` starts the flow; each
 * `sink.data(chunk)` (at most PUSH_CHUNK_MAX_BYTES) must copy `chunk` before
 * returning, as the reader reuses its buffer, and returns false to get no more
 * data until `resume()`. `end()` may follow the last chunk even when that one
 * asked to pause; `error()` may come at any time.
 */
export interface PushBody {
  pump(sink: BodySink): void;
  resume(): void;
  destroy(): void;
}

export interface BodySink {
  data(chunk: Uint8Array): boolean;
  end(): void;
  error(err: unknown): void;
}

/** One response body to write, starting at byte `start` of the object. */
export interface BodyStream {
  body: Readable | AsyncIterable<Uint8Array> | PushBody;
  /** The object offset the body begins at: 0 unless a ranged request was honoured. */
  start: number;
  /** Bytes this body will carry, when the server said so. */
  length?: number;
  /** Cancels the underlying request (used by the stall watchdog). */
  abort?: () => void;
}

/**
 * Streams an object into `file`, retrying transient failures. On a retry it asks
 * `open(offset)` to resume at the bytes already written; if the server starts
 * over (start 0), the file is truncated and the budget given back. The file is
 * fully written when this resolves; memory stays flat (two write batches).
 */
export async function downloadToFile(
  ctx: PullContext,
  what: string,
  file: string,
  open: (offset: number, attempt: number) => Promise<BodyStream>,
  expectedSize?: number,
): Promise<number> {
  const state = { written: 0 };
  await withRetry(ctx, what, async (attempt) => {
    const res = await open(state.written, attempt);
    if (res.start !== state.written) {
      if (res.start !== 0) {
        res.abort?.();
        throw new TransientError(`${what}: server resumed at byte ${res.start}, expected ${state.written}`);
      }
      ctx.budget.release(state.written);
      state.written = 0;
    }
    await writeBody(ctx, what, file, res, state);
  });
  if (expectedSize !== undefined && state.written !== expectedSize) {
    throw new Unavailable(`${what}: received ${state.written} bytes, expected ${expectedSize}`);
  }
  return state.written;
}

/**
 * Bytes gathered from the body before one positional write. 1 MiB keeps the
 * batch in the CPU cache between the socket read and the write (4 MiB measured
 * markedly slower on loopback), while still making ~200 writes of a 200 MiB file.
 */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** The largest chunk a PushBody may hand over at once. */
export const PUSH_CHUNK_MAX_BYTES = 256 * 1024;
/** A batch stops taking chunks once it holds WRITE_BATCH_BYTES, so one more chunk always fits. */
const POOL_BYTES = WRITE_BATCH_BYTES + PUSH_CHUNK_MAX_BYTES;

function isPushBody(body: BodyStream['body']): body is PushBody {
  return typeof (body as Partial<PushBody>).pump === 'function';
}

/** A Readable (or async iterable) as a PushBody: 'data' into the sink, paused while the sink is full. */
function pushFrom(src: Readable | AsyncIterable<Uint8Array>): PushBody {
  const body = src instanceof Readable ? src : Readable.from(src);
  return {
    pump(sink) {
      let done = false;
      const finish = (err?: unknown) => {
        if (done) return;
        done = true;
        body.off('data', onData);
        if (err === undefined) sink.end();
        else sink.error(err);
      };
      const onData = (chunk: Uint8Array) => {
        if (!sink.data(chunk)) body.pause();
      };
      body.on('data', onData);
      body.once('end', () => finish());
      body.on('error', (err) => finish(err));
      body.once('close', () => finish(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    },
    resume: () => body.resume(),
    destroy() {
      // destroy() may emit 'error' after the sink stopped listening: keep it handled.
      body.on('error', () => undefined);
      body.destroy();
    },
  };
}

/**
 * Writes one body into `file` at `state.written`; `state.written` counts only
 * bytes that reached the disk, even on failure, so a retry resumes from there.
 * Chunks gather into a 1 MiB batch written with one positional `writev`: no
 * per-chunk promise, allocation or timer. Reading goes on into the next batch
 * while one is being written; the body pauses only when that next batch is
 * full too (at most two batches, 2 MiB, are held). A PushBody's chunks are
 * copied into two fixed buffers, one per batch, so its reads allocate nothing.
 */
async function writeBody(ctx: PullContext, what: string, file: string, res: BodyStream, state: { written: number }): Promise<void> {
  const offset = state.written;
  const body = isPushBody(res.body) ? res.body : pushFrom(res.body);
  const fh = await open(file, offset > 0 ? 'r+' : 'w').catch((err: unknown) => {
    body.destroy();
    throw err;
  });
  // Bytes of this body counted against the budget (what arrived, written or not).
  let got = 0;
  let complete = false;
  try {
    const received = await new Promise<number>((resolve, reject) => {
      // A push body's reader reuses its buffer: its chunks are copied into one of two
      // buffers, the one not being written. A Readable's chunks are kept as they are.
      const pool = isPushBody(res.body) ? [Buffer.allocUnsafeSlow(POOL_BYTES), Buffer.allocUnsafeSlow(POOL_BYTES)] : undefined;
      let cur = 0;
      let fill = 0;
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      let writing = false;
      let ended = false;
      let done = false;
      let failure: unknown;
      let stalled = false;
      // The watchdog is one timer armed at stallMs; each chunk only stamps the time,
      // and the timer re-arms itself for the remainder when data came meanwhile.
      let lastData = performance.now();
      let watchdog: NodeJS.Timeout | undefined;
      const check = () => {
        const idle = performance.now() - lastData;
        if (writing || idle < ctx.stallMs) {
          watchdog = setTimeout(check, Math.max(1, ctx.stallMs - (writing ? 0 : idle)));
          watchdog.unref();
          return;
        }
        stalled = true;
        res.abort?.();
        fail(new TransientError(`${what}: no data for ${ctx.stallMs} ms`));
      };
      const stopListening = () => {
        done = true;
        if (watchdog) clearTimeout(watchdog);
        ctx.signal.removeEventListener('abort', onAbort);
      };
      // What to do once no write is in flight.
      const next = () => {
        if (failure !== undefined) {
          // Bytes that arrived before a dropped connection are kept, so the retry resumes after them.
          const keep = !(failure instanceof KinferError) && !ctx.signal.aborted;
          if (keep && batchBytes > 0) return flush();
          return reject(failure);
        }
        if (batchBytes > 0 && (ended || batchBytes >= WRITE_BATCH_BYTES)) return flush();
        if (ended) return resolve(got);
        body.resume();
      };
      const flush = () => {
        const bufs = batch;
        const n = batchBytes;
        batch = [];
        batchBytes = 0;
        // The other pool buffer is free: its write (if any) has completed.
        cur ^= 1;
        fill = 0;
        writing = true;
        fh.writev(bufs, state.written).then(
          ({ bytesWritten }) => {
            writing = false;
            state.written += bytesWritten;
            lastData = performance.now();
            // libuv returns what reached the file when ENOSPC, EDQUOT or EFBIG stops a write midway.
            if (bytesWritten < n) {
              if (!done) stopListening();
              body.destroy();
              return reject(new Unavailable(`${what}: only ${bytesWritten} of ${n} bytes reached ${file} (disk full or a file size limit?)`));
            }
            next();
          },
          (err: unknown) => {
            writing = false;
            if (!done) stopListening();
            body.destroy();
            reject(failure ?? err);
          },
        );
      };
      const fail = (err: unknown) => {
        if (done) return;
        stopListening();
        body.destroy();
        failure = err;
        if (!writing) next();
      };
      const sink: BodySink = {
        data(chunk) {
          if (done) return false;
          lastData = performance.now();
          got += chunk.byteLength;
          try {
            ctx.budget.add(chunk.byteLength, what);
          } catch (err) {
            fail(err);
            return false;
          }
          ctx.progress.add(chunk.byteLength);
          if (pool) {
            if (chunk.byteLength > POOL_BYTES - fill) {
              fail(new Error(`${what}: a pushed chunk of ${chunk.byteLength} bytes exceeds ${PUSH_CHUNK_MAX_BYTES}`));
              return false;
            }
            pool[cur]!.set(chunk, fill);
            chunk = pool[cur]!.subarray(fill, fill + chunk.byteLength);
            fill += chunk.byteLength;
          }
          batch.push(chunk);
          batchBytes += chunk.byteLength;
          if (batchBytes < WRITE_BATCH_BYTES) return true;
          // The body keeps filling the next batch while this one is written; only a second full batch waits.
          if (writing) return false;
          flush();
          return true;
        },
        end() {
          if (done) return;
          ended = true;
          stopListening();
          if (!writing) next();
        },
        error: (err) => fail(stalled ? new TransientError(`${what}: no data for ${ctx.stallMs} ms`) : err),
      };
      const onAbort = () => fail(abortError(ctx, what));
      if (ctx.signal.aborted) return fail(abortError(ctx, what));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      body.pump(sink);
      check();
    });
    if (res.length !== undefined && received !== res.length) {
      throw new TransientError(`${what}: body ended after ${received} of ${res.length} bytes`);
    }
    complete = true;
  } finally {
    // Bytes counted against the budget but never written are given back, so a retry counts them once.
    const unwritten = offset + got - state.written;
    if (unwritten > 0) ctx.budget.release(unwritten);
    // After a whole body, a failed close is a failed write (NFS reports deferred errors there).
    const closed = fh.close();
    await (complete ? closed : closed.catch(() => undefined));
  }
}

/**
 * `work`, or a rejection after `ctx.stallMs` or on the pull's abort: for sign-ins (token exchanges)
 * whose HTTP clients (gaxios, MSAL's) have no timeout of their own.
 */
export function bounded<T>(ctx: PullContext, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
      settle();
    };
    const onAbort = () => finish(() => reject(new Error('pull aborted')));
    const timer = setTimeout(() => finish(() => reject(new Error(`no answer in ${ctx.stallMs} ms`))), ctx.stallMs);
    if (ctx.signal.aborted) return onAbort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => finish(() => resolve(value)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}

/** Runs `fn` over `items` with at most `limit` in flight; the first failure stops new work and is thrown. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}
