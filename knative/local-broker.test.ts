/**
 * `kinfer dev`'s Broker (knative/local-broker.ts) on a loopback server, with subscribers that are
 * functions in this test (the `send` seam), after the data-plane part of the Broker spec's
 * conformance outline (knative/specs, eventing/broker.md): ingress status codes, delivery by
 * filter with attributes identical, replies published to the Broker, redelivery on failure.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../test/helpers/until.js';
import { MAX_TIMER_MS } from '../runtime/core/within.js';
import { backoffMs, binaryMessage, matches, MAX_PENDING, readEvent, retryable, startLocalBroker, type Answer, type LocalBroker, type LocalBrokerOptions } from './local-broker.js';

const ce = (attrs: Record<string, string>) => Object.fromEntries(Object.entries(attrs).map(([k, v]) => [`ce-${k}`, v]));
const base = { specversion: '1.0', source: '/producer' };

interface Received {
  fn: string;
  headers: Record<string, string>;
  body: string;
  /** The attempt's delivery timeout, when it has one. */
  signal?: AbortSignal;
}

let server: Server | undefined;
let broker: LocalBroker | undefined;
afterEach(async () => {
  broker?.close();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** A broker on a loopback port; `answer` plays every subscriber. */
async function start(answer: (r: Received) => Answer | Promise<Answer>, extra: Partial<LocalBrokerOptions> = {}) {
  const received: Received[] = [];
  const notes: string[] = [];
  broker = startLocalBroker({
    namespace: 'default',
    triggers: [
      { name: 'first-t', broker: 'default', filters: { type: 'one' }, subscriber: 'first' },
      { name: 'second-t', broker: 'default', filters: { subject: 'both' }, subscriber: 'second' },
    ],
    delivery: { retry: 2, backoffPolicy: 'exponential', backoffDelayMs: 10 },
    send: async (target, headers, body, signal) => {
      const r = { fn: 'function' in target ? target.function : target.uri, headers, body: body.toString('utf8'), signal };
      received.push(r);
      return answer(r);
    },
    onEvent: (t) => notes.push(t),
    ...extra,
  });
  server = createServer((req, res) => broker!.ingress(req, res));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const send = (path: string, headers: Record<string, string>, body = '', method = 'POST') =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  return { received, notes, send };
}

const accepted = (): Answer => ({ status: 202, headers: {}, body: Buffer.alloc(0) });

describe('local Broker: the event as read and as delivered', () => {
  it('keeps attributes as sent (no time stamped or normalised) and data as the bytes received, INT64 digits included', () => {
    const json = '{"inputs":[{"name":"a","datatype":"INT64","shape":[1],"data":[9007199254740993]}]}';
    const structured = readEvent(
      { 'content-type': 'application/cloudevents+json' },
      Buffer.from(`{"specversion":"1.0","id":"e1","source":"/p","type":"t","time":"2020-01-01T00:00:00Z","n":5,"ok":true,"data":${json}}`),
    );
    expect(structured.attributes).toEqual({ specversion: '1.0', id: 'e1', source: '/p', type: 't', time: '2020-01-01T00:00:00Z', n: '5', ok: 'true', datacontenttype: 'application/json' });
    expect(structured.data!.toString()).toBe(json);
    const out = binaryMessage(structured);
    expect(out.headers).toEqual({ 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/p', 'ce-type': 't', 'ce-time': '2020-01-01T00:00:00Z', 'ce-n': '5', 'ce-ok': 'true', 'content-type': 'application/json' });
    expect(out.body.toString()).toBe(json);

    const binary = readEvent({ 'content-type': 'text/plain', ...ce({ ...base, id: 'e2', type: 't', subject: 'a "b" €' }) }, Buffer.from('plain'));
    expect(binary.attributes).toEqual({ ...base, id: 'e2', type: 't', subject: 'a "b" €', datacontenttype: 'text/plain' });
    expect(binaryMessage(binary).headers['ce-subject']).toBe('a%20%22b%22%20%E2%82%AC');
  });

  it('takes a text data string as its text, data_base64 as its bytes, and no data as none', () => {
    const env = (extra: string) => Buffer.from(`{"specversion":"1.0","id":"e","source":"/p","type":"t",${extra}}`);
    expect(readEvent({ 'content-type': 'application/cloudevents+json' }, env('"datacontenttype":"text/plain","data":"hi \\"there\\""')).data!.toString()).toBe('hi "there"');
    expect(readEvent({ 'content-type': 'application/cloudevents+json' }, env('"data":"json string"')).data!.toString()).toBe('"json string"');
    expect([...readEvent({ 'content-type': 'application/cloudevents+json' }, env('"datacontenttype":"application/octet-stream","data_base64":"AAEC"')).data!]).toEqual([0, 1, 2]);
    expect(readEvent({ 'content-type': 'application/cloudevents+json' }, env('"x":null')).data).toBeUndefined();
    expect(readEvent({ 'content-type': 'application/cloudevents+json' }, env('"x":null')).attributes.x).toBeUndefined();
  });

  it('matches filters exactly, an empty value matching any value present; retries 404, 408, 409, 429 and 5xx; backs off', () => {
    expect(matches({ type: 'a', source: '/s' }, { type: 'a', source: '/s', id: '1' })).toBe(true);
    expect(matches({ type: 'a' }, { type: 'ab' })).toBe(false);
    expect(matches({ model: '' }, { type: 'a' })).toBe(false);
    expect(matches({ model: '' }, { model: 'x' })).toBe(true);
    expect(matches({}, { type: 'a' })).toBe(true);
    expect([200, 400, 401, 404, 408, 409, 413, 429, 500, 503, 504].filter(retryable)).toEqual([404, 408, 409, 429, 500, 503, 504]);
    expect([1, 2, 3].map((n) => backoffMs({ retry: 3, backoffPolicy: 'exponential', backoffDelayMs: 200 }, n))).toEqual([200, 400, 800]);
    expect([1, 2, 3].map((n) => backoffMs({ retry: 3, backoffPolicy: 'linear', backoffDelayMs: 200 }, n))).toEqual([200, 400, 600]);
  });
});

describe('local Broker: ingress and delivery', () => {
  it('answers 405 to other methods, 404 off its path, 400 to what is not a valid event, 202 to an event', async () => {
    const { send, received } = await start(accepted);
    const get = await send('/default/default', {}, '', 'GET');
    expect([get.status, get.headers.allow]).toEqual([405, 'POST']);
    expect((await send('/other/default', ce({ ...base, id: '1', type: 'one' }))).status).toBe(404);
    const nope = await send('/default/nope', ce({ ...base, id: '1', type: 'one' }));
    expect([nope.status, JSON.parse(nope.body)]).toEqual([404, { error: 'no broker at /default/nope; brokers: /default/default' }]);
    const missing = await send('/default/default', ce({ specversion: '1.0', source: '/p', type: 'one' }));
    expect([missing.status, JSON.parse(missing.body).error]).toEqual([400, "CloudEvent attribute 'id' is missing or not a non-empty string"]);
    expect((await send('/default/default', { 'content-type': 'application/cloudevents-batch+json' }, '[]')).status).toBe(400);
    expect((await send('/default/default', { 'content-type': 'application/cloudevents+json' }, '{"specversion":"1.0"')).status).toBe(400);
    expect((await send('/default/default', ce({ ...base, id: '1', type: 'one', time: 'yesterday' }))).status).toBe(400);
    expect(received).toEqual([]);
    expect((await send('/default/default', ce({ ...base, id: '1', type: 'one' }))).status).toBe(202);
    await until(() => received.length === 1);
  });

  it('delivers each event to the Triggers it matches, in binary mode with its attributes as sent, asking for a reply', async () => {
    const { send, received } = await start(accepted);
    await send('/default/default', { ...ce({ ...base, id: 'e1', type: 'one', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }), 'content-type': 'application/json', 'x-other': 'dropped' }, '{"a":1}');
    await send('/default/default', { 'content-type': 'application/cloudevents+json' }, JSON.stringify({ ...base, id: 'e2', type: 'one', subject: 'both', datacontenttype: 'text/plain', data: 'two' }));
    await send('/default/default', ce({ ...base, id: 'e3', type: 'none' }));
    await until(() => received.length === 3);
    await new Promise((r) => setTimeout(r, 50)); // nothing more comes
    const got = received.map((r) => `${r.fn} ${r.headers['ce-id']}`).sort();
    expect(got).toEqual(['first e1', 'first e2', 'second e2']);
    const e1 = received.find((r) => r.headers['ce-id'] === 'e1')!;
    expect(e1.headers).toEqual({ ...ce({ ...base, id: 'e1', type: 'one', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }), 'content-type': 'application/json', prefer: 'reply' });
    expect(e1.body).toBe('{"a":1}');
    const e2 = received.find((r) => r.fn === 'second')!;
    expect([e2.headers['content-type'], e2.headers['ce-subject'], e2.body]).toEqual(['text/plain', 'both', 'two']);
  });

  it("delivers by a Trigger's SubscriptionsAPI filters (where) as Knative evaluates them, its attribute filters then ignored", async () => {
    const { send, received } = await start(accepted, {
      triggers: [
        { name: 'urgent-t', broker: 'default', filters: { type: 'ignored' }, where: [{ prefix: { type: 'io.kinfer.' } }, { cesql: 'INT(priority) >= 5' }], subscriber: 'urgent' },
        { name: 'rest-t', broker: 'default', filters: {}, where: [{ any: [{ not: { cesql: 'INT(priority) >= 5' } }, { suffix: { source: '/replay' } }] }], subscriber: 'rest' },
      ],
    });
    const event = (id: string, extra: Record<string, string>) => send('/default/default', ce({ ...base, id, type: 'io.kinfer.inference.request', ...extra }));
    await event('high', { priority: '7' });
    await event('low', { priority: '2' });
    await event('replayed', { priority: '9', source: '/replay' });
    await event('unreadable', { priority: 'high' }); // INT fails: neither cesql matches, so not(…) does
    await event('none', {}); // no priority: the same
    await send('/default/default', ce({ ...base, id: 'other', type: 'other.type', priority: '9' }));
    await until(() => received.length === 6);
    await new Promise((r) => setTimeout(r, 50)); // nothing more comes
    expect(received.map((r) => `${r.fn} ${r.headers['ce-id']}`).sort()).toEqual(['rest low', 'rest none', 'rest replayed', 'rest unreadable', 'urgent high', 'urgent replayed']);
  });

  it("publishes a 200's reply event to the Broker: the reply reaches the Trigger it matches", async () => {
    const { send, received } = await start((r) =>
      r.headers['ce-id'] === 'e1' ? { status: 200, headers: { 'content-type': 'application/json', ...ce({ ...base, id: 'e3', type: 'reply', subject: 'both', inresponseto: 'e1' }) }, body: Buffer.from('{"r":2}') } : accepted(),
    );
    await send('/default/default', ce({ ...base, id: 'e1', type: 'one' }));
    await until(() => received.length === 2);
    expect(received.map((r) => [r.fn, r.headers['ce-id'], r.headers['ce-inresponseto'], r.body])).toEqual([
      ['first', 'e1', undefined, ''],
      ['second', 'e3', 'e1', '{"r":2}'],
    ]);
  });

  it('retries 5xx and failed connections with backoff until taken; does not retry a 400; drops after the retries; a malformed reply is a failed delivery', async () => {
    let calls = 0;
    const { send, received, notes } = await start((r) => {
      const id = r.headers['ce-id'];
      if (id === 'flaky') {
        calls++;
        if (calls === 1) throw new Error('connect ECONNREFUSED');
        if (calls === 2) return { status: 503, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":"queue full"}') };
        return accepted();
      }
      if (id === 'bad') return { status: 400, headers: {}, body: Buffer.from('{"error":"no such input"}') };
      if (id === 'down') return { status: 500, headers: {}, body: Buffer.from('boom') };
      return { status: 200, headers: { 'ce-specversion': '1.0', 'ce-type': 'x' }, body: Buffer.alloc(0) }; // no id, no source
    });
    for (const id of ['flaky', 'bad', 'down', 'malformed']) await send('/default/default', ce({ ...base, id, type: 'one' }));
    await until(() => notes.filter((n) => /delivered|not retried|dropped/.test(n)).length === 4);
    const attempts = (id: string) => received.filter((r) => r.headers['ce-id'] === id).length;
    expect([attempts('flaky'), attempts('bad'), attempts('down'), attempts('malformed')]).toEqual([3, 1, 3, 3]);
    expect(notes).toContain('first-t: one flaky failed: 503 queue full; retry 2 of 2 in 0.02 s');
    expect(notes).toContain('first-t: one flaky delivered (202)');
    expect(notes).toContain('first-t: one bad failed: 400 no such input; not retried');
    expect(notes).toContain('first-t: one down dropped after 3 attempts: 500 boom');
    expect(notes.find((n) => n.startsWith('first-t: one malformed dropped'))).toMatch(/malformed reply or no answer: CloudEvent attribute 'id' is missing/);
    expect(broker!.pending).toBe(0);
  });

  it("ends a reply loop with knativebrokerttl as Knative's ingress counts it: a producer's one less (1 refused), else 255; one less per reply; never sent on", async () => {
    const { send, received, notes } = await start((r) => (r.headers['ce-id'] === 'odd' ? accepted() : { status: 200, headers: ce({ ...base, id: `${r.headers['ce-id']}+`, type: 'one' }), body: Buffer.alloc(0) }));
    await send('/default/default', ce({ ...base, id: 'loop', type: 'one', knativebrokerttl: '3' }));
    await until(() => notes.some((n) => n.includes('dropped: knativebrokerttl ran out')));
    expect(received.map((r) => r.headers['ce-id'])).toEqual(['loop', 'loop+']);
    expect(received.every((r) => r.headers['ce-knativebrokerttl'] === undefined)).toBe(true);
    expect(notes).toContain('first-t: one loop+ delivered; its reply one loop++ dropped: knativebrokerttl ran out (a trigger matching its own replies?)');
    for (const ttl of ['1', '0', '-4']) {
      const last = await send('/default/default', ce({ ...base, id: `last-${ttl}`, type: 'one', knativebrokerttl: ttl }));
      expect([last.status, JSON.parse(last.body).error]).toEqual([400, `knativebrokerttl ${ttl}: the event has made its last hop`]);
    }
    // One it cannot read is the default, 255: delivered.
    expect((await send('/default/default', ce({ ...base, id: 'odd', type: 'one', knativebrokerttl: 'abc' }))).status).toBe(202);
    await until(() => received.some((r) => r.headers['ce-id'] === 'odd'));
  });

  it('drops reply events past the pending bounds: two triggers replying to every event fan out 2^n, and stop at MAX_PENDING', async () => {
    let n = 0;
    let most = 0;
    const notes: string[] = [];
    // Each answer after a turn of the event loop, as over HTTP.
    const reply = () => new Promise<Answer>((r) => setImmediate(() => r({ status: 200, headers: ce({ ...base, id: `r${n++}`, type: 'one' }), body: Buffer.alloc(0) })));
    const { send, received } = await start(reply, {
      triggers: [
        { name: 'a-t', broker: 'default', filters: { type: 'one' }, subscriber: 'a' },
        { name: 'b-t', broker: 'default', filters: { type: 'one' }, subscriber: 'b' },
      ],
      onEvent: (t) => {
        most = Math.max(most, broker!.pending);
        if (t.includes('dropped')) notes.push(t);
      },
    });
    await send('/default/default', ce({ ...base, id: 'seed', type: 'one' }));
    await until(() => notes.some((t) => /dropped: \d+ deliveries \(\d+ bytes\) are pending already/.test(t)), 10_000);
    // The flood goes on until knativebrokerttl runs out (255 hops, as in Knative); what is bounded is what waits.
    await new Promise((r) => setTimeout(r, 300));
    // Each reply goes to both triggers: without the bound this grew past 28,000 pending within a second.
    expect(most).toBeGreaterThan(MAX_PENDING / 2);
    expect(most).toBeLessThanOrEqual(MAX_PENDING + 1);
    expect(received.length).toBeGreaterThan(MAX_PENDING);
  });

  it('caps an exponential backoff at a timer\'s limit (a longer wait fires after 1 ms in Node)', () => {
    const d = { retry: 40, backoffPolicy: 'exponential' as const, backoffDelayMs: 200 };
    expect(backoffMs(d, 24)).toBe(200 * 2 ** 23);
    expect([25, 40].map((k) => backoffMs(d, k))).toEqual([MAX_TIMER_MS, MAX_TIMER_MS]);
    expect(backoffMs({ ...d, backoffPolicy: 'linear', backoffDelayMs: 2 ** 30 }, 3)).toBe(MAX_TIMER_MS);
  });

  it('close() stops retries at once, sends nothing after it (no reply published, no dead letter), and leaves nothing pending', async () => {
    let release: (a: Answer) => void = () => undefined;
    const held = new Promise<Answer>((r) => (release = r));
    const { send, received, notes } = await start(
      (r) => (r.headers['ce-id'] === 'slow' ? held : { status: 503, headers: {}, body: Buffer.from('busy') }),
      {
        delivery: { retry: 10, backoffPolicy: 'exponential', backoffDelayMs: 60_000 },
        triggers: [
          { name: 'first-t', broker: 'default', filters: { type: 'one' }, subscriber: 'first', deadLetter: { function: 'dls' } },
          { name: 'second-t', broker: 'default', filters: { type: 'reply' }, subscriber: 'second' },
        ],
      },
    );
    await send('/default/default', ce({ ...base, id: 'slow', type: 'one' }));
    await send('/default/default', ce({ ...base, id: 'busy', type: 'one' }));
    await until(() => received.length === 2 && notes.some((n) => n.includes('busy failed: 503 busy; retry 1 of 10 in 60 s')));
    expect(broker!.pending).toBe(2);
    broker!.close();
    release({ status: 200, headers: ce({ ...base, id: 'r', type: 'reply' }), body: Buffer.alloc(0) }); // answered after close
    await until(() => broker!.pending === 0, 2000);
    expect(received.map((r) => `${r.fn} ${r.headers['ce-id']}`)).toEqual(['first slow', 'first busy']);
    expect(notes).toContain('first-t: one busy dropped: kinfer dev is stopping');
    expect(notes).toContain('first-t: one slow dropped: kinfer dev is stopping');
  });

  it('refuses at the ingress a datacontenttype HTTP cannot carry (else every delivery would fail), and answers 413 past the size limit before closing', async () => {
    const { send, received } = await start(accepted);
    const bad = await send('/default/default', { 'content-type': 'application/cloudevents+json' }, JSON.stringify({ ...base, id: 'c', type: 'one', datacontenttype: 'text/plain; x=€', data: 'x' }));
    expect([bad.status, JSON.parse(bad.body).error]).toEqual([400, 'datacontenttype "text/plain; x=€" cannot be an HTTP Content-Type (printable ASCII only)']);
    const big = await send('/default/default', ce({ ...base, id: 'big', type: 'one' }), 'x'.repeat(64 * 1024 * 1024 + 1));
    expect(big.status).toBe(413);
    expect(received).toEqual([]);
  });
});

describe("local Broker: a Trigger's own delivery spec and dead-letter sink", () => {
  const triggers = [
    { name: 'fragile-t', broker: 'default', filters: { type: 'one' }, subscriber: 'fragile', delivery: { retry: 1, backoffPolicy: 'linear' as const, backoffDelayMs: 5 }, deadLetter: { function: 'dls' } },
    { name: 'lossy-t', broker: 'default', filters: { type: 'two' }, subscriber: 'fragile', delivery: { retry: 0, backoffPolicy: 'exponential' as const, backoffDelayMs: 5 }, deadLetter: { uri: 'http://sink.example/dead' } },
  ];

  it('sends an event whose delivery failed for good to the dead-letter sink, with the knativeerror* attributes; a 400 at once', async () => {
    const { send, received, notes } = await start(
      (r) => {
        if (r.fn === 'dls') return accepted();
        if (r.fn === 'http://sink.example/dead') return { status: 500, headers: {}, body: Buffer.from('sink down') };
        return r.headers['ce-id'] === 'bad' ? { status: 400, headers: {}, body: Buffer.from('{"error":"no input x"}') } : { status: 503, headers: {}, body: Buffer.from('{"error":"queue full"}') };
      },
      { triggers },
    );
    await send('/default/default', { ...ce({ ...base, id: 'busy', type: 'one' }), 'content-type': 'application/json' }, '{"a":1}');
    await send('/default/default', ce({ ...base, id: 'bad', type: 'one' }));
    await send('/default/default', ce({ ...base, id: 'gone', type: 'two' }));
    await until(() => notes.filter((n) => /dead-letter sink/.test(n) && !/retry/.test(n)).length === 3);
    const to = (fn: string, id: string) => received.filter((r) => r.fn === fn && r.headers['ce-id'] === id);
    expect([to('fragile', 'busy').length, to('fragile', 'bad').length, to('fragile', 'gone').length]).toEqual([2, 1, 1]); // its own retry: 1, then 0
    const [busy] = to('dls', 'busy');
    expect(busy!.headers).toMatchObject({ 'ce-type': 'one', 'ce-knativeerrordest': 'http://fragile.default.svc.cluster.local', 'ce-knativeerrorcode': '503', 'content-type': 'application/json' });
    expect(Buffer.from(busy!.headers['ce-knativeerrordata']!, 'base64').toString()).toBe('{"error":"queue full"}');
    expect(busy!.headers.prefer).toBeUndefined(); // a sink's answer is not a reply
    expect(busy!.body).toBe('{"a":1}');
    expect(to('dls', 'bad')[0]!.headers['ce-knativeerrorcode']).toBe('400');
    expect(notes).toContain('fragile-t: one busy dropped after 2 attempts: 503 queue full; sent to the dead-letter sink dls (202)');
    expect(notes).toContain('fragile-t: one bad failed: 400 no input x; not retried; sent to the dead-letter sink dls (202)');
    expect(notes).toContain('lossy-t: two gone dropped after 1 attempts: 503 queue full; lost: the dead-letter sink http://sink.example/dead did not take it either (500 sink down)');
  });

  it("a delivery timeout ends each attempt that gets no answer in time: retried, then dead-lettered as a dispatch error; an answer in time is delivered", async () => {
    const timed = { ...triggers[0]!, delivery: { retry: 1, backoffPolicy: 'linear' as const, backoffDelayMs: 5, timeoutMs: 150 } };
    const t0 = Date.now();
    const { send, received, notes } = await start(
      (r) => {
        if (r.fn === 'dls') return accepted();
        if (r.headers['ce-id'] === 'quick') return new Promise((resolve) => setTimeout(() => resolve(accepted()), 50));
        // Never answers: only the attempt's signal ends it, as post() ends its connection.
        return new Promise((_, reject) => r.signal!.addEventListener('abort', () => reject(r.signal!.reason as Error)));
      },
      { triggers: [timed] },
    );
    await send('/default/default', ce({ ...base, id: 'stuck', type: 'one' }));
    await send('/default/default', ce({ ...base, id: 'quick', type: 'one' }));
    await until(() => notes.some((n) => n.includes('stuck dropped after 2 attempts')));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(received.filter((r) => r.fn === 'fragile' && r.headers['ce-id'] === 'stuck').every((r) => r.signal?.aborted)).toBe(true);
    const [letter] = received.filter((r) => r.fn === 'dls');
    expect(letter!.headers['ce-id']).toBe('stuck');
    expect(letter!.headers['ce-knativeerrorcode']).toBe('500');
    expect(Buffer.from(letter!.headers['ce-knativeerrordata']!, 'base64').toString()).toBe('dispatch error: no answer within the delivery timeout (0.15 s)');
    expect(notes).toContain('fragile-t: one quick delivered (202)');
  });

  it("reports a delivery that got no answer to the sink as Knative's dispatcher does: code 500, data \"dispatch error: ...\"", async () => {
    const { send, received, notes } = await start(
      (r) => {
        if (r.fn === 'dls') return accepted();
        throw new Error('connect ECONNREFUSED 127.0.0.1:1');
      },
      { triggers: [triggers[0]!] },
    );
    await send('/default/default', ce({ ...base, id: 'nobody', type: 'one' }));
    await until(() => notes.some((n) => n.includes('sent to the dead-letter sink dls')));
    const [letter] = received.filter((r) => r.fn === 'dls');
    expect(letter!.headers['ce-knativeerrorcode']).toBe('500');
    expect(Buffer.from(letter!.headers['ce-knativeerrordata']!, 'base64').toString()).toBe('dispatch error: malformed reply or no answer: connect ECONNREFUSED 127.0.0.1:1');
  });
});
