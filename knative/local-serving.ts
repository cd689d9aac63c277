/**
 * @module knative/local-serving
 * `kinfer dev`: Knative Serving's request path on one machine, to try functions without a
 * cluster. One port routes by `Host` (`<fn>.<namespace>.<domain>`, `<fn>.localhost` or `<fn>`:
 * the first label names the function, as Knative's ingress routes `<fn>.<namespace>.<domain>`)
 * to one `kinfer serve` process per function, run with the env its Knative Service sets
 * (`serverEnv`). A function with `minScale: 0` starts on its first request (scale from zero:
 * requests wait, as at Knative's activator, until it is ready or `startupSeconds` pass) and stops
 * after `idleMs` without requests (scale to zero); one with `minScale` ≥ 1 starts at once and stays.
 * `containerConcurrency` caps the requests in flight (the rest wait, as at the queue-proxy), and
 * `timeoutSeconds` bounds each request. One process per function: `maxScale` is not emulated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FunctionSpec } from '../functions/define.js';
import { freePort } from '../runtime/core/free-port.js';
import { serverEnv } from './resources/common.js';

/** Requests waiting for one function (to start, or for a concurrency slot); past it, 503. */
export const MAX_WAITING = 1000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 10_000;

export interface LocalServingOptions {
  functions: FunctionSpec[];
  /** The command that runs `kinfer serve` (node and the CLI's entry). */
  command: [string, ...string[]];
  /** Idle time before a `minScale: 0` function stops. */
  idleMs: number;
  /** Extra env for every function (over the process's own); the functions' own env wins. */
  env?: NodeJS.ProcessEnv;
  /** Storage URIs replacing a function's (`--storage-uri fn=uri`), e.g. for a path that exists only in the image. */
  storageUris?: Record<string, string>;
  /** Each function's definition module, whose lifecycle hooks its process runs (`KINFER_FUNCTION`); without one, none. */
  modules?: Record<string, string>;
  /** A line of a function's process output. */
  onOutput?: (fn: string, line: string) => void;
  /** What the gateway does: starts, ready, stops, exits. */
  onEvent?: (fn: string, text: string) => void;
}

interface Waiter {
  wake: () => void;
  fail: (status: number, message: string) => void;
}

interface Instance {
  spec: FunctionSpec;
  child?: ChildProcess;
  port?: number;
  starting?: Promise<void>;
  stopping?: Promise<void>;
  inflight: number;
  waiting: Waiter[];
  idleTimer?: ReturnType<typeof setTimeout>;
  stderrTail: string;
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface LocalServing {
  url: string;
  /** Whether a function's process is running. */
  running(fn: string): boolean;
  close(): Promise<void>;
}

/** The function a `Host` header names, or undefined: its first DNS label (a port dropped). */
export function functionOfHost(host: string | undefined, names: ReadonlySet<string>): string | undefined {
  const label = (host ?? '').replace(/:\d+$/, '').split('.')[0]?.toLowerCase();
  return label && names.has(label) ? label : undefined;
}

/**
 * The env of a function's process: literal values as its Knative Service sets them. A value its
 * manifest reads from a Secret or ConfigMap is taken from this process's env under the same name;
 * without it the function cannot start, and the error says which variable to set.
 */
export function localEnv(spec: FunctionSpec, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const e of serverEnv(spec)) {
    if ('value' in e) env[e.name] = e.value;
    else if (base[e.name] === undefined) {
      const ref = 'secretKeyRef' in e.valueFrom ? `Secret ${e.valueFrom.secretKeyRef.name} (key ${e.valueFrom.secretKeyRef.key})` : `ConfigMap ${e.valueFrom.configMapKeyRef.name} (key ${e.valueFrom.configMapKeyRef.key})`;
      throw new HttpFailure(503, `function '${spec.name}': env ${e.name} comes from ${ref} in the cluster; set ${e.name} in kinfer dev's environment`);
    }
  }
  return env;
}

