/**
 * @module knative/resources/trigger
 * Eventing Triggers (eventing.knative.dev/v1): one per subscription of a
 * function, delivering matching events from a Broker to the function's `/`.
 */
import type { FunctionSpec } from '../../functions/define.js';
import { labels, sortKeys, type Manifest } from './common.js';

export function triggers(spec: FunctionSpec): Manifest[] {
  return spec.triggers.map((t) => {
    const body: Record<string, unknown> = { broker: t.broker };
    if (Object.keys(t.filters).length > 0) body.filter = { attributes: sortKeys(t.filters) };
    body.subscriber = { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: spec.name } };
    return {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { name: `${spec.name}-${t.name}`, labels: labels(spec) },
      spec: body,
    };
  });
}
