/**
 * @module observability/payload-log
 * KServe's payload logging (an InferenceService's `logger`: url, mode, metadataHeaders), done in
 * the server instead of KServe's agent sidecar, so a plain Knative Service function has it too.
 * As the agent's logger (kserve pkg/logger, handler.go and worker.go): each inference request
 * and, when answered 200, its response go to `url` as binary-mode CloudEvents, one POST each,
 * not retried; type `org.kubeflow.serving.inference.request` / `.response`, both with the
 * request's `ce-id` (else its request id), source the pod's deployment, the extensions
 * `inferenceservicename`, `namespace`, `component` (`predictor`), `endpoint` (`default`) and
 * `metadata` (the listed request headers as JSON, `{"Name": ["value"]}`), the body as data.
 * Unlike the agent, which blocks requests once 100 events wait, a full queue drops the event
 * (counted): logging never holds up inference. The response's own Content-Type is its event's
 * (the agent reuses the request's).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Counter, type Registry } from 'prom-client';
import { encodeHeaderValue } from '../protocol/cloudevent.js';
import type { Logger } from './logger.js';

export const REQUEST_TYPE = 'org.kubeflow.serving.inference.request';
export const RESPONSE_TYPE = 'org.kubeflow.serving.inference.response';
export const PAYLOAD_LOG_MODES = ['all', 'request', 'response'] as const;
export type PayloadLogMode = (typeof PAYLOAD_LOG_MODES)[number];

/** Events waiting to be sent; past it, dropped. KServe's agent: LoggerWorkerQueueSize. */
const QUEUE_EVENTS = 100;
/** Bytes of event data waiting; past it, dropped (a 100 × 64 MiB queue would be 6 GiB). */
const QUEUE_BYTES = 64 * 1024 * 1024;
/** Sends at once. KServe's agent: --workers 5. */
const SENDERS = 5;
const SEND_TIMEOUT_MS = 10_000;
const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface PayloadLogConfig {
  url: string;
  mode: PayloadLogMode;
  /** Request headers copied into the `metadata` extension, matched without case. */
  metadataHeaders: string[];
  inferenceService: string;
  namespace: string;
  source: string;
  component: string;
  endpoint: string;
}

/** One request as logged: read by the route, answered by the handler. */
export interface PayloadCapture {
  id: string;
  metadata: string;
  request?: { body: Uint8Array; contentType: string };
  response?: { body: Uint8Array; contentType: string };
}

interface Pending {
  type: string;
  capture: PayloadCapture;
  body: Uint8Array;
  contentType: string;
}

/**
 * The logger's settings from the env (`KINFER_PAYLOAD_LOG_URL`, `_MODE`, `_METADATA_HEADERS`), or
 * undefined when no URL is set. A bad URL or mode stops the start, naming the variable.
 */
