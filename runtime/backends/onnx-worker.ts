/**
 * @module backends/onnx-worker
 * The worker-thread side of `OnnxBackend`: one thread per backend instance
 * owns one `InferenceSession`, so `session.run()` (synchronous native work in
 * onnxruntime-node) blocks that thread instead of the server's event loop.
 *
 * How it is started: `onnxWorkerMain` is self-contained (no imports at run
 * time, only the `require` it is handed, of what `workerData` names) and the
 * main thread runs its source text with `new Worker(source, { eval: true })`,
 * passing the eval wrapper's own `require`. Its text is the compiler's
 * JavaScript in every run mode (tsc's in `dist/`, esbuild's under vitest and
 * in `dist/bundle/`), so there is no second file to find, copy or keep in
 * sync. `require` is a parameter, not the free identifier: a bundler renames
 * free `require` calls to its own shim, which the worker does not have.
 *
 * Protocol: the main thread posts `WorkerRequest`s; the worker answers each
 * with one `WorkerReply` of the same `id`, in order. Numeric outputs come back
 * with their buffers transferred (zero-copy); strings as JS strings.
 */
import type * as Ort from 'onnxruntime-node';

export interface WorkerInit {
  /** Absolute path of onnxruntime-node's entry (resolved by the main thread). */
  ortPath: string;
  /** Added to this thread's nice value (Linux), so it yields the core to the event loop; 0 leaves it. */
  niceIncrement: number;
}

/** A tensor crossing the thread boundary: `data` is a typed array, or strings for ORT's `string` type. */
export interface WireTensor {
  name: string;
  type: Ort.Tensor.Type;
  dims: number[];
  data: Ort.Tensor.DataType;
}

export interface WireValueMetadata {
  name: string;
  isTensor: boolean;
  /** ORT's element type name (`float32`, `string`, …); empty for non-tensors. */
  type: string;
  /** Numbers for fixed dims; strings or -1 for symbolic ones. */
  shape: (number | string)[];
}

export type WorkerRequest =
  | { id: number; op: 'load'; modelFile: string; options: Ort.InferenceSession.SessionOptions }
  | { id: number; op: 'run'; feeds: WireTensor[]; fetches: string[] }
  | { id: number; op: 'release' };

export type WorkerReply =
  /** `nice`: this thread's nice value after `niceIncrement` was applied; undefined where it could not be read or set. */
  | { id: number; ok: true; op: 'load'; inputs: WireValueMetadata[]; outputs: WireValueMetadata[]; nice?: number }
  /** `startedAt`/`endedAt`: `performance.timeOrigin + performance.now()` of the worker around `session.run`. */
  | { id: number; ok: true; op: 'run'; outputs: WireTensor[]; startedAt: number; endedAt: number }
  | { id: number; ok: true; op: 'release' }
  /** `input`: set when ORT refused to build the tensor for that input (size/type mismatch). */
  | { id: number; ok: false; error: string; input?: string };

/**
 * The worker's entry. Runs inside the worker only: it must not reference
 * anything outside its own body (its source text is evaluated on its own).
 */
export function onnxWorkerMain(load: NodeJS.Require): void {
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
  let session: Ort.InferenceSession | undefined;
  // Requests are handled one at a time, in arrival order.
  let queue: Promise<void> = Promise.resolve();

  const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  const describe = (metadata: readonly Ort.InferenceSession.ValueMetadata[]): WireValueMetadata[] =>
    metadata.map((m) => (m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false, type: '', shape: [] }));

  const send = (reply: WorkerReply, transfer: ArrayBuffer[] = []): void => {
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
      port.postMessage({ id: reply.id, ok: false, error: `cannot send the reply to the main thread: ${messageOf(err)}` } satisfies WorkerReply);
    }
  };

  const handle = async (m: WorkerRequest): Promise<void> => {
    if (m.op === 'load') {
      if (session) throw new Error('a session is already loaded in this worker');
      session = await ort.InferenceSession.create(m.modelFile, m.options);
      send({ id: m.id, ok: true, op: 'load', inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata), nice });
      return;
    }
    if (m.op === 'release') {
      const s = session;
      session = undefined;
      if (s) await s.release();
      send({ id: m.id, ok: true, op: 'release' });
      return;
    }
    if (!session) throw new Error('no session is loaded');
    const feeds: Record<string, Ort.Tensor> = {};
    for (const t of m.feeds) {
      try {
        feeds[t.name] = new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
      } catch (err) {
        send({ id: m.id, ok: false, error: messageOf(err), input: t.name });
        return;
      }
    }
    const startedAt = performance.timeOrigin + performance.now();
    const results = await session.run(feeds, m.fetches);
    const endedAt = performance.timeOrigin + performance.now();
    const outputs: WireTensor[] = [];
    const transfer = new Set<ArrayBuffer>();
    for (const name of m.fetches) {
      const v = results[name];
      if (!v) continue; // the main thread reports the missing output
      const data = v.data as Ort.Tensor.DataType;
      if (ArrayBuffer.isView(data) && data.buffer instanceof ArrayBuffer) transfer.add(data.buffer);
      outputs.push({ name, type: v.type, dims: [...v.dims], data });
    }
    send({ id: m.id, ok: true, op: 'run', outputs, startedAt, endedAt }, [...transfer]);
  };

  port.on('message', (m: WorkerRequest) => {
    queue = queue.then(() =>
      handle(m).catch((err: unknown) => {
        send({ id: m.id, ok: false, error: messageOf(err) });
      }),
    );
  });
}
