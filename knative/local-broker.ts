/**
 * @module knative/local-broker
 * `kinfer dev`'s Knative Eventing Broker: the functions' Triggers served on the local ingress, so
 * an event-driven pipeline (producer → Broker → Trigger → function → reply → Broker → ...) runs
 * without a cluster. It follows the Broker spec's data plane (knative/specs, eventing/broker.md)
 * and the delivery contract (eventing/data-plane.md):
 * - ingress: `POST /<namespace>/<broker>` (the path of Knative's broker-ingress), CloudEvents 1.0
 *   in binary or structured mode; 202 once accepted, 400 for what is not a valid event, 405 for
 *   other methods, 404 for a broker no Trigger names;
 * - each Trigger whose attribute filters all match exactly (an empty value matches any), or, when it
 *   has SubscriptionsAPI filters (a trigger's `where`: exact, prefix, suffix, all, any, not, cesql),
 *   whose filters all match as Knative evaluates them (knative/subscriptions-filter.ts), gets the
 *   event in binary mode, its attributes and data as received, with `Prefer: reply`;
 * - 2xx is delivered; 400 and other 4xx are failures without retry; 404, 409, 429, 5xx and a
 *   failed connection are retried with backoff (the Trigger's delivery spec, else the Broker's
 *   config-br-defaults: 10 retries, exponential from 0.2 s); then the event goes to the Trigger's
 *   dead-letter sink with Knative's knativeerror* attributes, or is dropped, said on stderr;
 * - a 200 answer carrying a CloudEvent is published to the same Broker as if produced there (a
 *   malformed one fails the delivery); hops are counted in Knative's `knativebrokerttl`: 255 for
 *   a producer's event without one, a producer's own one less (at 0 the ingress answers 400), one
 *   less per reply, never sent on; so a Trigger that matches its own replies stops there.
 * Events are held in memory: a `kinfer dev` that stops loses those not yet delivered.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { InvalidArgument } from '../runtime/core/errors.js';
import { encodeHeaderValue, readCloudEvent } from '../runtime/protocol/cloudevent.js';
import type { WhereFilter } from '../functions/define.js';
import { compileWhere, type EventMatcher } from './subscriptions-filter.js';
import { MAX_TIMER_MS } from '../runtime/core/within.js';

/** Knative's default hop count of an event (`knativebrokerttl`). */
export const DEFAULT_TTL = 255;
const TTL_ATTRIBUTE = 'knativebrokerttl';
/** Deliveries accepted and not yet done, and the bytes of their data; past either, the ingress answers 429. */
export const MAX_PENDING = 1000;
export const MAX_PENDING_BYTES = 512 * 1024 * 1024;
/** An event's body (ingress) or a reply's; past it 413, or a failed delivery. */
export const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/** Where a delivery goes: a function (through the local ingress), or a URI. */
export type Target = { function: string } | { uri: string };

export interface LocalTrigger {
  /** The Trigger's name (`<function>-<trigger>`). */
  name: string;
  broker: string;
  /** Attribute name → value; all must match exactly, an empty value matches any. Ignored when `where` is given, as Knative does. */
  filters: Record<string, string>;
  /** SubscriptionsAPI filters (the Trigger's `spec.filters`); all must match. */
  where?: WhereFilter[];
  /** The function it delivers to. */
  subscriber: string;
  /** Its own delivery spec, replacing the Broker's. */
  delivery?: Delivery;
  /** Where an event goes once its delivery failed for good. */
  deadLetter?: Target;
}

/** A delivery's outcome: taken (the status, a reply event), failed for good, or stopped by close(). */
interface Attempted {
  status?: number;
  reply?: BrokerEvent;
  failure?: Failure & { attempts: number };
  stopped?: boolean;
}

interface Failure {
  why: string;
  /** The answer's status and body, when there was an answer. */
  code?: number;
  body?: Buffer;
  retry: boolean;
}

/** A Trigger's delivery spec (duck DeliverySpec): retries after the first attempt, and the backoff. */
export interface Delivery {
  retry: number;
  backoffPolicy: 'exponential' | 'linear';
  backoffDelayMs: number;
  /** One attempt's limit (Knative's delivery `timeout`); past it the attempt has failed, and is retried. */
  timeoutMs?: number;
}

/** config-br-defaults of a Knative Eventing install: `retry: 10, backoffPolicy: exponential, backoffDelay: PT0.2S`. */
export const KNATIVE_DELIVERY: Delivery = { retry: 10, backoffPolicy: 'exponential', backoffDelayMs: 200 };

