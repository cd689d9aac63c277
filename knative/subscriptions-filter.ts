/**
 * @module knative/subscriptions-filter
 * A Trigger's SubscriptionsAPI filters (`spec.filters`; a function trigger's `where`) evaluated as
 * Knative's Broker does (knative/eventing, pkg/eventfilter/subscriptionsapi): every filter of the
 * list must match; `exact`, `prefix` and `suffix` compare an attribute's string value
 * case-sensitively, and an attribute the event lacks does not match; `all` matches when each of
 * its filters does, `any` when one does, `not` when its filter does not; `cesql` when the
 * expression is true without error (functions/cesql.ts).
 *
 * @example
 * const match = compileWhere([{ prefix: { type: 'io.kinfer.' } }, { cesql: "INT(priority) > 3" }]);
 * match({ type: 'io.kinfer.inference.request', priority: '5' }); // true
 */
import type { WhereFilter } from '../functions/define.js';
import { cesqlMatches, parseCesqlFilter } from '../functions/cesql.js';

/** Whether an event, by its attributes (as strings), passes. */
export type EventMatcher = (attributes: Readonly<Record<string, string>>) => boolean;

/** Compiles a filter list once (each cesql parsed here, not per event); throws CesqlSyntaxError on an expression `defineFunction` would refuse. */
export function compileWhere(where: readonly WhereFilter[]): EventMatcher {
  const all = where.map(compile);
  return (attributes) => all.every((m) => m(attributes));
}

function compile(f: WhereFilter): EventMatcher {
  if ('exact' in f) return attribute(f.exact, (value, wanted) => value === wanted);
  if ('prefix' in f) return attribute(f.prefix, (value, wanted) => value.startsWith(wanted));
  if ('suffix' in f) return attribute(f.suffix, (value, wanted) => value.endsWith(wanted));
  if ('all' in f) return compileWhere(f.all);
  if ('any' in f) {
    const any = f.any.map(compile);
    return (attributes) => any.some((m) => m(attributes));
  }
  if ('not' in f) {
    const inner = compile(f.not);
    return (attributes) => !inner(attributes);
  }
  const expr = parseCesqlFilter(f.cesql);
  return (attributes) => cesqlMatches(expr, attributes);
}

/** Each named attribute present and its value passing `test` (Knative's webhook allows one per map). */
function attribute(map: Readonly<Record<string, string>>, test: (value: string, wanted: string) => boolean): EventMatcher {
  const entries = Object.entries(map);
  return (attributes) =>
    entries.every(([name, wanted]) => {
      const value = Object.hasOwn(attributes, name) ? attributes[name] : undefined;
      return value !== undefined && test(value, wanted);
    });
}
