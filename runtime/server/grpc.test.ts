/**
 * `decodeCost`: an encoded ModelInferRequest weighed on the wire, before protobufjs turns it into
 * objects (the gRPC integration tests send such requests through a real server).
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, PayloadTooLarge } from '../core/errors.js';
import { decodeCost } from './grpc.js';

/** A length-delimited field: tag (field << 3 | 2), length, bytes. */
const field = (n: number, bytes: Buffer) => Buffer.concat([Buffer.from([(n << 3) | 2, bytes.length]), bytes]);
const input = field(5, Buffer.concat([field(1, Buffer.from('v')), field(2, Buffer.from('FP32'))]));

describe('decodeCost', () => {
  it('refuses more raw_input_contents entries than inputs before any is decoded (2 wire bytes each, a Buffer each once decoded)', () => {
    const ok = Buffer.concat([field(1, Buffer.from('echo')), input, input, field(7, Buffer.alloc(4)), field(7, Buffer.alloc(0))]);
    expect(decodeCost(ok, 1 << 20)).toBeUndefined();
    // 2 M entries: 4 MB on the wire; decoded, ~2 s and ~230 MB of heap before the codec's own count check.
    const flood = Buffer.concat([field(1, Buffer.from('echo')), input, Buffer.alloc(2 * 2_000_000).fill(Buffer.from([0x3a, 0x00]))]);
    const t0 = performance.now();
    const err = decodeCost(flood, 1 << 20);
    expect(performance.now() - t0).toBeLessThan(1000); // a scan, no objects
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err!.message).toBe('raw_input_contents has 2000000 entries for 1 inputs; when used, it carries every input not in shared memory, in order');
  });

  it('weighs typed contents by element and everything else by bytes (PayloadTooLarge)', () => {
    const floats = field(5, Buffer.concat([field(1, Buffer.from('v')), field(5, field(6, Buffer.alloc(100)))])); // 25 packed FP32
    expect(decodeCost(floats, 8 * 25)).toBeUndefined();
    const over = decodeCost(floats, 8 * 24);
    expect(over).toBeInstanceOf(PayloadTooLarge);
    expect(over!.message).toMatch(/typed contents weigh 25 units to decode, over 24/);
  });
});
