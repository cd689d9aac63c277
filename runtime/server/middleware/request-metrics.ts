/**
 * @module server/middleware/request-metrics
 * Inference latency and count by model, version, protocol and status. Only
 * mounted on inference routes, so probes and /metrics do not measure themselves.
 */
import type { MiddlewareHandler } from 'hono';
import type { Metrics } from '../../observability/metrics.js';
import type { KinferEnv } from '../context.js';

export function requestMetrics(metrics: Metrics): MiddlewareHandler<KinferEnv> {
  return async function requestMetrics(c, next) {
    const started = performance.now();
    await next();
    const labels = {
      model: c.get('model') ?? '',
      version: c.get('modelVersion') ?? '',
      protocol: c.get('protocol') ?? 'v2-json',
      status: String(c.res.status),
    };
    metrics.requestDuration.observe(labels, (performance.now() - started) / 1000);
    metrics.requests.inc(labels);
  };
}
