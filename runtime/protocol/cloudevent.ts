/**
 * @module protocol/cloudevent
 * CloudEvents 1.0 over HTTP (binary and structured modes) as an adapter at the
 * edge: an event's data is a v2 inference request body, decoded by the same
 * v2 codec; the reply carries the v2 response body in the request's mode.
 */
import { randomUUID } from 'node:crypto';
import { CloudEvent, type CloudEventV1 } from 'cloudevents';
import { asBuffer } from '../core/bytes.js';
import { InvalidArgument, PayloadTooLarge } from '../core/errors.js';
import { MAX_JSON_BYTES } from './v2/decode.js';
import { decodeHeaderValue, encodeHeaderValue } from './cloudevent-headers.js';

// The header codec lives apart so that what needs only it (payload logging) does not load the
// cloudevents SDK at start.
export { decodeHeaderValue, encodeHeaderValue } from './cloudevent-headers.js';

export type CloudEventMode = 'binary' | 'structured';

/**
 * Extension attribute carrying the binary extension's JSON header length: in structured mode, and
 * in binary mode beside the `Inference-Header-Content-Length` header, since a Knative Broker or
 * Channel forwards an event's attributes and data, not the HTTP headers it arrived with.
 */
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

/** A CloudEvent as read off HTTP: its attributes, checked, and its data's bytes, not parsed. */
export interface CloudEventEnvelope {
  mode: CloudEventMode;
  /** The SDK's checked event, without data (it stamps a `time` where none was sent, and normalises one that was). */
  event: CloudEventV1<unknown>;
  /** Every attribute as sent but `data`/`data_base64` (binary mode's Content-Type as `datacontenttype`; JSON nulls left out). */
  attributes: Record<string, unknown>;
  /** Binary mode: the body. Structured mode: the raw JSON text of `data`, or `data_base64` decoded. Undefined for none. */
  data?: Uint8Array;
  /** Structured mode: `data` came as `data_base64`. */
  base64?: boolean;
}

/**
 * Reads a CloudEvent from HTTP headers (lower-case names) and body, and checks its attributes.
 *
 * The data is kept as the bytes received: in binary mode the body itself; in structured mode the
 * raw text of the `data` member, sliced out of the envelope (`dataSpan`) rather than parsed and
 * re-serialised, which cost 112 ms for a 1x3x224x224 JSON tensor and rounded INT64 values beyond
 * 2^53. The SDK's `CloudEvent` validates the attributes alone: given the data, it base64-encodes
 * binary bodies into `data_base64` (~10 ms for that tensor).
 */
