/**
 * @module test/bench/wrk.test
 * The wrk load path: the Lua script it is given, the summary it prints, and
 * (where wrk is installed; skipped with a message otherwise) a real ~1 s run
 * against a loopback server that checks every request's method, headers and
 * body. Never the speed: that is `npm run bench`'s job.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertClean, loadInChild, v2BinaryBody, floats } from './lib.js';
import { luaString, parseWrkOutput, wrkScript, wrkVersion } from './wrk.js';

describe('wrk load generator: script and summary', () => {
  it('quotes any string as a Lua literal', () => {
    expect(luaString('application/json')).toBe('"application/json"');
    expect(luaString('a"b\\c\n')).toBe('"a\\034b\\092c\\010"');
    expect(luaString('µ')).toBe('"\\194\\181"');
  });

  it('sets the request once and prints one JSON summary line', () => {
    const script = wrkScript({ headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '97' }, body: 'x' }, '/tmp/b"ody');
    expect(script).toContain('wrk.method = "POST"');
    expect(script).toContain('wrk.headers["inference-header-content-length"] = "97"');
    expect(script).toContain('io.open("/tmp/b\\034ody", "rb")');
    expect(script).toContain('latency:percentile(99)');
    expect(wrkScript({}, undefined)).toMatch(/^wrk\.method = "GET"\n(?!.*io\.open)/s);
  });

  it('turns the summary into a load result: ok excludes error statuses, latencies in ms', () => {
    const out = 'Running 1s test @ http://127.0.0.1:1/\n  1 threads and 2 connections\n\n{"requests":1000,"durationUs":2000000,"p50Us":1500,"p99Us":4250,"connect":0,"read":2,"write":0,"timeout":1,"status":10}\n';
    expect(parseWrkOutput(out)).toEqual({ rps: 495, p50: 1.5, p99: 4.25, ok: 990, errors: 3, non2xx: 10, durationSec: 2 });
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused\n')).toThrow(/wrk printed no summary/);
  });
});

const version = wrkVersion();
if (!version) console.warn('wrk.test: wrk is not installed (apt-get install wrk); skipping the live wrk runs');

describe.skipIf(!version)('wrk load generator: a live run on loopback', () => {
  const bin = v2BinaryBody('x', [1, 64], floats(64, 7));
  const want = Buffer.from(bin.body);
  let seen = { ok: 0, bad: 0, detail: '' };
  let server: Server;
  let base = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/fail') {
          res.writeHead(503).end('{"error":"unavailable"}');
          return;
        }
        const body = Buffer.concat(chunks);
        const good = req.method === 'POST' && req.headers['inference-header-content-length'] === String(bin.headerLength) && body.equals(want);
        if (good) seen.ok++;
        else {
          seen.bad++;
          seen.detail = `${req.method} ${JSON.stringify(req.headers)} ${body.length} bytes`;
        }
        res.writeHead(good ? 200 : 400, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends the binary body and headers on every request and counts the 2xx', async () => {
    seen = { ok: 0, bad: 0, detail: '' };
    const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(bin.headerLength) };
    const r = assertClean('wrk', await loadInChild({ url: `${base}/infer`, body: bin.body, headers, connections: 2, durationSec: 1 }, { loadGen: 'wrk', loadCpu: undefined }));
    expect(seen.bad, seen.detail).toBe(0);
    expect(r.ok).toBeGreaterThan(0);
    // wrk counts only responses completed within the run; the server may have answered a request or two more.
    expect(r.ok).toBeLessThanOrEqual(seen.ok);
    expect(r.ok).toBeGreaterThanOrEqual(seen.ok - 2);
    expect(r.rps).toBeCloseTo(r.ok / r.durationSec, 6);
    expect(r.p99).toBeGreaterThanOrEqual(r.p50);
  }, 20_000);

  it('reports error statuses as non-2xx, which assertClean refuses', async () => {
    const r = await loadInChild({ url: `${base}/fail`, body: '{}', connections: 1, durationSec: 1 }, { loadGen: 'wrk', loadCpu: undefined });
    expect(r.ok).toBe(0);
    expect(r.non2xx).toBeGreaterThan(0);
    expect(() => assertClean('fail', r)).toThrow(/non-2xx/);
  }, 20_000);
});
