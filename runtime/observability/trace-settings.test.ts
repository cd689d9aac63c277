/**
 * @module observability/trace-settings.test
 * Triton's trace settings: defaults, sampling by rate and count, per-model
 * settings over the server's, and the settings kinfer refuses.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, Unsupported } from '../core/errors.js';
import { TraceSettings } from './trace-settings.js';

const run = (t: TraceSettings, n: number, model?: string) => Array.from({ length: n }, () => t.sample(model));

describe('TraceSettings', () => {
  it('traces every request when an exporter is set up, none otherwise, and says so in Triton\'s form', () => {
    const on = new TraceSettings(true);
    expect(on.get()).toEqual({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_count: '-1', log_frequency: '0', trace_file: '', trace_mode: 'opentelemetry' });
    expect(run(on, 3)).toEqual([true, true, true]);
    const off = new TraceSettings(false);
    expect(off.get().trace_level).toEqual(['OFF']);
    expect(run(off, 2)).toEqual([false, false]);
    expect(() => off.update({ trace_level: ['TIMESTAMPS'] })).toThrow(/tracing is off on this server; set OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(off.update({ trace_level: ['OFF'], trace_rate: 5 }).trace_rate).toBe('5');
  });

  it('samples one request in trace_rate (the rate-th, as Triton), at most trace_count more, and restarts counting on a change', () => {
    const t = new TraceSettings(true);
    t.update({ trace_rate: '3' });
    expect(run(t, 7)).toEqual([false, false, true, false, false, true, false]);
    t.update({ trace_rate: '1', trace_count: '2' });
    expect(run(t, 4)).toEqual([true, true, false, false]);
    expect(t.get().trace_count).toBe('0');
    t.update({ trace_count: '-1', trace_level: ['OFF'] });
    expect(run(t, 2)).toEqual([false, false]);
  });

  it('lets a model have its own settings over the server\'s, counted apart, and null puts one back to the server\'s', () => {
    const t = new TraceSettings(true);
    t.update({ trace_rate: '2' });
    expect(t.update({ trace_level: ['OFF'] }, 'quiet').trace_level).toEqual(['OFF']);
    expect(t.update({ trace_rate: '3' }, 'sparse')).toMatchObject({ trace_level: ['TIMESTAMPS'], trace_rate: '3' });
    expect(run(t, 3, 'quiet')).toEqual([false, false, false]);
    expect(run(t, 4, 'sparse')).toEqual([false, false, true, false]);
    // Models without their own rate share the server's counter.
    expect([t.sample('a'), t.sample('b'), t.sample('a')]).toEqual([false, true, false]);
    expect(t.update({ trace_rate: null }, 'sparse').trace_rate).toBe('2');
    expect(t.get('quiet').trace_rate).toBe('2');
    // On the server, null puts a setting back to its value at start.
    expect(t.update({ trace_rate: null }).trace_rate).toBe('1');
  });

  it('refuses what it cannot do, naming the setting', () => {
    const t = new TraceSettings(true);
    const cases: [Record<string, unknown>, RegExp, typeof InvalidArgument | typeof Unsupported][] = [
      [{ trace_level: ['TENSORS'] }, /TENSORS is not traced/, Unsupported],
      [{ trace_level: ['OFF', 'TIMESTAMPS'] }, /OFF cannot be combined/, InvalidArgument],
      [{ trace_level: ['LOUD'] }, /unknown level "LOUD"/, InvalidArgument],
      [{ trace_rate: '0' }, /trace_rate': expected an integer ≥ 1, got "0"/, InvalidArgument],
      [{ trace_count: '-2' }, /trace_count': expected an integer ≥ -1/, InvalidArgument],
      [{ trace_file: '/tmp/trace.json' }, /exports traces over OTLP/, InvalidArgument],
      [{ trace_mode: 'triton' }, /OpenTelemetry only/, InvalidArgument],
      [{ trace_ratez: '1' }, /unknown trace setting 'trace_ratez'/, InvalidArgument],
      [{ trace_ratez: null }, /unknown trace setting 'trace_ratez'/, InvalidArgument],
      // Named by its kind: quoting it whole overflowed the stack (a 500).
      [{ trace_rate: JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) }, /trace_rate': expected an integer ≥ 1, got an array of 1$/, InvalidArgument],
      [{ trace_count: JSON.parse('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000)) }, /trace_count': expected an integer ≥ -1, got an object$/, InvalidArgument],
    ];
    for (const [patch, re, kind] of cases) {
      expect(() => t.update(patch), String(re)).toThrow(kind);
      expect(() => t.update(patch), String(re)).toThrow(re);
    }
    expect(t.get().trace_rate).toBe('1'); // nothing of a refused update applied
    expect(() => t.update({ trace_rate: '7', trace_level: ['TENSORS'] })).toThrow(Unsupported);
    expect(t.get().trace_rate).toBe('1'); // not even its valid part
    // Names inherited by plain objects are not settings.
    for (const name of ['toString', 'constructor']) expect(() => t.update({ [name]: null }), name).toThrow(/unknown trace setting/);
  });
});
