/**
 * @module test/helpers/otlp-receiver
 * A stand-in for an OpenTelemetry collector: an HTTP server on 127.0.0.1
 * that records every `POST /v1/traces` body (OTLP/HTTP JSON, gzip accepted)
 * and answers 200 `{}` as a collector does. Protobuf bodies are recorded raw
 * and not decoded.
 *
 * @example
 * const rx = await startOtlpReceiver();
 * initTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.url });
 * ...; await flushTracing();
 * const spans = await rx.waitForSpans((s) => s.length >= 3);
 * await rx.close();
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ReceivedRequest {
  path: string;
  contentType: string;
  headers: IncomingMessage['headers'];
  /** Parsed JSON body, or undefined when it was not JSON. */
  json?: unknown;
  raw: Buffer;
}

/** One span, flattened from resourceSpans → scopeSpans → spans. */
export interface ReceivedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  resource: Record<string, unknown>;
  scope: string;
}

export interface OtlpReceiver {
  /** Base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT takes it (`http://127.0.0.1:<port>`). */
  url: string;
  requests: ReceivedRequest[];
  spans(): ReceivedSpan[];
  /** Polls (every 20 ms, at most `timeoutMs`) until `done(spans)` holds; rejects with what arrived otherwise. */
  waitForSpans(done: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
type KeyValue = { key: string; value?: AnyValue };

function attrs(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue;
  }
  return out;
}

function flatten(body: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const rs = (body as { resourceSpans?: unknown[] }).resourceSpans ?? [];
  for (const r of rs as { resource?: { attributes?: KeyValue[] }; scopeSpans?: unknown[] }[]) {
    const resource = attrs(r.resource?.attributes);
    for (const ss of (r.scopeSpans ?? []) as { scope?: { name?: string }; spans?: Record<string, unknown>[] }[]) {
      for (const s of ss.spans ?? []) {
        out.push({
          name: String(s.name),
          traceId: String(s.traceId),
          spanId: String(s.spanId),
          parentSpanId: String(s.parentSpanId ?? ''),
          startTimeUnixNano: String(s.startTimeUnixNano),
          endTimeUnixNano: String(s.endTimeUnixNano),
          attributes: attrs(s.attributes as KeyValue[] | undefined),
          status: (s.status as ReceivedSpan['status']) ?? {},
          resource,
          scope: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const contentType = String(req.headers['content-type'] ?? '');
      let json: unknown;
      if (contentType.includes('json')) {
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch {
          json = undefined;
        }
      }
      requests.push({ path: req.url ?? '', contentType, headers: req.headers, json, raw });
      const ok = req.method === 'POST' && req.url === '/v1/traces';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
      res.end(ok ? '{}' : '{"error":"not found"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const spans = () => requests.filter((r) => r.path === '/v1/traces' && r.json).flatMap((r) => flatten(r.json));
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    spans,
    async waitForSpans(done, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const s = spans();
        if (done(s)) return s;
        if (Date.now() > until) {
          throw new Error(`OTLP receiver: condition not met in ${timeoutMs} ms; got spans ${JSON.stringify(s.map((x) => x.name))}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
