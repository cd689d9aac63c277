/**
 * @module observability/tracing
 * OpenTelemetry tracing, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Off means nothing is
 * registered and every helper here is a plain call of its callback.
 * On: a BasicTracerProvider with a BatchSpanProcessor and the OTLP/HTTP (JSON)
 * exporter, an AsyncLocalStorage context manager (so spans started inside
 * `withSpan` find their parent across `await`), and the W3C trace-context
 * propagator.
 *
 * @example
 * initTracing(process.env);
 * const parent = extractContext(c.req.header());          // traceparent / tracestate
 * const res = await withSpan('kinfer.infer', { 'kinfer.model': name }, async () => {
 *   const req = withSpan('kinfer.decode', {}, () => decode(body));
 *   return batcher.enqueue(...);                          // the batcher adds queue + compute spans
 * }, parent);
 * await shutdownTracing();                                 // on SIGTERM: flush
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  TraceFlags,
  context,
  isSpanContextValid,
  propagation,
  trace,
  type Attributes,
  type Context,
  type ContextManager,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';
import type { W3CTraceContextPropagator } from '@opentelemetry/core';
import { createRequire } from 'node:module';
import type { BasicTracerProvider, BufferConfig } from '@opentelemetry/sdk-trace-base';

// The SDK and exporter cost ~120 ms to import: load them only when tracing is turned on.
// @opentelemetry/core (the W3C propagator, ~35 ms) waits for the first traceparent to read or write.
const requireLazy = createRequire(import.meta.url);

export type { Attributes, Context, Span };

export type TracingStatus =
  | { enabled: false }
  | { enabled: true; url: string; serviceName: string; warning?: string };

export interface TracingOptions {
  /** BatchSpanProcessor tuning (tests use a short `scheduledDelayMillis`). */
  batch?: BufferConfig;
}

/** Headers as Hono (`c.req.header()`), Node (`req.headers`) or fetch (`Headers`) hand them over. */
export type HeaderCarrier = Headers | Record<string, string | string[] | undefined>;

const TRACER_NAME = 'kinfer';
let propagator: W3CTraceContextPropagator | undefined;
function w3c(): W3CTraceContextPropagator {
  propagator ??= new (requireLazy('@opentelemetry/core') as typeof import('@opentelemetry/core')).W3CTraceContextPropagator();
  return propagator;
}
const NOOP_SPAN: Span = trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 });

let provider: BasicTracerProvider | undefined;
let contextManager: AsyncLocalContextManager | undefined;
let status: TracingStatus = { enabled: false };

/** Makes `context.active()` follow async continuations (what context-async-hooks does, in a few lines). */
class AsyncLocalContextManager implements ContextManager {
  private readonly store = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.store.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.store.run(ctx, () => Reflect.apply(fn, thisArg, args) as ReturnType<F>);
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const f = target as unknown as (...args: unknown[]) => unknown;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const manager = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => f.apply(this, args));
    } as unknown as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.store.disable();
    return this;
  }
}

/** The OTLP traces URL from the standard env vars, or undefined when tracing stays off. */
export function tracesUrl(env: NodeJS.ProcessEnv): string | undefined {
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (signal) return signal;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** `OTEL_EXPORTER_OTLP_HEADERS` / `..._TRACES_HEADERS`: `k=v,k2=v2`, values URL-encoded. */
function otlpHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of [env.OTEL_EXPORTER_OTLP_HEADERS, env.OTEL_EXPORTER_OTLP_TRACES_HEADERS]) {
    for (const pair of (raw ?? '').split(',')) {
      const i = pair.indexOf('=');
      if (i <= 0) continue;
      const key = pair.slice(0, i).trim();
      try {
        out[key] = decodeURIComponent(pair.slice(i + 1).trim());
      } catch {
        out[key] = pair.slice(i + 1).trim();
      }
    }
  }
  return out;
}

/**
 * Turns tracing on when an OTLP endpoint is configured; otherwise registers
 * nothing. Idempotent: a second call returns the current status.
 */
export function initTracing(env: NodeJS.ProcessEnv = process.env, options: TracingOptions = {}): TracingStatus {
  if (provider) return status;
  const url = tracesUrl(env);
  if (!url) return (status = { enabled: false });
  const serviceName = env.OTEL_SERVICE_NAME || env.K_SERVICE || 'kinfer';
  const attrs: Attributes = { 'service.name': serviceName };
  if (env.K_REVISION) attrs['knative.revision'] = env.K_REVISION;
  if (env.K_CONFIGURATION) attrs['knative.configuration'] = env.K_CONFIGURATION;
  const { OTLPTraceExporter } = requireLazy('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { defaultResource, resourceFromAttributes } = requireLazy('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { BasicTracerProvider, BatchSpanProcessor } = requireLazy('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const exporter = new OTLPTraceExporter({ url, headers: otlpHeaders(env) });
  provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes(attrs)),
    spanProcessors: [new BatchSpanProcessor(exporter, options.batch)],
  });
  contextManager = new AsyncLocalContextManager();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(w3c());
  trace.setGlobalTracerProvider(provider);
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL;
  status = { enabled: true, url, serviceName };
  if (protocol && protocol !== 'http/json') {
    status.warning = `OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported; traces are sent as OTLP/HTTP JSON`;
  }
  return status;
}

