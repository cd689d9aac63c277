/**
 * @module server/middleware/payload-log
 * KServe's payload logging on the inference routes (observability/payload-log.ts): a capture per
 * request, which `readBody` fills with the request body and `okWithHeaders` (every 200 of these
 * routes) with the answer, each only for a side the mode logs; queued once the handler is done.
 * Mounted only when a logger URL is set: without one, nothing runs.
 */
import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import type { PayloadLogger } from '../../observability/payload-log.js';
import type { KinferEnv } from '../context.js';

export function payloadLog(logger: PayloadLogger): MiddlewareHandler<KinferEnv> {
  return async function payloadLog(c, next) {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    // Every value of a header, as KServe's agent lists them (Node joins repeated ones into one string).
    const values = (name: string): string[] | undefined => {
      const distinct = incoming?.headersDistinct?.[name.toLowerCase()];
      if (distinct) return distinct;
      const v = c.req.header(name);
      return v === undefined ? undefined : [v];
    };
    const capture = logger.capture(values, c.get('requestId'));
    c.set('payloadCapture', capture);
    await next();
    logger.finish(capture, c.res.status);
  };
}
