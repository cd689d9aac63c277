/**
 * A trigger's `where` evaluated as Knative's Broker evaluates a Trigger's `spec.filters`
 * (knative/eventing pkg/eventfilter/subscriptionsapi and its tests: exact, prefix, suffix on an
 * attribute's string value, a missing attribute failing; all, any, not; cesql true without error).
 */
import { describe, expect, it } from 'vitest';
import { compileWhere } from './subscriptions-filter.js';
import { CesqlSyntaxError } from '../functions/cesql.js';

const event = { specversion: '1.0', id: 'e1', source: '/cameras/front', type: 'io.kinfer.inference.request', subject: 'frame.jpg', priority: '5' };
const match = (where: Parameters<typeof compileWhere>[0], attributes: Record<string, string> = event) => compileWhere(where)(attributes);

describe('SubscriptionsAPI filters', () => {
  it('exact: the value, case-sensitive; a missing attribute does not match', () => {
    expect(match([{ exact: { type: 'io.kinfer.inference.request' } }])).toBe(true);
    expect(match([{ exact: { type: 'io.kinfer.inference.Request' } }])).toBe(false);
    expect(match([{ exact: { type: 'io.kinfer.inference' } }])).toBe(false);
    expect(match([{ exact: { model: 'x' } }])).toBe(false);
  });

  it('prefix and suffix: the start or end of the value, case-sensitive; a missing attribute does not match', () => {
    expect(match([{ prefix: { type: 'io.kinfer.' } }])).toBe(true);
    expect(match([{ prefix: { type: 'IO.kinfer.' } }])).toBe(false);
    expect(match([{ prefix: { model: 'a' } }])).toBe(false);
    expect(match([{ suffix: { subject: '.jpg' } }])).toBe(true);
    expect(match([{ suffix: { subject: '.JPG' } }])).toBe(false);
    expect(match([{ suffix: { model: 'a' } }])).toBe(false);
    expect(match([{ prefix: { type: 'io.kinfer.inference.request' } }, { suffix: { type: 'io.kinfer.inference.request' } }])).toBe(true);
  });

  it('the list, and all: every filter; any: one; not: the opposite (of a missing attribute too)', () => {
    const yes = { exact: { priority: '5' } };
    const no = { exact: { priority: '1' } };
    expect(match([yes, yes])).toBe(true);
    expect(match([yes, no])).toBe(false);
    expect(match([{ all: [yes, yes] }])).toBe(true);
    expect(match([{ all: [yes, no] }])).toBe(false);
    expect(match([{ any: [no, yes] }])).toBe(true);
    expect(match([{ any: [no, no] }])).toBe(false);
    expect(match([{ not: no }])).toBe(true);
    expect(match([{ not: yes }])).toBe(false);
    expect(match([{ not: { exact: { model: 'x' } } }])).toBe(true);
    expect(match([{ any: [{ not: { all: [yes, no] } }, no] }])).toBe(true);
  });

  it('cesql: true without error; an error (a missing attribute, a failed cast) does not match, even under not', () => {
    expect(match([{ cesql: "INT(priority) > 3 AND type LIKE 'io.kinfer.%'" }])).toBe(true);
    expect(match([{ cesql: 'INT(priority) > 5' }])).toBe(false);
    expect(match([{ cesql: 'INT(priority) > 3' }], { ...event, priority: 'high' })).toBe(false);
    expect(match([{ cesql: "model = 'x'" }])).toBe(false);
    expect(match([{ not: { cesql: "model = 'x'" } }])).toBe(true); // the filter fails, so not passes (Knative's notFilter)
    expect(() => compileWhere([{ cesql: 'type =' }])).toThrow(CesqlSyntaxError);
  });
});
