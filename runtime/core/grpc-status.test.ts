import { describe, expect, it } from 'vitest';
import { InvalidArgument, NotReady, PayloadTooLarge, ResourceExhausted } from './errors.js';
import { GRPC_CODE, toGrpcError } from './grpc-status.js';

describe('toGrpcError', () => {
  it("answers a full queue UNAVAILABLE with its retry-after, as Triton does (gRPC clients retry it); an oversized message RESOURCE_EXHAUSTED", () => {
    expect(toGrpcError(new ResourceExhausted('m: the queue is full (4 requests waiting); retry later', 2))).toEqual({ code: GRPC_CODE.UNAVAILABLE, details: 'm: the queue is full (4 requests waiting); retry later', retryAfterSeconds: 2 });
    expect(toGrpcError(new PayloadTooLarge('too big')).code).toBe(GRPC_CODE.RESOURCE_EXHAUSTED);
    expect(toGrpcError(new NotReady('loading')).code).toBe(GRPC_CODE.UNAVAILABLE);
    expect(toGrpcError(new InvalidArgument('bad')).code).toBe(GRPC_CODE.INVALID_ARGUMENT);
    expect(toGrpcError(new Error('boom'))).toEqual({ code: GRPC_CODE.INTERNAL, details: 'internal error: boom' });
  });
});