export async function startLocalServing(opts: LocalServingOptions & { port: number; host: string }): Promise<LocalServing> {
  const instances = new Map<string, Instance>(opts.functions.map((spec) => [spec.name, { spec, inflight: 0, waiting: [], stderrTail: '' }]));
  const names = new Set(instances.keys());
  const event = (fn: string, text: string) => opts.onEvent?.(fn, text);

  const start = (inst: Instance): Promise<void> => {
    inst.starting ??= (async () => {
      await inst.stopping;
      const spec = inst.spec;
      const port = await freePort();
      const uri = opts.storageUris?.[spec.name];
      const env = localEnv(uri && spec.model ? { ...spec, model: { ...spec.model, storageUri: uri } } : spec, { ...process.env, ...opts.env });
      // As Knative sets them; and a model folder of its own, as a pod has.
      Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', K_SERVICE: spec.name, K_CONFIGURATION: spec.name, K_REVISION: `${spec.name}-local` });
      env.MODEL_REPOSITORY ??= join(tmpdir(), 'kinfer-dev', spec.name);
      const module = opts.modules?.[spec.name];
      if (module) env.KINFER_FUNCTION = module;
      else delete env.KINFER_FUNCTION;
      const t0 = performance.now();
      event(spec.name, 'starting (scale from zero)');
      const [cmd, ...args] = opts.command;
      const child = spawn(cmd, [...args, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      inst.child = child;
      inst.stderrTail = '';
      const lines = (stream: NodeJS.ReadableStream, keep: boolean) => {
        let partial = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          if (keep) inst.stderrTail = (inst.stderrTail + chunk).slice(-2000);
          const parts = (partial + chunk).split('\n');
          partial = parts.pop() ?? '';
          for (const line of parts) opts.onOutput?.(spec.name, line);
        });
      };
      lines(child.stdout!, false);
      lines(child.stderr!, true);
      child.on('exit', (code, signal) => {
        if (inst.child !== child) return;
        inst.child = undefined;
        inst.port = undefined;
        inst.starting = undefined;
        clearTimeout(inst.idleTimer);
        if (!inst.stopping) event(spec.name, `exited (${signal ?? `code ${code}`})`);
      });
      const deadline = t0 + spec.scaling.startupSeconds * 1000;
      while (performance.now() < deadline) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new HttpFailure(503, `function '${spec.name}' exited before it was ready (${child.signalCode ?? `code ${child.exitCode}`}): ${lastLine(inst.stderrTail)}`);
        }
        if (await ready(port)) {
          inst.port = port;
          event(spec.name, `ready in ${Math.round(performance.now() - t0)} ms`);
          return;
        }
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
      }
      child.kill('SIGKILL');
      throw new HttpFailure(503, `function '${spec.name}' was not ready within startupSeconds (${spec.scaling.startupSeconds} s)`);
    })().catch((err: unknown) => {
      inst.starting = undefined;
      throw err;
    });
    return inst.starting;
  };

  const stop = (inst: Instance, why: string): Promise<void> => {
    const child = inst.child;
    if (!child) return Promise.resolve();
    event(inst.spec.name, why);
    inst.starting = undefined;
    inst.port = undefined;
    inst.stopping = new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        inst.stopping = undefined;
        resolve();
      });
      child.kill('SIGTERM');
    });
    inst.child = undefined;
    return inst.stopping;
  };

  const armIdle = (inst: Instance) => {
    clearTimeout(inst.idleTimer);
    if (inst.spec.scaling.minScale > 0 || inst.inflight > 0 || inst.waiting.length > 0 || !inst.child) return;
    inst.idleTimer = setTimeout(() => void stop(inst, `scaled to zero after ${Math.round(opts.idleMs / 1000)} s without requests`), opts.idleMs);
    inst.idleTimer.unref();
  };

  /** Takes a slot: starts the process if it is not running, waits for a free slot under containerConcurrency. */
  const admit = async (inst: Instance): Promise<void> => {
    clearTimeout(inst.idleTimer);
    const cap = inst.spec.scaling.containerConcurrency;
    if (!inst.port || (cap > 0 && inst.inflight >= cap)) {
      if (inst.waiting.length >= MAX_WAITING) throw new HttpFailure(503, `function '${inst.spec.name}': ${MAX_WAITING} requests are waiting already`);
      const wait = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => fail(504, `function '${inst.spec.name}': no answer within timeoutSeconds (${inst.spec.scaling.timeoutSeconds} s) while waiting`), inst.spec.scaling.timeoutSeconds * 1000);
        const w: Waiter = {
          wake: () => (clearTimeout(timer), resolve()),
          fail: (status, message) => (clearTimeout(timer), reject(new HttpFailure(status, message))),
        };
        const fail = (status: number, message: string) => {
          inst.waiting.splice(inst.waiting.indexOf(w), 1);
          w.fail(status, message);
        };
        inst.waiting.push(w);
      });
      if (!inst.port) {
        start(inst).then(
          () => wakeWaiters(inst),
          (err: unknown) => {
            const e = err instanceof HttpFailure ? err : new HttpFailure(503, String(err));
            for (const w of inst.waiting.splice(0)) w.fail(e.status, e.message);
          },
        );
      }
      await wait;
    }
    inst.inflight++;
  };

  const wakeWaiters = (inst: Instance) => {
    const cap = inst.spec.scaling.containerConcurrency;
    let free = cap > 0 ? cap - inst.inflight : inst.waiting.length;
    while (free-- > 0 && inst.waiting.length > 0 && inst.port) inst.waiting.shift()!.wake();
  };

  const release = (inst: Instance) => {
    inst.inflight--;
    wakeWaiters(inst);
    armIdle(inst);
  };

  const proxy = (inst: Instance, req: IncomingMessage, res: ServerResponse): Promise<void> =>
    new Promise((resolve) => {
      const upstream = httpRequest({ host: '127.0.0.1', port: inst.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', resolve);
        answer.on('error', () => (res.destroy(), resolve()));
      });
      const timer = setTimeout(() => {
        upstream.destroy();
        if (!res.headersSent) sendError(res, 504, `function '${inst.spec.name}': no answer within timeoutSeconds (${inst.spec.scaling.timeoutSeconds} s)`);
        else res.destroy();
        resolve();
      }, inst.spec.scaling.timeoutSeconds * 1000);
      res.on('close', () => {
        clearTimeout(timer);
        upstream.destroy();
        resolve();
      });
      upstream.on('error', (err) => {
        if (!res.headersSent) sendError(res, 502, `function '${inst.spec.name}': ${err.message}`);
        resolve();
      });
      req.pipe(upstream);
    });

  const server: Server = createServer((req, res) => {
    const fn = functionOfHost(req.headers.host, names);
    if (!fn) return sendError(res, 404, `no function answers Host ${JSON.stringify(req.headers.host ?? '')}; use Host: <function>.<anything> with one of: ${[...names].join(', ')}`);
    const inst = instances.get(fn)!;
    admit(inst).then(
      () => proxy(inst, req, res).finally(() => release(inst)),
      (err: unknown) => {
        const e = err instanceof HttpFailure ? err : new HttpFailure(500, String(err));
        sendError(res, e.status, e.message);
        armIdle(inst);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  // minScale ≥ 1: running before the first request, and kept.
  await Promise.all([...instances.values()].filter((i) => i.spec.scaling.minScale > 0).map((i) => start(i)));
  return {
    url: `http://${address.address}:${address.port}`,
    running: (fn) => instances.get(fn)?.child !== undefined,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.all([...instances.values()].map((i) => stop(i, 'stopping')));
    },
  };
}

async function ready(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v2/health/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function lastLine(text: string): string {
  const line = text.trim().split('\n').pop() ?? '';
  return line.length > 500 ? `${line.slice(0, 500)}…` : line || '(no output)';
}

function sendError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}
