/**
 * @module server/middleware/payload-log
 * KServe's payload logging on the inference routes (observability/payload-log.ts): a capture per
 * request, which `readBody` fills with the request body and `okWithHeaders` with the 200's body;
 * a reply made another way (V1, generate) is read from a clone of the response, off the request's
 * path. Mounted only when a logger URL is set: without one, nothing runs.
 */
import type { MiddlewareHandler } from 'hono';
import type { PayloadLogger } from '../../observability/payload-log.js';
import type { KinferEnv } from '../context.js';

export function payloadLog(logger: PayloadLogger): MiddlewareHandler<KinferEnv> {
  return async function payloadLog(c, next) {
    const capture = logger.capture((name) => c.req.header(name), c.get('requestId'));
    c.set('payloadCapture', capture);
    await next();
    const status = c.res.status;
    if (status !== 200 || capture.response || logger.config.mode === 'request') return logger.finish(capture, status);
    const res = c.res.clone();
    void res.arrayBuffer().then(
      (body) => {
        capture.response = { body: new Uint8Array(body), contentType: res.headers.get('content-type') ?? '' };
        logger.finish(capture, status);
      },
      () => logger.finish(capture, status), // the client went: the request is still logged
    );
  };
}
