/**
 * @module core/grpc-status
 * The one table from error code to gRPC status code, beside http-status.ts
 * (the same errors, the statuses gRPC clients retry or report). Numbers are
 * gRPC's (`grpc.status`), so this module needs no gRPC import.
 */
import { KinferError, retryAfterOf, type ErrorCode } from './errors.js';

export const GRPC_CODE = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export const GRPC_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: GRPC_CODE.INVALID_ARGUMENT,
  NOT_FOUND: GRPC_CODE.NOT_FOUND,
  ALREADY_EXISTS: GRPC_CODE.ALREADY_EXISTS,
  // Loading, or its last load failed: UNAVAILABLE is what gRPC clients retry (as Triton answers).
  NOT_READY: GRPC_CODE.UNAVAILABLE,
  // gRPC's own answer to a message over the size limit.
  PAYLOAD_TOO_LARGE: GRPC_CODE.RESOURCE_EXHAUSTED,
  // A full queue: Triton's UNAVAILABLE ("Exceeds maximum queue size"), which gRPC clients retry; REST's 503.
  RESOURCE_EXHAUSTED: GRPC_CODE.UNAVAILABLE,
  DEADLINE_EXCEEDED: GRPC_CODE.DEADLINE_EXCEEDED,
  CANCELLED: GRPC_CODE.CANCELLED,
  UNAVAILABLE: GRPC_CODE.UNAVAILABLE,
  // Shared memory, a datatype a backend cannot take (Triton's mapping too).
  UNSUPPORTED: GRPC_CODE.UNIMPLEMENTED,
  INTERNAL: GRPC_CODE.INTERNAL,
};

export interface GrpcError {
  code: number;
  details: string;
  /** `retry-after` trailer (seconds), for a full queue. */
  retryAfterSeconds?: number;
}

/** Maps any thrown value to a gRPC status and its message. */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof KinferError) {
    const out: GrpcError = { code: GRPC_STATUS[err.code], details: err.message };
    const retry = retryAfterOf(err);
    if (retry !== undefined) out.retryAfterSeconds = retry;
    return out;
  }
  return { code: GRPC_CODE.INTERNAL, details: `internal error: ${err instanceof Error ? err.message : String(err)}` };
}
