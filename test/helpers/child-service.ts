/**
 * @module test/helpers/child-service
 * A server a test runs as a child process (moto_server, Azurite): started, probed until it
 * answers (bounded), and stopped with SIGTERM, then SIGKILL after 3 s. Its stderr's first
 * 4,000 characters go into the errors, so a server that dies on start says why.
 *
 * @example
 * const svc = await startChildService({ name: 'moto_server', command: 'moto_server', args, probe: () => answers(url) });
 * await svc.stop();
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface ChildServiceOptions {
  /** For error messages. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** True once the server answers; called every 150 ms. */
  probe: () => Promise<boolean>;
  /** Where it answers, for the error when it never does. */
  endpoint: string;
  timeoutMs: number;
  /** Runs after the process is gone (e.g. removing its working folder). */
  cleanup?: () => Promise<void>;
}

/** Starts the child and resolves once `probe` says it answers; rejects, with the child stopped, when it exits or the time runs out. */
export async function startChildService(o: ChildServiceOptions): Promise<{ stop: () => Promise<void> }> {
  const spawnOptions: SpawnOptions = { stdio: ['ignore', 'ignore', 'pipe'], ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) };
  const child: ChildProcess = spawn(o.command, o.args, spawnOptions);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', () => (exited = true)); // not found or not executable: reported as an exit
  const stop = async () => {
    if (!exited) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    await o.cleanup?.();
  };
  const deadline = Date.now() + o.timeoutMs;
  while (Date.now() < deadline) {
    if (exited) {
      await stop();
      throw new Error(`${o.name} exited before answering: ${stderr.slice(-500)}`);
    }
    if (await o.probe()) return { stop };
    await new Promise((r) => setTimeout(r, 150));
  }
  await stop();
  throw new Error(`${o.name} did not answer on ${o.endpoint} within ${o.timeoutMs} ms: ${stderr.slice(-500)}`);
}
