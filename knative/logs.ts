/**
 * @module knative/logs
 * `kinfer logs <function>`: the server container's (`user-container`) logs of
 * every pod of the function's current revision (label `serving.knative.dev/revision`).
 * The latest ready revision is used, or the latest created one while none is ready
 * (the usual reason to read logs).
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { NotFound } from '../runtime/core/errors.js';
import { kubeError, loadKubeConfig, namespaceOf, type KubeOptions } from './kube.js';
import { checkName, readService } from './status.js';

/** Knative's name for the one container of a Service without a container name. */
export const SERVER_CONTAINER = 'user-container';
export const MAX_PODS = 50;

export interface LogsOptions extends KubeOptions {
  /** Last lines per pod; default 200. */
  tailLines?: number;
}

export interface PodLog {
  pod: string;
  revision: string;
  log: string;
}

export async function logs(fn: string, opts: LogsOptions = {}): Promise<PodLog[]> {
  checkName(fn);
  const kc = loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  const svc = await readService(kc, fn, namespace);
  const revision = svc.status?.latestReadyRevisionName ?? svc.status?.latestCreatedRevisionName;
  if (!revision) throw new NotFound(`Knative Service ${namespace}/${fn} has no revision yet`);
  const core = kc.makeApiClient(CoreV1Api);
  let pods: string[];
  try {
    const res = await core.listNamespacedPod({ namespace, labelSelector: `serving.knative.dev/revision=${revision}` });
    pods = res.items.map((p) => p.metadata?.name ?? '').filter((n) => n !== '').sort().slice(0, MAX_PODS);
  } catch (err) {
    throw kubeError(err, `pods of revision ${namespace}/${revision}`);
  }
  const out: PodLog[] = [];
  for (const pod of pods) {
    try {
      const log = await core.readNamespacedPodLog({ name: pod, namespace, container: SERVER_CONTAINER, tailLines: opts.tailLines ?? 200 });
      out.push({ pod, revision, log });
    } catch (err) {
      throw kubeError(err, `logs of pod ${namespace}/${pod}`);
    }
  }
  return out;
}
