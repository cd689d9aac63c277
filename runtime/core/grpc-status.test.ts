import { describe, expect, it } from 'vitest';
import { AlreadyExists, InvalidArgument, NotReady, PayloadTooLarge, ResourceExhausted } from './errors.js';
import { GRPC_CODE, toGrpcError } from './grpc-status.js';
import { toHttpError } from './http-status.js';

describe('toGrpcError', () => {
  it("answers a full queue UNAVAILABLE with its retry-after, as Triton does (gRPC clients retry it); an oversized message RESOURCE_EXHAUSTED", () => {
    expect(toGrpcError(new ResourceExhausted('m: the queue is full (4 requests waiting); retry later', 2))).toEqual({ code: GRPC_CODE.UNAVAILABLE, details: 'm: the queue is full (4 requests waiting); retry later', retryAfterSeconds: 2 });
    expect(toGrpcError(new PayloadTooLarge('too big')).code).toBe(GRPC_CODE.RESOURCE_EXHAUSTED);
    expect(toGrpcError(new NotReady('loading')).code).toBe(GRPC_CODE.UNAVAILABLE);
    expect(toGrpcError(new InvalidArgument('bad')).code).toBe(GRPC_CODE.INVALID_ARGUMENT);
    expect(toGrpcError(new Error('boom'))).toEqual({ code: GRPC_CODE.INTERNAL, details: 'internal error: boom' });
  });

  it("answers a name registered twice ALREADY_EXISTS (6), and REST 400, as Triton's frontends map TRITONSERVER_ERROR_ALREADY_EXISTS", () => {
    const dup = new AlreadyExists("system shared memory region 'r' is already registered; unregister it first");
    expect(toGrpcError(dup)).toEqual({ code: 6, details: dup.message });
    expect(toHttpError(dup)).toMatchObject({ status: 400, body: { error: dup.message } });
  });
});
