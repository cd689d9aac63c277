/**
 * @module knative/resources/trigger
 * Eventing Triggers (eventing.knative.dev/v1): one per subscription of a
 * function, delivering matching events from a Broker to the function's `/`,
 * with its delivery spec (retries, backoff, dead-letter sink) when it has one.
 * A trigger's `filters` map becomes `spec.filter.attributes`, its `where` list
 * `spec.filters` (Knative's SubscriptionsAPI filters: exact, prefix, suffix,
 * all, any, not, cesql).
 */
import type { FunctionSpec } from '../../functions/define.js';
import { labels, sortKeys, type Manifest } from './common.js';

export function triggers(spec: FunctionSpec): Manifest[] {
  return spec.triggers.map((t) => {
    const body: Record<string, unknown> = { broker: t.broker };
    if (Object.keys(t.filters).length > 0) body.filter = { attributes: sortKeys(t.filters) };
    // SubscriptionsAPI filters go as written: their order is the order Knative evaluates them in.
    if (t.where) body.filters = t.where;
    body.subscriber = { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: spec.name } };
    if (t.delivery) {
      const { deadLetterSink: sink, ...rest } = t.delivery;
      body.delivery = {
        ...sortKeys(rest),
        ...(sink ? { deadLetterSink: 'function' in sink ? { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: sink.function } } : { uri: sink.uri } } : {}),
      };
    }
    return {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { name: `${spec.name}-${t.name}`, labels: labels(spec) },
      spec: body,
    };
  });
}
