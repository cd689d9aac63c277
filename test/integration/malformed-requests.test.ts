/**
 * Seeded, bounded fuzz of the HTTP surface against the project's standard: bad input gets a
 * clear error with the right status (the v2 body `{"error": "..."}`), never a crash, a hang or
 * a 500 for a client's mistake.
 *
 * A real server on 127.0.0.1 serves ONNX models built by the test helpers (an MLP with dynamic
 * batching, priority levels and class labels, a fixed-shape two-input model, an INT64 lookup
 * behind the response cache, a BYTES identity, a stateful model under the sequence batcher), an
 * ensemble over the MLP, echo (every datatype) and a spare echo that the repository API loads and
 * unloads, with client shared memory on and the logging and trace routes restricted to a key
 * (Triton's restricted APIs). From one seed (mulberry32) the test takes a valid request of some
 * route from the table below and applies one to three mutations from the list below it; every
 * answer must come within REQUEST_BOUND_MS, be no 5xx a client can cause (NOT_THE_CLIENTS_FAULT
 * lists the exceptions), and, when it is an error, carry `{"error": "<string>"}`. After each
 * batch the server must still be ready and answer a valid MLP and echo request exactly, and the
 * process must have seen no unhandled rejection or uncaught exception. Requests Node's own HTTP
 * parser refuses (answered by Node with a bare 400) go over raw sockets in the last test.
 *
 * A failure names the seed and index, the route, the mutations, the headers and the body's
 * start: `caseAt(index)` rebuilds that request alone.
 */
import { Buffer } from 'node:buffer';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { parseRestrictions } from '../../runtime/server/restricted.js';
import { mlpReference, writeAccumulatorModel, writeDatatypeModel, writeFixedModel, writeLookupModel, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { startTestServer, tempDir } from '../helpers/server.js';
import { framed, le, rng } from '../helpers/v2-bodies.js';

/** Another seed explores other requests: `KINFER_FUZZ_SEED=7 npx vitest run test/integration/malformed-requests.test.ts`. */
const SEED = Number(process.env.KINFER_FUZZ_SEED ?? 0x6b696e66);
const CASES = 3_000;
const BATCH = 100;
/** Requests in flight at once (the machine has two shared cores). */
const CONCURRENCY = 4;
/** No new batch starts after this long; at least MIN_CASES must have run by then. */
const WALL_MS = 30_000;
const MIN_CASES = 500;
const REQUEST_BOUND_MS = 10_000;
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_JSON_BYTES = 256 * 1024;
const ADMIN = { header: 'admin-key', value: 'fuzz-secret' };

const enc = new TextEncoder();
const utf8 = (s: string) => enc.encode(s);
const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64');

// ---------------------------------------------------------------------------------------------
// Requests as drafts the mutations change, and as sent.

type Body =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  /** The binary extension: a JSON header, then the chunks; `headerLength` null sends no header-length header. */
  | { kind: 'binary'; header: unknown; chunks: Uint8Array[]; headerLength?: string | null }
  | { kind: 'bytes'; bytes: Uint8Array };

interface Draft {
  route: string;
  /** How often the table's entry is picked, relative to 1. */
  weight?: number;
  method: string;
  /** `{model}` and `{version}` are filled in from the fields below (`model` names a region on the shared-memory routes). */
  path: string;
  model?: string;
  version?: string;
  headers: Record<string, string>;
  body: Body;
}

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

/**
 * A path segment as sent: as is when it is printable ASCII, else percent-encoded (a raw byte
 * past 0x7e is refused by Node's own HTTP parser, before any route: the raw-socket test).
 */
const segment = (s: string) => (/^[\u0021-\u007e]*$/.test(s) ? s : encodeURIComponent(s));

/**
 * Deep nesting stands in the value as a token, `"<deep:[:100000>"` (arrays) or `"<deep:{:5000>"`
 * (objects), and is written out only here: JSON.stringify (and structuredClone) would overflow
 * the stack on it.
 */
const DEEP = /"<deep:([[{]):(\d+)>"/g;
function stringify(value: unknown): string {
  return (JSON.stringify(value) ?? '').replace(DEEP, (_, open: string, n: string) =>
    open === '[' ? '['.repeat(Number(n)) + '1' + ']'.repeat(Number(n)) : '{"a":'.repeat(Number(n)) + '1' + '}'.repeat(Number(n)),
  );
}

function bodyBytes(d: Draft): { bytes?: Uint8Array; headerLength?: string | null } {
  const b = d.body;
  switch (b.kind) {
    case 'none':
      return {};
    case 'json':
      return { bytes: utf8(stringify(b.value)) };
    case 'bytes':
      return { bytes: b.bytes };
    case 'binary': {
      const head = utf8(stringify(b.header));
      return { bytes: Buffer.concat([head, ...b.chunks]), headerLength: b.headerLength === undefined ? String(head.byteLength) : b.headerLength };
    }
  }
}

function toRequest(d: Draft): Req {
  const path = d.path.replace('{model}', segment(d.model ?? '')).replace('{version}', segment(d.version ?? ''));
  const headers = { ...d.headers };
  const { bytes, headerLength } = bodyBytes(d);
  if (typeof headerLength === 'string') headers['inference-header-content-length'] = headerLength;
  return { method: d.method, path, headers, ...(bytes ? { body: bytes } : {}) };
}

/** The body as plain bytes from now on (the binary header length kept as a header). */
function asBytes(d: Draft): Uint8Array {
  const { bytes, headerLength } = bodyBytes(d);
  if (typeof headerLength === 'string') d.headers['inference-header-content-length'] = headerLength;
  d.body = { kind: 'bytes', bytes: bytes ?? new Uint8Array(0) };
  return d.body.bytes;
}

// ---------------------------------------------------------------------------------------------
// Valid requests, per route. Each must be answered 2xx (the first test checks it), except
// `/v2/hardware`, which has no FPGA to find here. Loads are picked more often: their `config`
// parameter is a whole language of its own.

const X = [1, 2, 3, 4, 0.5, -1, 2, 0.25];
const xBytes = () => le('f32', X);
const json = (value: unknown): Body => ({ kind: 'json', value });
const JSON_CT = { 'content-type': 'application/json' };
const OCTET = { 'content-type': 'application/octet-stream' };
const CE = { 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/fuzz', 'ce-type': 'io.kinfer.inference.request' };

const mlpJson = () => ({
  id: 'r1',
  parameters: { timeout: 5_000_000, priority: 0 },
  inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: X }],
  outputs: [{ name: 'y', parameters: { binary_data: false } }],
});
const echoJson = () => ({
  inputs: [
    { name: 'b', datatype: 'BOOL', shape: [2], data: [true, false] },
    { name: 'u8', datatype: 'UINT8', shape: [2], data: [0, 255] },
    { name: 'i8', datatype: 'INT8', shape: [1, 2], data: [[-128, 127]] },
    { name: 'u16', datatype: 'UINT16', shape: [1], data: [65535] },
    { name: 'i32', datatype: 'INT32', shape: [2], data: [-5, 7] },
    { name: 'u32', datatype: 'UINT32', shape: [1], data: [4294967295] },
    { name: 'i64', datatype: 'INT64', shape: [2], data: ['-9223372036854775808', 3] },
    { name: 'u64', datatype: 'UINT64', shape: [1], data: ['18446744073709551615'] },
    { name: 'h', datatype: 'FP16', shape: [2], data: [1.5, -2] },
    { name: 'f', datatype: 'FP32', shape: [3], data: [0.1, 'NaN', '-Infinity'] },
    { name: 'd', datatype: 'FP64', shape: [1], data: [Math.PI] },
    { name: 's', datatype: 'BYTES', shape: [2], data: ['héllo', ''] },
  ],
  outputs: [{ name: 's' }, { name: 'i64' }, { name: 'f', parameters: { binary_data: true } }],
});
const ceEnvelope = (data: Record<string, unknown>) => ({ specversion: '1.0', id: 'e2', source: '/fuzz', type: 'io.kinfer.inference.request', ...data });

