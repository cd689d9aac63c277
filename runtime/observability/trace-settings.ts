/**
 * @module observability/trace-settings
 * Triton's trace extension over kinfer's OpenTelemetry tracing: which
 * inference requests get a `kinfer.infer` span tree, set at run time for the
 * server and per model (`GET/POST /v2[/models/{m}]/trace/setting`, gRPC
 * `TraceSetting`). `trace_level` OFF or TIMESTAMPS (kinfer's spans are the
 * stage timestamps: decode, queue, compute, encode); `trace_rate` N samples one
 * request in N; `trace_count` is how many more to sample (-1: no limit). Spans
 * go to the OTLP exporter as each request ends, so `trace_file` is "" and
 * `log_frequency` has no effect. Without OTEL_EXPORTER_OTLP_ENDPOINT tracing
 * is off and only OFF is accepted.
 *
 * @example
 * const traces = new TraceSettings(tracingEnabled());
 * traces.update({ trace_rate: '10' });        // server-wide: one request in ten
 * if (traces.sample('resnet')) { ...span... }
 */
import { describe, InvalidArgument, Unsupported } from '../core/errors.js';

/** Triton's wire form: every value a string, `trace_level` a list. */
export interface TraceSettingsJson {
  trace_level: string[];
  trace_rate: string;
  trace_count: string;
  log_frequency: string;
  trace_file: string;
  trace_mode: string;
}

interface Settings {
  level: 'OFF' | 'TIMESTAMPS';
  rate: number;
  /** Traces left to sample; -1 without limit. */
  count: number;
  logFrequency: number;
}

type Key = keyof Settings;

/** A scope's own settings and its sampling state (requests seen since its rate was set). */
interface Scope {
  own: Partial<Settings>;
  seen: number;
}

export class TraceSettings {
  private readonly global: Scope;
  private readonly models = new Map<string, Scope>();
  /** The server's settings at start: what a null puts a server setting back to. */
  private readonly initial: Settings;

  /** `enabled`: an OTLP exporter is set up; then every request is traced until told otherwise. */
  constructor(private readonly enabled: boolean) {
    this.initial = { level: enabled ? 'TIMESTAMPS' : 'OFF', rate: 1, count: -1, logFrequency: 0 };
    this.global = { own: { ...this.initial }, seen: 0 };
  }

  /** The effective settings of `model` (its own over the server's), or the server's. */
  get(model?: string): TraceSettingsJson {
    const s = this.effective(model);
    return {
      trace_level: [s.level],
      trace_rate: String(s.rate),
      trace_count: String(s.count),
      log_frequency: String(s.logFrequency),
      trace_file: '',
      trace_mode: 'opentelemetry',
    };
  }

  /**
   * Applies `patch` (Triton's JSON: strings, a list for trace_level; null puts a model's setting
   * back to the server's, and a server setting back to its value at start) to the server or to
   * `model`, and returns the result.
   * InvalidArgument or Unsupported, naming the setting, for what kinfer cannot do.
   */
  update(patch: Record<string, unknown>, model?: string): TraceSettingsJson {
    const parsed: Partial<Settings> = {};
    const cleared: Key[] = [];
    for (const [name, value] of Object.entries(patch)) {
      if (value === null) {
        const key = Object.hasOwn(KEYS, name) ? KEYS[name] : undefined;
        if (!key && !Object.hasOwn(FIXED, name)) throw unknownSetting(name);
        if (key) cleared.push(key);
        continue;
      }
      this.parse(name, value, parsed);
    }
    const scope = model === undefined ? this.global : this.modelScope(model);
    for (const k of cleared) {
      if (model === undefined) (scope.own as Record<Key, unknown>)[k] = this.initial[k];
      else delete scope.own[k];
    }
    Object.assign(scope.own, parsed);
    // A new rate or count starts counting again, as Triton resets its sampler.
    if ('rate' in parsed || 'count' in parsed || 'level' in parsed || cleared.length > 0) scope.seen = 0;
    if (model !== undefined && Object.keys(scope.own).length === 0) this.models.delete(model);
    return this.get(model);
  }