export function readCloudEvent(headers: Record<string, string>, body: Uint8Array, opts: { maxJsonBytes?: number } = {}): CloudEventEnvelope {
  const structured = (headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents+json');
  if ((headers['content-type'] ?? '').toLowerCase().startsWith('application/cloudevents-batch')) {
    throw new InvalidArgument('batched CloudEvents are not supported: send one event per request');
  }
  let raw: Record<string, unknown> | undefined;
  let data: Uint8Array | undefined;
  if (structured) {
    const bytes = asBuffer(body);
    const span = dataSpan(bytes);
    // The envelope is parsed whole (the v2 decoder checks `data` against the same limit): a huge
    // attribute value would make JSON.parse abort the process as a huge request body would.
    const maxJson = opts.maxJsonBytes ?? MAX_JSON_BYTES;
    const envelopeBytes = span ? bytes.byteLength - (span[1] - span[0]) : bytes.byteLength;
    if (envelopeBytes > maxJson) {
      throw new PayloadTooLarge(`the CloudEvent's attributes are ${envelopeBytes} bytes of JSON, over the limit of ${maxJson} (KINFER_MAX_JSON_BYTES)`);
    }
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
      if (isNull(data)) data = undefined;
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
  if (structured) checkJsonAttributes(raw!, data !== undefined);
  const { data: _data, data_base64: base64, ...eventAttrs } = attrs;
  if (!structured && headers['content-type']) eventAttrs.datacontenttype = headers['content-type'];
  let event: CloudEventV1<unknown>;
  try {
    event = new CloudEvent(eventAttrs) as CloudEventV1<unknown>;
  } catch (err) {
    throw new InvalidArgument(`invalid CloudEvent: ${validationMessage(err)}`);
  }
  for (const [k, v] of Object.entries(eventAttrs)) if (v === null) delete eventAttrs[k];
  if (!structured) return { mode: 'binary', event, attributes: eventAttrs, ...(body.byteLength > 0 ? { data: body } : {}) };
  if (typeof base64 === 'string') return { mode: 'structured', event, attributes: eventAttrs, data: new Uint8Array(Buffer.from(base64, 'base64')), base64: true };
  return { mode: 'structured', event, attributes: eventAttrs, ...(data ? { data } : {}) };
}

/** A CloudEvent whose data is a v2 inference request (JSON, or the binary extension): what kinfer's routes take. */
export function decodeCloudEvent(headers: Record<string, string>, body: Uint8Array, opts: { maxJsonBytes?: number } = {}): DecodedCloudEvent {
  const { mode, event, data, base64 } = readCloudEvent(headers, body, opts);
  const out: DecodedCloudEvent = { mode, id: event.id, type: event.type, source: event.source, body: new Uint8Array(0) };
  if (event.subject) out.subject = event.subject;
  const ext = event as unknown as Record<string, unknown>;
  if (typeof ext.model === 'string') out.model = ext.model;
  if (typeof ext.traceparent === 'string') out.traceparent = ext.traceparent;
  if (typeof ext.tracestate === 'string') out.tracestate = ext.tracestate;
  const length = ext[HEADER_LENGTH_EXTENSION];

  if (mode === 'binary') {
    out.body = body;
    out.contentType = headers['content-type'];
    // Through a Broker only the extension attribute arrives; sent directly, the header (it wins).
    const len = headers['inference-header-content-length'] ?? length;
    if (len !== undefined) out.inferenceHeaderContentLength = String(len);
    return out;
  }
  out.contentType = typeof event.datacontenttype === 'string' ? event.datacontenttype : 'application/json';
  if (base64) {
    out.body = data!;
    if (length !== undefined) out.inferenceHeaderContentLength = String(length);
  } else if (data !== undefined) {
    // A JSON string is the request text itself; anything else is the request as JSON.
    if (data[0] === 0x22) {
      let text: unknown;
      try {
        text = JSON.parse(asBuffer(data).toString('utf8'));
      } catch (err) {
        throw new InvalidArgument(`structured CloudEvent is not valid JSON: ${(err as Error).message}`);
      }
      out.body = new Uint8Array(Buffer.from(text as string, 'utf8'));
    } else out.body = data;
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

/**
 * The index after the JSON value starting at `i`, or -1: nesting and strings
 * are followed, scalars are not checked (the v2 decoder parses the value).
 */
function valueEnd(json: Uint8Array, i: number): number {
  const c = json[i];
  if (c === 0x22 /* " */) return stringEnd(json, i);
  if (c === 0x5b /* [ */ || c === 0x7b /* { */) return containerEnd(json, i);
  const n = json.length;
  let j = i;
  // A scalar ends at a comma, white space or the enclosing object's close.
  while (j < n && !SCALAR_END[json[j]!]) j++;
  return j;
}

const SCALAR_END = new Uint8Array(256);
for (const b of [0x2c, 0x20, 0x0a, 0x0d, 0x09, 0x7d, 0x5d]) SCALAR_END[b] = 1;

/**
 * The index after the array or object opening at `i`, or -1. The scan jumps
 * between structural bytes with `indexOf` (memchr) instead of visiting every
 * byte: a tensor's `data` is mostly digits and commas. Each of the five
 * positions is looked up again only once the scan has passed it, so every
 * byte is searched at most once per kind.
 */
function containerEnd(json: Uint8Array, i: number): number {
  const n = json.length;
  const next = (b: number, from: number): number => {
    const k = json.indexOf(b, from);
    return k < 0 ? n : k;
  };
  let quote = next(0x22, i);
  let openA = next(0x5b, i);
  let closeA = next(0x5d, i);
  let openO = next(0x7b, i);
  let closeO = next(0x7d, i);
  let depth = 0;
  for (;;) {
    const j = Math.min(quote, openA, closeA, openO, closeO);
    if (j >= n) return -1;
    let pos: number;
    if (j === quote) {
      pos = stringEnd(json, j);
      if (pos < 0) return -1;
    } else {
      if (j === openA || j === openO) depth++;
      else if (--depth === 0) return j + 1;
      pos = j + 1;
    }
    if (quote < pos) quote = next(0x22, pos);
    if (openA < pos) openA = next(0x5b, pos);
    if (closeA < pos) closeA = next(0x5d, pos);
    if (openO < pos) openO = next(0x7b, pos);
    if (closeO < pos) closeO = next(0x7d, pos);
  }
}

function isNull(b: Uint8Array): boolean {
  return b.length === 4 && b[0] === 0x6e && b[1] === 0x75 && b[2] === 0x6c && b[3] === 0x6c;
}

function safeParse(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

/** Binary-mode attributes: every `ce-*` header, its value decoded as the HTTP binding requires. */
function ceHeaders(headers: Record<string, string>): Record<string, unknown> {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('ce-')) attrs[k.slice(3)] = decodeHeaderValue(k, v);
  return attrs;
}

/**
 * The JSON format's attribute values: strings, booleans, or integers within int32 (the spec's
 * Integer); null reads as absent. The SDK lets objects and arrays through as extension values.
 * And `data` and `data_base64` exclude each other.
 */
function checkJsonAttributes(raw: Record<string, unknown>, hasData: boolean): void {
  if (hasData && raw.data_base64 !== undefined && raw.data_base64 !== null) {
    throw new InvalidArgument("structured CloudEvent has both 'data' and 'data_base64'; send one");
  }
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'data' || value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) continue;
    const got = typeof value === 'number' ? String(value) : Array.isArray(value) ? 'an array' : 'an object';
    throw new InvalidArgument(`CloudEvent attribute '${name}' must be a string, boolean or 32-bit integer, got ${got}`);
  }
}

/** The SDK's ValidationError as one line: each schema error as `<attribute> <message>`. */
function validationMessage(err: unknown): string {
  const { message, errors } = err as { message?: unknown; errors?: unknown };
  const details = Array.isArray(errors)
    ? errors.map((e) => {
        const { instancePath, message: m } = (e ?? {}) as { instancePath?: unknown; message?: unknown };
        return typeof m === 'string' ? `${typeof instancePath === 'string' && instancePath ? instancePath.slice(1) : 'event'} ${m}` : String(e);
      })
    : [];
  return details.length > 0 ? details.join('; ') : String(message ?? err).split('\n')[0]!;
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
    // Every attribute as a `ce-*` header, datacontenttype as Content-Type (HTTP binding 3.1.3).
    const headers: Record<string, string> = { 'content-type': contentType };
    for (const [k, v] of Object.entries(attrs)) if (k !== 'datacontenttype') headers[`ce-${k}`] = encodeHeaderValue(String(v));
    if (headerLength !== undefined) {
      headers['Inference-Header-Content-Length'] = headerLength;
      headers[`ce-${HEADER_LENGTH_EXTENSION}`] = headerLength;
    }
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