export function payloadLogConfig(env: NodeJS.ProcessEnv): PayloadLogConfig | undefined {
  const url = env.KINFER_PAYLOAD_LOG_URL?.trim();
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`KINFER_PAYLOAD_LOG_URL ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`KINFER_PAYLOAD_LOG_URL ${JSON.stringify(url)}: only http and https are supported`);
  const mode = (env.KINFER_PAYLOAD_LOG_MODE?.trim() || 'all') as PayloadLogMode;
  if (!PAYLOAD_LOG_MODES.includes(mode)) throw new Error(`KINFER_PAYLOAD_LOG_MODE ${JSON.stringify(mode)}: expected one of ${PAYLOAD_LOG_MODES.join(', ')}`);
  const service = env.K_SERVICE || env.MODEL_NAME || 'kinfer';
  return {
    url,
    mode,
    metadataHeaders: (env.KINFER_PAYLOAD_LOG_METADATA_HEADERS ?? '').split(',').map((h) => h.trim()).filter(Boolean),
    inferenceService: service,
    namespace: env.POD_NAMESPACE || readNamespace() || 'default',
    // KServe's agent is given its pod's deployment as --source-uri; Knative names it <revision>-deployment.
    source: env.K_REVISION ? `${env.K_REVISION}-deployment` : service,
    component: 'predictor',
    endpoint: 'default',
  };
}

function readNamespace(): string | undefined {
  try {
    return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class PayloadLogger {
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private sending = 0;
  private readonly idle: (() => void)[] = [];
  private readonly events: Counter<'type' | 'outcome'>;
  private closed = false;

  constructor(
    readonly config: PayloadLogConfig,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    this.events = new Counter({
      name: 'kinfer_payload_log_events_total',
      help: 'Payload-log CloudEvents by type (request, response) and outcome (sent, failed, dropped)',
      labelNames: ['type', 'outcome'],
      registers: [registry],
    });
    for (const type of ['request', 'response']) for (const outcome of ['sent', 'failed', 'dropped']) this.events.labels(type, outcome).inc(0);
  }

  /** A capture for one request: its event id (the request's `ce-id`, else `requestId`) and metadata. */
  capture(header: (name: string) => string | undefined, requestId: string | undefined): PayloadCapture {
    const metadata: Record<string, string[]> = {};
    for (const name of this.config.metadataHeaders) {
      const v = header(name);
      if (v !== undefined) metadata[name] = [v];
    }
    return { id: header('ce-id') || requestId || randomUUID(), metadata: JSON.stringify(metadata) };
  }

  /** Queues the events of a finished request: its request (when read), its response (when 200). */
  finish(capture: PayloadCapture, status: number): void {
    const mode = this.config.mode;
    if (capture.request && mode !== 'response') this.enqueue({ type: REQUEST_TYPE, capture, body: capture.request.body, contentType: capture.request.contentType });
    if (capture.response && status === 200 && mode !== 'request') this.enqueue({ type: RESPONSE_TYPE, capture, body: capture.response.body, contentType: capture.response.contentType });
  }

  private enqueue(p: Pending): void {
    const kind = p.type === REQUEST_TYPE ? 'request' : 'response';
    if (this.closed || this.queue.length >= QUEUE_EVENTS || this.queuedBytes + p.body.byteLength > QUEUE_BYTES) {
      this.events.labels(kind, 'dropped').inc();
      this.logger.warn({ event: 'payload_log_dropped', id: p.capture.id, type: p.type }, this.closed ? 'payload log: the server is stopping; event dropped' : `payload log: ${this.queue.length} events (${this.queuedBytes} bytes) wait already; event dropped`);
      return;
    }
    this.queue.push(p);
    this.queuedBytes += p.body.byteLength;
    this.pump();
  }

  private pump(): void {
    while (this.sending < SENDERS && this.queue.length > 0) {
      const p = this.queue.shift()!;
      this.queuedBytes -= p.body.byteLength;
      this.sending++;
      void this.send(p).finally(() => {
        this.sending--;
        this.pump();
        if (this.sending === 0 && this.queue.length === 0) for (const done of this.idle.splice(0)) done();
      });
    }
  }

  private async send(p: Pending): Promise<void> {
    const c = this.config;
    const kind = p.type === REQUEST_TYPE ? 'request' : 'response';
    try {
      const res = await fetch(c.url, {
        method: 'POST',
        headers: {
          ...Object.fromEntries(
            Object.entries({
              specversion: '1.0',
              id: p.capture.id,
              type: p.type,
              source: c.source,
              time: new Date().toISOString(),
              inferenceservicename: c.inferenceService,
              namespace: c.namespace,
              component: c.component,
              endpoint: c.endpoint,
              metadata: p.capture.metadata,
            }).map(([k, v]) => [`ce-${k}`, encodeHeaderValue(v)]),
          ),
          'content-type': p.contentType,
        },
        body: p.body as Uint8Array<ArrayBuffer>,
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        this.events.labels(kind, 'sent').inc();
        return;
      }
      throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      this.events.labels(kind, 'failed').inc();
      this.logger.warn({ event: 'payload_log_failed', id: p.capture.id, type: p.type, url: c.url, err: String(err) }, `payload log: sending the ${kind} event failed`);
    }
  }

  /** Sends what is queued, for at most `ms`; what arrives after is dropped. */
  async close(ms: number): Promise<void> {
    this.closed = true;
    if (this.sending === 0 && this.queue.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([new Promise<void>((resolve) => this.idle.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }
}
