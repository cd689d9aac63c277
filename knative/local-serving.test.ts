/**
 * @module knative/local-serving.test
 * kinfer dev's pieces that need no process: the reason given for a process that ended before it
 * was ready, and the bound on a dead-letter URI sink's answer. (Processes, routing and scaling:
 * test/integration/local-serving.test.ts.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_EVENT_BYTES } from './local-broker.js';
import { exitReason, postUri } from './local-serving.js';

describe('exitReason', () => {
  it("gives the message of the last fatal or error log line (kinfer serve logs to stdout), else stderr's last line, else stdout's", () => {
    const stdout = [
      '{"level":"info","msg":"listening"}',
      '{"level":"fatal","event":"startup_failed","msg":"startup failed: file:///nonexistent/x: no such file or folder"}',
      '{"level":"info","msg":"closed"}',
    ].join('\n');
    expect(exitReason({ stdout, stderr: 'a warning\n' })).toBe('startup failed: file:///nonexistent/x: no such file or folder');
    expect(exitReason({ stdout: '{"level":50,"msg":"pino number levels too"}\n', stderr: '' })).toBe('pino number levels too');
    expect(exitReason({ stdout: 'plain out\n', stderr: 'kinfer serve: model artifact missing\n\n' })).toBe('kinfer serve: model artifact missing');
    expect(exitReason({ stdout: 'plain out\nlast out\n', stderr: '' })).toBe('last out');
    expect(exitReason({ stdout: '', stderr: '' })).toBe('(no output)');
  });
});

describe('postUri (a dead-letter URI sink)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });

  const sink = async (answerBytes: number) => {
    let sent = 0;
    server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(1 << 20, 1);
      const more = () => {
        while (sent < answerBytes) {
          const n = Math.min(chunk.byteLength, answerBytes - sent);
          sent += n;
          if (!res.write(chunk.subarray(0, n))) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dead`, sent: () => sent };
  };

  it('reads an answer up to MAX_EVENT_BYTES and refuses a larger one without reading it whole', async () => {
    const small = await sink(10);
    const answer = await postUri(small.url, { 'ce-id': '1' }, Buffer.from('x'));
    expect([answer.status, answer.body.byteLength]).toEqual([200, 10]);
    await new Promise((r) => server!.close(r));
    server = undefined;
    const big = await sink(4 * MAX_EVENT_BYTES);
    await expect(postUri(big.url, {}, Buffer.from('x'))).rejects.toThrow(`the answer is over ${MAX_EVENT_BYTES} bytes`);
    expect(big.sent()).toBeLessThan(2 * MAX_EVENT_BYTES);
  });
});