const VALID: Draft[] = [
  { route: 'v2 infer json', method: 'POST', path: '/v2/models/{model}/infer', model: 'mlp', headers: JSON_CT, body: json(mlpJson()) },
  { route: 'v2 infer json (version)', method: 'POST', path: '/v2/models/{model}/versions/{version}/infer', model: 'mlp', version: '1', headers: JSON_CT, body: json(mlpJson()) },
  { route: 'v2 infer json classification', method: 'POST', path: '/v2/models/{model}/infer', model: 'mlp', headers: JSON_CT, body: json({ inputs: mlpJson().inputs, outputs: [{ name: 'y', parameters: { classification: 2 } }] }) },
  { route: 'v2 infer json echo', method: 'POST', path: '/v2/models/{model}/infer', model: 'echo', headers: JSON_CT, body: json(echoJson()) },
  { route: 'v2 infer json fixed', method: 'POST', path: '/v2/models/{model}/infer', model: 'fixed', headers: JSON_CT, body: json({ inputs: ['a', 'b'].map((name) => ({ name, datatype: 'FP32', shape: [2, 3], data: [[1, 2, 3], [4, 5, 6]] })) }) },
  { route: 'v2 infer json lookup', method: 'POST', path: '/v2/models/{model}/infer', model: 'lookup', headers: JSON_CT, body: json({ inputs: [{ name: 'ids', datatype: 'INT64', shape: [1, 2], data: [0, 4] }] }) },
  { route: 'v2 infer json spare', method: 'POST', path: '/v2/models/{model}/infer', model: 'spare', headers: JSON_CT, body: json({ inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [1] }] }) },
  { route: 'v2 infer json ensemble', method: 'POST', path: '/v2/models/{model}/infer', model: 'pipe', headers: JSON_CT, body: json({ inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 4], data: X }], outputs: [{ name: 'Y' }] }) },
  {
    route: 'v2 infer json sequence',
    method: 'POST',
    path: '/v2/models/{model}/infer',
    model: 'acc',
    headers: JSON_CT,
    body: json({ parameters: { sequence_id: 7, sequence_start: true, sequence_end: true }, inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] }),
  },
  { route: 'v2 infer json strings', method: 'POST', path: '/v2/models/{model}/infer', model: 'strings', headers: JSON_CT, body: json({ inputs: [{ name: 'x', datatype: 'BYTES', shape: [2], data: ['a', 'ß'] }] }) },
  {
    route: 'v2 infer binary',
    method: 'POST',
    path: '/v2/models/{model}/infer',
    model: 'mlp',
    headers: OCTET,
    body: { kind: 'binary', header: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } }], outputs: [{ name: 'y', parameters: { binary_data: true } }] }, chunks: [xBytes()] },
  },
  {
    route: 'v2 infer binary echo',
    method: 'POST',
    path: '/v2/models/{model}/infer',
    model: 'echo',
    headers: OCTET,
    body: {
      kind: 'binary',
      header: {
        parameters: { binary_data_output: true },
        inputs: [
          { name: 's', datatype: 'BYTES', shape: [3], parameters: { binary_data_size: 4 * 3 + 7 } },
          { name: 'i64', datatype: 'INT64', shape: [2], parameters: { binary_data_size: 16 } },
          { name: 'b', datatype: 'BOOL', shape: [2], data: [true, true] },
          { name: 'h', datatype: 'FP16', shape: [1], parameters: { binary_data_size: 2 } },
        ],
      },
      chunks: [framed(['abc', '', 'wxyz']), le('i64', [-1n, 2n ** 62n]), le('u16', [0x3c00])],
    },
  },
  { route: 'v2 infer raw input', method: 'POST', path: '/v2/models/{model}/infer', model: 'mlp', headers: OCTET, body: { kind: 'binary', header: undefined, chunks: [le('f32', X.slice(0, 4))], headerLength: '0' } },
  { route: 'v2 infer binary strings', method: 'POST', path: '/v2/models/{model}/infer', model: 'strings', headers: OCTET, body: { kind: 'binary', header: { inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } }] }, chunks: [framed(['hi'])] } },
  { route: 'generate', method: 'POST', path: '/v2/models/{model}/generate', model: 'mlp', headers: JSON_CT, body: json({ id: 'g1', x: [1, 2, 3, 4], parameters: { timeout: 5_000_000, tag: 'a' } }) },
  { route: 'generate (version)', method: 'POST', path: '/v2/models/{model}/versions/{version}/generate', model: 'mlp', version: '1', headers: JSON_CT, body: json({ x: [[1, 2, 3, 4]] }) },
  { route: 'generate_stream', method: 'POST', path: '/v2/models/{model}/generate_stream', model: 'strings', headers: JSON_CT, body: json({ x: 'héllo', priority: 0 }) },
  { route: 'generate echo', method: 'POST', path: '/v2/models/{model}/generate', model: 'echo', headers: JSON_CT, body: json({ text_input: 'hi', n: 3, flag: true, f: 0.5 }) },
  { route: 'v1 predict rows', method: 'POST', path: '/v1/models/{model}:predict', model: 'mlp', headers: JSON_CT, body: json({ signature_name: 'serving_default', instances: [[1, 2, 3, 4], [0, 0, 0, 1]] }) },
  { route: 'v1 predict columns', method: 'POST', path: '/v1/models/{model}/versions/{version}:predict', model: 'mlp', version: '1', headers: JSON_CT, body: json({ inputs: [[1, 2, 3, 4]] }) },
  { route: 'v1 predict echo', method: 'POST', path: '/v1/models/{model}:predict', model: 'echo', headers: JSON_CT, body: json({ instances: [{ a: 'x', b: 1, c: { b64: b64('\xff') } }] }) },
  { route: 'cloudevent binary /', method: 'POST', path: '/', headers: { ...JSON_CT, ...CE, 'ce-model': 'mlp' }, body: json(mlpJson()) },
  { route: 'cloudevent binary infer', method: 'POST', path: '/v2/models/{model}/infer', model: 'echo', headers: { ...JSON_CT, ...CE }, body: json(echoJson()) },
  { route: 'cloudevent structured /', method: 'POST', path: '/', headers: { 'content-type': 'application/cloudevents+json' }, body: json(ceEnvelope({ model: 'mlp', datacontenttype: 'application/json', data: mlpJson() })) },
  {
    route: 'cloudevent structured base64',
    method: 'POST',
    path: '/',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: (() => {
      const head = utf8(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { binary_data_size: 32 } }] }));
      return json(ceEnvelope({ subject: 'mlp', datacontenttype: 'application/octet-stream', inferenceheadercontentlength: head.byteLength, data_base64: b64(Buffer.concat([head, xBytes()])) }));
    })(),
  },
  { route: 'repository index', method: 'POST', path: '/v2/repository/index', headers: JSON_CT, body: json({ ready: true }) },
  { route: 'repository load', weight: 2, method: 'POST', path: '/v2/repository/models/{model}/load', model: 'spare', headers: JSON_CT, body: json({ parameters: { batch_size: 1 } }) },
  {
    route: 'repository load config',
    weight: 4,
    method: 'POST',
    path: '/v2/repository/models/{model}/load',
    model: 'spare',
    headers: JSON_CT,
    body: json({ parameters: { config: JSON.stringify({ platform: 'echo', max_batch_size: 0 }) } }),
  },
  {
    route: 'repository load files',
    weight: 2,
    method: 'POST',
    path: '/v2/repository/models/{model}/load',
    model: 'spare',
    headers: JSON_CT,
    body: json({ parameters: { config: JSON.stringify({ platform: 'echo' }), 'file:1/notes.txt': b64('hello'), 'file:labels.txt': b64('a\nb\n') } }),
  },
  { route: 'repository unload', method: 'POST', path: '/v2/repository/models/{model}/unload', model: 'spare', headers: JSON_CT, body: json({ parameters: { unload_dependents: false } }) },
  { route: 'server metadata', method: 'GET', path: '/v2', headers: {}, body: { kind: 'none' } },
  { route: 'health ready', method: 'GET', path: '/v2/health/ready', headers: {}, body: { kind: 'none' } },
  { route: 'model list', method: 'GET', path: '/v2/models', headers: {}, body: { kind: 'none' } },
  { route: 'model metadata', method: 'GET', path: '/v2/models/{model}', model: 'mlp', headers: {}, body: { kind: 'none' } },
  { route: 'model metadata (version)', method: 'GET', path: '/v2/models/{model}/versions/{version}', model: 'lookup', version: '1', headers: {}, body: { kind: 'none' } },
  { route: 'model ready', method: 'GET', path: '/v2/models/{model}/versions/{version}/ready', model: 'mlp', version: '1', headers: {}, body: { kind: 'none' } },
  { route: 'model config', method: 'GET', path: '/v2/models/{model}/config', model: 'mlp', headers: {}, body: { kind: 'none' } },
  { route: 'model stats', method: 'GET', path: '/v2/models/{model}/versions/{version}/stats', model: 'mlp', version: '1', headers: {}, body: { kind: 'none' } },
  { route: 'all stats', method: 'GET', path: '/v2/models/stats', headers: {}, body: { kind: 'none' } },
  { route: 'v1 model ready', method: 'GET', path: '/v1/models/{model}', model: 'echo', headers: {}, body: { kind: 'none' } },
  { route: 'v1 root', method: 'GET', path: '/', headers: {}, body: { kind: 'none' } },
  { route: 'v1 model list', method: 'GET', path: '/v1/models', headers: {}, body: { kind: 'none' } },
  { route: 'metrics', method: 'GET', path: '/metrics', headers: {}, body: { kind: 'none' } },
  { route: 'trace setting', method: 'POST', path: '/v2/trace/setting', headers: { ...JSON_CT, [ADMIN.header]: ADMIN.value }, body: json({ trace_level: ['OFF'], trace_rate: '1' }) },
  { route: 'model trace setting', method: 'POST', path: '/v2/models/{model}/trace/setting', model: 'mlp', headers: { ...JSON_CT, [ADMIN.header]: ADMIN.value }, body: json({ trace_count: '-1', trace_rate: null }) },
  { route: 'logging', method: 'POST', path: '/v2/logging', headers: { ...JSON_CT, [ADMIN.header]: ADMIN.value }, body: json({ log_info: false, log_warning: false, log_error: false, log_verbose_level: 0, log_format: 'ISO8601' }) },
  { route: 'logging get', method: 'GET', path: '/v2/logging', headers: { [ADMIN.header]: ADMIN.value }, body: { kind: 'none' } },
  { route: 'shm register', method: 'POST', path: '/v2/systemsharedmemory/region/{model}/register', model: 'fuzz-region', headers: JSON_CT, body: json({ key: '/kinfer-fuzz', offset: 0, byte_size: 64 }) },
  { route: 'shm status', method: 'GET', path: '/v2/systemsharedmemory/status', headers: {}, body: { kind: 'none' } },
  { route: 'shm unregister', method: 'POST', path: '/v2/systemsharedmemory/region/{model}/unregister', model: 'fuzz-region', headers: JSON_CT, body: json({}) },
  {
    route: 'v2 infer shm',
    method: 'POST',
    path: '/v2/models/{model}/infer',
    model: 'mlp',
    headers: JSON_CT,
    body: json({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: 'in', shared_memory_byte_size: 32 } }], outputs: [{ name: 'y', parameters: { shared_memory_region: 'out', shared_memory_byte_size: 24, shared_memory_offset: 8 } }] }),
  },
  { route: 'hardware', method: 'POST', path: '/v2/hardware', headers: JSON_CT, body: json({ name: 'fpga', num: 1 }) },
];

