/**
 * `kinfer dev`'s local stand-in for Knative Serving (knative/local-serving.ts), on 127.0.0.1:
 * the real `kinfer serve` (the built bundle) scaled from and to zero behind Host routing; and,
 * for what a fast echo cannot show (concurrency caps, timeouts, env, a process that dies at
 * start), a small stand-in server process started through the same command seam.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineFunction, type FunctionSpec } from '../../functions/define.js';
import { startLocalServing, type LocalServing } from '../../knative/local-serving.js';
import { packageRoot } from '../../runtime/config.js';
import { hostRequest as call } from '../helpers/server.js';
import { binaryBody, le } from '../helpers/v2-bodies.js';
import { until } from '../helpers/until.js';

const BIN = join(packageRoot(), 'dist', 'bundle', 'main.cjs');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-local-serving-'));
  await mkdir(join(dir, 'echo-model'));
  await writeFile(join(dir, 'echo-model', 'config.json'), JSON.stringify({ name: 'echo', platform: 'echo', max_batch_size: 8 }));
  // The stand-in: ready at once; /slow answers after 100 ms with the most requests it held at once; /sleep/<ms> after ms with its pid; /hang never; /env its env.
  await writeFile(
    join(dir, 'stand-in.cjs'),
    `let inflight = 0, most = 0;
     const server = require('node:http').createServer((req, res) => {
       if (req.url === '/v2/health/ready') return res.end('{}');
       if (req.url === '/unlisten') return setInterval(() => {}, 1000), server.close(), res.end('{}'); // alive, refusing connections
       if (req.url === '/env') return res.end(JSON.stringify(process.env));
       if (req.url === '/hang' || req.headers['ce-type'] === 'hang') return;
       if (req.url === '/crash') process.exit(3);
       if (req.url.startsWith('/sleep/')) return setTimeout(() => res.end(JSON.stringify({ pid: process.pid })), Number(req.url.slice(7)));
       inflight++; most = Math.max(most, inflight);
       setTimeout(() => { inflight--; res.end(JSON.stringify({ most })); }, 100);
     });
     server.listen(Number(process.env.PORT), process.env.HOST);`,
  );
  await writeFile(join(dir, 'dies.cjs'), `console.error('kinfer serve: model artifact missing: /nowhere'); process.exit(1);`);
  // Listens only after 5 s: a start that is still going.
  await writeFile(join(dir, 'slow-start.cjs'), `setTimeout(() => require('node:http').createServer((q, s) => s.end('{}')).listen(Number(process.env.PORT), process.env.HOST), 5000);`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const spec = (name: string, extra: Partial<Parameters<typeof defineFunction>[0]> = {}): FunctionSpec =>
  defineFunction({ name, model: { name: 'echo', storageUri: `file://${join(dir, 'echo-model')}`, platform: 'echo' }, ...extra }).spec;



describe('kinfer dev: kinfer serve behind Host routing, scaled from and to zero', () => {
  let serving: LocalServing;
  const events: string[] = [];
  beforeAll(async () => {
    serving = await startLocalServing({ functions: [spec('echo-a')], command: [process.execPath, BIN], idleMs: 2000, port: 0, host: '127.0.0.1', onEvent: (fn, t) => events.push(`${fn}: ${t}`) });
  });
  afterAll(() => serving.close());

  it('starts the function on its first requests (all answered, one start), routes by the first Host label, and stops it when idle', async () => {
    expect(serving.running('echo-a')).toBe(false);
    const infer = { inputs: [{ name: 'a', datatype: 'INT32', shape: [2], data: [1, 2] }] };
    const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => call(serving.url, i % 2 ? 'echo-a.ml.example.com' : 'echo-a.localhost:8080', '/v2/models/echo/infer', infer)));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(((await answers[0]!.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([1, 2]);
    expect(events.filter((e) => e.startsWith('echo-a: starting'))).toEqual(['echo-a: starting (scale from zero)']);
    expect(events.some((e) => /^echo-a: ready in \d+ ms$/.test(e))).toBe(true);
    expect(serving.running('echo-a')).toBe(true);

    // Its metrics carry Knative's labels, as in a pod.
    expect(await (await call(serving.url, 'echo-a', '/metrics')).text()).toMatch(/kinfer_requests_total\{[^}]*service="echo-a"[^}]*revision="echo-a-local"/);

    await until(() => !serving.running('echo-a'));
    expect(events).toContain('echo-a: scaled to zero after 2 s without requests');
    expect((await call(serving.url, 'echo-a.localhost', '/v2/health/ready')).status).toBe(200); // from zero again
    // From zero again (under a new replica number while the stopped ones drain: an id names a model folder).
    expect(events.filter((e) => /^echo-a: (replica \d+: )?starting \(scale from zero\)$/.test(e)), events.join("\n")).toHaveLength(2);
  });

  it('answers a Host no function has, or none, with 404 naming the functions', async () => {
    for (const host of ['nope.localhost', '127.0.0.1']) {
      const res = await call(serving.url, host, '/v2/health/ready');
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: string }).error).toBe(`no function answers Host "${host}"; use Host: <function>.<anything> with one of: echo-a`);
    }
  });
});

describe('kinfer dev: concurrency, timeouts, env and start failures (a stand-in server process)', () => {
  const standIn = (): [string, string] => [process.execPath, join(dir, 'stand-in.cjs')];

  it('containerConcurrency caps the requests in flight (the rest wait); timeoutSeconds bounds a request (504); minScale 1 starts at once', async () => {
    const serving = await startLocalServing({
      functions: [spec('capped', { scaling: { containerConcurrency: 1, minScale: 1, timeoutSeconds: 1 } }), spec('open')],
      command: standIn(),
      idleMs: 60_000,
      port: 0,
      host: '127.0.0.1',
    });
    try {
      expect(serving.running('capped')).toBe(true);
      expect(serving.running('open')).toBe(false);
      const capped = await Promise.all([1, 2, 3, 4].map(() => call(serving.url, 'capped.localhost', '/slow').then((r) => r.json() as Promise<{ most: number }>)));
      expect(capped.map((r) => r.most)).toEqual([1, 1, 1, 1]);
      const open = await Promise.all([1, 2, 3, 4].map(() => call(serving.url, 'open.localhost', '/slow').then((r) => r.json() as Promise<{ most: number }>)));
      expect(Math.max(...open.map((r) => r.most))).toBe(4);
      const t0 = Date.now();
      const hung = await call(serving.url, 'capped.localhost', '/hang');
      expect(hung.status).toBe(504);
      expect(((await hung.json()) as { error: string }).error).toBe("function 'capped': no answer within timeoutSeconds (1 s), waiting included");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    } finally {
      await serving.close();
    }
    expect(serving.running('capped')).toBe(false);
  });

  it("scales between replicas as Knative's KPA does: a burst panics up to maxScale, requests spread over the processes, and the count falls a stable window later, a process chosen to go draining first", async () => {
    const events: [number, string][] = [];
    const serving = await startLocalServing({
      functions: [spec('scaled', { scaling: { target: 4, maxScale: 3, window: '6s', timeoutSeconds: 60 } })],
      command: standIn(),
      idleMs: 120_000,
      port: 0,
      host: '127.0.0.1',
      onEvent: (_fn, t) => events.push([Date.now(), t]),
    });
    const said = (re: RegExp) => events.filter(([, t]) => re.test(t));
    const sleep = async (ms: number) => {
      const r = await call(serving.url, 'scaled.localhost', `/sleep/${ms}`);
      return { status: r.status, pid: ((await r.json()) as { pid: number }).pid, at: Date.now() };
    };
    try {
      // 24 in flight against 2.8 per replica (target 4 × 70 %): 9 wanted at once, 3 allowed.
      for (let i = 0; i < 12 && serving.replicas('scaled') < 3; i++) await Promise.all(Array.from({ length: 24 }, () => sleep(800)));
      expect(serving.replicas('scaled')).toBe(3);
      expect(said(/^scaling/)[0]?.[1]).toMatch(/^scaling 1 → 3 \(panic: concurrency \d+\.\d over 1 s, 2\.8 per replica\)$/);
      expect(said(/^replica 3: starting \(scale up\)$/)).toHaveLength(1);
      // Three long requests, one on each process (the fewest in flight gets the next); their
      // concurrency of 3 wants 2 once the panic is over: one process drains, and stops after its answer.
      const long = await Promise.all([0, 1, 2].map(() => sleep(14_000)));
      expect(long.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(new Set(long.map((r) => r.pid)).size).toBe(3);
      const log = events.map(([t, e]) => `${t - events[0]![0]} ${e}`).join('\n');
      const [down] = said(/^scaling 3 → 2 \(concurrency \d+\.\d over 6 s, 2\.8 per replica\)$/);
      expect(down, log).toBeDefined();
      await until(() => serving.replicas('scaled') === 1, 20_000, 50);
      const stops = said(/^replica [23]: stopped \(scale down\)$/);
      expect(stops, log).toHaveLength(2);
      // The first to go was chosen at 3 → 2 but stopped only once its request was answered.
      expect(stops[0]![0]).toBeGreaterThanOrEqual(Math.min(...long.map((r) => r.at)) - 100);
      expect(stops[0]![0] - down![0], log).toBeGreaterThan(1000);
      expect(said(/^scaling 2 → 1/), log).toHaveLength(1);
      expect(serving.running('scaled')).toBe(true);
    } finally {
      await serving.close();
    }
  }, 90_000);

  it("a Trigger's delivery timeout ends attempts at a process that does not answer, frees their slots, and dead-letters the event to a sink URI", async () => {
    const letters: Record<string, string | string[] | undefined>[] = [];
    const sink = createServer((req, res) => (letters.push(req.headers), req.resume(), res.writeHead(202).end()));
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const notes: string[] = [];
    const serving = await startLocalServing({
      functions: [
        spec('stuck', {
          scaling: { containerConcurrency: 1, timeoutSeconds: 60 },
          triggers: [{ name: 'work', filters: { type: 'hang' }, delivery: { retry: 1, timeout: 'PT0.4S', deadLetterSink: { uri: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/dead` } } }],
        }),
      ],
      command: standIn(),
      idleMs: 60_000,
      port: 0,
      host: '127.0.0.1',
      onBrokerEvent: (t) => notes.push(t),
    });
    try {
      const res = await fetch(serving.brokers.default!, { method: 'POST', headers: { 'ce-specversion': '1.0', 'ce-id': 'h1', 'ce-source': '/t', 'ce-type': 'hang' }, body: '' });
      expect(res.status).toBe(202);
      await until(() => letters.length === 1, 20_000);
      expect(letters[0]).toMatchObject({ 'ce-id': 'h1', 'ce-knativeerrorcode': '500', 'ce-knativeerrordest': 'http://stuck.default.svc.cluster.local' });
      expect(Buffer.from(String(letters[0]!['ce-knativeerrordata']), 'base64').toString()).toBe('dispatch error: no answer within the delivery timeout (0.4 s)');
      expect(notes.some((n) => n.startsWith('stuck-work: hang h1 failed: no answer within the delivery timeout (0.4 s); retry 1 of 1'))).toBe(true);
      // Both timed-out attempts gave their one slot back: a plain request is served at once.
      const t0 = Date.now();
      expect((await call(serving.url, 'stuck.localhost', '/slow')).status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      await serving.close();
      await new Promise<void>((r) => sink.close(() => r()));
    }
  });

  it('minScale is kept through a crash and starts that keep failing, retried with a growing backoff, each failure said', async () => {
    // Start 1 serves and crashes on /crash; starts 2 and 3 fail at once; start 4 serves.
    const counter = join(dir, 'flaky-count');
    await writeFile(counter, '0');
    await writeFile(
      join(dir, 'flaky.cjs'),
      `const fs = require('node:fs'); const n = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1; fs.writeFileSync(${JSON.stringify(counter)}, String(n));
       if (n === 2 || n === 3) { console.error('start ' + n + ' fails'); process.exit(1); }
       require('node:http').createServer((req, res) => { if (req.url === '/crash') process.exit(3); res.end(JSON.stringify({ n })); }).listen(Number(process.env.PORT), process.env.HOST);`,
    );
    const events: [number, string][] = [];
    const serving = await startLocalServing({ functions: [spec('flaky', { scaling: { minScale: 1 } })], command: [process.execPath, join(dir, 'flaky.cjs')], idleMs: 60_000, port: 0, host: '127.0.0.1', onEvent: (_fn, t) => events.push([Date.now(), t]) });
    try {
      await call(serving.url, 'flaky.localhost', '/crash').catch(() => undefined);
      await until(() => serving.replicas('flaky') === 1 && events.filter(([, e]) => /ready in/.test(e)).length === 2, 20_000, 20);
      const log = events.map(([, e]) => e).filter((e) => !/^(replica \d+: )?ready in/.test(e));
      expect(log.map((e) => e.replace(/^replica \d+: /, '').replace(/: function 'flaky' exited before it was ready.*?;/, ';'))).toEqual([
        'starting (minScale ≥ 1)',
        'exited (code 3)',
        'starting (restarting (minScale))', // by the tick, a second after the exit
        'failed to start; the next start in 1 s at the earliest',
        'starting (restarting (minScale))',
        'failed to start; the next start in 2 s at the earliest',
        'starting (restarting (minScale))',
      ]);
      const failAt = events.filter(([, e]) => e.includes('failed to start')).map(([t]) => t);
      const startAt = events.filter(([, e]) => e.includes('restarting (minScale)')).map(([t]) => t);
      const exitAt = events.find(([, e]) => e.startsWith('exited'))![0];
      expect(startAt[0]! - exitAt).toBeGreaterThanOrEqual(900);
      expect(startAt[1]! - failAt[0]!).toBeGreaterThanOrEqual(900);
      expect(startAt[2]! - failAt[1]!).toBeGreaterThanOrEqual(1900);
      expect(events.find(([, e]) => e.includes('failed to start'))![1]).toContain('start 2 fails');
      expect(((await (await call(serving.url, 'flaky.localhost', '/')).json()) as { n: number }).n).toBe(4);
    } finally {
      await serving.close();
    }
  }, 30_000);

  it('close() waits for processes still stopping (scaled to zero, draining past SIGTERM)', async () => {
    await writeFile(
      join(dir, 'slow-exit.cjs'),
      `process.on('SIGTERM', () => setTimeout(() => process.exit(0), 1500));
       require('node:http').createServer((req, res) => res.end(JSON.stringify({ pid: process.pid }))).listen(Number(process.env.PORT), process.env.HOST);`,
    );
    const events: string[] = [];
    const serving = await startLocalServing({ functions: [spec('lingering')], command: [process.execPath, join(dir, 'slow-exit.cjs')], idleMs: 200, port: 0, host: '127.0.0.1', onEvent: (_fn, t) => events.push(t) });
    const { pid } = (await (await call(serving.url, 'lingering.localhost', '/')).json()) as { pid: number };
    await until(() => events.includes('scaled to zero after 0.2 s without requests'));
    expect(serving.running('lingering')).toBe(false);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true); // in its 1.5 s SIGTERM drain
    const t0 = Date.now();
    await serving.close();
    expect(alive()).toBe(false);
    expect(Date.now() - t0).toBeGreaterThan(500);
  });

  it('holds containerConcurrency from zero too; a process that crashes is started again for the requests waiting', async () => {
    const events: string[] = [];
    const serving = await startLocalServing({ functions: [spec('cold', { scaling: { containerConcurrency: 1, timeoutSeconds: 30 } })], command: standIn(), idleMs: 60_000, port: 0, host: '127.0.0.1', onEvent: (_fn, t) => events.push(t) });
    try {
      const first = await Promise.all([1, 2, 3, 4].map(() => call(serving.url, 'cold.localhost', '/slow').then((r) => r.json() as Promise<{ most: number }>)));
      expect(first.map((r) => r.most)).toEqual([1, 1, 1, 1]);
      // One request crashes the process while three wait for the slot: they are answered by the next process.
      const crash = call(serving.url, 'cold.localhost', '/crash');
      const queued = [1, 2, 3].map(() => call(serving.url, 'cold.localhost', '/slow'));
      expect((await crash).status).toBe(502);
      expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200, 200]);
      expect(events.filter((e) => /^(starting|exited|lost)/.test(e))).toEqual(['starting (scale from zero)', 'exited (code 3)', 'starting (restarting after the exit)']);
    } finally {
      await serving.close();
    }
  });

  it('a process that refuses connections is replaced, and a request without a body is sent to the new one', async () => {
    const events: string[] = [];
    const serving = await startLocalServing({ functions: [spec('deaf')], command: standIn(), idleMs: 60_000, port: 0, host: '127.0.0.1', onEvent: (_fn, t) => events.push(t) });
    try {
      expect((await call(serving.url, 'deaf.localhost', '/unlisten')).status).toBe(200);
      expect((await call(serving.url, 'deaf.localhost', '/slow')).status).toBe(200);
      // The new process takes the next id: the lost one's stays taken until it has exited.
      expect(events.filter((e) => /^(replica \d+: )?(starting|lost)/.test(e))).toEqual(['starting (scale from zero)', 'lost its process; starting again', 'replica 2: starting (scale from zero)']);
      const withBody = await call(serving.url, 'deaf.localhost', '/unlisten').then(() => call(serving.url, 'deaf.localhost', '/slow', { a: 1 }));
      expect(withBody.status).toBe(502); // a body read once cannot be sent again
    } finally {
      await serving.close();
    }
  });

  it('close() answers the requests still waiting for a start with 503 and stops the starting process', async () => {
    const serving = await startLocalServing({ functions: [spec('slow')], command: [process.execPath, join(dir, 'slow-start.cjs')], idleMs: 60_000, port: 0, host: '127.0.0.1' });
    const waiting = call(serving.url, 'slow.localhost', '/v2/health/ready');
    await until(() => serving.running('slow'));
    const t0 = Date.now();
    await serving.close();
    expect(Date.now() - t0).toBeLessThan(4000); // not the 5 s start
    const res = await waiting;
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('kinfer dev is stopping');
    expect(serving.running('slow')).toBe(false);
  });

  it("gives the process its Knative Service's env, a Secret's value from the local env (else 503 naming it), and a --storage-uri", async () => {
    const withSecret = spec('creds', { env: { AWS_ACCESS_KEY_ID: { secretKeyRef: { name: 's3-creds', key: 'id' } }, LOG_LEVEL: 'warn' } });
    const missing = await startLocalServing({ functions: [withSecret], command: standIn(), idleMs: 60_000, port: 0, host: '127.0.0.1', env: { ...process.env, AWS_ACCESS_KEY_ID: undefined } });
    try {
      const res = await call(missing.url, 'creds.localhost', '/env');
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toBe("function 'creds': env AWS_ACCESS_KEY_ID comes from Secret s3-creds (key id) in the cluster; set AWS_ACCESS_KEY_ID in kinfer dev's environment");
    } finally {
      await missing.close();
    }
    const shell = { ...process.env, AWS_ACCESS_KEY_ID: 'AKIALOCAL', KINFER_REST_PORT: '1234', MODEL_REPOSITORY: '/shared', MULTI_MODEL_SERVER: 'true' }; // the last three the generator's
    const grpc = spec('grpcfn', { protocol: 'grpc-v2' });
    const serving = await startLocalServing({ functions: [withSecret, spec('hooked'), grpc], command: standIn(), idleMs: 60_000, port: 0, host: '127.0.0.1', env: shell, storageUris: { creds: 's3://local/echo' }, modules: { hooked: '/fns/hooked/index.js' } });
    try {
      const env = (await (await call(serving.url, 'creds.localhost', '/env')).json()) as Record<string, string>;
      expect(env).toMatchObject({ AWS_ACCESS_KEY_ID: 'AKIALOCAL', LOG_LEVEL: 'warn', MODEL_NAME: 'echo', STORAGE_URI: 's3://local/echo', K_SERVICE: 'creds', HOST: '127.0.0.1' });
      expect(env.KINFER_FUNCTION).toBeUndefined(); // no definition module: no hooks
      expect(JSON.parse(env.KINFER_MODEL_CONFIG!)).toMatchObject({ name: 'echo', platform: 'echo' });
      expect(env.MODEL_REPOSITORY).toBe(join(tmpdir(), 'kinfer-dev', 'creds'));
      expect(env.KINFER_REST_PORT).toBeUndefined();
      expect(env.MULTI_MODEL_SERVER).toBeUndefined();
      expect(((await (await call(serving.url, 'hooked.localhost', '/env')).json()) as Record<string, string>).KINFER_FUNCTION).toBe('/fns/hooked/index.js');
      // A grpc-v2 function: REST on its one port here (no GRPC_PORT, no KINFER_REST_PORT taking 8080).
      const g = (await (await call(serving.url, 'grpcfn.localhost', '/env')).json()) as Record<string, string>;
      expect([g.GRPC_PORT, g.KINFER_REST_PORT, typeof g.PORT]).toEqual([undefined, undefined, 'string']);
    } finally {
      await serving.close();
    }
  });

  it('a process that exits before it is ready fails its waiting requests with 503 and its last line; the next request tries again', async () => {
    const events: string[] = [];
    const serving = await startLocalServing({ functions: [spec('broken')], command: [process.execPath, join(dir, 'dies.cjs')], idleMs: 60_000, port: 0, host: '127.0.0.1', onEvent: (fn, t) => events.push(t) });
    try {
      const answers = await Promise.all([1, 2].map(() => call(serving.url, 'broken.localhost', '/v2/health/ready')));
      expect(answers.map((r) => r.status)).toEqual([503, 503]);
      expect(((await answers[0]!.json()) as { error: string }).error).toBe("function 'broken' exited before it was ready (code 1): kinfer serve: model artifact missing: /nowhere");
      expect((await call(serving.url, 'broken.localhost', '/v2/health/ready')).status).toBe(503);
      expect(events.filter((e) => e.startsWith('starting'))).toHaveLength(2);
    } finally {
      await serving.close();
    }
  });
});

describe('kinfer dev: Brokers deliver events to the Triggers of functions, and their replies on (the real kinfer serve, and a recording sink)', () => {
  let serving: LocalServing;
  const notes: string[] = [];
  const events = async () => (await (await call(serving.url, 'sink.localhost', '/events')).json()) as { headers: Record<string, string>; body: string }[];
  beforeAll(async () => {
    // The sink records what it is sent; every other function is the built kinfer serve (a child, signals passed on).
    await writeFile(
      join(dir, 'router.cjs'),
      `if (process.env.K_SERVICE !== 'sink') {
         const child = require('node:child_process').spawn(process.execPath, [${JSON.stringify(BIN)}, ...process.argv.slice(2)], { stdio: 'inherit' });
         for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => child.kill(s));
         child.on('exit', (code) => process.exit(code ?? 1));
       } else {
         const events = [];
         require('node:http').createServer((req, res) => {
           if (req.url === '/v2/health/ready') return res.end('{}');
           if (req.url === '/events') return res.end(JSON.stringify(events));
           const chunks = [];
           req.on('data', (c) => chunks.push(c));
           req.on('end', () => { events.push({ headers: req.headers, body: Buffer.concat(chunks).toString('base64') }); res.statusCode = 202; res.end(); });
         }).listen(Number(process.env.PORT), process.env.HOST);
       }`,
    );
    serving = await startLocalServing({
      functions: [
        spec('echo-fn', { triggers: [{ name: 'requests', filters: { type: 'io.kinfer.inference.request' } }] }),
        // The sink's Trigger by SubscriptionsAPI filters (where), the echo's by attributes: both paths to a Trigger.
        spec('sink', { triggers: [{ name: 'replies', where: [{ exact: { type: 'io.kinfer.inference.response' } }, { cesql: "EXISTS inresponseto AND source LIKE '/models/%'" }] }] }),
      ],
      command: [process.execPath, join(dir, 'router.cjs')],
      idleMs: 60_000,
      port: 0,
      host: '127.0.0.1',
      onBrokerEvent: (t) => notes.push(t),
    });
  });
  afterAll(() => serving.close());

  it('an inference request event reaches the function (started from zero), and its reply event the sink, INT64 digits intact', async () => {
    expect(serving.brokers).toEqual({ default: `${serving.url}/default/default` });
    const body = '{"id":"r1","inputs":[{"name":"a","datatype":"INT64","shape":[2],"data":["9007199254740993",-2]}]}';
    const res = await fetch(serving.brokers.default!, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'ev-1', 'ce-source': '/camera/7', 'ce-type': 'io.kinfer.inference.request' },
      body,
    });
    expect(res.status).toBe(202);
    await until(() => notes.some((n) => n.startsWith('sink-replies: io.kinfer.inference.response')), 20_000);
    const [reply] = await events();
    expect(reply!.headers).toMatchObject({ 'ce-type': 'io.kinfer.inference.response', 'ce-source': '/models/echo', 'ce-inresponseto': 'ev-1', 'ce-requestid': 'r1', 'content-type': 'application/json', prefer: 'reply' });
    expect(Buffer.from(reply!.body, 'base64').toString()).toMatch(/"data":\[9007199254740993,-2\]/);
    expect(notes).toContain('echo-fn-requests: io.kinfer.inference.request ev-1 delivered; reply io.kinfer.inference.response ' + reply!.headers['ce-id'] + ' published');
  });

  it("binary tensors through the Broker: the header length travels as the inferenceheadercontentlength attribute, both ways (the HTTP header is not an event's)", async () => {
    const header = { inputs: [{ name: 'a', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }], outputs: [{ name: 'a', parameters: { binary_data: true } }] };
    const { body, headerLength } = binaryBody(header, [le('f32', [1.5, -2.25])]);
    const before = (await events()).length;
    const res = await fetch(serving.brokers.default!, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'ce-specversion': '1.0', 'ce-id': 'ev-2', 'ce-source': '/camera/7', 'ce-type': 'io.kinfer.inference.request', 'ce-inferenceheadercontentlength': headerLength },
      body: Buffer.from(body),
    });
    expect(res.status).toBe(202);
    await until(() => notes.some((n) => n.startsWith('sink-replies:') && n.includes('delivered (202)')) && notes.filter((n) => n.startsWith('sink-replies:')).length >= 2, 20_000);
    const reply = (await events())[before]!;
    const bytes = Buffer.from(reply.body, 'base64');
    const length = Number(reply.headers['ce-inferenceheadercontentlength']);
    expect(reply.headers['ce-inresponseto']).toBe('ev-2');
    expect(JSON.parse(bytes.subarray(0, length).toString())).toMatchObject({ outputs: [{ name: 'a', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }] });
    expect([bytes.readFloatLE(length), bytes.readFloatLE(length + 4)]).toEqual([1.5, -2.25]);
  });

  it('answers a bad event 400 at the ingress, and a function refusing an event (400) is not retried', async () => {
    const bad = await fetch(serving.brokers.default!, { method: 'POST', headers: { 'ce-specversion': '1.0', 'ce-id': 'x' }, body: '' });
    expect(bad.status).toBe(400);
    const res = await fetch(serving.brokers.default!, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'ev-3', 'ce-source': '/p', 'ce-type': 'io.kinfer.inference.request' },
      body: '{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[1]}]}',
    });
    expect(res.status).toBe(202);
    await until(() => notes.some((n) => n.startsWith('echo-fn-requests: io.kinfer.inference.request ev-3 failed: 400')));
    expect(notes.find((n) => n.includes('ev-3 failed'))).toMatch(/; not retried$/);
  });
});
