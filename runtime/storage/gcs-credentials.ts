/**
 * @module storage/gcs-credentials
 * The access token of a `gs://` pull, found in the order of Google's Application Default
 * Credentials (which KServe's storage initializer gets through `storage.Client()`):
 * 1. `GOOGLE_APPLICATION_CREDENTIALS`: a key file (service account, authorized user, external account);
 * 2. gcloud's well-known file, `$CLOUDSDK_CONFIG/application_default_credentials.json`
 *    (else under `$HOME/.config/gcloud/`), as `gcloud auth application-default login` writes it;
 * 3. the metadata server (GKE workload identity, a node's service account), when the machine is on
 *    Google Cloud (its DMI BIOS vendor or product name says Google) or `GCE_METADATA_IP` /
 *    `GCE_METADATA_HOST` names one; `METADATA_SERVER_DETECTION` as Google's libraries read it (`none`
 *    skips it, `assume-present` / `ping-only` ask without the DMI check). A metadata server that does
 *    not answer means anonymous, as it means no credentials to ADC;
 * 4. else anonymous: KServe falls back to an anonymous client the same way.
 * With `GCS_ENDPOINT` or `STORAGE_EMULATOR_HOST` (an emulator, a proxy) only an explicit credential is
 * sent there (the key file, a metadata server named by variable); nothing found by itself, as Google's
 * client takes anonymous credentials with an emulator.
 * Key files go through google-auth-library. The metadata call is written here: the library's
 * Compute client reads the metadata host from `process.env`, and a pull takes its environment
 * from the PullContext.
 * Tokens are cached per credential (a key file by its path and content, the metadata server by
 * host) until shortly before they expire, as Google's libraries keep theirs; a token a request
 * was refused with (HTTP 401) is dropped with `forgetGcsToken`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GoogleAuth } from 'google-auth-library';
import { Unavailable } from '../core/errors.js';
import { abortError, bounded, isTransientStatus, reasonOf, TransientError, withRetry, type PullContext } from './transfer.js';

const READ_ONLY_SCOPE = 'https://www.googleapis.com/auth/devstorage.read_only';
/** The metadata server's link-local address (`metadata.google.internal`, without the DNS lookup). */
const METADATA_IP = '169.254.169.254';
/** A metadata server answers within milliseconds; past this, there is none (google-auth-library waits 3 s too). */
export const METADATA_TIMEOUT_MS = 3000;
const DMI_DIR = '/sys/class/dmi/id';

export type GcsCredential =
  | { kind: 'key-file'; path: string; from: string }
  | { kind: 'metadata'; host: string }
  | { kind: 'anonymous' };

/** Whether the DMI tables under `dmiDir` say Google Compute Engine (a GCE VM or GKE node; readable from a container). */
export function onGoogleCloud(dmiDir = DMI_DIR): boolean {
  const read = (name: string) => {
    try {
      return readFileSync(join(dmiDir, name), 'utf8');
    } catch {
      return '';
    }
  };
  return /Google/.test(read('bios_vendor')) || /^Google/.test(read('product_name'));
}

/** Which credential a pull with `env` uses (no network). */
export function gcsCredential(env: NodeJS.ProcessEnv, dmiDir = DMI_DIR): GcsCredential {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return { kind: 'key-file', path: env.GOOGLE_APPLICATION_CREDENTIALS, from: 'GOOGLE_APPLICATION_CREDENTIALS' };
  const custom = Boolean(env.GCS_ENDPOINT || env.STORAGE_EMULATOR_HOST);
  const gcloudDir = env.CLOUDSDK_CONFIG || (env.HOME ? join(env.HOME, '.config', 'gcloud') : undefined);
  const wellKnown = gcloudDir && join(gcloudDir, 'application_default_credentials.json');
  if (!custom && wellKnown && existsSync(wellKnown)) return { kind: 'key-file', path: wellKnown, from: `gcloud's ${wellKnown}` };
  const detection = env.METADATA_SERVER_DETECTION?.trim().toLowerCase();
  if (detection === 'none') return { kind: 'anonymous' };
  // The metadata server speaks plain HTTP: a scheme in the variable is dropped, as gcp-metadata takes a host.
  const named = (env.GCE_METADATA_IP || env.GCE_METADATA_HOST)?.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
  if (named) return { kind: 'metadata', host: named };
  if (custom) return { kind: 'anonymous' };
  if (detection === 'assume-present' || detection === 'ping-only' || onGoogleCloud(dmiDir)) return { kind: 'metadata', host: METADATA_IP };
  return { kind: 'anonymous' };
}

