/**
 * @module server/middleware/access-log
 * One log line per request, written after the response is known, with the
 * request id, model, status, duration and batch size.
 */
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { KinferEnv } from '../context.js';

export interface AccessLogOptions {
  logger: Logger;
  /** Paths not logged at info (probes, scrapes); still logged at debug. */
  quietPaths?: string[];
}

export function accessLog(opts: AccessLogOptions): MiddlewareHandler<KinferEnv> {
  const quiet = new Set(opts.quietPaths ?? ['/v2/health/live', '/v2/health/ready', '/metrics']);
  return async function accessLog(c, next) {
    const started = performance.now();
    const log = opts.logger.child({ requestId: c.get('requestId') });
    c.set('log', log);
    await next();
    const line = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 1000) / 1000,
      model: c.get('model'),
      version: c.get('modelVersion'),
      protocol: c.get('protocol'),
      batchSize: c.get('batchSize'),
      traceId: c.get('traceId'),
    };
    if (quiet.has(c.req.path)) log.debug(line, 'request');
    else log.info(line, 'request');
  };
}
