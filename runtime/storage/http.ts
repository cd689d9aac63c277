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
import { Readable } from 'node:stream';
import { InvalidArgument, NotFound, Unavailable } from '../core/errors.js';
import { fetchSingle, type FetchOutcome, type RemoteSource } from './source.js';
import { downloadToFile, displayUri, TransientError, withRetry, type BodyStream, type PullContext } from './transfer.js';

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
 * One GET with the pull's signal plus a per-request abort. Maps statuses:
 * 404/410 → NotFound, 401/403 → Unavailable naming the host, 408/429/5xx →
 * TransientError (retried by the caller), other non-2xx/304 → Unavailable.
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
  const s = res.status;
  if (s === 404 || s === 410) throw new NotFound(`${what}: not found (HTTP ${s} from ${url.host})`);
  if (s === 401 || s === 403) {
    throw new Unavailable(`${what}: access denied by ${url.host} (HTTP ${s}); ${authHint}`);
  }
  if (s === 408 || s === 429 || s >= 500) throw new TransientError(`HTTP ${s} from ${url.host}`);
  throw new Unavailable(`${what}: HTTP ${s} from ${url.host}`);
}

function validatorOf(res: Response): HttpValidator | undefined {
  const etag = res.headers.get('etag') ?? undefined;
  const lastModified = res.headers.get('last-modified') ?? undefined;
  if (!etag && !lastModified) return undefined;
  const len = res.headers.get('content-length');
  return { etag, lastModified, length: len !== null && res.status === 200 ? Number(len) : undefined };
}

function sameArtifact(a: HttpValidator, b: HttpValidator): boolean {
  if (a.etag || b.etag) return a.etag === b.etag && (a.length === undefined || b.length === undefined || a.length === b.length);
  return a.lastModified === b.lastModified && a.length === b.length;
}

function parseContentRangeStart(res: Response): number {
  const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : -1;
}

function bodyOf(r: HttpResponse): BodyStream {
  const len = r.res.headers.get('content-length');
  const start = r.res.status === 206 ? parseContentRangeStart(r.res) : 0;
  return {
    body: Readable.fromWeb(r.res.body! as import('node:stream/web').ReadableStream<Uint8Array>),
    start,
    length: len !== null ? Number(len) : undefined,
    abort: r.abort,
  };
}

function fileNameOf(url: URL, res: Response, what: string): string {
  let base = '';
  try {
    base = decodeURIComponent(url.pathname.split('/').pop() ?? '');
  } catch {
    base = url.pathname.split('/').pop() ?? '';
  }
  if (!base) {
    const cd = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(res.headers.get('content-disposition') ?? '');
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

    const first = await withRetry(ctx, this.what, () => httpGet(ctx, this.what, url, conditional));
    if (first.res.status === 304) return { unchanged: true };
    const validator = validatorOf(first.res);
    if (prior && validator && sameArtifact(prior, validator)) {
      first.abort();
      await first.res.body?.cancel().catch(() => undefined);
      return { unchanged: true };
    }
    const total = first.res.headers.get('content-length');
    if (total !== null) {
      ctx.budget.check(Number(total), this.what);
      ctx.progress.setTotal(Number(total));
    }
    const resumable = first.res.headers.get('accept-ranges') === 'bytes' && validator !== undefined;
    const ifRange = validator?.etag && !validator.etag.startsWith('W/') ? validator.etag : validator?.lastModified;

    const name = fileNameOf(url, first.res, this.what);
    const bytes = await fetchSingle(ctx, this.what, dir, name, first.res.headers.get('content-type'), (file) =>
      downloadToFile(ctx, this.what, file, async (offset, attempt) => {
        if (attempt === 0) return bodyOf(first);
        const h: Record<string, string> = { ...headers };
        if (offset > 0 && resumable && ifRange) {
          h.range = `bytes=${offset}-`;
          h['if-range'] = ifRange;
        }
        const r = await httpGet(ctx, this.what, url, h);
        const now = validatorOf(r.res);
        if (validator && now && r.res.status === 200 && !sameArtifact(validator, { ...now, length: validator.length })) {
          // The artifact changed under us: start over against the new version.
          r.abort();
          throw new TransientError('artifact changed during download');
        }
        return bodyOf(r);
      }, total !== null ? Number(total) : undefined),
    );
    return { unchanged: false, validator: validator ? JSON.stringify(validator) : undefined, bytes };
  }
}
