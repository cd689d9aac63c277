/**
 * @module server/grpc-stream
 * Triton's `ModelStreamInfer`: a bidirectional stream of ModelInferRequests,
 * each answered by one ModelStreamInferResponse (`infer_response`, or
 * `error_message` with the request's id, model and version so the client can
 * tell which failed). What `tritonclient.grpc`'s `start_stream` /
 * `async_stream_infer` and `perf_analyzer --streaming` use. Requests on a
 * stream run concurrently, so they batch with each other and with other
 * callers; their responses are written in request order, as Triton writes
 * them for a non-decoupled model (a client that sends no ids matches answers
 * by order). At most MAX_STREAM_RUNNING run at once per stream, and the stream
 * stops reading while the client does not read its answers (`write` asks to
 * wait for 'drain'). Each answer carries Triton's `triton_final_response: true`
 * (every kinfer model answers a request once). The stream ends once the client
 * has half-closed it and every response is written (status OK); at shutdown,
 * requests still arriving are answered "shutting down", and a stream the client
 * has not half-closed ends, once its running requests are answered, with
 * UNAVAILABLE (a request still on the wire then fails and can be sent to
 * another replica, where OK would have dropped it unanswered).
 */
import { setMaxListeners } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Internal, Unavailable } from '../core/errors.js';
import { GRPC_CODE, toGrpcError } from '../core/grpc-status.js';
import type { WireInferRequest, WireInferResponse } from '../protocol/grpc/codec.js';

/** One inference: the encoded ModelInferResponse, or a throw for the error. */
export type InferOne = (m: WireInferRequest, metadata: grpc.Metadata, signal: AbortSignal, deadlineMs: number | undefined, method: string, requestId?: string) => Promise<unknown>;

/** Requests one stream may have running (or answered and waiting for an earlier one) before it stops reading. */
export const MAX_STREAM_RUNNING = 256;

type Stream = grpc.ServerDuplexStream<WireInferRequest, unknown>;

/** Triton's mark on a request's last answer, set on failed answers too; every kinfer model answers once. */
const FINAL = { triton_final_response: { bool_param: true } };

/** One request's place in the stream's answer order. */
interface Slot {
  request: Partial<WireInferRequest>;
  message?: unknown;
}

interface StreamState {
  call: Stream;
  /** Answers not yet written, in request order; `message` is set when that request is done. */
  pending: Slot[];
  /** The client half-closed: no more requests. */
  ended: boolean;
  /** The server is shutting down: new requests are refused. */
  closing: boolean;
  done: boolean;
  /** The last write asked to wait for 'drain': the client is not reading its answers. */
  blocked: boolean;
}

/** A call's deadline in epoch ms, or undefined when it has none (unary calls and streams alike). */
export function deadlineOf(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

export function streamInferHandler(inferOne: InferOne, log: Logger): { handler: (call: Stream) => void; close(): void } {
  const open = new Set<StreamState>();

  const finish = (s: StreamState) => {
    if (s.done || s.pending.length > 0 || !(s.ended || s.closing)) return;
    s.done = true;
    open.delete(s);
    if (s.call.cancelled) return;
    if (s.ended) s.call.end();
    else s.call.emit('error', { code: GRPC_CODE.UNAVAILABLE, details: 'the server is shutting down; send the requests not answered on this stream to another replica' });
  };

  /** Whether the stream may read more requests: few enough unanswered, and the client reading its answers. */
  const canRead = (s: StreamState) => !s.blocked && s.pending.length < MAX_STREAM_RUNNING;

  const write = (s: StreamState, message: unknown) => {
    if (s.done || s.call.cancelled || !s.call.writable) return;
    if (s.call.write(message) || s.blocked) return;
    s.blocked = true;
    s.call.pause();
    s.call.once('drain', () => {
      s.blocked = false;
      if (canRead(s) && s.call.isPaused()) s.call.resume();
    });
  };

  /**
   * Writes the answers at the head of the queue that are ready. An answer that cannot be written (it
   * does not serialise) is answered with its error instead, so the answers behind it still go out.
   */
  const flush = (s: StreamState) => {
    while (s.pending.length > 0 && s.pending[0]!.message !== undefined) {
      const slot = s.pending.shift()!;
      try {
        write(s, slot.message);
      } catch (err) {
        log.error({ event: 'grpc_reply_failed', method: 'ModelStreamInfer', err }, 'could not write a stream response');
        try {
          write(s, failure(slot.request, new Internal(`the response could not be written: ${(err as Error).message}`)));
        } catch {
          // Nothing of it can be written; the answers behind it still are.
        }
      }
    }
  };

  /** The reply to a request that failed: its error, and what identifies the request. */
  const failure = (m: Partial<WireInferRequest>, err: unknown) => ({
    error_message: toGrpcError(err).details,
    infer_response: {
      id: typeof m.id === 'string' ? m.id : '',
      model_name: typeof m.model_name === 'string' ? m.model_name : '',
      model_version: typeof m.model_version === 'string' ? m.model_version : '',
      parameters: FINAL,
    },
  });

  const handler = (call: Stream) => {
    const s: StreamState = { call, pending: [], ended: false, closing: false, done: false, blocked: false };
    open.add(s);
    const abort = new AbortController();
    // Each queued request of the stream listens on this one signal: up to MAX_STREAM_RUNNING at once.
    setMaxListeners(MAX_STREAM_RUNNING + 16, abort.signal);
    const baseId = call.metadata.get('x-request-id')[0];
    let seq = 0;
    const deadlineMs = deadlineOf(call);
    call.on('data', (m: WireInferRequest) => {
      const slot: Slot = { request: m };
      s.pending.push(slot);
      if (s.closing || s.done) {
        slot.message = failure(m, new Unavailable('the server is shutting down; send the request to another replica'));
        flush(s);
        return;
      }
      if (s.pending.length >= MAX_STREAM_RUNNING) call.pause();
      // The access log's request id: the stream's x-request-id with the request's own id (or its place).
      const n = seq++;
      const requestId = baseId === undefined ? undefined : `${String(baseId)}/${m.id || n}`;
      Promise.resolve()
        .then(() => inferOne(m, call.metadata, abort.signal, deadlineMs, 'ModelStreamInfer', requestId))
        .then(
          (res) => {
            const r = res as WireInferResponse;
            slot.message = { error_message: '', infer_response: { ...r, parameters: { ...r.parameters, ...FINAL } } };
          },
          (err: unknown) => (slot.message = failure(m, err)),
        )
        .then(() => flush(s))
        .catch((err: unknown) => log.error({ event: 'grpc_reply_failed', method: 'ModelStreamInfer', err }, 'could not write a stream response'))
        .finally(() => {
          if (canRead(s) && call.isPaused()) call.resume();
          finish(s);
        });
    });
    call.on('end', () => {
      s.ended = true;
      finish(s);
    });
    // The client cancelled or the connection went: queued requests are dropped, nothing more is written.
    call.on('cancelled', () => {
      abort.abort();
      s.done = true;
      open.delete(s);
    });
    call.on('error', (err) => log.debug({ event: 'grpc_stream_error', err }, 'ModelStreamInfer stream error'));
  };

  return {
    handler,
    close() {
      for (const s of [...open]) {
        s.closing = true;
        finish(s);
      }
    },
  };
}
