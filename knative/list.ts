/**
 * @module knative/list
 * `kinfer list`: the Knative Services kinfer manages in a namespace (label
 * `app.kubernetes.io/managed-by=kinfer`, set on every generated Service).
 */
import { CustomObjectsApi } from '@kubernetes/client-node';
import { MANAGED_BY, MANAGED_BY_LABEL } from './resources/common.js';
import { kubeError, loadKubeConfig, namespaceOf, type KubeOptions } from './kube.js';
import { isReady, KSVC, type KnativeServiceObject } from './status.js';

export interface FunctionSummary {
  name: string;
  namespace: string;
  url?: string;
  ready: boolean;
  latestReadyRevision?: string;
}

export const LIST_LABEL_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export async function list(opts: KubeOptions = {}): Promise<FunctionSummary[]> {
  const kc = loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  let items: KnativeServiceObject[];
  try {
    const res = (await kc
      .makeApiClient(CustomObjectsApi)
      .listNamespacedCustomObject({ ...KSVC, namespace, labelSelector: LIST_LABEL_SELECTOR })) as { items?: KnativeServiceObject[] };
    items = res.items ?? [];
  } catch (err) {
    throw kubeError(err, `Knative Services in ${namespace}`, kc);
  }
  return items
    .map((svc) => {
      const s: FunctionSummary = { name: svc.metadata?.name ?? '?', namespace, ready: isReady(svc) };
      if (svc.status?.url) s.url = svc.status.url;
      if (svc.status?.latestReadyRevisionName) s.latestReadyRevision = svc.status.latestReadyRevisionName;
      return s;
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
