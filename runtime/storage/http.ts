/**
 * @module storage/http
 * `http://` and `https://`: one file, or an archive (`.zip`, `.tar`, `.tar.gz`,
 * `.tgz` by extension or Content-Type) unpacked into the model folder. Extra
 * request headers come from the env var `<hostname>-headers` (a JSON object),
 * as in KServe's storage initializer; `user:pass@` in the URL becomes Basic
 * auth. The cache check is a conditional GET (If-None-Match/If-Modified-Since):
 * a 304, or a 200 whose validator matches, costs no body. A dropped body is
 * resumed with `Range` + `If-Range` when the server supports it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { InvalidArgument, NotFound, Unavailable } from '../core/errors.js';
import { http1Get, isHeaderName, isSafeHeaderValue, type Http1Response } from './http1.js';
import { fetchSingle, type FetchOutcome, type RemoteSource } from './source.js';
import { contentRangeStart, downloadToFile, displayUri, isTransientStatus, TransientError, withRetry, type BodyStream, type PullContext } from './transfer.js';

interface HttpValidator {
  etag?: string;
  lastModified?: string;
  length?: number;
}

/** Reads `<hostname>-headers` from env; its values are registered as secrets. */
export function hostHeaders(env: NodeJS.ProcessEnv, hostname: string, ctx?: Pick<PullContext, 'redact'>): Record<string, string> {
  const name = `${hostname}-headers`;
  const raw = env[name];
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidArgument(`env ${name}: expected a JSON object of header names to values, got invalid JSON`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidArgument(`env ${name}: expected a JSON object of header names to values`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new InvalidArgument(`env ${name}: header ${JSON.stringify(k)} must be a string`);
    if (!isHeaderName(k)) throw new InvalidArgument(`env ${name}: ${JSON.stringify(k)} is not a valid header name`);
    if (!isSafeHeaderValue(v)) throw new InvalidArgument(`env ${name}: the value of header ${JSON.stringify(k)} contains CR, LF or NUL`);
    out[k] = v;
    ctx?.redact.add(v);
    // "Bearer <token>": the token alone may show up in a server's echo.
    ctx?.redact.add(v.split(' ').pop());
  }
  return out;
}

export interface HttpResponse {
  res: Response;
  abort: () => void;
}

/**
 * One GET (fetch) with the pull's signal plus a per-request abort; statuses
 * map as in `statusError`. Used for GCS listings (small JSON bodies).
 */
export async function httpGet(
  ctx: PullContext,
  what: string,
  url: URL,
  headers: Record<string, string>,
  authHint = `check the credentials or the ${url.hostname}-headers env`,
): Promise<HttpResponse> {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: AbortSignal.any([ctx.signal, ac.signal]), redirect: 'follow' });
  const abort = () => ac.abort();
  if (res.ok || res.status === 304) return { res, abort };
  await res.body?.cancel().catch(() => undefined);
  throw statusError(res.status, what, url.host, authHint);
}

/**
 * A 401 or 403: Unavailable like any refusal, with the status kept for a caller that can renew
 * its credential (gcs.ts retries a 401 once with a fresh token).
 */
export class AccessDenied extends Unavailable {
  constructor(
    message: string,
    readonly status: 401 | 403,
  ) {
    super(message);
  }
}

/**
 * The error for a status that is neither 2xx nor 304: 404/410 → NotFound,
 * 401/403 → AccessDenied (Unavailable) naming the host, 408/429/5xx → TransientError
 * (retried by the caller), anything else → Unavailable.
 */
function statusError(s: number, what: string, host: string, authHint: string): Error {
  if (s === 404 || s === 410) return new NotFound(`${what}: not found (HTTP ${s} from ${host})`);
  if (s === 401 || s === 403) return new AccessDenied(`${what}: access denied by ${host} (HTTP ${s}); ${authHint}`, s);
  if (isTransientStatus(s)) return new TransientError(`HTTP ${s} from ${host}`);
  return new Unavailable(`${what}: HTTP ${s} from ${host}`);
}