// ---------------------------------------------------------------------------------------------
// Mutations. Each says when it applies and changes the draft in place.

class Rand {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = rng(seed);
  }
  float(): number {
    return this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** Model configs (JSON) for the `config` load parameter: malformed, refused, or asking for more than a load can give. */
const CONFIGS: unknown[] = [
  '{',
  '{}',
  '[]',
  'null',
  'x'.repeat(1000),
  5,
  '{"platform":"onnxruntime_onnx"}',
  '{"platform":"ensemble"}',
  '{"platform":"echo","max_batch_size":-1}',
  '{"platform":"echo","dynamic_batching":{"max_queue_delay_microseconds":-5}}',
  '{"platform":"echo","version_policy":{"specific":{"versions":[]}}}',
  '{"platform":"echo","input":[{"name":"a","data_type":"TYPE_X","dims":[-2]}]}',
  '{"platform":"echo","input":[{"name":"a","data_type":"TYPE_FP32","dims":[1000000000,1000000000]}]}',
  '{"platform":"echo","instance_group":[{"count":1e9}]}',
  '{"platform":"echo","max_batch_size":1000000000,"dynamic_batching":{"preferred_batch_size":[1000000000]}}',
  '{"platform":"echo","max_batch_size":8,"dynamic_batching":{"priority_levels":1000000000}}',
  '{"platform":"echo","max_batch_size":8,"sequence_batching":{"oldest":{"max_candidate_sequences":1000000000}}}',
  '{"platform":"echo","model_warmup":[{"name":"w","count":1000000000,"inputs":{"a":{"data_type":"TYPE_FP32","dims":[1],"zero_data":true}}}]}',
  '{"platform":"echo","model_warmup":[{"name":"w","inputs":{"a":{"data_type":"TYPE_FP32","dims":[1e9],"zero_data":true}}}]}',
  '{"platform":"echo","model_warmup":[{"name":"w","inputs":{"s":{"data_type":"TYPE_STRING","dims":[100000000],"zero_data":true}}}]}',
];
/** Values a field should not take; BY_KEY adds ones aimed at the field of that name. */
const ODD: unknown[] = [null, true, false, 0, -1, 1.5, -0.5, 2 ** 31, 2 ** 53, 2 ** 64, 1e308, -1e308, 5e-324, '', 'x', 'NaN', 'Infinity', '1e3', '0x10', '\u0000', '\ud800', '💥', [], [null], [[]], {}, { a: 1 }, ['a', 1, true]];
const SHAPES: unknown[] = [[], [-1], [0], [0, 4], [1e9, 1e9], [2 ** 53], [2 ** 53, 2], [2 ** 31, 2 ** 31, 2 ** 31], [1.5], ['2'], [2, -4], [null], [4, 2], [8], [1, 2, 4], Array(40).fill(1), [2 ** 32 + 2, 4], [1e308]];
const BY_KEY: Record<string, unknown[]> = {
  shape: SHAPES,
  dims: SHAPES,
  datatype: ['FP32', 'fp32', 'FLOAT', 'BF16', 'STRING', 'INT128', 'BYTES', 'BOOL', 'UINT64', 'INT64', 'FP16', 'INT8', 'UINT8', 'FP64', ' FP32'],
  data: [[], [1], ['a'], [[1, 2], [3]], [true], [null], ['NaN', 'Infinity', '-Infinity', 'nan'], [2 ** 64], [{ b64: 'AA==' }], [[[[[[[[1]]]]]]]], 'abc', 5, {}, Array(8).fill('1e400'), Array(8).fill(-1), Array(8).fill(256), Array(8).fill('18446744073709551616'), [[1, 2, 3, 4], [5, 6, 7]]],
  name: ['', 'X', 'y', 'x', 'nope', '../x', ' x', 'a'.repeat(10_000)],
  id: ['', 'x'.repeat(100_000), '"€\u0000', 5, null, {}],
  binary_data_size: [-1, 0, 1, 3, 31, 33, 2 ** 32, 2 ** 53, 1e308, 1.5, '32', true],
  binary_data: ['true', 1, 0, {}],
  binary_data_output: ['true', 1, [true]],
  classification: [0, -1, 1, 3, 100, 2 ** 31, 2 ** 53, 1.5, '2', true],
  timeout: [0, -1, 1, 1.5, 2 ** 53, 1e308, '1000', true],
  priority: [0, 1, 2, 3, -1, 1.5, 2 ** 31, '1', true],
  sequence_id: [0, 1, -1, 2 ** 64, '7', 'abc', 1.5, true],
  sequence_start: [true, false, 1, 'true'],
  sequence_end: [true, false, 1, 'false'],
  shared_memory_region: ['nope', '', 5, 'in', 'out'],
  shared_memory_byte_size: [0, -1, 8, 32, 2 ** 53, 1e308, 1.5, '32'],
  shared_memory_offset: [0, -1, 8, 2 ** 53, 1.5, '8', 200],
  key: ['', '/', '/kinfer-fuzz', '/nope', '/..', '/a/b', 'kinfer-fuzz', '/kinfer-fuzz\u0000', '/' + 'a'.repeat(300)],
  offset: [0, -1, 1.5, 2 ** 53, 255, 256, 1e308],
  byte_size: [0, -1, 1.5, 256, 257, 2 ** 53, 1e308],
  config: CONFIGS,
  storage_uri: ['', 'nosuchscheme://x', 'file:///nonexistent-kinfer-fuzz', 'relative/path', 5],
  batch_size: [0, -1, 1e9, 1.5, 'x'],
  threads: [0, -1, 1e6, 1.5, 'x'],
  ready: [1, 'true', null, []],
  unload_dependents: ['true', 1, null],
  log_info: ['yes', 1, null],
  log_verbose_level: [-1, 1.5, 1e9, '1', 2],
  log_format: ['json', '', 1],
  log_file: ['/tmp/x', '', 1],
  trace_level: [['TENSORS'], ['TIMESTAMPS'], 'OFF', [], [1], null],
  trace_rate: ['0', '-1', 'x', 1, '1e3', null],
  trace_count: ['-2', 'x', '99999999999999999999', null],
  log_frequency: ['1', '-1', 'x'],
  trace_file: ['/tmp/x', ''],
  instances: [[], [[]], [[1, 2, 3]], [[1, 2, 3, 4], [1, 2]], [{}], [{ x: [1, 2, 3, 4] }], 'x', [[[[[1]]]]]],
  inputs: [[], {}, { x: [[1, 2, 3, 4]] }, { nope: [1] }, 'x', [[1, 2, 3, 4], [1]]],
  signature_name: ['', 'predict', 5],
  b64: ['!!!', '', 'AA', 'A', 5],
  text_input: [5, [], {}, null],
  specversion: ['0.3', '2.0', '', 1],
  time: ['yesterday', '2020-13-45T99:99:99Z', 5],
  source: ['', '::', 'http://[::1', 5],
  datacontenttype: ['text/plain', 'application/octet-stream', 'application/json; charset=utf-16', '', 5],
  data_base64: ['!!!', 'A', '', 5, null],
  inferenceheadercontentlength: [-1, 0, 1e9, 1.5, '12', 2 ** 31],
  subject: ['nope', '', 'mlp', 'echo'],
  model: ['nope', '', '../x', 'echo', 5],
  num: [-1, 0, 1.5, 1e9, '1'],
};
/** Keys a mutation may add or rename to. */
const ODD_KEYS = ['', '__proto__', 'constructor', 'toString', 'x'.repeat(5_000), 'Inputs', 'data', 'shape', 'parameters', 'file:../x', 'file:/etc/x', 'file:', 'file:1/../../x', 'file:1//x', 'file:1/./x', 'file:1', 'file:1/x\u0000', 'file:1/model.onnx', 'config', 'storage_uri', 'outputs', 'binary_data_size', 'data_base64', 'data', 'id'];
const PARAM_KEYS = ['binary_data_size', 'binary_data', 'binary_data_output', 'classification', 'timeout', 'priority', 'sequence_id', 'sequence_start', 'sequence_end', 'shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset', 'headers', 'config', '__proto__'];

const oddFor = (key: string | number | undefined, r: Rand): unknown => {
  const aimed = typeof key === 'string' ? BY_KEY[key] : undefined;
  return structuredClone(aimed && r.chance(0.75) ? r.pick(aimed) : r.pick(ODD));
};

/** Sets an own property, `__proto__` included (which JSON.stringify then writes as a key). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

type Container = Record<string, unknown> | unknown[];
interface Node {
  parent: Container;
  key: string | number;
}

/** Every value below the root, as (parent, key). */
function nodes(root: unknown): Node[] {
  const out: Node[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 12 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      // A long data array contributes a few elements, not thousands.
      for (let i = 0; i < Math.min(v.length, 16); i++) {
        out.push({ parent: v, key: i });
        walk(v[i], depth + 1);
      }
    } else {
      for (const k of Object.keys(v)) {
        out.push({ parent: v as Record<string, unknown>, key: k });
        walk((v as Record<string, unknown>)[k], depth + 1);
      }
    }
  };
  walk(root, 0);
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const objects = (root: unknown): Record<string, unknown>[] => {
  const all = nodes(root).map((n) => (n.parent as Record<string | number, unknown>)[n.key]);
  return [root, ...all].filter(isObject);
};

/** The JSON value a JSON mutation works on: the body, or a binary body's header. */
function jsonRoot(d: Draft): { get: () => unknown; set: (v: unknown) => void } | undefined {
  const b = d.body;
  if (b.kind === 'json') return { get: () => b.value, set: (v) => (b.value = v) };
  if (b.kind === 'binary' && b.header !== undefined) return { get: () => b.header, set: (v) => (b.header = v) };
  return undefined;
}

const deep = (depth: number, r: Rand): string => `<deep:${r.chance(0.5) ? '[' : '{'}:${depth}>`;

interface Mutation {
  name: string;
  applies: (d: Draft) => boolean;
  apply: (d: Draft, r: Rand) => void;
}

const hasJson = (d: Draft) => jsonRoot(d) !== undefined;
const hasBody = (d: Draft) => d.body.kind !== 'none';
const isBinary = (d: Draft) => d.body.kind === 'binary';
/** A node of the JSON body; mostly one whose key the tables aim values at (`BY_KEY`). */
const oneNode = (d: Draft, r: Rand): Node | undefined => {
  const all = nodes(jsonRoot(d)!.get());
  const aimed = all.filter((n) => typeof n.key === 'string' && Object.hasOwn(BY_KEY, n.key));
  const from = aimed.length && r.chance(0.7) ? aimed : all;
  return from.length ? r.pick(from) : undefined;
};
const setNode = (n: Node, v: unknown) => {
  if (Array.isArray(n.parent)) n.parent[n.key as number] = v;
  else setOwn(n.parent, n.key as string, v);
};

const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'application/octet-stream', 'application/cloudevents+json', 'application/cloudevents-batch+json', 'APPLICATION/CLOUDEVENTS+JSON; charset=utf-8', '', ';;;', 'application/json, text/plain', '*/*'];
const HEADER_LENGTHS = ['-1', 'abc', '0', '', '1e3', '0x10', ' 5', '+5', '5.5', '18446744073709551616', '9007199254740993', 'Infinity', 'NaN'];
const ODD_NAMES = ['', '..', '.', '../x', '..%2Fx', '%2e%2e', 'x'.repeat(5_000), '模型', '%00', '%ff', '%', 'mlp%2Fversions', 'MLP', 'mlp ', ' mlp', 'a:b', 'mlp:predict', 'stats', '-x', '_x', 'ready', 'echo.', '%E2%82%AC', 'nope', 'spare', '\u00e9', 'in'];
const ODD_VERSIONS = ['0', '-1', 'abc', '1e3', '1.0', '01', '99999999999999999999999', String(2 ** 53), '', ' 1', '%31', '1%00', '..', '2', 'latest'];
const CE_VALUES: Record<string, string[]> = {
  'ce-specversion': ['1.0', '0.3', '2.0', '', '"1.0"'],
  'ce-id': ['', 'x'.repeat(10_000), '%zz', '%C0%AF', '%E2%82', '"unterminated', '"a"', '%'],
  'ce-source': ['', '::not a uri', '%', 'http://[::1', '%FF'],
  'ce-type': ['', '%00'],
  'ce-time': ['yesterday', '2020-13-45T99:99:99Z', '', '2020-01-01T00:00:00Z'],
  'ce-model': ['nope', '', '../x', 'echo', 'mlp', '%2e%2e', 'fixed'],
  'ce-subject': ['nope', 'mlp', '', 'x'.repeat(5_000)],
  'ce-datacontenttype': ['text/plain', 'application/json'],
  'ce-dataschema': ['::', ''],
  'ce-inferenceheadercontentlength': ['-1', 'x', '0', '99'],
  'ce-traceparent': ['junk', '00-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01'],
  'ce-Foo_Bar': ['x'],
  'ce-': ['x'],
};
const OTHER_HEADERS: Record<string, string[]> = {
  'x-request-id': ['', 'x'.repeat(10_000), '\u00ff\u00fe', 'a"b\\'],
  traceparent: ['junk', '00-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01', '00-zz-zz-zz', 'ff-' + 'a'.repeat(32) + '-' + 'b'.repeat(16) + '-01'],
  tracestate: ['=,=,=', 'a'.repeat(1000)],
  'accept-encoding': ['gzip;q=abc', '*;q=0', 'br', 'gzip;q=1e400', 'deflate, gzip;q=0.5', ','],
  accept: ['text/html', '*/*;q=0'],
  'inference-header-content-length': HEADER_LENGTHS,
  [ADMIN.header]: ['', 'fuzz-secre', 'fuzz-secret ', 'FUZZ-SECRET', '\u00ff'.repeat(11)],
  'cache-control': ['no-transform'],
  'content-encoding': ['gzip', 'deflate', 'br', 'gzip, gzip', 'identity', 'GZIP', 'x-gzip', ''],
};
const GARBAGE = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x00]];

