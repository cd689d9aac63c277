/**
 * @module core/http-status
 * The one table from error code to HTTP status. Nothing else picks a status
 * for an error; never read a status from a foreign `err.code`.
 */
import { KinferError, retryAfterOf, type ErrorCode } from './errors.js';

export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  // Triton's HttpCodeFromError: no HTTP status matches ALREADY_EXISTS, so 400 (409 is NOT_READY's here).
  ALREADY_EXISTS: 400,
  NOT_READY: 409,
  PAYLOAD_TOO_LARGE: 413,
  RESOURCE_EXHAUSTED: 503,
  DEADLINE_EXCEEDED: 504,
  CANCELLED: 499,
  UNAVAILABLE: 503,
  UNSUPPORTED: 400,
  INTERNAL: 500,
};

export interface HttpError {
  status: number;
  body: { error: string };
  headers: Record<string, string>;
}

/** Maps any thrown value to a status, the v2 error body and extra headers. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof KinferError) {
    const headers: Record<string, string> = {};
    const retry = retryAfterOf(err);
    if (retry !== undefined) headers['Retry-After'] = String(retry);
    return { status: HTTP_STATUS[err.code], body: { error: err.message }, headers };
  }
  // Hono decodes path parameters lazily; a malformed %-escape is the client's mistake.
  if (err instanceof URIError) return { status: 400, body: { error: `malformed URL: ${err.message}` }, headers: {} };
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: `internal error: ${message}` }, headers: {} };
}
