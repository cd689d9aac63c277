/**
 * @module server/stages
 * Times the protocol stages of a request (decode, encode) into their metric
 * and their span, so routes stay one line per stage.
 */
import { stageSeries, type Metrics } from '../observability/metrics.js';
import { withSpan } from '../observability/tracing.js';

export function stage<T>(name: 'decode' | 'encode', metrics: Metrics, labels: { model: string; version: string }, fn: () => T): T {
  const started = performance.now();
  try {
    return withSpan(`kinfer.${name}`, { 'kinfer.model': labels.model }, fn);
  } finally {
    stageSeries(metrics, name, labels.model, labels.version).observe((performance.now() - started) / 1000);
  }
}
