/**
 * @module knative/wait
 * `kinfer deploy --wait`: after the apply, reads each applied object every `pollMs` until its
 * `Ready` condition is True for what the apply asked, as `kn service create` waits: at the
 * generation the apply produced (`status.observedGeneration` at least that), or, for a kind whose
 * observedGeneration cannot be trusted (KServe's InferenceService), a Ready that turned True after
 * an apply that changed the spec, or, for a kind whose status never says which spec it speaks of
 * (KServe's TrainedModel), the Ready there is. `Ready` False that stays so for `windowMs` (kn's
 * `--wait-window`, 2 s) fails, naming the object, the reason and the message (an image that cannot
 * be pulled, a Broker that does not exist), unless every False condition under it is one of the
 * target's `waitsOn` (a TrainedModel waiting for its InferenceService); past the timeout the
 * failure names the conditions last seen.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Cancelled, DeadlineExceeded, Unavailable } from '../runtime/core/errors.js';
import { kubeError } from './kube.js';
import type { Condition } from './status.js';

/** kn's default `--wait-window`: how long a Ready False may last before it counts. */
export const READY_FALSE_WINDOW_MS = 2000;

export interface WaitTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  /** `metadata.generation` the apply answered with; undefined accepts any. */
  generation?: number;
  /**
   * How the new spec is known to be seen: `status.observedGeneration`, the Ready condition's
   * transition, or not at all (`none`: Ready is taken as it is; a TrainedModel's controller sets no
   * observedGeneration and leaves a True Ready untouched when the spec changes).
   */
  track: 'generation' | 'transition' | 'none';
  /** With `transition`, when the apply changed the spec: only a Ready whose `lastTransitionTime` is not before this counts. */
  readySince?: Date;
  /**
   * Condition types whose False means the object waits for another one (which the wait watches
   * itself), not that it failed: KServe's TrainedModel is Ready=False (InferenceServiceNotReady)
   * until its InferenceService is ready. Ready=False with only these False is still pending.
   */
  waitsOn?: readonly string[];
}

export interface WaitOptions {
  timeoutMs: number;
  /** Between reads; default 1 s. */
  pollMs?: number;
  /** Default READY_FALSE_WINDOW_MS. */
  windowMs?: number;
  signal?: AbortSignal;
  /** A line each time an object's conditions change. */
  onProgress?: (line: string) => void;
}

export interface ReadyObject {
  kind: string;
  name: string;
  namespace?: string;
  /** `status.url` when the object has one (a Knative Service, an InferenceService, a TrainedModel's infer URL). */
  url?: string;
}

interface StatusOf {
  status?: { observedGeneration?: number; conditions?: (Condition & { lastTransitionTime?: string | Date })[]; url?: string };
}

const describe = (t: WaitTarget) => `${t.kind} ${t.namespace ? `${t.namespace}/` : ''}${t.name}`;
const conditionText = (c: Condition) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`;

/** Whether `obj`'s status speaks of what the apply asked (else it is the previous spec's); the text says why not. */
function current(t: WaitTarget, obj: StatusOf): string | true {
  if (t.track === 'none') return true;
  if (t.track === 'generation') {
    const observed = obj.status?.observedGeneration;
    // A controller that does not report observedGeneration cannot be held to it.
    return t.generation === undefined || observed === undefined || observed >= t.generation ? true : `generation ${t.generation} not observed yet (at ${observed})`;
  }
  if (!t.readySince) return true;
  // A settled Ready (True or False) speaks of the new spec only if it was set at or after the apply.
  const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const at = ready?.lastTransitionTime === undefined ? undefined : new Date(ready.lastTransitionTime);
  return ready === undefined || ready.status === 'Unknown' || (at !== undefined && at >= t.readySince) ? true : `the new spec not reconciled yet (Ready=${ready.status} from before the apply)`;
}

/**
 * The condition a Ready=False `ready` is blamed on, or undefined while it only waits on another
 * object: with `waitsOn`, the first False condition not among them (a TrainedModel's Ready carries
 * the reason of whichever dependent its controller marked False last), else Ready itself.
 */
function failure(t: WaitTarget, ready: Condition, conditions: Condition[]): Condition | undefined {
  if (!t.waitsOn) return ready;
  const falses = conditions.filter((c) => c.type !== 'Ready' && c.status === 'False');
  if (falses.length === 0) return ready;
  return falses.find((c) => !t.waitsOn!.includes(c.type));
}

/** Waits until every target is Ready for what the apply asked; returns them in order, with their URLs. */
export async function waitReady(kc: KubeConfig, targets: WaitTarget[], opts: WaitOptions): Promise<ReadyObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const deadline = Date.now() + opts.timeoutMs;
  const pending = new Map(targets.map((t) => [t, '']));
  const falseSince = new Map<WaitTarget, number>();
  const ready = new Map<WaitTarget, ReadyObject>();
  for (;;) {
    for (const [t, seen] of pending) {
      let obj: KubernetesObject & StatusOf;
      try {
        obj = (await api.read({ apiVersion: t.apiVersion, kind: t.kind, metadata: { name: t.name, namespace: t.namespace } })) as KubernetesObject & StatusOf;
      } catch (err) {
        throw kubeError(err, describe(t), kc);
      }
      const now = current(t, obj);
      const conditions = obj.status?.conditions ?? [];
      const text = now === true ? conditions.map(conditionText).join(', ') || 'no conditions yet' : now;
      if (text !== seen) {
        opts.onProgress?.(`${describe(t)}: ${text}`);
        pending.set(t, text);
      }
      const r = now === true ? conditions.find((c) => c.type === 'Ready') : undefined;
      const failing = r?.status === 'False' ? failure(t, r, conditions) : undefined;
      if (failing) {
        // Knative may report False for a moment (kn waits its --wait-window before believing it).
        const since = falseSince.get(t) ?? Date.now();
        falseSince.set(t, since);
        if (Date.now() - since >= (opts.windowMs ?? READY_FALSE_WINDOW_MS)) throw new Unavailable(`${describe(t)} is not ready: ${failing.reason ?? `${failing.type}=False`}${failing.message ? `: ${failing.message}` : ''}`);
      } else falseSince.delete(t);
      if (r?.status === 'True') {
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
