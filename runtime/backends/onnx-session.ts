/**
 * @module backends/onnx-session
 * The code that owns one `InferenceSession` and answers `SessionRequest`s, on
 * whichever thread holds the session: a worker thread (`onnx-worker.ts`) or
 * the server's event loop (`OnnxBackend`, `session_thread: event_loop`). Both
 * run this one function, so the two modes cannot drift apart.
 *
 * `onnxSessionHandler` is self-contained: the worker evaluates its source
 * text, so it may use only its parameter and its own body.
 *
 * Numeric outputs come back as ORT's typed arrays; the worker transfers their
 * buffers (zero-copy), the event loop hands them on as they are. Strings come
 * back as JS strings.
 */
import type * as Ort from 'onnxruntime-node';

/** A tensor handed to or from the session: `data` is a typed array, or strings for ORT's `string` type. */
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

export type SessionRequest =
  | { id: number; op: 'load'; modelFile: string; options: Ort.InferenceSession.SessionOptions }
  | { id: number; op: 'run'; feeds: WireTensor[]; fetches: string[] }
  | { id: number; op: 'release' };

export type SessionReply =
  /** `nice`: the worker thread's nice value after it lowered its priority; undefined on the event loop, or where it could not be read or set. */
  | { id: number; ok: true; op: 'load'; inputs: WireValueMetadata[]; outputs: WireValueMetadata[]; nice?: number }
  /** `startedAt`/`endedAt`: `performance.timeOrigin + performance.now()` of the session's thread around `session.run`. */
  | { id: number; ok: true; op: 'run'; outputs: WireTensor[]; startedAt: number; endedAt: number }
  | { id: number; ok: true; op: 'release' }
  /** `input`: set when ORT refused to build the tensor for that input (size/type mismatch). */
  | { id: number; ok: false; error: string; input?: string };

/** Answers one request; `transfer` lists the output buffers the worker may move to the main thread. */
export type SessionHandler = (m: SessionRequest) => Promise<{ reply: SessionReply; transfer: ArrayBuffer[] }>;

/**
 * A handler owning at most one session. Requests must come one at a time (the
 * caller chains them); a failure becomes an `ok: false` reply, never a throw.
 */
export function onnxSessionHandler(ort: typeof Ort): SessionHandler {
  let session: Ort.InferenceSession | undefined;
  const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  const describe = (metadata: readonly Ort.InferenceSession.ValueMetadata[]): WireValueMetadata[] =>
    metadata.map((m) => (m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false, type: '', shape: [] }));

  const handle = async (m: SessionRequest): Promise<{ reply: SessionReply; transfer: ArrayBuffer[] }> => {
    if (m.op === 'load') {
      if (session) throw new Error('a session is already loaded here');
      session = await ort.InferenceSession.create(m.modelFile, m.options);
      return { reply: { id: m.id, ok: true, op: 'load', inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) }, transfer: [] };
    }
    if (m.op === 'release') {
      const s = session;
      session = undefined;
      if (s) await s.release();
      return { reply: { id: m.id, ok: true, op: 'release' }, transfer: [] };
    }
    if (!session) throw new Error('no session is loaded');
    const feeds: Record<string, Ort.Tensor> = {};
    for (const t of m.feeds) {
      try {
        feeds[t.name] = new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
      } catch (err) {
        return { reply: { id: m.id, ok: false, error: messageOf(err), input: t.name }, transfer: [] };
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
    return { reply: { id: m.id, ok: true, op: 'run', outputs, startedAt, endedAt }, transfer: [...transfer] };
  };

  return (m) => handle(m).catch((err: unknown) => ({ reply: { id: m.id, ok: false, error: messageOf(err) }, transfer: [] }));
}
