/**
 * @module server/middleware/compress
 * Hono's `compress()` with `Vary: Accept-Encoding` set before the handler
 * runs. Stock `compress()` adds Vary after the response exists, and on
 * @hono/node-server that one header turns the lightweight response into a
 * full WHATWG Response whose body is copied and then streamed out chunk by
 * chunk — on every compressible response, even when the client asked for no
 * compression. With Vary already present, responses to clients without
 * Accept-Encoding are written straight from the buffer.
 *
 * A request without `Accept-Encoding` cannot be compressed, so it skips
 * `compress()` (and its reads of the response headers) altogether; Vary then
 * goes onto the Node response directly (see `response-headers.ts`).
 *
 * Health and readiness probes (`…/live`, `…/ready`) answer a few dozen bytes
 * and are polled often, hardest while a server starts: they are never
 * compressed (gzip made a 16-byte body 36 bytes and cost ~1 ms of CPU per
 * probe during start-up, measured in the cold-start benchmark).
 */
import type { MiddlewareHandler } from 'hono';
import { compress } from 'hono/compress';
import { setResponseHeader } from './response-headers.js';

const PROBE = /\/(live|ready)$/;

export function compressResponses(contentTypeFilter: RegExp): MiddlewareHandler {
  const inner = compress({ contentTypeFilter });
  return async function compressResponses(c, next) {
    if (c.req.header('accept-encoding') === undefined || PROBE.test(c.req.path)) {
      setResponseHeader(c, 'Vary', 'Accept-Encoding');
      await next();
      return;
    }
    c.header('Vary', 'Accept-Encoding');
    await inner(c, next);
  };
}
