/**
 * @module server/middleware/request-metrics
 * Inference latency and count by model, version, protocol and status. Only
 * mounted on inference routes, so probes and /metrics do not measure themselves.
 * The labelled children are bound once per label set and reused.
 */
import type { MiddlewareHandler } from 'hono';
import type { Metrics } from '../../observability/metrics.js';
import type { KinferEnv } from '../context.js';
import { requestSeries } from '../../observability/metrics.js';

export function requestMetrics(metrics: Metrics): MiddlewareHandler<KinferEnv> {
  return async function requestMetrics(c, next) {
    const started = performance.now();
    await next();
    requestSeries(metrics, c.get('model') ?? '', c.get('modelVersion') ?? '', c.get('protocol') ?? 'v2-json', c.res.status).observe(
      (performance.now() - started) / 1000,
    );
  };
}