export function tracingEnabled(): boolean {
  return provider !== undefined;
}

/** Exports every finished span now (tests; before a scale-to-zero pause). */
export async function flushTracing(): Promise<void> {
  await provider?.forceFlush();
}

/** Flushes and unregisters everything; tracing is off afterwards (and may be turned on again). */
export async function shutdownTracing(): Promise<void> {
  const p = provider;
  if (!p) return;
  provider = undefined;
  status = { enabled: false };
  try {
    await p.shutdown();
  } finally {
    trace.disable();
    propagation.disable();
    context.disable();
    contextManager = undefined;
  }
}

function headerGetter(headers: HeaderCarrier): (name: string) => string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    const h = headers as Headers;
    return (name) => h.get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  return (name) => {
    let v = rec[name];
    if (v === undefined) {
      const key = Object.keys(rec).find((k) => k.toLowerCase() === name);
      v = key === undefined ? undefined : rec[key];
    }
    return Array.isArray(v) ? v.join(',') : v;
  };
}

/**
 * The remote parent from W3C `traceparent` / `tracestate`. Also reads the
 * CloudEvents distributed-tracing extension in binary mode (`ce-traceparent`,
 * `ce-tracestate`); for a structured event pass `{ traceparent, tracestate }`
 * from the event's attributes. Works whether or not tracing is on, so logs can
 * carry the caller's trace id; malformed values give a context without parent.
 */
export function extractContext(headers: HeaderCarrier, base: Context = ROOT_CONTEXT): Context {
  const get = headerGetter(headers);
  const carrier: Record<string, string> = {};
  const parent = get('traceparent') ?? get('ce-traceparent');
  if (!parent) return base;
  carrier.traceparent = parent;
  const state = get('tracestate') ?? get('ce-tracestate');
  if (state) carrier.tracestate = state;
  const getter: TextMapGetter<Record<string, string>> = {
    keys: (c) => Object.keys(c),
    get: (c, k) => c[k],
  };
  return w3c().extract(base, carrier, getter);
}

/** `traceparent`/`tracestate` for an outgoing message (e.g. a reply CloudEvent) from `ctx` or the active span. */
export function traceHeaders(ctx?: Context): Record<string, string> {
  const out: Record<string, string> = {};
  const c = ctx ?? (tracingEnabled() ? context.active() : ROOT_CONTEXT);
  w3c().inject(c, out, { set: (carrier, k, v) => (carrier[k] = v) });
  return out;
}

/** The trace id of `ctx` (or of the active span when tracing is on), for log lines. */
export function traceIdOf(ctx?: Context): string | undefined {
  const c = ctx ?? (tracingEnabled() ? context.active() : undefined);
  if (!c) return undefined;
  const sc = trace.getSpanContext(c);
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/** The context to parent spans on: the active one while tracing is on. */
export function activeContext(): Context | undefined {
  return tracingEnabled() ? context.active() : undefined;
}

function fail(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Runs `fn` in a span named `name`, child of `parent` (or the active span),
 * and ends the span when `fn` returns or its promise settles; a throw or
 * rejection marks it ERROR and is passed on unchanged. Tracing off: just `fn(noopSpan)`.
 */
export function withSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => T, parent?: Context): T {
  if (!provider) return fn(NOOP_SPAN);
  const ctx = parent ?? context.active();
  const span = trace.getTracer(TRACER_NAME).startSpan(name, { attributes: attrs }, ctx);
  let result: T;
  try {
    result = context.with(trace.setSpan(ctx, span), () => fn(span));
  } catch (err) {
    fail(span, err);
    span.end();
    throw err;
  }
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    return (result as unknown as Promise<unknown>).then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        fail(span, err);
        span.end();
        throw err;
      },
    ) as T;
  }
  span.end();
  return result;
}

/**
 * Runs `fn` under a parent that is not sampled, so the spans it starts record nothing: a request
 * the trace settings skip. The caller's trace id is kept (it still reaches the logs).
 */
export function withoutTrace<T>(fn: () => T, parent?: Context): T {
  if (!provider) return fn();
  const ctx = parent ?? context.active();
  const incoming = trace.getSpanContext(ctx);
  const traceId = incoming && isSpanContextValid(incoming) ? incoming.traceId : randomBytes(16).toString('hex');
  const skipped = trace.wrapSpanContext({ traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.NONE });
  return context.with(trace.setSpan(ctx, skipped), fn);
}

/**
 * Starts a span whose end is elsewhere (the batcher's queue and compute
 * stages). Undefined when tracing is off, so callers pay one branch.
 */
export function startSpan(name: string, attrs: Attributes, parent?: Context): Span | undefined {
  if (!provider) return undefined;
  return trace.getTracer(TRACER_NAME).startSpan(name, { attributes: attrs }, parent ?? context.active());
}

/** Ends a span from `startSpan`, marking it ERROR when `err` is given. */
export function endSpan(span: Span | undefined, err?: unknown, attrs?: Attributes): void {
  if (!span) return;
  if (attrs) span.setAttributes(attrs);
  if (err !== undefined) fail(span, err);
  span.end();
}
