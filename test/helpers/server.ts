/**
 * @module test/helpers/server
 * Starts a kinfer server on 127.0.0.1 with a random port for integration
 * tests, with a silent logger, and gives small fetch helpers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { pino } from 'pino';
import { startServer, type RunningServer, type ServeOptions } from '../../runtime/server/serve.js';

export type TestServerOptions = Partial<ServeOptions> & Pick<ServeOptions, 'modelRepository'>;

export async function startTestServer(opts: TestServerOptions): Promise<RunningServer> {
  const server = await startServer({
    mode: 'repository',
    port: 0,
    host: '127.0.0.1',
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    drainTimeoutMs: 5_000,
    ...opts,
  });
  await server.startup;
  return server;
}

export async function tempDir(prefix = 'kinfer-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
}

/** A sample's value in Prometheus text (`/metrics`): the first series of `name` carrying every label given; 0 when none does. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return 0;
}

/** A request with its own Host header (fetch cannot set one), as an ingress routes by it. */
export function hostRequest(url: string, host: string, path: string, body?: unknown): Promise<{ status: number; text: () => Promise<string>; json: () => Promise<unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: body ? 'POST' : 'GET', headers: { host, 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, text: async () => text, json: async () => JSON.parse(text) as unknown });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}