/** The mutations by what they change; a case picks a group by its weight, then one of its applicable mutations. */
const MUTATIONS: Record<'json' | 'binary' | 'bytes' | 'headers' | 'path', { weight: number; list: Mutation[] }> = {
  json: { weight: 5, list: [] },
  binary: { weight: 2, list: [] },
  bytes: { weight: 1.5, list: [] },
  headers: { weight: 1.5, list: [] },
  path: { weight: 1, list: [] },
};

MUTATIONS.json.list = [
  // Listed twice: picked twice as often.
  ...Array.from({ length: 2 }, (): Mutation => ({ name: 'set a field to an odd value', applies: hasJson, apply: (d, r) => { const n = oneNode(d, r); if (n) setNode(n, oddFor(n.key, r)); } })),
  { name: 'delete a field', applies: hasJson, apply: (d, r) => { const n = oneNode(d, r); if (!n) return; if (Array.isArray(n.parent)) n.parent.splice(n.key as number, 1); else delete n.parent[n.key as string]; } },
  { name: 'add a field', applies: hasJson, apply: (d, r) => { const os = objects(jsonRoot(d)!.get()); if (os.length) { const key = r.chance(0.5) ? r.pick(Object.keys(BY_KEY)) : r.pick(ODD_KEYS); setOwn(r.pick(os), key, oddFor(key, r)); } } },
  {
    name: 'rename a key',
    applies: hasJson,
    apply: (d, r) => {
      const os = objects(jsonRoot(d)!.get()).filter((o) => Object.keys(o).length > 0);
      if (!os.length) return;
      const o = r.pick(os);
      const from = r.pick(Object.keys(o));
      const value = o[from];
      delete o[from];
      setOwn(o, r.pick(ODD_KEYS), value);
    },
  },
  {
    name: 'add a parameter',
    applies: hasJson,
    apply: (d, r) => {
      const os = objects(jsonRoot(d)!.get());
      if (!os.length) return;
      const o = r.pick(os);
      const params = o.parameters && typeof o.parameters === 'object' && !Array.isArray(o.parameters) ? (o.parameters as Record<string, unknown>) : (o.parameters = {}) as Record<string, unknown>;
      const key = r.pick(PARAM_KEYS);
      setOwn(params, key, oddFor(key, r));
    },
  },
  { name: 'wrap a value', applies: hasJson, apply: (d, r) => { const n = oneNode(d, r); if (n) setNode(n, r.chance(0.5) ? [(n.parent as Record<string | number, unknown>)[n.key]] : { value: (n.parent as Record<string | number, unknown>)[n.key] }); } },
  // 65 levels is past the decoders' limit on nesting; 10,000 past what a recursive walk of the value survives.
  { name: 'nest deeply', applies: hasJson, apply: (d, r) => { const n = oneNode(d, r); const v = deep(r.pick([65, 10_000, 100_000]), r); if (n) setNode(n, v); else jsonRoot(d)!.set(v); } },
  { name: 'long string', applies: hasJson, apply: (d, r) => { const n = oneNode(d, r); if (n) setNode(n, r.pick(['x', '\ud800', 'é', '\u0000', '"\\']).repeat(r.pick([1_000, 100_000, 300_000]))); } },
  { name: 'duplicate an element', applies: hasJson, apply: (d, r) => { const arrays = nodes(jsonRoot(d)!.get()).map((n) => (n.parent as Record<string | number, unknown>)[n.key]).filter((v): v is unknown[] => Array.isArray(v) && v.length > 0); if (arrays.length) { const a = r.pick(arrays); a.push(structuredClone(r.pick(a))); } } },
  { name: 'big data array', applies: hasJson, apply: (d, r) => { const os = objects(jsonRoot(d)!.get()).filter((o) => 'data' in o); if (os.length) r.pick(os).data = Array(r.pick([1_000, 60_000])).fill(r.pick([0, 'a', true, 1.5])); } },
  { name: 'odd shape', applies: hasJson, apply: (d, r) => { const os = objects(jsonRoot(d)!.get()).filter((o) => 'shape' in o); if (os.length) r.pick(os).shape = structuredClone(r.pick(SHAPES)); } },
  { name: 'odd root', applies: hasJson, apply: (d, r) => jsonRoot(d)!.set(r.pick([[], null, 'x', 1, [{}], { inputs: null }, true])) },
  {
    name: 'odd model config',
    applies: (d) => d.path.endsWith('/load') && isObject(jsonRoot(d)?.get()),
    apply: (d, r) => {
      const body = jsonRoot(d)!.get() as Record<string, unknown>;
      if (!isObject(body.parameters)) body.parameters = {};
      setOwn(body.parameters as Record<string, unknown>, 'config', r.pick(CONFIGS));
    },
  },
];

