/**
 * @module protocol/cloudevent.test
 * The CloudEvents adapter on its own: the v2 request is handed on as the bytes
 * received (binary mode: the body; structured mode: the raw text of `data`,
 * which keeps INT64 digits JSON numbers would round), the envelope scan on
 * awkward but valid JSON, errors for broken events, and the reply in each mode.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument, PayloadTooLarge } from '../core/errors.js';
import { dataSpan, decodeCloudEvent, decodeHeaderValue, encodeCloudEventReply, encodeHeaderValue } from './cloudevent.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const STRUCTURED = { 'content-type': 'application/cloudevents+json' };
const attrs = { specversion: '1.0', id: 'e1', source: '/test', type: 't' };

/** What `fn` throws, or undefined. */
function errorOf(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

describe('decodeCloudEvent', () => {
  it('binary mode: the body is the v2 request, as received (no copy)', () => {
    const body = enc('{"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1.5]}]}');
    const ev = decodeCloudEvent(
      { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/s', 'ce-type': 't', 'ce-model': 'echo', 'ce-subject': 'sub' },
      body,
    );
    expect(ev).toMatchObject({ mode: 'binary', id: 'e1', source: '/s', type: 't', model: 'echo', subject: 'sub', contentType: 'application/json' });
    expect(ev.body).toBe(body);
  });

  it('binary mode: header values unquoted and percent-decoded (HTTP binding 3.1.3.2); invalid UTF-8 refused', () => {
    const base = { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/s', 'ce-type': 't' };
    const ev = decodeCloudEvent({ ...base, 'ce-subject': 'Euro%20%e2%82%ac%20%F0%9F%98%80', 'ce-model': '"ec\\"ho"' }, enc('{}'));
    expect(ev).toMatchObject({ subject: 'Euro \u20ac \u{1F600}', model: 'ec"ho' });
    for (const [value, msg] of [
      ['%C0%A0', /'ce-subject' is not valid percent-encoded UTF-8/], // overlong U+0020
      ['100%', /not valid percent-encoded/],
      ['"open', /'ce-subject' is not a valid quoted string/],
      ['"a"b"', /not a valid quoted string/],
    ] as const) {
      expect(() => decodeCloudEvent({ ...base, 'ce-subject': value }, enc('{}')), value).toThrow(msg);
    }
    expect(() => decodeCloudEvent({ ...base, 'ce-time': 'yesterday' }, enc('{}'))).toThrow(/time must match format "date-time"/);
  });

  it('header values: encoded as the binding requires and decoded back unchanged', () => {
    expect(encodeHeaderValue('Euro \u20ac \u{1F600}')).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
    expect(encodeHeaderValue('a"b%c\n\x7f')).toBe('a%22b%25c%0A%7F');
    expect(encodeHeaderValue('/models/echo?x=1&y=[2]')).toBe('/models/echo?x=1&y=[2]');
    for (const v of ['', 'plain', '日本 語', '%41', '"quoted"', 'tab\there', '\u{10FFFF}x']) {
      const header = encodeHeaderValue(v);
      expect(header, v).toMatch(/^[\x21-\x7e]*$/);
      expect(decodeHeaderValue('ce-x', header), v).toBe(v);
    }
  });

  it('structured mode: data is sliced out of the envelope as sent, INT64 digits intact', () => {
    const data = '{"inputs":[{"name":"big","datatype":"INT64","shape":[2],"data":[9007199254740993,-9223372036854775808]}]}';
    const text = `{"specversion":"1.0","id":"e2","source":"/s","type":"t","model":"echo","data":${data}}`;
    const ev = decodeCloudEvent(STRUCTURED, enc(text));
    expect(ev).toMatchObject({ mode: 'structured', id: 'e2', model: 'echo', contentType: 'application/json' });
    expect(dec(ev.body)).toBe(data);
  });

  it('finds data past strings with braces, quotes and escapes, in any position, and the last of repeated keys', () => {
    const data = '{"inputs":[{"name":"x\\"}]{","datatype":"BYTES","shape":[1],"data":["a\\\\","]}"]}]}';
    const cases = [
      `{"data":${data},"specversion":"1.0","id":"e3","source":"/s","type":"t"}`,
      ` \n{ "specversion" : "1.0", "id":"e3", "source":"/s","type":"t", "note":"} \\"data\\": [", "data" :\t${data} \r\n} \n`,
      `{"specversion":"1.0","id":"e3","source":"/s","type":"t","data":{"old":true},"data":${data}}`,
      `{"specversion":"1.0","id":"e3","source":"/s","type":"t","d\\u0061ta":${data}}`,
      `{"specversion":"1.0","id":"e3","source":"/s","type":"t","n":null,"b":true,"x":-1.5e3,"data":${data}}`,
    ];
    for (const text of cases) {
      const ev = decodeCloudEvent(STRUCTURED, enc(text));
      expect(dec(ev.body), text).toBe(data);
      expect(ev.id, text).toBe('e3');
    }
  });

  it('refuses attribute values outside the JSON format (objects, arrays, non-int32 numbers) and data with data_base64', () => {
    const head = '"specversion":"1.0","id":"e4","source":"/s","type":"t"';
    const cases: [string, RegExp][] = [
      [`{${head},"model":{"n":"a"},"data":{}}`, /attribute 'model' must be a string, boolean or 32-bit integer, got an object/],
      [`{${head},"tags":["a"],"data":{}}`, /attribute 'tags' must be .* got an array/],
      [`{${head},"weight":1.5,"data":{}}`, /attribute 'weight' must be .* got 1\.5/],
      [`{${head},"big":4294967296,"data":{}}`, /attribute 'big' must be .* got 4294967296/],
      [`{${head},"data":{},"data_base64":"AAAA"}`, /has both 'data' and 'data_base64'/],
    ];
    for (const [text, msg] of cases) {
      const err = errorOf(() => decodeCloudEvent(STRUCTURED, enc(text)));
      expect(err, text).toBeInstanceOf(InvalidArgument);
      expect(err!.message, text).toMatch(msg);
    }
  });

  it("refuses attributes (the JSON outside 'data') over maxJsonBytes with PayloadTooLarge, before parsing them", () => {
    const data = '{"inputs":[]}';
    const text = (pad: string) => `{"specversion":"1.0","id":"e5","source":"/s","type":"t","x":"${pad}","data":${data}}`;
    const small = text('');
    const limit = small.length - data.length + 10; // the envelope fits; data does not count
    expect(decodeCloudEvent(STRUCTURED, enc(small), { maxJsonBytes: limit }).id).toBe('e5');
    const err = errorOf(() => decodeCloudEvent(STRUCTURED, enc(text('y'.repeat(20))), { maxJsonBytes: limit }));
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect(err!.message).toMatch(/attributes are \d+ bytes of JSON, over the limit of \d+ \(KINFER_MAX_JSON_BYTES\)/);
  });

  it('takes multi-byte UTF-8 around and inside data by bytes', () => {
    const data = '{"id":"réq-✓","inputs":[{"name":"ü","datatype":"BYTES","shape":[1],"data":["日本"]}]}';
    const text = `{"specversion":"1.0","id":"é1","source":"/s","subject":"ß","type":"t","data":${data}}`;
    const ev = decodeCloudEvent(STRUCTURED, enc(text));
    expect(dec(ev.body)).toBe(data);
    expect(ev).toMatchObject({ id: 'é1', subject: 'ß' });
  });

  it('data as a JSON string is the request text; data_base64 the request bytes', () => {
    const req = '{"inputs":[]}';
    const asString = decodeCloudEvent(STRUCTURED, enc(JSON.stringify({ ...attrs, data: req })));
    expect(dec(asString.body)).toBe(req);
    const b64 = decodeCloudEvent(
      STRUCTURED,
      enc(JSON.stringify({ ...attrs, datacontenttype: 'application/octet-stream', data_base64: Buffer.from('hdr+bytes').toString('base64'), inferenceheadercontentlength: 3 })),
    );
    expect(Buffer.from(b64.body).toString()).toBe('hdr+bytes');
    expect(b64).toMatchObject({ contentType: 'application/octet-stream', inferenceHeaderContentLength: '3' });
  });

  it('refuses broken events with a message naming the problem', () => {
    const bad: [string, RegExp][] = [
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","data":}', /not valid JSON/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"a":1}', /not valid JSON/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"a":1}} x', /not valid JSON/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","data":"unterminated}', /not valid JSON/],
      ['[1,2]', /must be a JSON object/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t"}', /no 'data' or 'data_base64'/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","data":null}', /no 'data' or 'data_base64'/],
      ['{"specversion":"1.0","id":"e","type":"t","data":{}}', /'source'/],
      ['{"specversion":"0.3","id":"e","source":"/s","type":"t","data":{}}', /only 1.0/],
      // The SDK's schema: formats, attribute names.
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","time":"yesterday","data":{}}', /invalid CloudEvent: time must match format "date-time"/],
      ['{"specversion":"1.0","id":"e","source":"a b","type":"t","data":{}}', /invalid CloudEvent: source must match format "uri-reference"/],
      ['{"specversion":"1.0","id":"e","source":"/s","type":"t","my-ext":1,"data":{}}', /invalid CloudEvent: invalid extension name: my-ext$/],
    ];
    for (const [text, msg] of bad) expect(() => decodeCloudEvent(STRUCTURED, enc(text)), text).toThrow(msg);
    expect(() => decodeCloudEvent({ 'content-type': 'application/cloudevents-batch+json' }, enc('[]'))).toThrow(/batched/);
  });
});

describe('dataSpan', () => {
  it('is undefined where there is no top-level data member, or no object to follow', () => {
    for (const text of ['{}', '{"a":{"data":1}}', '[{"data":1}]', '"data"', '', '{"data" 1}', '{"data":1,}', '{"data":1']) {
      expect(dataSpan(enc(text)), text).toBeUndefined();
    }
    const text = '{"a":[{"data":0}],"data":[1, 2]}';
    const [s, e] = dataSpan(enc(text))!;
    expect(text.slice(s, e)).toBe('[1, 2]');
  });
});

describe('dataSpan against JSON.parse', () => {
  // Seeded random JSON: nested arrays/objects, strings with brackets, quotes, escapes and multi-byte text.
  let seed = 7; // mulberry32
  const rand = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const pieces = ['a', '[', ']', '{', '}', '"', '\\', ',', ':', 'ü', '日', ' '];
  const value = (depth: number): unknown => {
    const k = rand(depth > 3 ? 4 : 6);
    if (k === 0) return rand(1000) / 7 - 50;
    if (k === 1) return Array.from({ length: rand(5) }, () => pieces[rand(pieces.length)]).join('');
    if (k === 2) return [true, false, null][rand(3)];
    if (k === 3) return rand(100);
    if (k === 4) return Array.from({ length: rand(4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: rand(4) }, (_, i) => [`${pieces[rand(pieces.length)]}${i}`, value(depth + 1)]));
  };

  it('slices exactly the value JSON.parse reads as data, for 500 seeded envelopes', () => {
    for (let n = 0; n < 500; n++) {
      const before = Object.fromEntries(Array.from({ length: rand(3) }, (_, i) => [`k${i}`, value(1)]));
      const after = Object.fromEntries(Array.from({ length: rand(3) }, (_, i) => [`z${i}`, value(1)]));
      const data = JSON.stringify(value(0), null, rand(2) ? 0 : 1);
      const members = [...Object.entries(before).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`), `"data" :${data}`];
      members.push(...Object.entries(after).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`));
      const text = `{${members.join(',')}}`;
      const span = dataSpan(enc(text));
      expect(span, text).toBeDefined();
      const bytes = enc(text);
      expect(JSON.parse(dec(bytes.subarray(span![0], span![1]))), text).toEqual(JSON.parse(text).data);
    }
  });
});

describe('encodeCloudEventReply', () => {
  const v2 = '{"model_name":"echo","outputs":[{"name":"big","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}';
  const opts = { type: 'io.kinfer.inference.response', source: '/models/echo', requestId: 'r1' };

  it('binary mode: ce-* headers, and the v2 body unchanged', () => {
    const req = decodeCloudEvent({ 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/s', 'ce-type': 't' }, enc('{}'));
    const out = encodeCloudEventReply(req, { body: v2, headers: { 'Content-Type': 'application/json' } }, opts);
    expect(out.body).toBe(v2);
    expect(out.headers).toMatchObject({
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-type': 'io.kinfer.inference.response',
      'ce-source': '/models/echo',
      'ce-inresponseto': 'e1',
      'ce-requestid': 'r1',
    });
    expect(out.headers['ce-id']).toMatch(/^[0-9a-f-]{36}$/);
    const bin = new Uint8Array([1, 2, 3, 4]);
    const binOut = encodeCloudEventReply(req, { body: bin, headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': '2' } }, opts);
    expect(binOut.body).toBe(bin);
    expect(binOut.headers['Inference-Header-Content-Length']).toBe('2');
    expect(binOut.headers['ce-inferenceheadercontentlength']).toBe('2'); // what a Broker forwards
  });

  it('binary mode: the header length from the inferenceheadercontentlength attribute when the header is gone (through a Broker); the header wins', () => {
    const base = { 'content-type': 'application/octet-stream', 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/s', 'ce-type': 't' };
    expect(decodeCloudEvent({ ...base, 'ce-inferenceheadercontentlength': '7' }, enc('{}')).inferenceHeaderContentLength).toBe('7');
    expect(decodeCloudEvent({ ...base, 'ce-inferenceheadercontentlength': '7', 'inference-header-content-length': '5' }, enc('{}')).inferenceHeaderContentLength).toBe('5');
    expect(decodeCloudEvent(base, enc('{}')).inferenceHeaderContentLength).toBeUndefined();
  });

  it('structured mode: the v2 JSON spliced in as text (INT64 digits intact), or base64 for binary bodies', () => {
    const req = decodeCloudEvent(STRUCTURED, enc(JSON.stringify({ ...attrs, data: { inputs: [] } })));
    const out = encodeCloudEventReply(req, { body: v2, headers: { 'Content-Type': 'application/json' } }, opts);
    expect(out.headers['Content-Type']).toMatch(/^application\/cloudevents\+json/);
    const text = out.body as string;
    expect(text).toContain('"data":{"model_name":"echo","outputs":[{"name":"big","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}}');
    expect(JSON.parse(text)).toMatchObject({ specversion: '1.0', type: opts.type, inresponseto: 'e1', datacontenttype: 'application/json' });
    const bin = encodeCloudEventReply(req, { body: new Uint8Array([104, 105]), headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': '1' } }, opts);
    expect(JSON.parse(bin.body as string)).toMatchObject({ data_base64: 'aGk=', inferenceheadercontentlength: '1' });
  });
});
