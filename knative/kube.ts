/**
 * @module knative/kube
 * Kubeconfig loading and Kubernetes API error mapping shared by deploy,
 * status, list and logs.
 */
import { ApiException, KubeConfig, type RequestContext } from '@kubernetes/client-node';
import { InvalidArgument, KinferError, NotFound, Unavailable } from '../runtime/core/errors.js';

export interface KubeOptions {
  /** Namespace; default: the kubeconfig context's namespace, else `default`. */
  namespace?: string;
  /** Kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, or in-cluster. */
  kubeconfig?: string;
  /** Each API request (not the watch and log streams of `logs --follow`) fails after this long. Default 30 s. */
  timeoutMs?: number;
}

const DEFAULT_KUBE_TIMEOUT_MS = 30_000;

/** The API server and the request timeout of each KubeConfig loadKubeConfig made, for kubeError's message. */
const requestTimeouts = new WeakMap<KubeConfig, { server: string; timeoutMs: number }>();

export function loadKubeConfig(opts: KubeOptions): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new InvalidArgument(`kubeconfig ${opts.kubeconfig ?? '(default)'}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new InvalidArgument(`kubeconfig ${opts.kubeconfig ?? '(default)'}: no current cluster`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_KUBE_TIMEOUT_MS;
  requestTimeouts.set(kc, { server: cluster.server, timeoutMs });
  // Every request of the generated API clients and KubernetesObjectApi (made with this KubeConfig) is
  // authenticated here just before it is sent; the signal bounds it, its answer's body included. An API
  // server that accepts the connection and never answers would otherwise hold the verb forever.
  // Watch and Log (logs --follow's streams) take their options elsewhere and are not bounded.
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context: RequestContext) => {
    await authenticate(context);
    context.setSignal(AbortSignal.timeout(timeoutMs));
  };
  return kc;
}

export function namespaceOf(kc: KubeConfig | undefined, opts: KubeOptions): string {
  if (opts.namespace) return opts.namespace;
  const ctx = kc?.getContextObject(kc.getCurrentContext());
  return ctx?.namespace || 'default';
}

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    try {
      const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string };
      if (parsed?.message) return parsed.message;
    } catch {
      // body is not JSON: fall through to the status
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A Kubernetes API failure as a KinferError: 404 → NotFound naming `what`, anything else → Unavailable;
 * a request that ran out of time (with `kc`, the KubeConfig it was made with) names the API server.
 */
export function kubeError(err: unknown, what: string, kc?: KubeConfig): KinferError {
  if (err instanceof KinferError) return err;
  if (statusOf(err) === 404) return new NotFound(`${what} not found`);
  const bound = kc && requestTimeouts.get(kc);
  if (bound && (err as { name?: unknown })?.name === 'AbortError') {
    return new Unavailable(`Kubernetes API server ${bound.server}: no answer within ${bound.timeoutMs / 1000} s (${what}); see --timeout`);
  }
  return new Unavailable(`Kubernetes API: ${what}: ${apiMessage(err)}`);
}

export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}
