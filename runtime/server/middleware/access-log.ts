/**
 * @module server/middleware/access-log
 * One log line per request, written after the response is known, with the
 * request id, model, status, duration and batch size. The request id goes in
 * the line's bindings, not a per-request child logger; when the level hides
 * the line, nothing is built at all.
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
  const log = opts.logger;
  return async function accessLog(c, next) {
    // pino's isLevelEnabled follows later level changes; checked before any work.
    if (!log.isLevelEnabled('info') && !log.isLevelEnabled('debug')) return next();
    const started = performance.now();
    await next();
    const level = quiet.has(c.req.path) ? 'debug' : 'info';
    if (!log.isLevelEnabled(level)) return;
    log[level](
      {
        requestId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 1000) / 1000,
        model: c.get('model'),
        version: c.get('modelVersion'),
        protocol: c.get('protocol'),
        batchSize: c.get('batchSize'),
        traceId: c.get('traceId'),
      },
      'request',
    );
  };
}
