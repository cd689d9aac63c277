/**
 * @module storage/transfer
 * What every network scheme shares: the pull context (limits, signal, logger),
 * retries with backoff on transient failures, a byte budget (size limit),
 * progress logs, a stall watchdog, credential redaction, and the one routine
 * that streams a body into a file with resume on retry.
 */
import { createWriteStream } from 'node:fs';
import { stat, truncate } from 'node:fs/promises';
import type { Readable } from 'node:stream';
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
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)(?:[^@/?#]*@)?([^?#]*)([?#].*)?$/.exec(uri);
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

/** One response body to write, starting at byte `start` of the object. */
export interface BodyStream {
  body: Readable | AsyncIterable<Uint8Array>;
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
 * fully written when this resolves; memory stays flat (one chunk at a time).
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

const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Writes one body into `file` at `state.written`; `state.written` tracks what reached the disk, even on failure. */
async function writeBody(ctx: PullContext, what: string, file: string, res: BodyStream, state: { written: number }): Promise<void> {
  const offset = state.written;
  if (offset === 0) await truncate(file, 0).catch(() => undefined);
  // A 4 MiB buffer lets chunks queue while one write is in flight and go out
  // together in one writev, instead of one write (and one drain wait) per 16-64 KiB chunk.
  const out = createWriteStream(file, { flags: offset > 0 ? 'r+' : 'w', start: offset, highWaterMark: WRITE_BUFFER_BYTES });
  let outErr: Error | undefined;
  out.on('error', (e) => {
    outErr = e;
    (res.body as Readable).destroy?.(e);
  });
  let stalled = false;
  let watchdog: NodeJS.Timeout | undefined;
  const stallError = () => new TransientError(`${what}: no data for ${ctx.stallMs} ms`);
  const arm = () => {
    // refresh() restarts the same timer: cheaper than a new timer per chunk.
    if (watchdog) return void watchdog.refresh();
    watchdog = setTimeout(() => {
      stalled = true;
      res.abort?.();
      (res.body as Readable).destroy?.(stallError());
    }, ctx.stallMs);
    watchdog.unref();
  };
  try {
    arm();
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      arm();
      if (ctx.signal.aborted) throw abortError(ctx, what);
      ctx.budget.add(chunk.byteLength, what);
      ctx.progress.add(chunk.byteLength);
      state.written += chunk.byteLength;
      if (!out.write(chunk)) await waitDrain(out);
    }
    if (stalled) throw stallError();
    if (outErr) throw outErr;
    if (res.length !== undefined && state.written - offset !== res.length) {
      throw new TransientError(`${what}: body ended after ${state.written - offset} of ${res.length} bytes`);
    }
  } catch (err) {
    if (stalled) throw stallError();
    throw outErr ?? err;
  } finally {
    if (watchdog) clearTimeout(watchdog);
    await closeStream(out);
    // Keep only what actually reached the disk, so a retry resumes from there.
    const size = await stat(file).then((s) => s.size, () => 0);
    if (size < state.written) {
      ctx.budget.release(state.written - size);
      state.written = size;
    }
  }
}

function waitDrain(out: ReturnType<typeof createWriteStream>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) return reject(out.errored ?? new Error('write stream closed'));
    const done = (err?: Error) => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(out.errored ?? new Error('write stream closed'));
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

function closeStream(out: ReturnType<typeof createWriteStream>): Promise<void> {
  return new Promise((resolve) => {
    if (out.closed) return resolve();
    out.once('close', () => resolve());
    if (out.destroyed) return;
    out.end();
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
