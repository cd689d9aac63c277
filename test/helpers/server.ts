/**
 * @module test/helpers/server
 * Starts a kinfer server on 127.0.0.1 with a random port for integration
 * tests, with a silent logger, and gives small fetch helpers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
