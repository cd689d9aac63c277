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

/**
 * Reads a CloudEvent from HTTP headers (lower-case names) and body.
 *
 * The event's data is the v2 request and is handed on as the bytes received:
 * in binary mode the body itself (the SDK is given only the headers: with the
 * body it base64-encodes all of it into `data_base64`, ~10 ms for a
 * 1x3x224x224 JSON tensor); in structured mode the raw text of the `data`
 * member, sliced out of the envelope (`dataSpan`) rather than parsed and
 * re-serialised, which cost 112 ms for that tensor and rounded INT64 values
 * beyond 2^53.
 */
export function decodeCloudEvent(headers: Record<string, string>, body: Uint8Array): DecodedCloudEvent {
  const structured = (headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents+json');
  if ((headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents-batch')) {
    throw new InvalidArgument('batched CloudEvents are not supported: send one event per request');
  }
  let raw: Record<string, unknown> | undefined;
  let data: Uint8Array | undefined;
  if (structured) {
    const bytes = asBuffer(body);
    const span = dataSpan(bytes);
    // The envelope with `data` as null: only the attributes get parsed here.
    const envelope = span ? `${bytes.toString('utf8', 0, span[0])}null${bytes.toString('utf8', span[1])}` : bytes.toString('utf8');
    try {
      raw = JSON.parse(envelope) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidArgument(`structured CloudEvent is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new InvalidArgument('structured CloudEvent must be a JSON object');
    }
    if (span) {
      data = body.subarray(span[0], span[1]);
      delete raw.data;
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
    event = HTTP.toEvent({ headers, body: structured ? raw : undefined }) as CloudEventV1<unknown>;
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
  } else if (data !== undefined && !isNull(data)) {
    // A JSON string is the request text itself; anything else is the request as JSON.
    if (data[0] === 0x22) {
      let text: unknown;
      try {
        text = JSON.parse(asBuffer(data).toString('utf8'));
      } catch (err) {
        throw new InvalidArgument(`structured CloudEvent is not valid JSON: ${(err as Error).message}`);
      }
      data = new Uint8Array(Buffer.from(text as string, 'utf8'));
    }
    out.body = data;
  } else {
    throw new InvalidArgument("CloudEvent has no 'data' or 'data_base64': it must carry a v2 inference request");
  }
  return out;
}

/**
 * Where the value of the top-level `data` member lies in the UTF-8 bytes of a
 * JSON object, as [start, end); the last one if the key repeats (JSON.parse
 * keeps the last). Undefined when there is none, or when the bytes are not an
 * object this scan can follow; the caller's JSON.parse then reports the error.
 * The value itself is not validated here: the v2 decoder parses it. Bytes, not
 * a string: every JSON structural character is ASCII, and no byte of a UTF-8
 * multi-byte sequence is.
 */
export function dataSpan(json: Uint8Array): [number, number] | undefined {
  const n = json.length;
  let i = skipSpace(json, 0);
  if (json[i] !== 0x7b /* { */) return undefined;
  i = skipSpace(json, i + 1);
  if (json[i] === 0x7d /* } */) return undefined;
  let found: [number, number] | undefined;
  while (i < n) {
    if (json[i] !== 0x22 /* " */) return undefined;
    const keyEnd = stringEnd(json, i);
    if (keyEnd < 0) return undefined;
    const isData = isDataKey(json, i, keyEnd);
    i = skipSpace(json, keyEnd);
    if (json[i] !== 0x3a /* : */) return undefined;
    const start = skipSpace(json, i + 1);
    const end = valueEnd(json, start);
    if (end <= start) return undefined;
    if (isData) found = [start, end];
    i = skipSpace(json, end);
    if (json[i] === 0x7d) return skipSpace(json, i + 1) === n ? found : undefined;
    if (json[i] !== 0x2c /* , */) return undefined;
    i = skipSpace(json, i + 1);
  }
  return undefined;
}

const DATA_KEY = [0x22, 0x64, 0x61, 0x74, 0x61, 0x22]; // "data"

function isDataKey(json: Uint8Array, start: number, end: number): boolean {
  if (end - start === DATA_KEY.length) return DATA_KEY.every((b, k) => json[start + k] === b);
  // Escapes (`"d\u0061ta"`) spell it too.
  return json.subarray(start, end).includes(0x5c) && safeParse(Buffer.from(json.subarray(start, end)).toString('utf8')) === 'data';
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(json: Uint8Array, i: number): number {
  while (isSpace(json[i])) i++;
  return i;
}

/** The index after the string whose opening quote is at `i`, or -1. */
function stringEnd(json: Uint8Array, i: number): number {
  for (let j = i + 1; ; ) {
    const q = json.indexOf(0x22, j);
    if (q < 0) return -1;
    let backslashes = 0;
    for (let k = q - 1; json[k] === 0x5c; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** Byte classes for `valueEnd`: 0 for bytes that neither nest nor end a value. */
const QUOTE = 1;
const OPEN = 2;
const CLOSE = 3;
const SCALAR_END = 4;
const BYTE_CLASS = new Uint8Array(256);
BYTE_CLASS[0x22] = QUOTE;
BYTE_CLASS[0x7b] = BYTE_CLASS[0x5b] = OPEN;
BYTE_CLASS[0x7d] = BYTE_CLASS[0x5d] = CLOSE;
BYTE_CLASS[0x2c] = BYTE_CLASS[0x20] = BYTE_CLASS[0x0a] = BYTE_CLASS[0x0d] = BYTE_CLASS[0x09] = SCALAR_END;

/**
 * The index after the JSON value starting at `i`, or -1: nesting and strings
 * are followed, scalars are not checked. One table lookup per byte: a
 * 1x3x224x224 JSON tensor (2.8 MB) is mostly digits and commas.
 */
function valueEnd(json: Uint8Array, i: number): number {
  const n = json.length;
  let depth = 0;
  for (let j = i; j < n; j++) {
    const k = BYTE_CLASS[json[j]!];
    if (k === 0) continue;
    if (k === QUOTE) {
      j = stringEnd(json, j) - 1;
      if (j < 0) return -1;
      if (depth === 0) return j + 1;
    } else if (k === OPEN) depth++;
    else if (k === CLOSE) {
      if (depth === 0) return j; // a scalar ended at the enclosing object's close
      if (--depth === 0) return j + 1;
    } else if (depth === 0) return j; // SCALAR_END
  }
  return depth === 0 ? n : -1;
}

function isNull(b: Uint8Array): boolean {
  return b.length === 4 && b[0] === 0x6e && b[1] === 0x75 && b[2] === 0x6c && b[3] === 0x6c;
}

/** A Buffer view of the same bytes (no copy), for Buffer's decoders. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function safeParse(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
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
  const attrs: Record<string, unknown> = {
    specversion: '1.0',
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
    // Headers only: given the data, the SDK would copy and base64-encode the whole reply.
    const message = HTTP.binary(new CloudEvent(attrs, false));
    const headers = stringHeaders(message.headers);
    if (headerLength !== undefined) headers['Inference-Header-Content-Length'] = headerLength;
    return { headers, body: response.body };
  }
  if (!isJson) {
    attrs.data_base64 = (typeof response.body === 'string' ? Buffer.from(response.body) : asBuffer(response.body)).toString('base64');
    if (headerLength !== undefined) attrs[HEADER_LENGTH_EXTENSION] = headerLength;
  }
  let body = JSON.stringify(attrs);
  // Splice the encoded v2 JSON in as text: a parse/stringify round trip would
  // round INT64/UINT64 values beyond 2^53.
  if (isJson) {
    const text = typeof response.body === 'string' ? response.body : new TextDecoder().decode(response.body);
    body = `${body.slice(0, -1)},"data":${text}}`;
  }
  return { headers: { 'Content-Type': 'application/cloudevents+json; charset=utf-8' }, body };
}

function stringHeaders(h: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = String(v);
  return out;
}
