/**
 * @module backends/onnx-worker
 * The worker-thread host of one session (`session_thread: worker`): the
 * thread owns one `InferenceSession`, so `session.run()` (synchronous native
 * work in onnxruntime-node) blocks that thread instead of the server's event
 * loop. What it does with each request is `onnxSessionHandler`
 * (`onnx-session.ts`), the same code the event-loop mode runs.
 *
 * How it is started: `onnxWorkerMain` and `onnxSessionHandler` are
 * self-contained (no imports at run time, only the `require` they are handed,
 * of what `workerData` names) and the main thread runs their source text with
 * `new Worker(source, { eval: true })`, passing the eval wrapper's own
 * `require`. Their text is the compiler's JavaScript in every run mode (tsc's
 * in `dist/`, esbuild's under vitest and in `dist/bundle/`), so there is no
 * second file to find, copy or keep in sync. `require` is a parameter, not the
 * free identifier: a bundler renames free `require` calls to its own shim,
 * which the worker does not have.
 *
 * Protocol: the main thread posts `SessionRequest`s; the worker answers each
 * with one `SessionReply` of the same `id`, in order. Numeric outputs come
 * back with their buffers transferred (zero-copy).
 */
import type * as Ort from 'onnxruntime-node';
import type { SessionHandler, SessionReply, SessionRequest } from './onnx-session.js';

export interface WorkerInit {
  /** Absolute path of onnxruntime-node's entry (resolved by the main thread). */
  ortPath: string;
  /** Added to this thread's nice value (Linux), so it yields the core to the event loop; 0 leaves it. */
  niceIncrement: number;
}

/**
 * The worker's entry. Runs inside the worker only: it must not reference
 * anything outside its own body and parameters (its source text is evaluated
 * on its own). `makeHandler` is `onnxSessionHandler`, passed as source text.
 */
export function onnxWorkerMain(load: NodeJS.Require, makeHandler: (ort: typeof Ort) => SessionHandler): void {
  const threads = load('node:worker_threads') as typeof import('node:worker_threads');
  const init = threads.workerData as WorkerInit;
  const port = threads.parentPort;
  if (!port) throw new Error('onnxWorkerMain must run in a worker thread');
  const ort = load(init.ortPath) as typeof Ort;
  // Linux schedules threads one by one, and setpriority() on this thread's id changes this thread
  // alone: below the event loop's priority, a running batch does not hold back request I/O, health
  // probes or metrics on a pod with one CPU. Lowering priority needs no privilege.
  let nice: number | undefined;
  try {
    const os = load('node:os') as typeof import('node:os');
    const tid = Number((load('node:fs') as typeof import('node:fs')).readlinkSync('/proc/thread-self').split('/').pop());
    if (init.niceIncrement > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + init.niceIncrement));
    nice = os.getPriority(tid);
  } catch {
    // Not Linux (no /proc/thread-self), or not permitted: the thread keeps the process's priority.
  }
  const handle = makeHandler(ort);
  // Requests are handled one at a time, in arrival order.
  let queue: Promise<void> = Promise.resolve();

  const send = (reply: SessionReply, transfer: ArrayBuffer[]): void => {
    try {
      port.postMessage(reply, transfer);
    } catch (err) {
      if (transfer.length > 0) {
        // A buffer ORT owns may not be detachable: send a copy instead.
        try {
          port.postMessage(reply);
          return;
        } catch {
          // fall through to the error reply
        }
      }
      const error = `cannot send the reply to the main thread: ${err instanceof Error ? err.message : String(err)}`;
      port.postMessage({ id: reply.id, ok: false, error } satisfies SessionReply);
    }
  };

  port.on('message', (m: SessionRequest) => {
    queue = queue.then(async () => {
      const { reply, transfer } = await handle(m);
      send(reply.ok && reply.op === 'load' ? { ...reply, nice } : reply, transfer);
    });
  });
}