/** What a subscriber answered. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface LocalBrokerOptions {
  namespace: string;
  triggers: LocalTrigger[];
  delivery?: Delivery;
  /** POSTs to a function's `/` (through the local ingress, so it scales from zero as for any request) or to a URI. Rejects on a failed connection. */
  send: (target: Target, headers: Record<string, string>, body: Buffer, signal?: AbortSignal) => Promise<Answer>;
  /** A line about an event: accepted, delivered, retried, replied, dropped. */
  onEvent?: (text: string) => void;
}

/** An event as the Broker holds it: attributes as strings (binary mode's canonical form), data as received. */
export interface BrokerEvent {
  attributes: Record<string, string>;
  data?: Buffer;
}

export interface LocalBroker {
  /** Whether a request path is a Broker's ingress (`/<namespace>/<broker>` of a broker some Trigger names). */
  claims(path: string): boolean;
  ingress(req: IncomingMessage, res: ServerResponse): void;
  /** Stops retries and drops the events not yet delivered. */
  close(): void;
  /** Deliveries (an event to one Trigger) accepted and not yet done. */
  readonly pending: number;
}

/** Whether `filters` all match the event's attributes (Trigger `filter.attributes`). */
export function matches(filters: Record<string, string>, attributes: Record<string, string>): boolean {
  return Object.entries(filters).every(([k, v]) => (v === '' ? attributes[k] !== undefined : attributes[k] === v));
}

/** Whether a subscriber's status is retried (data-plane.md: 404, 409, 429 and 5xx; Knative's dispatcher also 408). */
export function retryable(status: number): boolean {
  return status === 404 || status === 408 || status === 409 || status === 429 || status >= 500;
}

/** The wait before retry `n` (1-based): delay × 2^(n-1) or delay × n, at most a timer's limit (Node fires a longer one after 1 ms). */
export function backoffMs(d: Delivery, n: number): number {
  return Math.min(MAX_TIMER_MS, d.backoffPolicy === 'exponential' ? d.backoffDelayMs * 2 ** (n - 1) : d.backoffDelayMs * n);
}

/**
 * Reads an event from HTTP (lower-case header names). Data stays the bytes received, except a
 * structured event's `data` given as a JSON string with a non-JSON `datacontenttype`, which is
 * that string's text (the JSON format's rule); binary delivery then sends it as the body.
 */
export function readEvent(headers: Record<string, string>, body: Buffer): BrokerEvent {
  const { attributes: sent, data, base64, mode } = readCloudEvent(headers, body, { maxJsonBytes: MAX_EVENT_BYTES });
  const attributes: Record<string, string> = {};
  for (const [k, v] of Object.entries(sent)) attributes[k] = typeof v === 'string' ? v : String(v);
  // Delivered as the Content-Type header: a value HTTP cannot carry is refused now, not at every delivery.
  const type = attributes.datacontenttype;
  if (type !== undefined && !/^[\t\x20-\x7e]*$/.test(type)) throw new InvalidArgument(`datacontenttype ${JSON.stringify(type)} cannot be an HTTP Content-Type (printable ASCII only)`);
  if (!data) return { attributes };
  // The JSON format's `data` with no datacontenttype is application/json: said so in binary mode, where the Content-Type is that attribute.
  if (mode === 'structured' && !base64 && attributes.datacontenttype === undefined) attributes.datacontenttype = 'application/json';
  let bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (mode === 'structured' && !base64 && bytes[0] === 0x22 && !isJsonType(attributes.datacontenttype)) bytes = Buffer.from(JSON.parse(bytes.toString('utf8')) as string, 'utf8');
  return { attributes, data: bytes };
}

/** The event in binary mode: every attribute a `ce-` header (percent-encoded), datacontenttype the Content-Type. */
export function binaryMessage(event: BrokerEvent): { headers: Record<string, string>; body: Buffer } {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.attributes)) {
    if (k === 'datacontenttype') headers['content-type'] = v;
    else headers[`ce-${k}`] = encodeHeaderValue(v);
  }
  return { headers, body: event.data ?? Buffer.alloc(0) };
}

