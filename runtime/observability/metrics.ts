/**
 * @module observability/metrics
 * One prom-client registry per server, served at /metrics. Default labels
 * come from K_SERVICE / K_REVISION.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface Metrics {
  registry: Registry;
  requestDuration: Histogram<'model' | 'version' | 'protocol' | 'status'>;
  requests: Counter<'model' | 'version' | 'protocol' | 'status'>;
  modelLoadDuration: Histogram<'model' | 'version' | 'outcome'>;
}

export function createMetrics(env: NodeJS.ProcessEnv = process.env): Metrics {
  const registry = new Registry();
  const labels: Record<string, string> = {};
  if (env.K_SERVICE) labels.service = env.K_SERVICE;
  if (env.K_REVISION) labels.revision = env.K_REVISION;
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'kinfer_process_' });
  return {
    registry,
    requestDuration: new Histogram({
      name: 'kinfer_request_duration_seconds',
      help: 'Inference request latency from receipt to response, by model, protocol and status',
      labelNames: ['model', 'version', 'protocol', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    requests: new Counter({
      name: 'kinfer_requests_total',
      help: 'Inference requests answered, by model, protocol and status',
      labelNames: ['model', 'version', 'protocol', 'status'],
      registers: [registry],
    }),
    modelLoadDuration: new Histogram({
      name: 'kinfer_model_load_duration_seconds',
      help: 'Time to load a model version into its backend',
      labelNames: ['model', 'version', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
  };
}