MUTATIONS.binary.list = [
  { name: 'header length', applies: isBinary, apply: (d, r) => { const b = d.body as Extract<Body, { kind: 'binary' }>; const real = utf8(stringify(b.header)).byteLength; const total = real + b.chunks.reduce((n, c) => n + c.byteLength, 0); b.headerLength = r.pick([...HEADER_LENGTHS, String(real - 1), String(real + 1), String(total), String(total + 1), String(2 ** 53)]); } },
  { name: 'no header length', applies: isBinary, apply: (d) => void ((d.body as Extract<Body, { kind: 'binary' }>).headerLength = null) },
  {
    name: 'change a chunk',
    applies: (d) => isBinary(d) && (d.body as Extract<Body, { kind: 'binary' }>).chunks.length > 0,
    apply: (d, r) => {
      const b = d.body as Extract<Body, { kind: 'binary' }>;
      const i = r.int(b.chunks.length);
      const c = b.chunks[i]!;
      const choice = r.int(5);
      if (choice === 0) b.chunks[i] = c.subarray(0, r.int(c.byteLength));
      else if (choice === 1) b.chunks[i] = Buffer.concat([c, new Uint8Array(1 + r.int(9))]);
      else if (choice === 2) b.chunks.splice(i, 1);
      else if (choice === 3) b.chunks.reverse();
      else b.chunks.push(new Uint8Array(r.pick([1, 3, 4, 8])));
    },
  },
  {
    name: 'BYTES length prefix',
    applies: (d) => isBinary(d) && (d.body as Extract<Body, { kind: 'binary' }>).chunks.length > 0,
    apply: (d, r) => {
      const b = d.body as Extract<Body, { kind: 'binary' }>;
      const c = Uint8Array.from(b.chunks[0]!);
      if (c.byteLength >= 4) new DataView(c.buffer).setUint32(4 * r.int(Math.floor(c.byteLength / 4)), r.pick([0xffffffff, 0x80000000, c.byteLength, c.byteLength - 3, 7]), true);
      b.chunks[0] = c;
    },
  },
];

