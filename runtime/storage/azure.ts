/**
 * @module storage/azure
 * Azure Blob Storage through @azure/storage-blob, for the URIs KServe's storage
 * initializer sends down its Azure path: `https://<account>.blob.core.windows.net/<container>/<prefix>`
 * and the DNS-zone form `https://<account>.z<NN>.blob.storage.azure.net/<container>/<prefix>`.
 * Other `https://` URIs stay plain HTTP (`http.ts`).
 *
 * Credentials, in KServe's order: a service principal (`AZ_CLIENT_ID`,
 * `AZ_CLIENT_SECRET`, `AZ_TENANT_ID`, or the `AZURE_*` names the Azure SDKs
 * read; `AZURE_FEDERATED_TOKEN_FILE` instead of a secret for AKS workload
 * identity) whose token comes from Microsoft Entra ID via @azure/identity;
 * else `AZURE_STORAGE_ACCESS_KEY` (the account's shared key, or a SAS token
 * when it reads as one, as the Python SDK KServe uses takes it); else
 * anonymous. A SAS in the URI's query string is sent with every request and
 * then no other credential is. `AZURE_STORAGE_BLOB_ENDPOINT` replaces the
 * service URL (an emulator: `http://127.0.0.1:10000/devstoreaccount1`); the
 * account name still comes from the URI.
 *
 * Layout rules match `s3.ts`: every blob under `prefix/` at its path relative
 * to the prefix, or the one blob named exactly `prefix` (unpacked if it is an
 * archive). The cache validator is a hash of the listing (name, ETag, size).
 * The SDKs are imported on first use, so a server that never pulls from Azure
 * does not load them.
 */
import type { Readable } from 'node:stream';
import type { TokenCredential } from '@azure/identity';
import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { InvalidArgument, KinferError, NotFound, Unavailable } from '../core/errors.js';
import { fetchListed, listingValidator, selectListed, type FetchOutcome, type ListedObject, type RemoteSource } from './source.js';
import { abortError, bounded, contentRangeStart, displayUri, downloadToFile, isTransientStatus, reasonOf, TransientError, withRetry, type PullContext } from './transfer.js';

interface AzureBlob extends ListedObject {
  etag: string;
}

/** `<account>.blob.core.windows.net` (also behind a private-link label) or `<account>.z<NN>.blob.storage.azure.net`. */
const AZURE_BLOB_HOST = /^([^.]+)\.(?:[^/]*\.)?(?:blob\.core\.windows\.net|z\d{1,2}\.blob\.storage\.azure\.net)$/i;
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const MAX_LIST_PAGES = 1_000;
const STORAGE_SCOPE = 'https://storage.azure.com/.default';
/** What an anonymous request for a private container gets: Azure hides it (404), refuses it (401/403), or the account forbids public access (409). */
const ANONYMOUS_REFUSED = new Set(['ResourceNotFound', 'PublicAccessNotPermitted', 'NoAuthenticationInformation', 'AuthorizationFailure', 'AuthenticationFailed']);

/** True when `uri` is one of the Azure Blob forms KServe downloads through the Azure SDK. */
export function isAzureBlobUri(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  return url.protocol === 'https:' && AZURE_BLOB_HOST.test(url.hostname);
}

type Auth =
  | { kind: 'service principal'; tenantId: string; clientId: string; secret?: string; tokenFile?: string; hint: string }
  | { kind: 'shared key'; key: string; hint: string }
  | { kind: 'SAS'; sas: string; hint: string }
  | { kind: 'anonymous'; hint: string };

