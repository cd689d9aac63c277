/**
 * @module server/middleware/tracing
 * Continues the caller's W3C trace (`traceparent`/`tracestate`, or the
 * CloudEvents `ce-traceparent` extension) with a `kinfer.infer` span around the
 * request; the decode, queue, compute and encode spans nest under it. The
 * trace id goes to the access log whether or not spans are exported. With
 * tracing off and no incoming trace header the middleware does nothing.
 */
import type { MiddlewareHandler } from 'hono';
import { extractContext, traceIdOf, tracingEnabled, withoutTrace, withSpan } from '../../observability/tracing.js';
import type { TraceSettings } from '../../observability/trace-settings.js';
import type { KinferEnv } from '../context.js';

const ZERO_TRACE = '0'.repeat(32);

/** `settings`: Triton's trace settings, which decide per model whether this request is traced. */
export function tracing(settings?: TraceSettings): MiddlewareHandler<KinferEnv> {
  return async function tracing(c, next) {
    const enabled = tracingEnabled();
    const traceparent = c.req.header('traceparent') ?? c.req.header('ce-traceparent');
    if (traceparent === undefined && !enabled) return next();
    const parent = extractContext(c.req.raw.headers);
    const traceId = traceIdOf(parent);
    if (traceId) c.set('traceId', traceId);
    if (!enabled) return next();
    // The model from the route (`/v2/models/:model/...`, V1's `:target` is `m:predict`); none for a CloudEvent at `/`.
    const model = c.req.param('model') ?? c.req.param('target')?.replace(/:predict$/, '');
    if (settings && !settings.sample(model)) return withoutTrace(() => next(), parent);
    await withSpan(
      'kinfer.infer',
      { 'http.request.method': c.req.method, 'url.path': c.req.path, 'kinfer.request_id': c.get('requestId') },
      async (span) => {
        await next();
        span.setAttribute('http.response.status_code', c.res.status);
        const model = c.get('model');
        if (model) span.setAttribute('kinfer.model', model);
        const own = span.spanContext().traceId;
        if (!traceId && own !== ZERO_TRACE) c.set('traceId', own);
      },
      parent,
    );
  };
}