MUTATIONS.bytes.list = [
  { name: 'truncate', applies: hasBody, apply: (d, r) => { const b = asBytes(d); d.body = { kind: 'bytes', bytes: b.subarray(0, r.int(b.byteLength)) }; } },
  { name: 'flip bytes', applies: hasBody, apply: (d, r) => { const b = Uint8Array.from(asBytes(d)); for (let k = 1 + r.int(4); k > 0 && b.byteLength; k--) b[r.int(b.byteLength)] = r.int(256); d.body = { kind: 'bytes', bytes: b }; } },
  { name: 'invalid UTF-8', applies: hasBody, apply: (d, r) => { const b = asBytes(d); const at = r.int(b.byteLength + 1); d.body = { kind: 'bytes', bytes: Buffer.concat([b.subarray(0, at), Uint8Array.from(r.pick(GARBAGE)), b.subarray(at)]) }; } },
  { name: 'empty body', applies: () => true, apply: (d) => void (d.body = { kind: 'bytes', bytes: new Uint8Array(0) }) },
  { name: 'append garbage', applies: hasBody, apply: (d, r) => { const b = asBytes(d); d.body = { kind: 'bytes', bytes: Buffer.concat([b, r.pick([utf8('}'), utf8(',{}'), utf8(' \n'), new Uint8Array(3), utf8('{"inputs":[]}')])]) }; } },
  { name: 'byte order mark', applies: hasBody, apply: (d) => void (d.body = { kind: 'bytes', bytes: Buffer.concat([Uint8Array.of(0xef, 0xbb, 0xbf), asBytes(d)]) }) },
  { name: 'UTF-16', applies: hasBody, apply: (d) => void (d.body = { kind: 'bytes', bytes: Buffer.from(Buffer.from(asBytes(d)).toString('latin1'), 'utf16le') }) },
  { name: 'random bytes', applies: () => true, apply: (d, r) => void (d.body = { kind: 'bytes', bytes: Uint8Array.from({ length: r.int(300) }, () => r.int(256)) }) },
  { name: 'over the JSON limit', applies: (d) => hasJson(d) && d.method === 'POST', apply: (d, r) => { const os = objects(jsonRoot(d)!.get()); if (os.length) setOwn(r.pick(os), 'pad', 'x'.repeat(MAX_JSON_BYTES + r.int(1000))); } },
  { name: 'over the body limit', applies: (d) => d.method === 'POST', apply: (d, r) => void (d.body = { kind: 'bytes', bytes: new Uint8Array(MAX_BODY_BYTES + 1 + r.int(1000)).fill(0x20) }) },
  { name: 'Content-Encoding, body not encoded', applies: hasBody, apply: (d, r) => void (d.headers['content-encoding'] = r.pick(OTHER_HEADERS['content-encoding']!)) },
  { name: 'gzip, truncated', applies: hasBody, apply: (d, r) => { const z = gzipSync(asBytes(d)); d.headers['content-encoding'] = 'gzip'; d.body = { kind: 'bytes', bytes: z.subarray(0, r.int(z.byteLength)) }; } },
  { name: 'gzip bomb', applies: () => true, apply: (d) => { d.headers['content-encoding'] = 'gzip'; d.body = { kind: 'bytes', bytes: gzipSync(new Uint8Array(MAX_BODY_BYTES * 4)) }; } },
  { name: 'gzip, whole', applies: hasBody, apply: (d) => { const z = gzipSync(asBytes(d)); d.headers['content-encoding'] = 'gzip'; d.body = { kind: 'bytes', bytes: z }; } },
];

MUTATIONS.headers.list = [
  { name: 'content type', applies: () => true, apply: (d, r) => void (d.headers['content-type'] = r.pick(CONTENT_TYPES)) },
  { name: 'CloudEvent headers', applies: () => true, apply: (d, r) => { if (r.chance(0.5)) Object.assign(d.headers, CE); const k = r.pick(Object.keys(CE_VALUES)); d.headers[k] = r.pick(CE_VALUES[k]!); } },
  { name: 'drop a header', applies: (d) => Object.keys(d.headers).length > 0, apply: (d, r) => void delete d.headers[r.pick(Object.keys(d.headers))] },
  { name: 'odd header', applies: () => true, apply: (d, r) => { const k = r.pick(Object.keys(OTHER_HEADERS)); d.headers[k] = r.pick(OTHER_HEADERS[k]!); } },
];

