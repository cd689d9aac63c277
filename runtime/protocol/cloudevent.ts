/**
 * @module protocol/cloudevent
 * CloudEvents 1.0 over HTTP (binary and structured modes) as an adapter at the
 * edge: an event's data is a v2 inference request body, decoded by the same
 * v2 codec; the reply carries the v2 response body in the request's mode.
 */
import { randomUUID } from 'node:crypto';
import { CloudEvent, HTTP, type CloudEventV1 } from 'cloudevents';
import { InvalidArgument } from '../core/errors.js';

export type CloudEventMode = 'binary' | 'structured';

/** Extension attribute carrying the binary extension's JSON header length in structured mode. */
export const HEADER_LENGTH_EXTENSION = 'inferenceheadercontentlength';

export interface DecodedCloudEvent {
  mode: CloudEventMode;
  id: string;
  type: string;
  source: string;
  subject?: string;
  /** The `model` extension attribute, if sent (multi-model routing). */
  model?: string;
  traceparent?: string;
  tracestate?: string;
  /** The v2 request body inside the event and how to read it. */
  body: Uint8Array;
  contentType?: string;
  inferenceHeaderContentLength?: string;
}

const REQUIRED = ['id', 'source', 'type', 'specversion'] as const;

/** Reads a CloudEvent from HTTP headers (lower-case names) and body. */
export function decodeCloudEvent(headers: Record<string, string>, body: Uint8Array): DecodedCloudEvent {
  const structured = (headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents+json');
  if ((headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents-batch')) {
    throw new InvalidArgument('batched CloudEvents are not supported: send one event per request');
  }
  let raw: Record<string, unknown> | undefined;
  if (structured) {
    try {
      raw = JSON.parse(new TextDecoder().decode(body)) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidArgument(`structured CloudEvent is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new InvalidArgument('structured CloudEvent must be a JSON object');
    }
  }
  const attrs: Record<string, unknown> = structured ? raw! : ceHeaders(headers);
  for (const name of REQUIRED) {
    if (typeof attrs[name] !== 'string' || attrs[name] === '') {
      throw new InvalidArgument(`CloudEvent attribute '${name}' is missing or not a non-empty string`);
    }
  }
  if (attrs.specversion !== '1.0') {
    throw new InvalidArgument(`CloudEvent specversion '${String(attrs.specversion)}' is not supported (only 1.0)`);
  }
  let event: CloudEventV1<unknown>;
  try {
    event = HTTP.toEvent({ headers, body: structured ? raw : Buffer.from(body) }) as CloudEventV1<unknown>;
  } catch (err) {
    throw new InvalidArgument(`invalid CloudEvent: ${(err as Error).message}`);
  }
  const out: DecodedCloudEvent = {
    mode: structured ? 'structured' : 'binary',
    id: event.id,
    type: event.type,
    source: event.source,
    body: new Uint8Array(0),
  };
  if (event.subject) out.subject = event.subject;
  const ext = event as unknown as Record<string, unknown>;
  if (typeof ext.model === 'string') out.model = ext.model;
  if (typeof ext.traceparent === 'string') out.traceparent = ext.traceparent;
  if (typeof ext.tracestate === 'string') out.tracestate = ext.tracestate;

  if (!structured) {
    out.body = body;
    out.contentType = headers['content-type'];
    out.inferenceHeaderContentLength = headers['inference-header-content-length'];
    return out;
  }
  out.contentType = typeof raw!.datacontenttype === 'string' ? raw!.datacontenttype : 'application/json';
  if (typeof raw!.data_base64 === 'string') {
    out.body = new Uint8Array(Buffer.from(raw!.data_base64, 'base64'));
    const len = raw![HEADER_LENGTH_EXTENSION];
    if (len !== undefined) out.inferenceHeaderContentLength = String(len);
  } else if (raw!.data !== undefined) {
    const data = raw!.data;
    out.body = new TextEncoder().encode(typeof data === 'string' ? data : JSON.stringify(data));
  } else {
    throw new InvalidArgument("CloudEvent has no 'data' or 'data_base64': it must carry a v2 inference request");
  }
  return out;
}

function ceHeaders(headers: Record<string, string>): Record<string, unknown> {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('ce-')) attrs[k.slice(3)] = v;
  return attrs;
}

export interface ReplyOptions {
  type: string;
  source: string;
  /** The v2 request id (or the event id) kept for correlation. */
  requestId?: string;
  traceparent?: string;
  tracestate?: string;
}

/** Wraps an encoded v2 response body in a CloudEvent in `request.mode`. */
export function encodeCloudEventReply(
  request: DecodedCloudEvent,
  response: { body: Uint8Array | string; headers: Record<string, string> },
  opts: ReplyOptions,
): { headers: Record<string, string>; body: Uint8Array | string } {
  const contentType = response.headers['Content-Type'] ?? 'application/json';
  const headerLength = response.headers['Inference-Header-Content-Length'];
  const isJson = contentType.startsWith('application/json');
  const bytes = typeof response.body === 'string' ? new TextEncoder().encode(response.body) : response.body;
  const attrs: Record<string, unknown> = {
    id: randomUUID(),
    type: opts.type,
    source: opts.source,
    time: new Date().toISOString(),
    datacontenttype: contentType,
    inresponseto: request.id,
  };
  if (opts.requestId !== undefined) attrs.requestid = opts.requestId;
  if (opts.traceparent) attrs.traceparent = opts.traceparent;
  if (opts.tracestate) attrs.tracestate = opts.tracestate;

  if (request.mode === 'binary') {
    const message = HTTP.binary(new CloudEvent({ ...attrs, data: Buffer.from(bytes) }, false));
    const headers = stringHeaders(message.headers);
    if (headerLength !== undefined) headers['Inference-Header-Content-Length'] = headerLength;
    return { headers, body: bytes };
  }
  if (!isJson) {
    attrs.data_base64 = Buffer.from(bytes).toString('base64');
    if (headerLength !== undefined) attrs[HEADER_LENGTH_EXTENSION] = headerLength;
  }
  let body = JSON.stringify(attrs);
  // Splice the encoded v2 JSON in as text: a parse/stringify round trip would
  // round INT64/UINT64 values beyond 2^53.
  if (isJson) {
    const text = typeof response.body === 'string' ? response.body : new TextDecoder().decode(bytes);
    body = `${body.slice(0, -1)},"data":${text}}`;
  }
  return { headers: { 'Content-Type': 'application/cloudevents+json; charset=utf-8' }, body };
}

function stringHeaders(h: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = String(v);
  return out;
}
