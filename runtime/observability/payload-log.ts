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
import { decodeHeaderValue, encodeHeaderValue } from '../protocol/cloudevent-headers.js';
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
/** At most one warning line per this long about dropped events (the counter has every one). */
const DROP_WARN_EVERY_MS = 10_000;

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

/**
 * One request as logged: `readBody` fills `request` and `okWithHeaders` `response`, each only when
 * the mode logs that side (a body the mode does not send is not kept).
 */
export interface PayloadCapture {
  id: string;
  metadata: string;
  logRequest: boolean;
  logResponse: boolean;
  request?: { body: Uint8Array; contentType: string };
  response?: { body: Uint8Array; contentType: string };
}

/** An event waiting to be sent: its own body only, so the queue's byte bound is what it holds. */
interface Pending {
  type: string;
  id: string;
  metadata: string;
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
  private dropped = 0;
  private lastDropWarning = -Infinity;

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

  /**
   * A capture for one request: its event id (the request's `ce-id`, percent-decoded as a binary-mode
   * attribute, else `requestId`) and metadata (every value of each listed header, as KServe lists them).
   */
  capture(values: (name: string) => string[] | undefined, requestId: string | undefined): PayloadCapture {
    const metadata: Record<string, string[]> = {};
    for (const name of this.config.metadataHeaders) {
      const v = values(name);
      if (v !== undefined) metadata[name] = v;
    }
    let id = values('ce-id')?.[0];
    try {
      if (id) id = decodeHeaderValue('ce-id', id);
    } catch {
      id = undefined; // not valid percent-encoding: the request id names it
    }
    const mode = this.config.mode;
    return { id: id || requestId || randomUUID(), metadata: JSON.stringify(metadata), logRequest: mode !== 'response', logResponse: mode !== 'request' };
  }

  /** Queues the events of a finished request: its request (when read), its response (when 200). */
  finish(capture: PayloadCapture, status: number): void {
    const { id, metadata } = capture;
    if (capture.request) this.enqueue({ type: REQUEST_TYPE, id, metadata, ...capture.request });
    if (capture.response && status === 200) this.enqueue({ type: RESPONSE_TYPE, id, metadata, ...capture.response });
  }

  private enqueue(p: Pending): void {
    const kind = p.type === REQUEST_TYPE ? 'request' : 'response';
    if (this.closed || this.queue.length >= QUEUE_EVENTS || this.queuedBytes + p.body.byteLength > QUEUE_BYTES) {
      this.events.labels(kind, 'dropped').inc();
      this.dropped++;
      const now = performance.now();
      if (now - this.lastDropWarning >= DROP_WARN_EVERY_MS) {
        const why = this.closed ? 'the server is stopping' : `${this.queue.length} events (${this.queuedBytes} bytes) wait to be sent`;
        this.logger.warn({ event: 'payload_log_dropped', dropped: this.dropped, id: p.id, type: p.type }, `payload log: ${this.dropped} event(s) dropped since the last such line: ${why}`);
        this.lastDropWarning = now;
        this.dropped = 0;
      }
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
              id: p.id,
              type: p.type,
              source: c.source,
              time: new Date().toISOString(),
              inferenceservicename: c.inferenceService,
              namespace: c.namespace,
              component: c.component,
              endpoint: c.endpoint,
              metadata: p.metadata,
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
      this.logger.warn({ event: 'payload_log_failed', id: p.id, type: p.type, url: c.url, err: String(err) }, `payload log: sending the ${kind} event failed`);
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
