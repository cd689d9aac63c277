/**
 * @module knative/status
 * `kinfer status <function>`: the Knative Service's conditions and URL, and the
 * ready replicas of its latest ready revision (the revision's Deployment
 * `<revision>-deployment`, or the Revision's own status when that is absent), and how its route
 * splits traffic between revisions (`kinfer deploy --canary`).
 */
import { AppsV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { InvalidArgument } from '../runtime/core/errors.js';
import { isNotFound, kubeError, loadKubeConfig, namespaceOf, type KubeOptions } from './kube.js';

export const KSVC = { group: 'serving.knative.dev', version: 'v1', plural: 'services' } as const;
const REVISIONS = { group: 'serving.knative.dev', version: 'v1', plural: 'revisions' } as const;

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface KnativeServiceObject {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  status?: {
    url?: string;
    conditions?: Condition[];
    latestReadyRevisionName?: string;
    latestCreatedRevisionName?: string;
    observedGeneration?: number;
    traffic?: TrafficTarget[];
  };
}

/** One entry of a Service's routed traffic (`status.traffic`): a revision, its share, its tag and the tag's URL. */
export interface TrafficTarget {
  revisionName?: string;
  percent?: number;
  tag?: string;
  url?: string;
  latestRevision?: boolean;
}

export interface FunctionStatus {
  name: string;
  namespace: string;
  url?: string;
  /** The `Ready` condition is True. */
  ready: boolean;
  conditions: Condition[];
  latestReadyRevision?: string;
  latestCreatedRevision?: string;
  /** Ready pods of the latest ready revision; 0 when scaled to zero or none is ready. */
  readyReplicas: number;
  /** How the route splits traffic now (one entry at 100 % without a canary). */
  traffic: TrafficTarget[];
}

export function checkName(fn: string): void {
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(fn)) throw new InvalidArgument(`function: expected a function name (DNS label), got ${JSON.stringify(fn)}`);
}

export function conditionsOf(svc: KnativeServiceObject): Condition[] {
  return (svc.status?.conditions ?? []).map((c) => {
    const out: Condition = { type: c.type, status: c.status };
    if (c.reason) out.reason = c.reason;
    if (c.message) out.message = c.message;
    return out;
  });
}

export function isReady(svc: KnativeServiceObject): boolean {
  return conditionsOf(svc).some((c) => c.type === 'Ready' && c.status === 'True');
}

export async function readService(kc: KubeConfig, fn: string, namespace: string): Promise<KnativeServiceObject> {
  try {
    return (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...KSVC, namespace, name: fn })) as KnativeServiceObject;
  } catch (err) {
    throw kubeError(err, `Knative Service ${namespace}/${fn}`, kc);
  }
}

async function readyReplicas(kc: KubeConfig, revision: string, namespace: string): Promise<number> {
  try {
    const d = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: `${revision}-deployment`, namespace });
    return d.status?.readyReplicas ?? 0;
  } catch (err) {
    if (!isNotFound(err)) throw kubeError(err, `Deployment ${namespace}/${revision}-deployment`, kc);
  }
  try {
    const r = (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...REVISIONS, namespace, name: revision })) as {
      status?: { actualReplicas?: number };
    };
    return r.status?.actualReplicas ?? 0;
  } catch (err) {
    if (isNotFound(err)) return 0;
    throw kubeError(err, `Revision ${namespace}/${revision}`, kc);
  }
}

export async function status(fn: string, opts: KubeOptions = {}): Promise<FunctionStatus> {
  checkName(fn);
  const kc = loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  const svc = await readService(kc, fn, namespace);
  const latestReady = svc.status?.latestReadyRevisionName;
  const out: FunctionStatus = {
    name: fn,
    namespace,
    ready: isReady(svc),
    conditions: conditionsOf(svc),
    readyReplicas: latestReady ? await readyReplicas(kc, latestReady, namespace) : 0,
    traffic: (svc.status?.traffic ?? []).map(({ revisionName, percent, tag, url, latestRevision }) => ({
      ...(revisionName ? { revisionName } : {}),
      percent: percent ?? 0,
      ...(tag ? { tag } : {}),
      ...(url ? { url } : {}),
      ...(latestRevision !== undefined ? { latestRevision } : {}),
    })),
  };
  if (svc.status?.url) out.url = svc.status.url;
  if (latestReady) out.latestReadyRevision = latestReady;
  if (svc.status?.latestCreatedRevisionName) out.latestCreatedRevision = svc.status.latestCreatedRevisionName;
  return out;
}
