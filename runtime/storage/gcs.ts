/**
 * @module storage/gcs
 * `gs://bucket/prefix` through the documented Cloud Storage JSON API
 * (`GET /storage/v1/b/<bucket>/o?prefix=` to list with `fetch`, `...?alt=media`
 * to read through http1.ts's reader).
 * Credentials as Google's Application Default Credentials find them (gcs-credentials.ts):
 * a key file, gcloud's file, the metadata server on Google Cloud, else anonymous.
 * Each request takes the credential's cached token; a 401 drops it and the request is sent once
 * more with a fresh one.
 * The endpoint is `GCS_ENDPOINT` or `STORAGE_EMULATOR_HOST` (the emulator
 * convention; `http://` is assumed when no scheme is given), else
 * `https://storage.googleapis.com`. Layout rules match `s3.ts`.
 */
import { InvalidArgument, Unavailable } from '../core/errors.js';
import { forgetGcsToken, gcsAuthHint, gcsCredential, gcsToken, type GcsCredential } from './gcs-credentials.js';
import { AccessDenied, bodyOf, httpGet, nodeGet } from './http.js';
import { fetchListed, listingValidator, selectListed, type FetchOutcome, type ListedObject, type RemoteSource } from './source.js';
import { downloadToFile, withRetry, type PullContext } from './transfer.js';

interface GcsObject extends ListedObject {
  generation: string;
  etag: string;
}

interface ListPage {
  items?: { name?: string; size?: string; generation?: string; etag?: string; md5Hash?: string; contentType?: string }[];
  nextPageToken?: string;
}

const MAX_LIST_PAGES = 1_000;

export function gcsEndpoint(env: NodeJS.ProcessEnv): string {
  const raw = env.GCS_ENDPOINT || env.STORAGE_EMULATOR_HOST || 'https://storage.googleapis.com';
  return (/^https?:\/\//i.test(raw) ? raw : `http://${raw}`).replace(/\/+$/, '');
}

export class GcsSource implements RemoteSource {
  readonly bucket: string;
  readonly prefix: string;
  private readonly what: string;
  private credential: GcsCredential = { kind: 'anonymous' };
  /** A token was had in this pull: a later refresh that gets none is a failure, not anonymous access. */
  private hadToken = false;

  constructor(uri: string) {
    const m = /^gs:\/\/([^/?#]*)\/?([^?#]*)$/.exec(uri);
    if (!m || !m[1]) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: expected gs://<bucket>/<prefix>`);
    this.bucket = m[1];
    this.prefix = m[2]!;
    this.what = `gs://${this.bucket}/${this.prefix}`;
  }

  async fetch(dir: string, ctx: PullContext, cached?: string): Promise<FetchOutcome> {
    const base = gcsEndpoint(ctx.env);
    this.credential = gcsCredential(ctx.env);
    this.hadToken = false;
    const objects = await this.list(ctx, base);
    const validator = listingValidator('gs', objects.map((o) => [o.rel, o.generation, o.etag, o.size]));
    if (cached === validator) return { unchanged: true };
    const bytes = await fetchListed(ctx, this.what, dir, this.prefix, objects, (o, file) => this.download(ctx, base, o, file));
    return { unchanged: false, validator, bytes };
  }

  private authHint(): string {
    return gcsAuthHint(this.credential, this.bucket);
  }

  /**
   * The credential's current token. No metadata server answering at the pull's first token makes
   * the pull anonymous (a machine outside GCP); once a token was had, a refresh that gets no
   * answer fails the pull instead (anonymous requests would fail as a misleading 401/403).
   */
  private async token(ctx: PullContext): Promise<string | undefined> {
    if (this.credential.kind === 'anonymous') return undefined;
    const token = await gcsToken(ctx, this.credential, this.what, this.bucket);
    if (token !== undefined) {
      this.hadToken = true;
      return token;
    }
    if (this.hadToken) throw new Unavailable(`${this.what}: the metadata server stopped answering when the access token for bucket ${this.bucket} was renewed mid-pull`);
    this.credential = { kind: 'anonymous' };
    return undefined;
  }

  /**
   * `send` with `extra` headers and the current token. A 401 means Storage no longer takes that
   * token (revoked, or expired before its stated time): it is dropped and `send` runs once more
   * with a fresh one. A 403 is a permission, which a new token does not change.
   */
  private async authorized<T>(ctx: PullContext, extra: Record<string, string>, send: (headers: Record<string, string>) => Promise<T>): Promise<T> {
    const withToken = (token: string | undefined) => (token === undefined ? extra : { ...extra, authorization: `Bearer ${token}` });
    const token = await this.token(ctx);
    try {
      return await send(withToken(token));
    } catch (err) {
      if (token === undefined || !(err instanceof AccessDenied) || err.status !== 401) throw err;
      await forgetGcsToken(this.credential, token);
      ctx.logger.info({ event: 'gcs_token_refused', bucket: this.bucket }, `storage: ${this.what}: the access token was refused (HTTP 401); retrying once with a fresh one`);
      return send(withToken(await this.token(ctx)));
    }
  }

  private async list(ctx: PullContext, base: string): Promise<(GcsObject & { rel: string })[]> {
    const raw: GcsObject[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const url = new URL(`${base}/storage/v1/b/${encodeURIComponent(this.bucket)}/o`);
      if (this.prefix) url.searchParams.set('prefix', this.prefix);
      url.searchParams.set('maxResults', '1000');
      if (token) url.searchParams.set('pageToken', token);
      const body = await withRetry(ctx, this.what, async () => {
        const r = await this.authorized(ctx, {}, (headers) => httpGet(ctx, this.what, url, headers, this.authHint()));
        return (await r.res.json()) as ListPage;
      });
      for (const it of body.items ?? []) {
        if (!it.name) continue;
        raw.push({
          name: it.name,
          size: Number(it.size ?? 0),
          generation: it.generation ?? '',
          etag: it.etag ?? it.md5Hash ?? '',
          contentType: it.contentType,
        });
      }
      token = body.nextPageToken || undefined;
      if (!token) break;
    }
    if (token) throw new Unavailable(`${this.what}: more than ${MAX_LIST_PAGES} pages of objects; refusing to list further`);
    return selectListed(raw, this.prefix, this.what, `bucket ${this.bucket}`);
  }

  private download(ctx: PullContext, base: string, o: GcsObject, file: string): Promise<number> {
    const what = `gs://${this.bucket}/${o.name}`;
    const url = new URL(`${base}/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(o.name)}`);
    url.searchParams.set('alt', 'media');
    if (o.generation) url.searchParams.set('generation', o.generation);
    return downloadToFile(
      ctx,
      what,
      file,
      async (offset) => {
        const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
        // The media read goes through http1.ts's reader (as http(s):// does), not fetch: ~3x the throughput.
        return bodyOf(await this.authorized(ctx, range, (h) => nodeGet(ctx, what, url, h, this.authHint())));
      },
      o.size,
    );
  }
}
