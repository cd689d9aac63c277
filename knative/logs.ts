/**
 * @module knative/logs
 * `kinfer logs <function>`: the server container's (`user-container`) logs of
 * every pod of the function's current revision (label `serving.knative.dev/revision`).
 * The latest ready revision is used, or the latest created one while none is ready
 * (the usual reason to read logs). `followLogs` streams, as `kubectl logs -f` does, every
 * running pod of the function (any revision: a rollout's and a traffic split's), and picks up
 * the pods that start later (scale-up from zero, a rollout, a restarted container), as `stern` does.
 */
import { setMaxListeners } from 'node:events';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, Log, Watch, type V1Pod } from '@kubernetes/client-node';
import { NotFound, Unavailable } from '../runtime/core/errors.js';
import { kubeError, loadKubeConfig, namespaceOf, type KubeOptions } from './kube.js';
import { lineSplitter } from './lines.js';
import { checkName, readService } from './status.js';

/** Knative's name for the one container of a Service without a container name. */
export const SERVER_CONTAINER = 'user-container';
/** Knative's labels on every pod of a Service. */
const SERVICE_LABEL = 'serving.knative.dev/service';
const REVISION_LABEL = 'serving.knative.dev/revision';
/** Pods read, or followed at once. */
export const MAX_PODS = 50;
/** Waits before each retry of a failed watch of the function's pods; after the last, new pods are no longer looked for. */
export const WATCH_BACKOFF_MS: readonly number[] = [500, 1000, 2000, 4000, 8000];
/** A watch that ends sooner than this without an event counts as failed (a server closing watches at once). */
const WATCH_MIN_MS = 1000;
/** The server ends each watch after this (`timeoutSeconds`), and it is made again; as client-go, a few minutes. */
const WATCH_SECONDS = 300;

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
    throw kubeError(err, `pods of revision ${namespace}/${revision}`, kc);
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
      throw kubeError(err, `logs of pod ${namespace}/${pod}`, kc);
    }
  }
  return out;
}

export interface FollowOptions extends LogsOptions {
  /** Each complete line of a pod's log, as it arrives (a last line without its newline when the stream ends). */
  onLine: (pod: string, line: string) => void;
  /** Stops following; the promise then resolves. */
  signal: AbortSignal;
  /**
   * A pod whose log could not be followed (the others go on), or, as `pods`, the watch for new pods
   * giving up. When every pod there at the start fails, the first error is thrown instead.
   */
  onError?: (source: string, err: Error) => void;
  /** A pod's stream opened (`open` true) or ended by itself (not at a stop). */
  onPod?: (pod: string, revision: string, open: boolean) => void;
  /** No stream is open (none at the start, or the last one ended): waiting for a pod to start. */
  onIdle?: () => void;
  /** Waits before each retry of a failed watch; default WATCH_BACKOFF_MS. */
  watchBackoffMs?: readonly number[];
}

/**
 * The restart count of the pod's server container once it has run (running now, stopped, or
 * waiting to restart after a crash, whose last run's log the kubelet still serves); else undefined.
 */
function serverRestarts(pod: V1Pod): number | undefined {
  const c = pod.status?.containerStatuses?.find((s) => s.name === SERVER_CONTAINER);
  return c && (c.state?.running || c.state?.terminated || c.lastState?.terminated) ? (c.restartCount ?? 0) : undefined;
}

/**
 * Aborts the controller `pending` resolves with when `stop` fires, at once if it already has: client-node's
 * `Log` and `Watch` hand their AbortController over only once the response's headers have come.
 * Returns the listener's removal.
 */
function abortWhenStopped(pending: Promise<AbortController>, stop: AbortSignal, onStop: () => void): () => void {
  let controller: AbortController | undefined;
  const listener = () => {
    controller?.abort();
    onStop();
  };
  stop.addEventListener('abort', listener, { once: true });
  pending.then(
    (c) => {
      controller = c;
      if (stop.aborted) c.abort();
    },
    () => undefined, // the caller handles the failure
  );
  return () => stop.removeEventListener('abort', listener);
}

