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
 */
import type { MiddlewareHandler } from 'hono';
import { compress } from 'hono/compress';
import { setResponseHeader } from './response-headers.js';

export function compressResponses(contentTypeFilter: RegExp): MiddlewareHandler {
  const inner = compress({ contentTypeFilter });
  return async function compressResponses(c, next) {
    if (c.req.header('accept-encoding') === undefined) {
      setResponseHeader(c, 'Vary', 'Accept-Encoding');
      await next();
      return;
    }
    c.header('Vary', 'Accept-Encoding');
    await inner(c, next);
  };
}
