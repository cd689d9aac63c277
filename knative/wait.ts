/**
 * @module knative/wait
 * `kinfer deploy --wait`: after the apply, reads each applied object every `pollMs` until its
 * `Ready` condition is True at the generation the apply produced (`status.observedGeneration`
 * at least that), as `kn service create` waits. `Ready` False at that generation fails at once,
 * naming the object, the reason and the message (an image that cannot be pulled, a Broker that
 * does not exist); past the timeout the failure names the conditions last seen.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Cancelled, DeadlineExceeded, Unavailable } from '../runtime/core/errors.js';
import { kubeError } from './kube.js';
import type { Condition } from './status.js';

export interface WaitTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  /** `metadata.generation` the apply answered with; undefined accepts any. */
  generation?: number;
}

export interface WaitOptions {
  timeoutMs: number;
  /** Between reads; default 1 s. */
  pollMs?: number;
  signal?: AbortSignal;
  /** A line each time an object's conditions change. */
  onProgress?: (line: string) => void;
}

export interface ReadyObject {
  kind: string;
  name: string;
  namespace?: string;
  /** `status.url` when the object has one (a Knative Service, an InferenceService). */
  url?: string;
}

interface StatusOf {
  status?: { observedGeneration?: number; conditions?: Condition[]; url?: string };
}

const describe = (t: WaitTarget) => `${t.kind} ${t.namespace ? `${t.namespace}/` : ''}${t.name}`;
const conditionText = (c: Condition) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`;

/** Waits until every target is Ready at its generation; returns them in order, with their URLs. */
export async function waitReady(kc: KubeConfig, targets: WaitTarget[], opts: WaitOptions): Promise<ReadyObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const deadline = Date.now() + opts.timeoutMs;
  const pending = new Map(targets.map((t) => [t, '']));
  const ready = new Map<WaitTarget, ReadyObject>();
  for (;;) {
    for (const [t, seen] of pending) {
      let obj: KubernetesObject & StatusOf;
      try {
        obj = (await api.read({ apiVersion: t.apiVersion, kind: t.kind, metadata: { name: t.name, namespace: t.namespace } })) as KubernetesObject & StatusOf;
      } catch (err) {
        throw kubeError(err, describe(t));
      }
      const observed = obj.status?.observedGeneration;
      // A controller that does not report observedGeneration cannot be held to it.
      const current = t.generation === undefined || observed === undefined || observed >= t.generation;
      const conditions = obj.status?.conditions ?? [];
      const text = current ? conditions.map(conditionText).join(', ') || 'no conditions yet' : `generation ${t.generation} not observed yet (at ${observed})`;
      if (text !== seen) {
        opts.onProgress?.(`${describe(t)}: ${text}`);
        pending.set(t, text);
      }
      const r = conditions.find((c) => c.type === 'Ready');
      if (current && r?.status === 'False') throw new Unavailable(`${describe(t)} is not ready: ${r.reason ?? 'Ready=False'}${r.message ? `: ${r.message}` : ''}`);
      if (current && r?.status === 'True') {
        pending.delete(t);
        ready.set(t, { kind: t.kind, name: t.name, ...(t.namespace ? { namespace: t.namespace } : {}), ...(obj.status?.url ? { url: obj.status.url } : {}) });
      }
    }
    if (pending.size === 0) return targets.map((t) => ready.get(t)!);
    const left = deadline - Date.now();
    if (left <= 0) {
      const last = [...pending].map(([t, text]) => `${describe(t)}: ${text}`).join('; ');
      throw new DeadlineExceeded(`not ready after ${Math.round(opts.timeoutMs / 1000)} s: ${last}`);
    }
    try {
      await sleep(Math.min(opts.pollMs ?? 1000, left), undefined, { signal: opts.signal });
    } catch {
      throw new Cancelled('stopped waiting for readiness');
    }
  }
}