/** The credential KServe would use, from `env` (and a SAS in the URI). Secrets are registered with the redactor. */
export function azureAuth(env: NodeJS.ProcessEnv, uriSas: string, ctx?: Pick<PullContext, 'redact'>): Auth {
  if (uriSas) {
    if (ctx) redactSas(ctx, uriSas);
    return { kind: 'SAS', sas: uriSas, hint: 'check the SAS in the storage URI (permissions r and l, expiry)' };
  }
  const clientId = env.AZ_CLIENT_ID || env.AZURE_CLIENT_ID;
  if (clientId) {
    const tenantId = env.AZ_TENANT_ID || env.AZURE_TENANT_ID;
    const secret = env.AZ_CLIENT_SECRET || env.AZURE_CLIENT_SECRET;
    const tokenFile = env.AZURE_FEDERATED_TOKEN_FILE;
    if (!tenantId) throw new InvalidArgument('AZ_CLIENT_ID is set without AZ_TENANT_ID (or AZURE_TENANT_ID): a service principal needs its tenant');
    if (!secret && !tokenFile) {
      throw new InvalidArgument('AZ_CLIENT_ID is set without AZ_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE for workload identity); managed identity is not supported');
    }
    ctx?.redact.add(secret);
    return { kind: 'service principal', tenantId, clientId, secret, tokenFile, hint: 'check AZ_CLIENT_ID/AZ_TENANT_ID and the service principal\'s role on the container ("Storage Blob Data Reader")' };
  }
  const key = env.AZURE_STORAGE_ACCESS_KEY;
  if (key) {
    ctx?.redact.add(key);
    if (looksLikeSas(key)) {
      const sas = key.replace(/^\?/, '');
      if (ctx) redactSas(ctx, sas);
      return { kind: 'SAS', sas, hint: 'check the SAS in AZURE_STORAGE_ACCESS_KEY (permissions r and l, expiry)' };
    }
    return { kind: 'shared key', key, hint: 'check AZURE_STORAGE_ACCESS_KEY (the account key of this account)' };
  }
  return { kind: 'anonymous', hint: 'set AZ_CLIENT_ID/AZ_CLIENT_SECRET/AZ_TENANT_ID, AZURE_STORAGE_ACCESS_KEY, or a SAS in the URI' };
}

/** A SAS query string (`sv=…&sig=…`), as opposed to a base64 account key. */
function looksLikeSas(v: string): boolean {
  return /(?:^\??|&)sig=/.test(v);
}

/**
 * Registers a SAS's secret with the redactor: the whole query and its signature, as written and
 * decoded. Not its other fields: `spr=https` or `sv=2022-11-02` would blank every URL and date.
 */
function redactSas(ctx: Pick<PullContext, 'redact'>, sas: string): void {
  ctx.redact.add(sas);
  const raw = /(?:^|&)sig=([^&]*)/.exec(sas)?.[1];
  if (raw) ctx.redact.add(raw);
  const sig = new URLSearchParams(sas).get('sig');
  if (sig) ctx.redact.add(sig);
}