  /** Whether this request of `model` is traced; counts it against its scope's rate and count. */
  sample(model?: string): boolean {
    if (!this.enabled) return false;
    const own = model === undefined ? undefined : this.models.get(model);
    const s = this.effective(model);
    if (s.level === 'OFF' || s.count === 0) return false;
    // The scope that owns the rate counts the requests; the one that owns the count spends it.
    const rateScope = own && 'rate' in own.own ? own : this.global;
    const countScope = own && 'count' in own.own ? own : this.global;
    // As Triton: the rate-th request, the 2×rate-th, ...
    if (++rateScope.seen % s.rate !== 0) return false;
    if (countScope.own.count !== undefined && countScope.own.count > 0) countScope.own.count--;
    return true;
  }

  private effective(model?: string): Settings {
    const own = model === undefined ? undefined : this.models.get(model)?.own;
    return { ...(this.global.own as Settings), ...own };
  }

  private modelScope(model: string): Scope {
    let scope = this.models.get(model);
    if (!scope) {
      scope = { own: {}, seen: 0 };
      this.models.set(model, scope);
    }
    return scope;
  }

  private parse(name: string, value: unknown, out: Partial<Settings>): void {
    switch (name) {
      case 'trace_level': {
        const levels = Array.isArray(value) ? value : [value];
        if (levels.length === 0 || levels.some((l) => typeof l !== 'string')) throw new InvalidArgument(`trace setting 'trace_level': expected a list of OFF, TIMESTAMPS or TENSORS`);
        const set = new Set(levels as string[]);
        if (set.has('TENSORS')) throw new Unsupported(`trace setting 'trace_level': TENSORS is not traced; kinfer's spans carry the stage timestamps (TIMESTAMPS)`);
        for (const l of set) if (l !== 'OFF' && l !== 'TIMESTAMPS') throw new InvalidArgument(`trace setting 'trace_level': unknown level ${JSON.stringify(l)} (OFF, TIMESTAMPS)`);
        if (set.has('OFF') && set.size > 1) throw new InvalidArgument(`trace setting 'trace_level': OFF cannot be combined with other levels`);
        const level = set.has('OFF') ? 'OFF' : 'TIMESTAMPS';
        if (level !== 'OFF' && !this.enabled) throw new InvalidArgument(`trace setting 'trace_level': tracing is off on this server; set OTEL_EXPORTER_OTLP_ENDPOINT to export traces`);
        out.level = level;
        return;
      }
      case 'trace_rate':
        out.rate = integer(name, value, 1);
        return;
      case 'trace_count':
        out.count = integer(name, value, -1);
        return;
      case 'log_frequency':
        out.logFrequency = integer(name, value, 0);
        return;
      default: {
        const fixed = Object.hasOwn(FIXED, name) ? FIXED[name] : undefined;
        if (fixed === undefined) throw unknownSetting(name);
        if (String(one(value)) !== fixed.value) throw new InvalidArgument(`trace setting '${name}': ${fixed.why}`);
      }
    }
  }
}

const KEYS: Record<string, Key> = { trace_level: 'level', trace_rate: 'rate', trace_count: 'count', log_frequency: 'logFrequency' };
/** Settings with one possible value here, and why. */
const FIXED: Record<string, { value: string; why: string }> = {
  trace_file: { value: '', why: 'kinfer exports traces over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT), not to files; send ""' },
  trace_mode: { value: 'opentelemetry', why: 'kinfer traces with OpenTelemetry only; send "opentelemetry"' },
};

function unknownSetting(name: string): InvalidArgument {
  return new InvalidArgument(`unknown trace setting '${name}' (trace_level, trace_rate, trace_count, log_frequency, trace_file, trace_mode)`);
}

/** gRPC sends every value as a list of strings; REST as a string, sometimes a number. */
function one(value: unknown): unknown {
  return Array.isArray(value) && value.length === 1 ? value[0] : value;
}

function integer(name: string, value: unknown, min: number): number {
  const v = one(value);
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw new InvalidArgument(`trace setting '${name}': expected an integer ≥ ${min}, got ${describe(v)}`);
  return n;
}
