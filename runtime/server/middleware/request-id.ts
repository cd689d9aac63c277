/**
 * @module server/middleware/request-id
 * `x-request-id`: the caller's (at most 255 of `[A-Za-z0-9_=-]`, as Hono's
 * `requestId()` accepts) or a new UUID; stored as `requestId` and echoed on
 * the response via `setResponseHeader` (no per-request `Headers` object).
 */
import type { MiddlewareHandler } from 'hono';
import type { KinferEnv } from '../context.js';
import { setResponseHeader } from './response-headers.js';

const HEADER = 'x-request-id';
const VALID = /^[\w\-=]{1,255}$/;

export function requestId(): MiddlewareHandler<KinferEnv> {
  return async function requestId(c, next) {
    const given = c.req.header(HEADER);
    const id = given !== undefined && VALID.test(given) ? given : crypto.randomUUID();
    c.set('requestId', id);
    setResponseHeader(c, HEADER, id);
    await next();
  };
}
