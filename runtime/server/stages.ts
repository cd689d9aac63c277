/**
 * @module server/stages
 * Times the protocol stages of a request (decode, encode) into their metric
 * and their span, so routes stay one line per stage.
 */
import type { Histogram } from 'prom-client';
import { withSpan } from '../observability/tracing.js';

export function stage<T>(
  name: 'decode' | 'encode',
  hist: Histogram<'model' | 'version'>,
  labels: { model: string; version: string },
  fn: () => T,
): T {
  const started = performance.now();
  try {
    return withSpan(`kinfer.${name}`, { 'kinfer.model': labels.model }, fn);
  } finally {
    hist.observe(labels, (performance.now() - started) / 1000);
  }
}
