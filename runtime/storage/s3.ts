/**
 * @module storage/s3
 * `s3://bucket/prefix` through the AWS SDK v3, with KServe's env names:
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
 * `AWS_ENDPOINT_URL` or `S3_ENDPOINT` (+ `S3_USE_HTTPS`, default on),
 * `AWS_DEFAULT_REGION`/`AWS_REGION`, `S3_VERIFY_SSL`. Without keys the
 * requests are anonymous (unsigned), unless a web-identity token, profile or
 * container credentials are configured, which the SDK's default chain reads.
 *
 * A prefix naming exactly one object fetches that object (unpacked if it is an
 * archive); otherwise every object under `prefix/` lands at its path relative
 * to the prefix. The cache validator is a hash of the listing (key, ETag, size).
 */
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { InvalidArgument, NotFound, Unavailable } from '../core/errors.js';
import { fetchListed, listingValidator, selectListed, type FetchOutcome, type ListedObject, type RemoteSource } from './source.js';
import { contentRangeStart, downloadToFile, TransientError, withRetry, type PullContext } from './transfer.js';

interface S3Object extends ListedObject {
  etag: string;
}

const THROTTLE = new Set(['TimeoutError', 'SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeTooSkewed', 'TooManyRequestsException', 'InternalError', 'ServiceUnavailable']);
const AUTH = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled', 'AccountProblem']);
const MAX_LIST_PAGES = 1_000;

function flag(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  return !['0', 'false', 'no', 'off'].includes(v.toLowerCase());
}

/** The SDK client configuration from KServe's env names. Secrets are registered with the redactor. */
export function s3Config(env: NodeJS.ProcessEnv, ctx?: Pick<PullContext, 'redact'> & { stallMs?: number }): S3ClientConfig {
  const useHttps = flag(env.S3_USE_HTTPS, true);
  let endpoint = env.AWS_ENDPOINT_URL || env.S3_ENDPOINT || undefined;
  if (endpoint && !/^https?:\/\//i.test(endpoint)) endpoint = `${useHttps ? 'https' : 'http'}://${endpoint}`;
  const verify = flag(env.S3_VERIFY_SSL, true);
  const config: S3ClientConfig = {
    region: env.AWS_DEFAULT_REGION || env.AWS_REGION || 'us-east-1',
    // Our own retry loop covers throttling and dropped bodies alike; one policy, one bound.
    maxAttempts: 1,
    ...(endpoint ? { endpoint, forcePathStyle: !flag(env.S3_USER_VIRTUAL_BUCKET, false) } : {}),
    // The SDK waits forever by default: a silent endpoint gets the pull's stall limit, as http(s):// does.
    requestHandler: {
      connectionTimeout: ctx?.stallMs ?? 60_000,
      socketTimeout: ctx?.stallMs ?? 60_000,
      ...(verify ? {} : { httpsAgent: new HttpsAgent({ rejectUnauthorized: false }) }),
    },
  };
  const id = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  if (id && secret) {
    ctx?.redact.add(id);
    ctx?.redact.add(secret);
    ctx?.redact.add(env.AWS_SESSION_TOKEN);
    config.credentials = { accessKeyId: id, secretAccessKey: secret, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
  } else if (!(env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_PROFILE || env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)) {
    // Anonymous: unsigned requests, and no default-chain lookups (no instance-metadata calls).
    config.credentials = { accessKeyId: '', secretAccessKey: '' };
    config.signer = { sign: async (request) => request };
  }
  return config;
}

export class S3Source implements RemoteSource {
  readonly bucket: string;
  readonly prefix: string;
  private readonly what: string;

  constructor(uri: string) {
    const m = /^s3:\/\/([^/?#]*)\/?([^?#]*)$/.exec(uri);
    if (!m || !m[1]) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: expected s3://<bucket>/<prefix>`);
    this.bucket = m[1];
    this.prefix = m[2]!;
    this.what = `s3://${this.bucket}/${this.prefix}`;
  }

  async fetch(dir: string, ctx: PullContext, cached?: string): Promise<FetchOutcome> {
    const client = new S3Client(s3Config(ctx.env, ctx));
    try {
      const objects = await this.list(client, ctx);
      const validator = listingValidator('s3', objects.map((o) => [o.rel, o.etag, o.size]));
      if (cached === validator) return { unchanged: true };
      const bytes = await fetchListed(ctx, this.what, dir, this.prefix, objects, (o, file) => this.download(client, ctx, o, file));
      return { unchanged: false, validator, bytes };
    } catch (err) {
      throw this.mapError(err);
    } finally {
      client.destroy();
    }
  }

  /** Every object under the prefix, sorted by key; NotFound when there is none. */
  private async list(client: S3Client, ctx: PullContext): Promise<(S3Object & { rel: string })[]> {
    const raw: S3Object[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const out = await withRetry(ctx, this.what, () =>
        this.call(() => client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, ContinuationToken: token }), { abortSignal: ctx.signal })),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key !== undefined) raw.push({ name: o.Key, size: o.Size ?? 0, etag: o.ETag ?? '' });
      }
      if (!out.IsTruncated || !out.NextContinuationToken) {
        token = undefined;
        break;
      }
      token = out.NextContinuationToken;
    }
    if (token) throw new Unavailable(`${this.what}: more than ${MAX_LIST_PAGES} pages of objects; refusing to list further`);
    return selectListed(raw, this.prefix, this.what, `bucket ${this.bucket}`);
  }

  private async download(client: S3Client, ctx: PullContext, o: S3Object, file: string): Promise<number> {
    const what = `s3://${this.bucket}/${o.name}`;
    return downloadToFile(
      ctx,
      what,
      file,
      async (offset) => {
        const ac = new AbortController();
        const out = await this.call(() =>
          client.send(
            new GetObjectCommand({ Bucket: this.bucket, Key: o.name, Range: offset > 0 ? `bytes=${offset}-` : undefined, IfMatch: o.etag || undefined }),
            { abortSignal: AbortSignal.any([ctx.signal, ac.signal]) },
          ),
        );
        const start = contentRangeStart(out.ContentRange) ?? 0;
        return { body: out.Body as Readable, start, length: out.ContentLength, abort: () => ac.abort() };
      },
      o.size,
    );
  }

  /** Runs one SDK call, turning throttling/5xx/network failures into TransientError. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown; message?: string };
      const status = e.$metadata?.httpStatusCode;
      if ((e.name && THROTTLE.has(e.name)) || e.$retryable || (status !== undefined && (status >= 500 || status === 429))) {
        throw new TransientError(`${e.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}`);
      }
      throw err;
    }
  }

  private mapError(err: unknown): unknown {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; message?: string };
    if (!e || typeof e !== 'object' || !e.$metadata) return err;
    const status = e.$metadata.httpStatusCode;
    if (e.name === 'NoSuchBucket') return new NotFound(`${this.what}: bucket ${this.bucket} does not exist`);
    if (e.name === 'NoSuchKey' || status === 404) return new NotFound(`${this.what}: not found in bucket ${this.bucket}`);
    if (e.name === 'PreconditionFailed' || status === 412) return new Unavailable(`${this.what}: an object changed during the download; retry the load`);
    if ((e.name && AUTH.has(e.name)) || status === 401 || status === 403) {
      const why = e.name && e.name !== 'Unknown' ? e.name : `HTTP ${status}`;
      return new Unavailable(`${this.what}: access denied to bucket ${this.bucket} (${why}); check the S3 credentials`);
    }
    return new Unavailable(`${this.what}: ${e.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}`);
  }
}