/** The account's blob service URL: `AZURE_STORAGE_BLOB_ENDPOINT`, else the URI's own origin. */
export function azureServiceUrl(env: NodeJS.ProcessEnv, origin: string): string {
  const raw = env.AZURE_STORAGE_BLOB_ENDPOINT;
  if (!raw) return origin;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidArgument(`AZURE_STORAGE_BLOB_ENDPOINT: expected an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.username) {
    throw new InvalidArgument(`AZURE_STORAGE_BLOB_ENDPOINT: expected an http(s) URL without query or user, got ${JSON.stringify(url.origin + url.pathname)}`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

export class AzureBlobSource implements RemoteSource {
  readonly account: string;
  readonly container: string;
  readonly prefix: string;
  /** The URI without its query: a renewed SAS still finds the cached copy (the listing checks access on every pull). */
  readonly cacheKey: string;
  private readonly origin: string;
  /** The SAS the URI carries (its query, when that is a SAS), or an empty string. */
  readonly uriSas: string;
  private readonly what: string;

  constructor(uri: string) {
    const bad = () => new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: expected https://<account>.blob.core.windows.net/<container>/<prefix>`);
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw bad();
    }
    const host = AZURE_BLOB_HOST.exec(url.hostname);
    if (url.protocol !== 'https:' || !host || url.username || url.password) throw bad();
    this.account = host[1]!.toLowerCase();
    if (!ACCOUNT_NAME.test(this.account)) {
      throw new InvalidArgument(`storage URI ${JSON.stringify(url.origin)}: ${JSON.stringify(this.account)} is not a storage account name (3-24 lower-case letters and digits)`);
    }
    const m = /^\/([^/]+)\/?(.*)$/.exec(url.pathname);
    if (!m) throw bad();
    try {
      this.container = decodeURIComponent(m[1]!);
      this.prefix = decodeURIComponent(m[2]!);
    } catch {
      throw bad();
    }
    this.origin = url.origin;
    // Only a SAS is a credential; any other query is not sent (KServe's SDK reads a SAS from the URL).
    const query = url.search.replace(/^\?/, '');
    this.uriSas = looksLikeSas(query) ? query : '';
    this.what = `${url.origin}/${this.container}/${this.prefix}`;
    this.cacheKey = `${url.origin}${url.pathname}`;
  }

  async fetch(dir: string, ctx: PullContext, cached?: string): Promise<FetchOutcome> {
    const auth = azureAuth(ctx.env, this.uriSas, ctx);
    ctx.logger.info({ uri: this.what, account: this.account, container: this.container, credential: auth.kind }, 'storage: azure blob');
    const container = (await this.client(ctx, auth)).getContainerClient(this.container);
    try {
      const objects = await this.list(ctx, container, auth);
      const validator = listingValidator('az', objects.map((o) => [o.rel, o.etag, o.size]));
      if (cached === validator) return { unchanged: true };
      const bytes = await fetchListed(ctx, this.what, dir, this.prefix, objects, (o, file) => this.download(ctx, container, o, file));
      return { unchanged: false, validator, bytes };
    } catch (err) {
      throw this.mapError(err, auth);
    }
  }

  private async client(ctx: PullContext, auth: Auth): Promise<BlobServiceClient> {
    const sdk = await import('@azure/storage-blob');
    const base = azureServiceUrl(ctx.env, this.origin);
    // Our own retry loop covers throttling and dropped bodies alike; one policy, one bound.
    const options = { retryOptions: { maxTries: 1 } };
    switch (auth.kind) {
      case 'SAS':
        return new sdk.BlobServiceClient(`${base}?${auth.sas}`, new sdk.AnonymousCredential(), options);
      case 'shared key':
        return new sdk.BlobServiceClient(base, new sdk.StorageSharedKeyCredential(this.account, auth.key), options);
      case 'service principal': {
        const credential = await this.tokenCredential(ctx, auth);
        // Signing in first, outside any request's stall timer, so a failed sign-in fails as itself (once, not retried).
        // The identity client caches the token: the SDK's own request for it costs nothing.
        await credential.getToken(STORAGE_SCOPE);
        return new sdk.BlobServiceClient(base, credential, options);
      }
      case 'anonymous':
        return new sdk.BlobServiceClient(base, new sdk.AnonymousCredential(), options);
    }
  }

  /**
   * The Entra ID credential, wrapped so that each token is registered with the redactor and a sign-in
   * that gets no answer gives up after the stall limit (the identity client's own retries are off).
   */
  private async tokenCredential(ctx: PullContext, auth: Extract<Auth, { kind: 'service principal' }>): Promise<TokenCredential> {
    const identity = await import('@azure/identity');
    const authorityHost = ctx.env.AZURE_AUTHORITY_HOST || undefined;
    // Instance discovery asks the public cloud about the authority: only right for the public cloud's own hosts.
    const options = { authorityHost, disableInstanceDiscovery: authorityHost !== undefined, retryOptions: { maxRetries: 0 } };
    const inner: TokenCredential = auth.secret
      ? new identity.ClientSecretCredential(auth.tenantId, auth.clientId, auth.secret, options)
      : new identity.WorkloadIdentityCredential({ tenantId: auth.tenantId, clientId: auth.clientId, tokenFilePath: auth.tokenFile!, ...options });
    const what = this.what;
    const account = this.account;
    return {
      async getToken(scopes, opts) {
        try {
          const token = await bounded(ctx, inner.getToken(scopes, { ...opts, abortSignal: ctx.signal }));
          if (!token) throw new Error('no access token returned');
          ctx.redact.add(token.token);
          return token;
        } catch (err) {
          if (ctx.signal.aborted) throw abortError(ctx, what);
          const from = auth.secret ? 'AZ_CLIENT_ID/AZ_CLIENT_SECRET/AZ_TENANT_ID' : 'AZ_CLIENT_ID/AZ_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE';
          throw new Unavailable(`${what}: cannot get a Microsoft Entra ID token for storage account ${account} from ${from}: ${ctx.redact.redact(reasonOf(err))}`);
        }
      },
    };
  }

  /** Every blob under the prefix, sorted by name; the one blob the URI names when listing is refused; NotFound when there is none. */
  private async list(ctx: PullContext, container: ContainerClient, auth: Auth): Promise<(AzureBlob & { rel: string })[]> {
    const raw: AzureBlob[] = [];
    let token: string | undefined;
    try {
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        const out = await withRetry(ctx, this.what, () =>
          this.call(ctx, async (abortSignal) => {
            const pages = container.listBlobsFlat({ prefix: this.prefix || undefined, includeMetadata: true, abortSignal }).byPage({ continuationToken: token, maxPageSize: 5000 });
            return (await pages.next()).value as { segment: { blobItems: BlobItemLike[] }; continuationToken?: string } | undefined;
          }),
        );
        for (const b of out?.segment.blobItems ?? []) {
          // A hierarchical-namespace (Data Lake Gen2) account lists its folders as empty blobs marked hdi_isfolder.
          if (b.metadata?.hdi_isfolder === 'true') continue;
          raw.push({ name: b.name, size: b.properties.contentLength ?? 0, etag: b.properties.etag ?? '', contentType: b.properties.contentType });
        }
        token = out?.continuationToken || undefined;
        if (!token) break;
      }
    } catch (err) {
      // A blob-scoped SAS, or a container whose public access is "blob" only, may read a blob but not list: try the one blob named.
      const single = await this.singleBlob(ctx, container, err);
      if (single) return [single];
      throw err;
    }
    if (token) throw new Unavailable(`${this.what}: more than ${MAX_LIST_PAGES} pages of blobs; refusing to list further`);
    return selectListed(raw, this.prefix, this.what, `container ${this.container} of storage account ${this.account}`);
  }

  private async singleBlob(ctx: PullContext, container: ContainerClient, listErr: unknown): Promise<(AzureBlob & { rel: string }) | undefined> {
    const status = (listErr as { statusCode?: number }).statusCode;
    const code = (listErr as { code?: string }).code;
    if (!this.prefix || this.prefix.endsWith('/') || code === 'ContainerNotFound' || (status !== 403 && status !== 404 && status !== 409)) return undefined;
    try {
      const p = await withRetry(ctx, this.what, () => this.call(ctx, (abortSignal) => container.getBlobClient(this.prefix).getProperties({ abortSignal })));
      ctx.logger.info({ uri: this.what, listing: code ?? status }, 'storage: listing refused, fetching the one blob the URI names');
      const name = this.prefix;
      return { name, rel: name.split('/').pop()!, size: p.contentLength ?? 0, etag: p.etag ?? '', contentType: p.contentType };
    } catch {
      return undefined;
    }
  }

  private download(ctx: PullContext, container: ContainerClient, o: AzureBlob, file: string): Promise<number> {
    const what = `${this.origin}/${this.container}/${o.name}`;
    const blob = container.getBlobClient(o.name);
    const ifMatch = o.etag ? (o.etag.startsWith('"') ? o.etag : `"${o.etag}"`) : undefined;
    return downloadToFile(
      ctx,
      what,
      file,
      async (offset) => {
        const ac = new AbortController();
        const res = await this.call(ctx, (abortSignal) =>
          // maxRetryRequests 0: the SDK's own resume would hide a dropped body from our retry and byte count.
          blob.download(offset, undefined, { abortSignal: AbortSignal.any([abortSignal, ac.signal]), maxRetryRequests: 0, conditions: ifMatch ? { ifMatch } : undefined }),
        );
        const start = offset > 0 ? (contentRangeStart(res.contentRange) ?? 0) : 0;
        const body = cutIsTransient(res.readableStreamBody as Readable, () => ac.signal.aborted || ctx.signal.aborted);
        return { body, start, length: res.contentLength, abort: () => ac.abort() };
      },
      o.size,
    );
  }

  /**
   * Runs one SDK request with a signal that fires on the pull's abort or after `ctx.stallMs` without
   * a response (the SDK waits forever by default); no answer, 5xx, 408 and 429 become TransientError.
   */
  private async call<T>(ctx: PullContext, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const silent = new AbortController();
    const timer = setTimeout(() => silent.abort(), ctx.stallMs);
    try {
      return await fn(AbortSignal.any([ctx.signal, silent.signal]));
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(ctx, this.what);
      if (err instanceof KinferError) throw err;
      if (silent.signal.aborted) throw new TransientError(`no answer in ${ctx.stallMs} ms`);
      const e = err as { statusCode?: number; code?: string; message?: string };
      const status = e.statusCode;
      if (status !== undefined && isTransientStatus(status)) {
        throw new TransientError(`${e.code ?? 'error'} (HTTP ${status}): ${firstLine(e.message)}`);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private mapError(err: unknown, auth: Auth): unknown {
    const e = err as { name?: string; statusCode?: number; code?: string; message?: string };
    if (!e || typeof e !== 'object' || e.name !== 'RestError' || e.statusCode === undefined) return err;
    const status = e.statusCode;
    const code = e.code;
    const where = `container ${this.container} of storage account ${this.account}`;
    if (code === 'ContainerNotFound') return new NotFound(`${this.what}: container ${this.container} does not exist in storage account ${this.account}`);
    if (auth.kind === 'anonymous' && (status === 401 || status === 403 || status === 409 || (status === 404 && code !== 'BlobNotFound')) && (code === undefined || ANONYMOUS_REFUSED.has(code))) {
      return new Unavailable(`${this.what}: anonymous access to ${where} refused (${code ?? `HTTP ${status}`}): it is not public, or does not exist; ${auth.hint}`);
    }
    if (code === 'BlobNotFound' || status === 404) return new NotFound(`${this.what}: not found in ${where}`);
    if (code === 'ConditionNotMet' || status === 412) return new Unavailable(`${this.what}: a blob changed during the download; retry the load`);
    if (status === 401 || status === 403) {
      return new Unavailable(`${this.what}: access denied to ${where} (${code ?? `HTTP ${status}`}, ${auth.kind}); ${auth.hint}`);
    }
    return new Unavailable(`${this.what}: ${code ?? 'error'} (HTTP ${status}): ${firstLine(e.message)}`);
  }
}

interface BlobItemLike {
  name: string;
  properties: { contentLength?: number; etag?: string; contentType?: string };
  metadata?: Record<string, string>;
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0]!.trim();
}

/**
 * The SDK's body stream (with its own resume off) reports a dropped connection as an
 * AbortError, or as "received less data than required": unless we aborted it
 * (`aborted()`: stall or cancel, handled by the caller), that is a cut body,
 * worth a retry that resumes.
 */
async function* cutIsTransient(body: Readable, aborted: () => boolean): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk as Uint8Array;
  } catch (err) {
    const e = err as Error;
    if (!aborted() && (e?.name === 'AbortError' || /received less data than required/i.test(e?.message ?? ''))) {
      throw new TransientError(`connection dropped mid-body: ${e.message.split(',')[0]}`);
    }
    throw err;
  } finally {
    body.destroy();
  }
}
