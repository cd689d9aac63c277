/**
 * @module knative/logs
 * `kinfer logs <function>`: the server container's (`user-container`) logs of
 * every pod of the function's current revision (label `serving.knative.dev/revision`).
 * The latest ready revision is used, or the latest created one while none is ready
 * (the usual reason to read logs). `followLogs` streams them as `kubectl logs -f` does.
 */
import { Writable } from 'node:stream';
import { CoreV1Api, Log } from '@kubernetes/client-node';
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

/** The current revision of `fn` and its pods (at most MAX_PODS, sorted). */
async function revisionPods(fn: string, opts: KubeOptions): Promise<{ kc: ReturnType<typeof loadKubeConfig>; namespace: string; revision: string; pods: string[] }> {
  checkName(fn);
  const kc = loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  const svc = await readService(kc, fn, namespace);
  const revision = svc.status?.latestReadyRevisionName ?? svc.status?.latestCreatedRevisionName;
  if (!revision) throw new NotFound(`Knative Service ${namespace}/${fn} has no revision yet`);
  try {
    const res = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, labelSelector: `serving.knative.dev/revision=${revision}` });
    const pods = res.items.map((p) => p.metadata?.name ?? '').filter((n) => n !== '').sort().slice(0, MAX_PODS);
    return { kc, namespace, revision, pods };
  } catch (err) {
    throw kubeError(err, `pods of revision ${namespace}/${revision}`);
  }
}

export async function logs(fn: string, opts: LogsOptions = {}): Promise<PodLog[]> {
  const { kc, namespace, revision, pods } = await revisionPods(fn, opts);
  const core = kc.makeApiClient(CoreV1Api);
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

export interface FollowOptions extends LogsOptions {
  /** Each complete line of a pod's log, as it arrives (a last line without its newline when the stream ends). */
  onLine: (pod: string, line: string) => void;
  /** Stops following; the promise then resolves. */
  signal: AbortSignal;
  /** A pod whose log could not be followed (others go on); when every pod fails the first error is thrown. */
  onError?: (pod: string, err: Error) => void;
}

/**
 * Streams the server container's log of each pod of the current revision (`follow=true`, after
 * the last `tailLines` lines) until every stream ends (its pod went) or `signal` aborts. Pods
 * that start later are not picked up (as `kubectl logs -f -l ...`). Returns the pods followed.
 */
export async function followLogs(fn: string, opts: FollowOptions): Promise<string[]> {
  const { kc, namespace, pods } = await revisionPods(fn, opts);
  const log = new Log(kc);
  const failures: Error[] = [];
  const streams = pods.map(async (pod) => {
    let partial = '';
    const done = new Promise<void>((resolve) => {
      const sink = new Writable({
        write(chunk: Buffer, _enc, next) {
          const lines = (partial + chunk.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) opts.onLine(pod, line);
          next();
        },
        final(next) {
          if (partial) opts.onLine(pod, partial);
          partial = '';
          next();
        },
      });
      sink.on('finish', () => resolve());
      sink.on('error', () => resolve());
      opts.signal.addEventListener('abort', () => resolve(), { once: true });
      log
        .log(namespace, pod, SERVER_CONTAINER, sink, { follow: true, tailLines: opts.tailLines ?? 200 })
        .then(
          (controller) => {
            if (opts.signal.aborted) controller.abort();
            else opts.signal.addEventListener('abort', () => controller.abort(), { once: true });
          },
          (err: unknown) => {
            const e = kubeError(err, `logs of pod ${namespace}/${pod}`);
            failures.push(e);
            opts.onError?.(pod, e);
            resolve();
          },
        );
    });
    await done;
  });
  await Promise.all(streams);
  if (failures.length > 0 && failures.length === pods.length) throw failures[0];
  return pods;
}