/** What a failed request should tell the operator to check. */
export function gcsAuthHint(cred: GcsCredential, bucket: string): string {
  const source =
    cred.kind === 'key-file' ? cred.from : cred.kind === 'metadata' ? `the service account of the metadata server at ${cred.host}` : 'anonymous access: set GOOGLE_APPLICATION_CREDENTIALS or a service account';
  return `check the credentials (${source}) and the permissions on bucket ${bucket}`;
}

/**
 * How long before its expiry a cached token is replaced: Google's Go library's window
 * (google-cloud-go#9139: the metadata server's shortest token cache time is 4 minutes; Node's
 * google-auth-library uses 5). The metadata server can hand out its cached token in that token's
 * last minutes, so `freshUntil` reuses a token issued with less life than this for half of it.
 */
export const TOKEN_REFRESH_MARGIN_MS = 225_000;

interface Issued {
  token: string;
  /** Epoch ms; undefined when the issuer gave no lifetime (not cached). */
  expiresAt?: number;
}

/** Credential identity → its token and until when it is reused. Process-wide: pulls and reloads share it. */
const cachedTokens = new Map<string, { token: string; freshUntil: number }>();
/**
 * Token calls in flight, per pull and cache key: a pull's downloads that find the token stale at
 * once share one call. Not across pulls: the call runs with its pull's cancellation and names.
 */
const issuing = new WeakMap<PullContext, Map<string, Promise<{ token: string; expiresAt?: number } | undefined>>>();

/**
 * Until when a token issued now is reused: `TOKEN_REFRESH_MARGIN_MS` before its expiry, but at
 * least half its remaining life, so a token the metadata server hands out near its end is not
 * refetched for every request of a pull.
 */
function freshUntil(now: number, expiresAt: number): number {
  const life = expiresAt - now;
  return now + Math.max(life - TOKEN_REFRESH_MARGIN_MS, life / 2);
}

/** The cache key of `cred`: a key file by path and content (a rotated Secret is a new credential), the metadata server by host. */
async function tokenKey(cred: Exclude<GcsCredential, { kind: 'anonymous' }>): Promise<string | undefined> {
  if (cred.kind === 'metadata') return `metadata ${cred.host}`;
  const content = await readFile(cred.path).catch(() => undefined);
  // Unreadable: not cached, and google-auth-library names the problem.
  return content && `key-file ${cred.path} ${createHash('sha256').update(content).digest('hex')}`;
}

/**
 * The bearer token for `cred`, or undefined for anonymous access (also when no metadata server
 * answers; that is not cached, so the next pull asks again). A cached token is returned until
 * shortly before it expires; call it per request so a long pull never sends a stale one.
 */