MUTATIONS.path.list = [
  { name: 'odd model name', applies: (d) => d.path.includes('{model}'), apply: (d, r) => void (d.model = r.pick(ODD_NAMES)) },
  { name: 'odd version', applies: (d) => d.path.includes('{model}'), apply: (d, r) => { if (!d.path.includes('{version}')) d.path = d.path.replace('{model}', '{model}/versions/{version}'); d.version = r.pick(ODD_VERSIONS); } },
  { name: 'extra path segment', applies: () => true, apply: (d, r) => void (d.path = r.chance(0.5) ? d.path + r.pick(['/', '/x', '/..', '//', '/infer', ':predict', '%2F', '?x=%zz', '#x']) : d.path.replace(/\/[^/]*$/, r.pick(['/', '/x', '//', '/%00']))) },
  { name: 'method', applies: () => true, apply: (d, r) => void (d.method = r.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'])) },
];

/** The request at seed index `i`: a valid one with one to three mutations. */
function caseAt(i: number): { draft: Draft; mutations: string[] } {
  const r = new Rand(SEED + i * 0x9e3779b1);
  let w = r.float() * VALID.reduce((sum, v) => sum + (v.weight ?? 1), 0);
  const draft = structuredClone(VALID.find((v) => (w -= v.weight ?? 1) < 0) ?? VALID[VALID.length - 1]!);
  const mutations: string[] = [];
  const count = 1 + (r.chance(0.35) ? 1 : 0) + (r.chance(0.15) ? 1 : 0);
  for (let k = 0; k < count; k++) {
    const groups = Object.values(MUTATIONS)
      .map((g) => ({ weight: g.weight, list: g.list.filter((m) => m.applies(draft)) }))
      .filter((g) => g.list.length > 0);
    let w = r.float() * groups.reduce((sum, g) => sum + g.weight, 0);
    const group = groups.find((g) => (w -= g.weight) < 0) ?? groups[groups.length - 1]!;
    const m = r.pick(group.list);
    m.apply(draft, r);
    mutations.push(m.name);
  }
  return { draft, mutations };
}

// ---------------------------------------------------------------------------------------------
// Sending and judging.

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(base: URL, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        method: req.method,
        path: req.path,
        // A body is always framed by its length: Node sends a GET's body unframed otherwise.
        headers: req.body ? { ...req.headers, 'content-length': String(req.body.byteLength) } : req.headers,
        agent,
        // A binary-mode CloudEvent reply carries the event's id (ce-inresponseto) and the v2 request id
        // (ce-requestid) as headers, so long ids make headers past Node's default 16 kB.
        maxHeaderSize: 2 * MAX_JSON_BYTES,
        signal: AbortSignal.timeout(REQUEST_BOUND_MS),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

function decoded(res: Res): Buffer {
  const coding = res.headers['content-encoding'];
  if (coding === 'gzip') return gunzipSync(res.body);
  if (coding === 'deflate') return inflateSync(res.body);
  return res.body;
}

/** Routes whose 503 is their documented answer, with a body that is not an error (README, The protocol). */
const READINESS = /^\/v2\/health\/(live|ready)$|^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/ready$/;

/** The 5xx answers that are not a client's mistake, and why (README, The protocol → Errors). */
const NOT_THE_CLIENTS_FAULT: { status: number; path?: RegExp; error?: RegExp; why: string }[] = [
  { status: 503, path: READINESS, why: 'a model is not ready (the spare between an unload and a load; any model the server does not serve)' },
  { status: 503, path: /^\/v1\/models\/[^/]+$/, error: /is not ready/, why: "KServe V1's ModelNotReady: the spare model while it loads or after a failed load" },
  { status: 504, error: /deadline/, why: "the request's own deadline (a `timeout` parameter of a few µs) passed in the queue: not computed" },
  { status: 503, error: /is shutting down; not accepting requests/, why: "the request reached the spare model's queue while an unload drained it" },
];

/** What is wrong with `res` as an answer to `req`, or undefined. */
function violation(req: Req, res: Res): string | undefined {
  const path = req.path.split(/[?#]/)[0]!;
  const excused = NOT_THE_CLIENTS_FAULT.some((e) => e.status === res.status && (!e.path || e.path.test(path)) && (!e.error || e.error.test(res.body.toString())));
  if (res.status >= 500 && !excused) return `status ${res.status}`;
  if (res.status < 400 || req.method === 'HEAD') return undefined;
  if (READINESS.test(path) && res.status === 503) return undefined;
  const type = String(res.headers['content-type'] ?? '');
  let text = decoded(res).toString('utf8');
  // generate_stream answers a failure after admission as one `data: {"error"}` event (Triton's).
  if (type.startsWith('text/event-stream')) {
    if (!text.startsWith('data: ')) return `an event-stream error without a data line`;
    text = text.slice('data: '.length).trim();
  } else if (!type.startsWith('application/json')) return `an error with content-type '${type}'`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `an error body that is not JSON`;
  }
  const error = (body as { error?: unknown } | null)?.error;
  if (typeof error !== 'string' || error === '') return `an error body without a string 'error'`;
  return undefined;
}

const excerpt = (b: Uint8Array | undefined) => {
  if (!b) return '(none)';
  const s = JSON.stringify(Buffer.from(b.subarray(0, 300)).toString('latin1'));
  return `${b.byteLength} bytes: ${s.length > 300 ? `${s.slice(0, 300)}…` : s}`;
};
const headersText = (h: Record<string, string>) => JSON.stringify(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.length > 120 ? `${v.slice(0, 120)}… (${v.length})` : v])));

function describeCase(i: number, route: string, mutations: string[], req: Req, what: string, res?: Res): string {
  const answer = res ? `\n  answer: ${res.status} ${excerpt(res.body)}` : '';
  return `seed ${SEED} index ${i} (caseAt(${i})), route '${route}' after [${mutations.join(', ')}]: ${what}\n  ${req.method} ${req.path.slice(0, 300)}\n  headers: ${headersText(req.headers)}\n  body: ${excerpt(req.body)}${answer}`;
}

// ---------------------------------------------------------------------------------------------

describe('malformed requests (seeded fuzz of the HTTP surface)', () => {
  let server: RunningServer;
  let base: URL;
  let repo: { dir: string; cleanup: () => Promise<void> };
  let shm: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  const processFaults: string[] = [];
  const onRejection = (reason: unknown) => processFaults.push(`unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`);
  const onException = (err: Error) => processFaults.push(`uncaught exception: ${err.stack ?? err.message}`);
  /** Error lines the server logged (5xx), to explain a failure. */
  const serverErrors: string[] = [];

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    repo = await tempDir('kinfer-fuzz-');
    shm = await tempDir('kinfer-fuzz-shm-');
    // 256 bytes: regions 'in' (the MLP's input at 0) and 'out' (from 128).
    const object = Buffer.alloc(256);
    Buffer.from(new Float32Array(X).buffer).copy(object, 0);
    await writeFile(join(shm.dir, 'kinfer-fuzz'), object);

    mlp = await writeMlpModel(join(repo.dir, 'mlp', '1'));
    await writeFile(join(repo.dir, 'mlp', 'labels.txt'), 'zero\none\ntwo\n');
    await writeFile(
      join(repo.dir, 'mlp', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 8\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" } ]\n' +
        'dynamic_batching { max_queue_delay_microseconds: 2000 priority_levels: 2 default_priority_level: 2 default_queue_policy { max_queue_size: 64 allow_timeout_override: true } }\n',
    );
    await writeFixedModel(join(repo.dir, 'fixed', '1'));
    await writeLookupModel(join(repo.dir, 'lookup', '1'));
    await writeDatatypeModel(join(repo.dir, 'strings', '1'), 'string');
    // Answered from the response cache when asked again.
    await writeFile(join(repo.dir, 'lookup', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 1000 }\nresponse_cache { enable: true }\n');
    // A one-step ensemble over the MLP.
    await mkdir(join(repo.dir, 'pipe'));
    await writeFile(
      join(repo.dir, 'pipe', 'config.pbtxt'),
      'platform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]\n' +
        'ensemble_scheduling { step [ { model_name: "mlp" input_map { key: "x" value: "X" } output_map { key: "y" value: "Y" } } ] }\n',
    );
    // A stateful model (the sequence batcher) whose idle sequences end after 200 ms, so those the fuzz leaves open free their slots.
    await writeAccumulatorModel(join(repo.dir, 'acc', '1'));
    await writeFile(
      join(repo.dir, 'acc', 'config.pbtxt'),
      'platform: "onnxruntime_onnx"\nmax_batch_size: 8\ninput [ { name: "INPUT" data_type: TYPE_FP32 dims: [ 2 ] } ]\n' +
        'sequence_batching {\n  max_sequence_idle_microseconds: 200000\n  direct { }\n' +
        '  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] }, { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] } ]\n' +
        '  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 2 ] initial_state { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } } ]\n}\n',
    );
    for (const name of ['echo', 'spare']) {
      await mkdir(join(repo.dir, name), { recursive: true });
      await writeFile(join(repo.dir, name, 'config.pbtxt'), 'platform: "echo"\n');
    }
    // The server's log lines at error level and above, kept to explain a 5xx; the rest dropped.
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        const line = chunk.toString();
        if (/"level":(50|60)/.test(line) && !line.includes('"event":"log_level"')) serverErrors.push(line.slice(0, 2000));
        done();
      },
    });
    server = await startTestServer({
      modelRepository: repo.dir,
      logger: pino({ level: 'error' }, sink),
      maxBodyBytes: MAX_BODY_BYTES,
      maxJsonBytes: MAX_JSON_BYTES,
      responseCacheBytes: 1024 * 1024,
      allowClientShm: true,
      sharedMemoryDir: shm.dir,
      httpRestrictions: parseRestrictions([`logging,trace:${ADMIN.header}=${ADMIN.value}`], '--http-restricted-api'),
    });
    base = new URL(server.url);
    for (const [name, offset, size] of [['in', 0, 32], ['out', 128, 128]] as const) {
      const res = await send(base, { method: 'POST', path: `/v2/systemsharedmemory/region/${name}/register`, headers: JSON_CT, body: utf8(JSON.stringify({ key: '/kinfer-fuzz', offset, byte_size: size })) });
      expect(res.status, res.body.toString()).toBe(200);
    }
  });

  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    agent.destroy();
    await server?.close();
    await repo?.cleanup();
    await shm?.cleanup();
  });

  /** The server answers health and a valid request exactly, and the log settings are back to quiet. */
  async function checkServing(after: string): Promise<void> {
    const ready = await send(base, { method: 'GET', path: '/v2/health/ready', headers: {} });
    expect(ready.status, `${after}: /v2/health/ready`).toBe(200);
    const res = await send(base, { method: 'POST', path: '/v2/models/mlp/infer', headers: JSON_CT, body: utf8(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: X }] })) });
    expect(res.status, `${after}: MLP infer: ${res.body.toString().slice(0, 500)}`).toBe(200);
    const y = (JSON.parse(res.body.toString()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    expect(y, `${after}: MLP answer`).toEqual(Array.from(mlpReference(mlp, new Float32Array(X))));
    const echo = await send(base, { method: 'POST', path: '/v2/models/echo/infer', headers: JSON_CT, body: utf8(JSON.stringify({ inputs: [{ name: 's', datatype: 'BYTES', shape: [2], data: ['é', 'x'] }, { name: 'n', datatype: 'INT64', shape: [1], data: ['-9223372036854775808'] }] })) });
    expect(echo.status, `${after}: echo`).toBe(200);
    expect(echo.body.toString(), `${after}: echo answer`).toBe('{"model_name":"echo","model_version":"1","outputs":[{"name":"s","datatype":"BYTES","shape":[2],"data":["é","x"]},{"name":"n","datatype":"INT64","shape":[1],"data":[-9223372036854775808]}]}');
    // Mutated logging requests may have turned logs on; quiet again (also the process-wide logger).
    const quiet = await send(base, { method: 'POST', path: '/v2/logging', headers: { ...JSON_CT, [ADMIN.header]: ADMIN.value }, body: utf8('{"log_info":false,"log_warning":false,"log_error":true,"log_verbose_level":0}') });
    expect(quiet.status, `${after}: logging reset`).toBe(200);
    expect(processFaults, after).toEqual([]);
  }

  it('answers every valid request of the table with 2xx (the points the mutations start from)', async () => {
    for (const draft of VALID) {
      const req = toRequest(structuredClone(draft));
      const res = await send(base, req);
      const ok = draft.route === 'hardware' ? res.status === 404 : res.status >= 200 && res.status < 300;
      expect(ok, `${draft.route}: ${res.status} ${res.body.toString().slice(0, 500)}`).toBe(true);
      expect(violation(req, res), draft.route).toBeUndefined();
    }
    await checkServing('the valid table');
  });

  it(`answers ${CASES} mutated requests with an error body and a client status, within ${REQUEST_BOUND_MS / 1000} s each, and keeps serving`, async () => {
    const started = Date.now();
    const failures: string[] = [];
    const heapBefore = process.memoryUsage().heapUsed;
    let ran = 0;
    for (let first = 0; first < CASES && Date.now() - started < WALL_MS; first += BATCH) {
      let next = first;
      const end = Math.min(first + BATCH, CASES);
      const worker = async () => {
        for (let i = next++; i < end; i = next++) {
          const { draft, mutations } = caseAt(i);
          const req = toRequest(draft);
          let res: Res;
          try {
            res = await send(base, req);
          } catch (err) {
            const e = err as Error & { code?: string };
            // Node's own client refused to send it (a header value it cannot write): nothing reached the server.
            if (e.code === 'ERR_INVALID_CHAR' || e.code === 'ERR_INVALID_HTTP_TOKEN' || e.code === 'ERR_UNESCAPED_CHARACTERS') continue;
            failures.push(describeCase(i, draft.route, mutations, req, e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${REQUEST_BOUND_MS} ms` : `connection failed: ${e.code ?? ''} ${e.message}`));
            continue;
          }
          ran++;
          const wrong = violation(req, res);
          if (wrong) failures.push(describeCase(i, draft.route, mutations, req, wrong, res));
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      expect(failures, `${failures.join('\n\n')}\n\nserver error log:\n${serverErrors.slice(0, 10).join('')}`).toEqual([]);
      await checkServing(`after cases ${first}..${end - 1}`);
    }
    expect(ran, `cases run in ${WALL_MS} ms`).toBeGreaterThanOrEqual(MIN_CASES);
    // Loose: the process (test and server) may hold caches, but not a copy of every request.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 * 1024 * 1024);
  }, 60_000);

  it('survives requests Node\'s HTTP parser or the body reader see broken (raw sockets)', async () => {
    const head = (path: string, extra: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;
    const valid = JSON.stringify(mlpJson());
    const raw: { name: string; bytes: string; halfClose?: boolean; status?: number }[] = [
      { name: 'headers past Node\'s 16 KiB', bytes: `GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431 },
      { name: 'a request line Node refuses', bytes: 'FROB /v2 HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
      { name: 'Content-Length past the body, then half-close', bytes: head('/v2/models/mlp/infer', 'Content-Length: 1000\r\n') + valid.slice(0, 50), halfClose: true },
      { name: 'Content-Length past the body, then close', bytes: head('/v2/models/mlp/infer', 'Content-Length: 1000\r\n') + valid.slice(0, 50) },
      { name: 'chunked, broken chunk size', bytes: head('/v2/models/mlp/infer', 'Transfer-Encoding: chunked\r\n') + 'zz\r\nabc\r\n0\r\n\r\n' },
      { name: 'chunked, cut off', bytes: head('/v2/models/mlp/infer', 'Transfer-Encoding: chunked\r\n') + '10\r\n{"inputs"', halfClose: true },
      { name: 'both Content-Length and chunked', bytes: head('/v2/models/mlp/infer', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n') + '0\r\n\r\n' },
      { name: 'negative Content-Length', bytes: head('/v2/models/mlp/infer', 'Content-Length: -1\r\n') },
      { name: 'unknown method', bytes: 'FROB /v2 HTTP/1.1\r\nHost: x\r\n\r\n' },
      { name: 'garbage request line', bytes: '\x00\x01\x02 garbage\r\n\r\n' },
      { name: 'header without a colon', bytes: 'GET /v2 HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n' },
      { name: 'binary header length past a cut body', bytes: head('/v2/models/mlp/infer', 'Inference-Header-Content-Length: 40\r\nContent-Length: 80\r\n') + '{"inputs":', halfClose: true },
      { name: 'gzip body cut off', bytes: head('/v2/models/mlp/infer', 'Content-Encoding: gzip\r\nContent-Length: 500\r\n') + gzipSync(valid).subarray(0, 20).toString('latin1'), halfClose: true },
      { name: 'HTTP/1.0 without a length', bytes: `POST /v2/models/mlp/infer HTTP/1.0\r\nContent-Type: application/json\r\n\r\n${valid}`, halfClose: true },
    ];
    for (const c of raw) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(base.port), base.hostname);
        const chunks: Buffer[] = [];
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error(`${c.name}: the connection was neither answered nor closed within ${REQUEST_BOUND_MS} ms`));
        }, REQUEST_BOUND_MS);
        socket.on('data', (d: Buffer) => chunks.push(d));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks).toString('latin1'));
        });
        socket.write(Buffer.from(c.bytes, 'latin1'), () => {
          if (c.halfClose) socket.end();
          else setTimeout(() => socket.destroy(), 50);
        });
      });
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
      // No answer (the client left) or a client error, with the v2 error body (Node's parser's refusals too).
      expect(status < 500, `${c.name}: ${answer.slice(0, 300)}`).toBe(true);
      if (c.status !== undefined) expect(status, `${c.name}: ${answer.slice(0, 300)}`).toBe(c.status);
      if (status >= 400) {
        const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
        expect(typeof (JSON.parse(body) as { error?: unknown }).error, `${c.name}: ${answer.slice(0, 300)}`).toBe('string');
      }
    }
    await checkServing('the raw-socket cases');
  });
});
