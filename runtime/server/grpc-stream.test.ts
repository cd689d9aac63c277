/**
 * @module server/grpc-stream.test
 * ModelStreamInfer's ordering and end, through a stand-in for grpc-js's duplex call:
 * an answer that cannot be written does not hold back the answers behind it.
 */
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { streamInferHandler } from './grpc-stream.js';

/** Enough of a grpc-js ServerDuplexStream for the handler: writes are recorded, the first `failing` throw. */
function fakeCall(failing: number) {
  const call = Object.assign(new EventEmitter(), {
    written: [] as unknown[],
    ended: false,
    cancelled: false,
    writable: true,
    paused: false,
    metadata: { get: () => [] },
    getDeadline: () => Infinity,
    write(m: unknown) {
      if (failing-- > 0) throw new Error('cannot serialise');
      call.written.push(m);
      return true;
    },
    end() {
      call.ended = true;
    },
    pause() {
      call.paused = true;
    },
    resume() {
      call.paused = false;
    },
    isPaused: () => call.paused,
  });
  return call;
}

describe('streamInferHandler', () => {
  it('answers a request whose answer cannot be written with its error, writes the later answers, and ends the stream', async () => {
    const { handler } = streamInferHandler(async (m) => ({ id: m.id, model_name: m.model_name, outputs: [] }), pino({ level: 'silent' }));
    const call = fakeCall(1);
    handler(call as never);
    for (const id of ['a', 'b', 'c']) call.emit('data', { id, model_name: 'm', inputs: [] });
    call.emit('end');
    for (let i = 0; i < 100 && !call.ended; i++) await new Promise((r) => setTimeout(r, 5));
    expect(call.ended).toBe(true);
    const answers = call.written as { error_message: string; infer_response: { id?: string; model_name?: string } }[];
    // The failed one still says which request it answers.
    expect(answers.map((a) => [a.error_message, a.infer_response.id, a.infer_response.model_name])).toEqual([
      ['the response could not be written: cannot serialise', 'a', 'm'],
      ['', 'b', 'm'],
      ['', 'c', 'm'],
    ]);
  });
});