/** A response from `nodeGet`: status, headers and the body (http1.ts's reader), not yet read. */
export type NodeResponse = Http1Response;

const MAX_REDIRECTS = 10;

/**
 * `httpGet` without `fetch`: http1.ts's reader for `http:` and `https:` (the
 * body read into one reused buffer; no WHATWG stream, no per-read allocation:
 * ~3× the throughput of `fetch` on loopback). One connection per request,
 * Node's default TLS settings, redirects followed (at most 10; when the origin
 * changes, only range, validator and accept headers are kept, and the new
 * host's own `<host>-headers` are added). Until the
 * headers arrive, a socket that stays silent for `ctx.stallMs` is a
 * TransientError. Statuses map as in `statusError`.
 */
/** Request headers a redirect to another origin keeps; every other one (credentials above all) is dropped. */
const CROSS_ORIGIN_HEADERS = new Set(['range', 'if-range', 'if-none-match', 'if-modified-since', 'accept', 'accept-encoding', 'user-agent']);

export async function nodeGet(
  ctx: PullContext,
  what: string,
  url: URL,
  headers: Record<string, string>,
  authHint = `check the credentials or the ${url.hostname}-headers env`,
): Promise<NodeResponse> {
  let target = url;
  let h = headers;
  for (let hop = 0; ; hop++) {
    const r = await http1Get(target, h, { stallMs: ctx.stallMs, signal: ctx.signal });
    const s = r.status;
    const location = r.headers.location;
    if ((s === 301 || s === 302 || s === 303 || s === 307 || s === 308) && location) {
      r.abort();
      if (hop >= MAX_REDIRECTS) throw new Unavailable(`${what}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, target);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new Unavailable(`${what}: redirect to an unsupported scheme ${JSON.stringify(next.protocol)}`);
      }
      if (next.origin !== target.origin) {
        // Only headers that shape the request cross origins; credentials are the new host's own, if any.
        const kept = Object.entries(h).filter(([k]) => CROSS_ORIGIN_HEADERS.has(k.toLowerCase()));
        h = { ...hostHeaders(ctx.env, next.hostname, ctx), ...Object.fromEntries(kept) };
      }
      target = next;
      continue;
    }
    if ((s >= 200 && s < 300) || s === 304) return r;
    r.abort();
    throw statusError(s, what, target.host, authHint);
  }
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function validatorOf(r: NodeResponse): HttpValidator | undefined {
  const etag = header(r.headers, 'etag');
  const lastModified = header(r.headers, 'last-modified');
  if (!etag && !lastModified) return undefined;
  const len = header(r.headers, 'content-length');
  return { etag, lastModified, length: len !== undefined && r.status === 200 ? Number(len) : undefined };
}

function sameArtifact(a: HttpValidator, b: HttpValidator): boolean {
  if (a.etag || b.etag) return a.etag === b.etag && (a.length === undefined || b.length === undefined || a.length === b.length);
  return a.lastModified === b.lastModified && a.length === b.length;
}

function parseContentRangeStart(r: NodeResponse): number {
  return contentRangeStart(header(r.headers, 'content-range')) ?? -1;
}

/** The body of a 200 or 206 `nodeGet` response as `downloadToFile` takes it (start from Content-Range; -1 if absent). */
/** Content-Length, unless Transfer-Encoding overrides it (RFC 9112 §6.3: a sender must not send both; a recipient ignores it). */
function declaredLength(r: NodeResponse): string | undefined {
  return header(r.headers, 'transfer-encoding') === undefined ? header(r.headers, 'content-length') : undefined;
}

export function bodyOf(r: NodeResponse): BodyStream {
  const len = declaredLength(r);
  return {
    body: r.body,
    start: r.status === 206 ? parseContentRangeStart(r) : 0,
    length: len !== undefined ? Number(len) : undefined,
    abort: r.abort,
  };
}

function fileNameOf(url: URL, r: NodeResponse, what: string): string {
  let base = '';
  try {
    base = decodeURIComponent(url.pathname.split('/').pop() ?? '');
  } catch {
    base = url.pathname.split('/').pop() ?? '';
  }
  if (!base) {
    const cd = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header(r.headers, 'content-disposition') ?? '');
    base = cd?.[1] ?? '';
  }
  if (!base) throw new InvalidArgument(`${what}: the URL names no file (its path ends with "/") and the server sent no file name`);
  return base;
}

export class HttpSource implements RemoteSource {
  private readonly url: URL;
  private readonly what: string;

  constructor(uri: string) {
    try {
      this.url = new URL(uri);
    } catch {
      throw new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: not a valid http(s) URL`);
    }
    if (!this.url.hostname) throw new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: no host`);
    this.what = displayUri(uri);
  }

  async fetch(dir: string, ctx: PullContext, cached?: string): Promise<FetchOutcome> {
    const url = new URL(this.url);
    const headers: Record<string, string> = { ...hostHeaders(ctx.env, url.hostname, ctx) };
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      ctx.redact.add(pass);
      ctx.redact.add(user);
      const basic = Buffer.from(`${user}:${pass}`).toString('base64');
      ctx.redact.add(basic);
      headers.authorization ??= `Basic ${basic}`;
      url.username = '';
      url.password = '';
    }
    for (const v of url.searchParams.values()) ctx.redact.add(v);

    const prior = cached ? (JSON.parse(cached) as HttpValidator) : undefined;
    const conditional: Record<string, string> = { ...headers };
    if (prior?.etag) conditional['if-none-match'] = prior.etag;
    else if (prior?.lastModified) conditional['if-modified-since'] = prior.lastModified;

    const first = await withRetry(ctx, this.what, () => nodeGet(ctx, this.what, url, conditional));
    if (first.status === 304) {
      first.abort();
      if (!('if-none-match' in conditional || 'if-modified-since' in conditional)) {
        throw new Unavailable(`${this.what}: the server answered 304 Not Modified to a request without validators`);
      }
      return { unchanged: true };
    }
    const validator = validatorOf(first);
    if (prior && validator && sameArtifact(prior, validator)) {
      first.abort();
      return { unchanged: true };
    }
    const total = declaredLength(first) ?? null;
    const resumable = header(first.headers, 'accept-ranges') === 'bytes' && validator !== undefined;
    const ifRange = validator?.etag && !validator.etag.startsWith('W/') ? validator.etag : validator?.lastModified;
    let name: string;
    try {
      if (total !== null) ctx.budget.check(Number(total), this.what);
      name = fileNameOf(url, first, this.what);
    } catch (err) {
      first.abort();
      throw err;
    }
    if (total !== null) ctx.progress.setTotal(Number(total));
    let firstTaken = false;
    const bytes = await fetchSingle(ctx, this.what, dir, name, header(first.headers, 'content-type'), (file) =>
      downloadToFile(ctx, this.what, file, async (offset, attempt) => {
        if (attempt === 0) {
          firstTaken = true;
          return bodyOf(first);
        }
        const h: Record<string, string> = { ...headers };
        if (offset > 0 && resumable && ifRange) {
          h.range = `bytes=${offset}-`;
          h['if-range'] = ifRange;
        }
        const r = await nodeGet(ctx, this.what, url, h);
        const now = validatorOf(r);
        if (validator && now && r.status === 200 && !sameArtifact(validator, { ...now, length: validator.length })) {
          // The artifact changed under us: start over against the new version.
          r.abort();
          throw new TransientError('artifact changed during download');
        }
        return bodyOf(r);
      }, total !== null ? Number(total) : undefined),
    ).finally(() => {
      // Refused before the download began (e.g. an unsafe file name): the open response is closed here.
      if (!firstTaken) first.abort();
    });
    return { unchanged: false, validator: validator ? JSON.stringify(validator) : undefined, bytes };
  }
}