/**
 * Streams the server container's log of each pod of the function (`follow=true`, after the last
 * `tailLines` lines) until `signal` aborts: the pods whose container has run, of any revision
 * (during a rollout both revisions serve), then, through a watch of the function's pods (label
 * `serving.knative.dev/service`), each pod that starts later and each restarted container. Pods
 * being deleted at the start are left out. If the watch keeps failing (WATCH_BACKOFF_MS), it ends
 * once the open streams end. Returns the pods followed, in the order they were.
 */
export async function followLogs(fn: string, opts: FollowOptions): Promise<string[]> {
  checkName(fn);
  const kc = loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  await readService(kc, fn, namespace); // NotFound naming it
  const core = kc.makeApiClient(CoreV1Api);
  const labelSelector = `${SERVICE_LABEL}=${fn}`;
  const listPods = async () => {
    try {
      return await core.listNamespacedPod({ namespace, labelSelector });
    } catch (err) {
      throw kubeError(err, `pods of Knative Service ${namespace}/${fn}`, kc);
    }
  };
  const first = await listPods();
  const nameOf = (p: V1Pod) => p.metadata?.name ?? '';
  const revisionOf = (p: V1Pod) => p.metadata?.labels?.[REVISION_LABEL] ?? '';
  const initial = first.items.filter((p) => !p.metadata?.deletionTimestamp && serverRestarts(p) !== undefined);

  // Stopped by the caller, or when every pod of the start failed.
  const stop = new AbortController();
  setMaxListeners(MAX_PODS + 10, stop.signal); // a listener per open stream, and the watch's
  const onAbort = () => stop.abort();
  opts.signal.addEventListener('abort', onAbort, { once: true });
  if (opts.signal.aborted) stop.abort(); // a stop during the requests above
  const logApi = new Log(kc);
  const followed: string[] = [];
  const open = new Set<string>();
  /** `pod#restarts` of every stream begun, so a container is followed once. */
  const begun = new Set<string>();
  let watching = true;
  let initialLeft = initial.length;
  let initialOk = false;
  let firstFailure: Error | undefined;
  let thrown: Error | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const settle = () => {
    if (stop.signal.aborted || (!watching && open.size === 0)) finish();
    else if (open.size === 0) opts.onIdle?.();
  };

  const stream = (pod: string): Promise<Error | undefined> =>
    new Promise((resolve) => {
      const done = (err: Error | undefined) => {
        unlisten();
        resolve(err);
      };
      const lines = lineSplitter((line) => opts.onLine(pod, line));
      const sink = new Writable({
        write(chunk: Buffer, _enc, next) {
          lines.write(chunk.toString('utf8'));
          next();
        },
        final(next) {
          lines.end();
          next();
        },
      });
      sink.on('finish', () => done(undefined));
      sink.on('error', () => done(undefined));
      // `pipe` does not pass a dropped connection on to the sink: end the stream when its source breaks off.
      sink.on('pipe', (src: NodeJS.ReadableStream & { readableEnded?: boolean }) => {
        src.once('error', () => done(undefined));
        src.once('close', () => {
          if (!src.readableEnded) done(undefined);
        });
      });
      const request = logApi.log(namespace, pod, SERVER_CONTAINER, sink, { follow: true, tailLines: opts.tailLines ?? 200 });
      const unlisten = abortWhenStopped(request, stop.signal, () => done(undefined));
      request.catch((err: unknown) => done(kubeError(err, `logs of pod ${namespace}/${pod}`)));
    });

  /** The last state seen of each pod, looked at again when its stream ends (a restart seen while it was open). */
  const latest = new Map<string, V1Pod>();
  /** Pods left out for MAX_PODS, reported once. */
  const capped = new Set<string>();
  const consider = (p: V1Pod, atStart = false) => {
    if (stop.signal.aborted) return;
    const pod = nameOf(p);
    if (pod) latest.set(pod, p);
    const restarts = serverRestarts(p);
    // A pod being deleted is not picked up (one followed already streams to its end).
    if (!pod || open.has(pod) || p.metadata?.deletionTimestamp || restarts === undefined || begun.has(`${pod}#${restarts}`)) return;
    if (open.size >= MAX_PODS) {
      if (!capped.has(pod)) opts.onError?.(pod, new Unavailable(`not followed: ${MAX_PODS} pods are followed already`));
      capped.add(pod);
      if (atStart) initialLeft--;
      return;
    }
    capped.delete(pod);
    begun.add(`${pod}#${restarts}`);
    const rev = revisionOf(p);
    open.add(pod);
    if (!followed.includes(pod)) followed.push(pod);
    opts.onPod?.(pod, rev, true);
    void stream(pod).then((err) => {
      open.delete(pod);
      if (err) opts.onError?.(pod, err);
      if (atStart) {
        initialOk ||= !err;
        firstFailure ??= err;
        if (--initialLeft === 0 && !initialOk && !stop.signal.aborted) {
          thrown = firstFailure;
          stop.abort();
        }
      }
      if (stop.signal.aborted) return settle();
      opts.onPod?.(pod, rev, false);
      const now = latest.get(pod);
      if (now) consider(now);
      settle();
    });
  };

  // New pods: watch from the listing's resourceVersion; 410 Expired lists again.
  const watchPods = async () => {
    const watch = new Watch(kc);
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
    let resourceVersion = first.metadata?.resourceVersion;
    let failures = 0;
    while (!stop.signal.aborted) {
      const started = Date.now();
      let events = 0;
      let expired = false;
      let error: Error | undefined;
      await new Promise<void>((resolve) => {
        // The server ends the watch after WATCH_SECONDS; past that plus a margin the connection is
        // taken for half-open (no event, no end) and the watch is made again.
        let stale = false;
        const timer = setTimeout(() => {
          stale = true;
          void request.then((c) => c.abort(), () => undefined);
          done(undefined); // also when it hangs before its headers (no controller yet)
        }, (WATCH_SECONDS + 30) * 1000);
        timer.unref();
        const done = (err: unknown) => {
          clearTimeout(timer);
          unlisten();
          if (err && !stop.signal.aborted && !stale) error ??= kubeError(err, `watch of pods of Knative Service ${namespace}/${fn}`);
          resolve();
        };
        const request = watch.watch(
          path,
          { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS },
          (type: string, obj: V1Pod & { code?: number; message?: string }) => {
            if (type === 'ERROR') {
              if (obj.code === 410) expired = true;
              else error ??= new Unavailable(`Kubernetes API: watch of pods of Knative Service ${namespace}/${fn}: ${obj.message ?? 'error event'}`);
              return;
            }
            events++;
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            if (type === 'ADDED' || type === 'MODIFIED') consider(obj);
            else if (type === 'DELETED') latest.delete(nameOf(obj));
          },
          done,
        );
        // A stop before the headers come cannot reach the request: stop waiting now.
        const unlisten = abortWhenStopped(request, stop.signal, () => done(undefined));
        request.catch(done);
      });
      if (stop.signal.aborted) break;
      if (expired && !error) {
        try {
          const again = await listPods();
          resourceVersion = again.metadata?.resourceVersion;
          for (const p of again.items) consider(p);
          failures = 0;
          continue;
        } catch (err) {
          error = err as Error;
        }
      }
      if (!error && (events > 0 || Date.now() - started >= WATCH_MIN_MS)) {
        failures = 0;
        continue; // the server ended a healthy watch (its timeout): watch again
      }
      const wait = (opts.watchBackoffMs ?? WATCH_BACKOFF_MS)[failures++];
      if (wait === undefined) {
        const why = error?.message ?? 'the API server ended every watch at once';
        opts.onError?.('pods', new Unavailable(`stopped looking for new pods after ${failures} failed watches: ${why}`));
        break;
      }
      await sleep(wait, undefined, { signal: stop.signal }).catch(() => undefined);
    }
    watching = false;
    settle();
  };

  for (const p of initial) consider(p, true);
  if (open.size === 0 && !stop.signal.aborted) opts.onIdle?.();
  void watchPods();
  await finished;
  stop.abort();
  opts.signal.removeEventListener('abort', onAbort);
  if (thrown) throw thrown;
  return followed;
}
