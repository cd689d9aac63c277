/**
 * @module knative/kube
 * Kubeconfig loading and Kubernetes API error mapping shared by deploy,
 * status, list and logs.
 */
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { InvalidArgument, KinferError, NotFound, Unavailable } from '../runtime/core/errors.js';

export interface KubeOptions {
  /** Namespace; default: the kubeconfig context's namespace, else `default`. */
  namespace?: string;
  /** Kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, or in-cluster. */
  kubeconfig?: string;
}

export function loadKubeConfig(opts: KubeOptions): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new InvalidArgument(`kubeconfig ${opts.kubeconfig ?? '(default)'}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!kc.getCurrentCluster()) throw new InvalidArgument(`kubeconfig ${opts.kubeconfig ?? '(default)'}: no current cluster`);
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

/** A Kubernetes API failure as a KinferError: 404 → NotFound naming `what`, anything else → Unavailable. */
export function kubeError(err: unknown, what: string): KinferError {
  if (err instanceof KinferError) return err;
  if (statusOf(err) === 404) return new NotFound(`${what} not found`);
  return new Unavailable(`Kubernetes API: ${what}: ${apiMessage(err)}`);
}

export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}