export async function gcsToken(ctx: PullContext, cred: GcsCredential, what: string, bucket: string): Promise<string | undefined> {
  if (cred.kind === 'anonymous') return undefined;
  const key = await tokenKey(cred);
  const cached = key === undefined ? undefined : cachedTokens.get(key);
  if (cached && Date.now() < cached.freshUntil) {
    ctx.redact.add(cached.token);
    return cached.token;
  }
  const issue = () => (cred.kind === 'key-file' ? keyFileToken(ctx, cred, what, bucket) : metadataToken(ctx, cred.host, what, bucket));
  let calls = issuing.get(ctx);
  if (!calls) issuing.set(ctx, (calls = new Map()));
  let call = key === undefined ? undefined : calls.get(key);
  if (!call) {
    call = issue();
    if (key !== undefined) {
      const pending = calls;
      pending.set(key, call);
      void call.finally(() => pending.get(key) === call && pending.delete(key)).catch(() => undefined);
    }
  }
  const issued = await call;
  if (!issued) return undefined;
  ctx.redact.add(issued.token);
  if (key !== undefined && issued.expiresAt !== undefined) cachedTokens.set(key, { token: issued.token, freshUntil: freshUntil(Date.now(), issued.expiresAt) });
  else if (key !== undefined) cachedTokens.delete(key);
  return issued.token;
}

/** Drops `token` from the cache when Storage refused it (401: revoked or expired early); a newer token cached meanwhile stays. */
export async function forgetGcsToken(cred: GcsCredential, token: string): Promise<void> {
  if (cred.kind === 'anonymous') return;
  const key = await tokenKey(cred);
  if (key !== undefined && cachedTokens.get(key)?.token === token) cachedTokens.delete(key);
}

async function keyFileToken(ctx: PullContext, cred: { path: string; from: string }, what: string, bucket: string): Promise<Issued> {
  try {
    const auth = new GoogleAuth({ keyFilename: cred.path, scopes: [READ_ONLY_SCOPE] });
    return await bounded(
      ctx,
      (async () => {
        const client = await auth.getClient();
        const { token } = await client.getAccessToken();
        if (!token) throw new Error('no access token returned');
        // Every client kind (service account, authorized user, external account) records the expiry here.
        return { token, expiresAt: client.credentials.expiry_date ?? undefined };
      })(),
    );
  } catch (err) {
    if (ctx.signal.aborted) throw abortError(ctx, what);
    throw new Unavailable(`${what}: cannot get a Google access token for bucket ${bucket} from ${cred.from}: ${ctx.redact.redact(reasonOf(err))}`);
  }
}

/** GCE's documented token call (a 429 or 5xx retried: a metadata server starting up gives them); undefined when nothing answers at `host`. */
async function metadataToken(ctx: PullContext, host: string, what: string, bucket: string): Promise<Issued | undefined> {
  const url = `http://${host}/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(READ_ONLY_SCOPE)}`;
  const refused = (why: string) => new Unavailable(`${what}: the metadata server at ${host} gave no access token for bucket ${bucket}: ${why}`);
  const answer = await withRetry(ctx, `${what}: the metadata server at ${host}`, async () => {
    let res: Response;
    try {
      res = await fetch(url, { headers: { 'metadata-flavor': 'Google' }, redirect: 'error', signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(METADATA_TIMEOUT_MS)]) });
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(ctx, what);
      ctx.logger.info({ event: 'gcs_metadata_absent', host, reason: reasonOf(err) }, `storage: no metadata server answered at ${host}; ${what} is read anonymously`);
      return undefined;
    }
    const text = await res.text().catch(() => '');
    if (isTransientStatus(res.status)) throw new TransientError(`metadata server at ${host}: HTTP ${res.status}`);
    return { res, text };
  });
  if (!answer) return undefined;
  const { res, text } = answer;
  if (res.status !== 200) throw refused(`HTTP ${res.status}${text ? `: ${ctx.redact.redact(text.slice(0, 200))}` : ''}`);
  if (res.headers.get('metadata-flavor') !== 'Google') throw refused('the answer lacks the Metadata-Flavor: Google header (not a metadata server)');
  let body: { access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw refused('the answer is not JSON');
  }
  const token = body.access_token;
  if (typeof token !== 'string' || token === '') throw refused('the answer has no access_token');
  // expires_in: the seconds left (the server hands out its cached token, so often less than an hour).
  const left = Number(body.expires_in);
  return { token, expiresAt: Number.isFinite(left) && left > 0 ? Date.now() + left * 1000 : undefined };
}