function isJsonType(type: string | undefined): boolean {
  const t = (type ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  return t === 'application/json' || t === 'text/json' || t.endsWith('+json');
}

/** node:http headers as one string each (repeated ones joined with ", "). */
export function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export function startLocalBroker(opts: LocalBrokerOptions): LocalBroker {
  const delivery = opts.delivery ?? KNATIVE_DELIVERY;
  const brokers = new Set(opts.triggers.map((t) => t.broker));
  // Compiled once: a cesql is parsed here, not per event.
  const matchers = new Map<LocalTrigger, EventMatcher>(opts.triggers.map((t) => [t, t.where ? compileWhere(t.where) : (attributes) => matches(t.filters, attributes)]));
  const note = (text: string) => opts.onEvent?.(text);
  /** Backoff waits, each with its wake-up: close() ends them at once. */
  const timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  let pending = 0;
  let pendingBytes = 0;
  let closed = false;

  const brokerOf = (path: string): string | undefined => {
    const m = /^\/([^/?#]+)\/([^/?#]+)\/?(?:[?#].*)?$/.exec(path);
    return m && m[1] === opts.namespace && brokers.has(m[2]!) ? m[2] : undefined;
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => (timers.delete(t), resolve()), ms);
      timers.set(t, resolve);
    });

  /** Whether `event` would take the deliveries pending past MAX_PENDING or MAX_PENDING_BYTES. */
  const full = (event: BrokerEvent) => pending >= MAX_PENDING || pendingBytes + (event.data?.byteLength ?? 0) > MAX_PENDING_BYTES;

  /** An event into `broker`: every matching Trigger gets it, each on its own. */
  const publish = (broker: string, event: BrokerEvent, ttl: number) => {
    if (closed) return;
    const targets = opts.triggers.filter((t) => t.broker === broker && matchers.get(t)!(event.attributes));
    const what = `${event.attributes.type} ${event.attributes.id}`;
    if (targets.length === 0) return note(`broker ${broker}: ${what} matched no trigger`);
    note(`broker ${broker}: ${what} → ${targets.map((t) => t.name).join(', ')}`);
    const bytes = event.data?.byteLength ?? 0;
    for (const t of targets) {
      pending++;
      pendingBytes += bytes;
      void deliver(t, event, ttl).finally(() => {
        pending--;
        pendingBytes -= bytes;
      });
    }
  };

  /**
   * Sends `event` to `target` until it is taken, fails for good, or the retries run out. With
   * `replies`, a 200 carrying an event hands it back (a malformed one is a failed attempt).
   */
  const attempts = async (what: string, target: Target, event: BrokerEvent, d: Delivery, replies: boolean): Promise<Attempted> => {
    const { headers, body } = binaryMessage(event);
    for (let attempt = 0; ; attempt++) {
      let failure: Failure;
      const signal = d.timeoutMs !== undefined ? AbortSignal.timeout(d.timeoutMs) : undefined;
      try {
        const answer = await opts.send(target, replies ? { ...headers, prefer: 'reply' } : headers, body, signal);
        if (closed) return { stopped: true }; // an answer after close() goes nowhere: no reply published, no dead letter
        if (answer.status >= 200 && answer.status < 300) {
          if (!replies || answer.status !== 200 || !isEvent(answer.headers)) return { status: answer.status };
          return { status: 200, reply: readEvent(answer.headers, answer.body) };
        }
        failure = { why: `${answer.status} ${errorText(answer.body)}`, code: answer.status, body: answer.body, retry: retryable(answer.status) };
      } catch (err) {
        // As Knative's dispatcher reports a delivery that got no answer: 500, "dispatch error".
        // This attempt's own timeout, not a limit of the transport's (a URI's 60 s, say).
        const timedOut = signal?.aborted === true;
        const message = timedOut ? `no answer within the delivery timeout (${d.timeoutMs! / 1000} s)` : `malformed reply or no answer: ${(err as Error).message}`;
        failure = { why: message, code: 500, body: Buffer.from(`dispatch error: ${message}`), retry: true };
      }
      if (closed) return { stopped: true };
      if (!failure.retry || attempt >= d.retry) return { failure: { ...failure, attempts: attempt + 1 } };
      const ms = backoffMs(d, attempt + 1);
      note(`${what} failed: ${failure.why}; retry ${attempt + 1} of ${d.retry} in ${ms / 1000} s`);
      await wait(ms);
      if (closed) return { stopped: true };
    }
  };

  /** One Trigger's delivery; a reply event is published; a failure for good goes to the dead-letter sink, if any. */
  const deliver = async (t: LocalTrigger, event: BrokerEvent, ttl: number): Promise<void> => {
    const what = `${t.name}: ${event.attributes.type} ${event.attributes.id}`;
    const d = t.delivery ?? delivery;
    const done = await attempts(what, { function: t.subscriber }, event, d, true);
    if (done.stopped) return note(`${what} dropped: kinfer dev is stopping`);
    if (!done.failure) {
      const reply = done.reply;
      if (!reply) return note(`${what} delivered (${done.status})`);
      if (ttl - 1 <= 0) return note(`${what} delivered; its reply ${reply.attributes.type} ${reply.attributes.id} dropped: ${TTL_ATTRIBUTE} ran out (a trigger matching its own replies?)`);
      // Replies count against the ingress's bounds too: two triggers replying to each other's events fan out 2^n.
      if (full(reply)) {
        return note(`${what} delivered; its reply ${reply.attributes.type} ${reply.attributes.id} dropped: ${pending} deliveries (${pendingBytes} bytes) are pending already`);
      }
      note(`${what} delivered; reply ${reply.attributes.type} ${reply.attributes.id} published`);
      return publish(t.broker, reply, ttl - 1);
    }
    const f = done.failure;
    const failed = f.retry ? `dropped after ${f.attempts} attempts: ${f.why}` : `failed: ${f.why}; not retried`;
    if (!t.deadLetter) return note(`${what} ${failed}`);
    const sink = 'function' in t.deadLetter ? t.deadLetter.function : t.deadLetter.uri;
    // As Knative's dispatcher sends it on: the destination that failed, its status, its answer (base64, at most 1 KiB).
    const letter: BrokerEvent = {
      ...event,
      attributes: {
        ...event.attributes,
        knativeerrordest: `http://${t.subscriber}.${opts.namespace}.svc.cluster.local`,
        ...(f.code !== undefined ? { knativeerrorcode: String(f.code) } : {}),
        ...(f.body?.byteLength ? { knativeerrordata: f.body.subarray(0, 1024).toString('base64') } : {}),
      },
    };
    const dead = await attempts(`${what} to dead-letter sink ${sink}`, t.deadLetter, letter, d, false);
    if (dead.stopped) return note(`${what} ${failed}; dropped before the dead-letter sink took it: kinfer dev is stopping`);
    note(dead.failure ? `${what} ${failed}; lost: the dead-letter sink ${sink} did not take it either (${dead.failure.why})` : `${what} ${failed}; sent to the dead-letter sink ${sink} (${dead.status})`);
  };

  const ingress = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const broker = brokerOf(path);
    const reply = (status: number, error?: string) => {
      if (res.headersSent) return;
      res.writeHead(status, { ...(error ? { 'content-type': 'application/json' } : {}), ...(status === 405 ? { allow: 'POST' } : {}) });
      res.end(error ? JSON.stringify({ error }) : undefined);
    };
    if (!broker) {
      req.resume();
      return reply(404, `no broker at ${path.split('?')[0]}; brokers: ${[...brokers].map((b) => `/${opts.namespace}/${b}`).join(', ')}`);
    }
    if (req.method !== 'POST') {
      req.resume();
      return reply(405, `a broker takes events by POST, not ${req.method}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.byteLength;
      if (size <= MAX_EVENT_BYTES) return void chunks.push(c);
      if (res.headersSent) return;
      // The answer first, then the connection closed (a reset before it would hide the 413).
      chunks.length = 0;
      res.setHeader('connection', 'close');
      reply(413, `event over ${MAX_EVENT_BYTES} bytes`);
      res.once('finish', () => req.destroy());
    });
    req.on('end', () => {
      if (size > MAX_EVENT_BYTES) return;
      if (closed) return reply(503, 'kinfer dev is stopping');
      let event: BrokerEvent;
      try {
        event = readEvent(flatHeaders(req.headers), Buffer.concat(chunks));
      } catch (err) {
        return reply(400, (err as Error).message);
      }
      if (full(event)) {
        return reply(429, `broker ${broker}: ${pending} deliveries (${pendingBytes} bytes) are pending already; retry later`);
      }
      // Knative's ingress: a producer's hop count is one less here (at 0, refused), one it cannot read is the default.
      const { [TTL_ATTRIBUTE]: given, ...attributes } = event.attributes;
      const sent = Number(given);
      const ttl = given === undefined || !Number.isInteger(sent) ? DEFAULT_TTL : sent - 1;
      if (ttl <= 0) return reply(400, `${TTL_ATTRIBUTE} ${given}: the event has made its last hop`);
      publish(broker, { ...event, attributes }, ttl);
      reply(202);
    });
  };

  return {
    claims: (path) => brokerOf(path) !== undefined,
    ingress,
    close: () => {
      closed = true;
      for (const [t, wake] of timers) {
        clearTimeout(t);
        wake();
      }
      timers.clear();
    },
    get pending() {
      return pending;
    },
  };
}

/** Whether an answer carries a CloudEvent (binary mode's ce-specversion, or the structured content type). */
function isEvent(headers: Record<string, string>): boolean {
  return headers['ce-specversion'] !== undefined || (headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents+json');
}

/** A v2 error body's message, or the body's first 200 characters. */
function errorText(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof e === 'string') return e;
  } catch {
    // not JSON
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
