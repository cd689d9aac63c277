/**
 * @module knative/local-serving
 * `kinfer dev`: Knative Serving's request path on one machine, to try functions without a
 * cluster. One port routes by `Host` (`<fn>.<namespace>.<domain>`, `<fn>.localhost` or `<fn>`:
 * the first label names the function, as Knative's ingress routes `<fn>.<namespace>.<domain>`)
 * to `kinfer serve` processes of that function (a pod's stand-in each), run with the env its
 * Knative Service sets (`serverEnv`). A function with `minScale: 0` starts on its first request
 * (scale from zero: requests wait, as at Knative's activator, until it is ready, fails to start,
 * or their `timeoutSeconds` pass) and stops after `idleMs` without requests (scale to zero); one
 * with `minScale` ≥ 1 starts at once and is kept at minScale (a start that fails is retried with
 * a growing backoff). `containerConcurrency` caps
 * the requests in flight (the rest wait, as at the queue-proxy); `timeoutSeconds` bounds each
 * request from its arrival, its wait included. Between one process and `maxScale` (capped by
 * `maxReplicas`), a function scales as Knative's KPA scales pods (knative/local-autoscaler.ts): on
 * the requests in flight or waiting (or arriving per second), over its stable and panic windows;
 * requests go to the ready process with the fewest, and a process scaled down drains first.
 * The functions' Triggers get their events from local Brokers on the same port
 * (`/<namespace>/<broker>`, knative/local-broker.ts), delivered through this ingress.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isoDurationMs, RESERVED_ENV, type FunctionSpec } from '../functions/define.js';
import { freePort } from '../runtime/core/free-port.js';
import { lineSplitter } from './lines.js';
import { BUCKET_MS, deciderSpec, LocalAutoscaler, TICK_MS, TimeAverage } from './local-autoscaler.js';
import { flatHeaders, MAX_EVENT_BYTES, startLocalBroker, type Answer, type Delivery, type LocalTrigger } from './local-broker.js';
import { serverEnv } from './resources/common.js';

/** Processes per function at most, whatever its maxScale: a laptop is not a cluster. */
export const DEFAULT_MAX_REPLICAS = 10;
/** Requests waiting for one function (to start, or for a concurrency slot); past it, 503. */
export const MAX_WAITING = 1000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 10_000;
/** How long a broken connection waits to see its process exit before its slot is handed on. */
const DEATH_WAIT_MS = 100;
/** Before a process that crashed after it was ready is started again (a crash loop spins no faster). */
const RESTART_DELAY_MS = 1000;
/** The longest wait between starts that keep failing (Kubernetes' CrashLoopBackOff caps at 5 min; a laptop's loop is shorter). */
const MAX_RESTART_DELAY_MS = 30_000;

export interface LocalServingOptions {
  functions: FunctionSpec[];
  /** The command that runs `kinfer serve` (node and the CLI's entry). */
  command: [string, ...string[]];
  /** Idle time before a `minScale: 0` function stops. */
  idleMs: number;
  /** The base env of every function (default this process's), without what the generator owns; the functions' own env wins. */
  env?: NodeJS.ProcessEnv;
  /** Storage URIs replacing a function's (`--storage-uri fn=uri`), e.g. for a path that exists only in the image. */
  storageUris?: Record<string, string>;
  /** Each function's definition module, whose lifecycle hooks its process runs (`KINFER_FUNCTION`); without one, none. */
  modules?: Record<string, string>;
  /** A line of a function's process output; `replica` numbers its processes from 1. */
  onOutput?: (fn: string, line: string, replica: number) => void;
  /** Processes per function at most (default DEFAULT_MAX_REPLICAS), below its maxScale. */
  maxReplicas?: number;
  /** What the local ingress does: starts, ready, scales, stops, exits (`replica <n>: …` past the first). */
  onEvent?: (fn: string, text: string) => void;
  /** The namespace of the Brokers' paths (`/<namespace>/<broker>`); default `default`. */
  namespace?: string;
  /** The Triggers' delivery; default Knative's (knative/local-broker.ts). */
  delivery?: Delivery;
  /** What the Brokers do with each event: accepted, delivered, retried, replied, dropped. */
  onBrokerEvent?: (text: string) => void;
}

/** A request waiting for a slot: granted one on a replica (the slot counted), or failed with a status. */
interface Waiter {
  grant: (replica: Replica) => void;
  fail: (status: number, message: string) => void;
}

/** One process of a function (a pod's stand-in), from spawn to exit. */
interface Replica {
  /** 1, 2, …: the lowest free at its start, for log lines. */
  id: number;
  child: ChildProcess;
  port: number;
  /** Answered ready. */
  ready: boolean;
  /** Chosen to go (scale down): takes no new requests, and stops when its last one is answered. */
  draining: boolean;
  /** Being stopped on purpose (idle, scale down, close). */
  stopping: boolean;
  /** Requests sent to it and not yet answered. */
  inflight: number;
  /** Settles when the process has answered ready, or has failed to. */
  started: Promise<void>;
  /** Settles when the process has exited and its output is read. */
  closed: Promise<void>;
}

interface Instance {
  spec: FunctionSpec;
  /** Every process not yet stopped: starting, ready and draining. */
  replicas: Replica[];
  waiting: Waiter[];
  idleTimer?: ReturnType<typeof setTimeout>;
  autoscaler: LocalAutoscaler;
  /** Requests in flight or waiting, time-averaged (the concurrency metric). */
  load: TimeAverage;
  /** Arrivals since the last sample (the rps metric). */
  arrivals: number;
  /** Processes told to stop and not yet exited: close() waits for them, and their ids stay taken. */
  stopping: Set<Replica>;
  /** Starts that failed in a row; the autoscaler's and minScale's next start waits RESTART_DELAY_MS doubled per failure. */
  failures: number;
  /** performance.now() before which neither starts another process (crash-loop backoff). */
  retryAt: number;
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
  /** Each Broker's ingress URL, by name (`<url>/<namespace>/<broker>`). */
  brokers: Record<string, string>;
  /** Whether any process of a function is running. */
  running(fn: string): boolean;
  /** A function's ready processes that take requests. */
  replicas(fn: string): number;
  close(): Promise<void>;
}

/** The function a `Host` header names, or undefined: its first DNS label (a port dropped). */
export function functionOfHost(host: string | undefined, names: ReadonlySet<string>): string | undefined {
  const label = (host ?? '').replace(/:\d+$/, '').split('.')[0]?.toLowerCase();
  return label && names.has(label) ? label : undefined;
}

/**
 * The env of a function's process: `base` without what the generator owns (a stray
 * `KINFER_REST_PORT` or `MODEL_REPOSITORY` in the shell would redirect every function), then the
 * literal values its Knative Service sets. A value its manifest reads from a Secret or ConfigMap is
 * taken from `base` under the same name; without it the function cannot start, and the error says
 * which variable to set. A `grpc-v2` function is served over REST alone here (one port).
 */
export function localEnv(spec: FunctionSpec, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const k of [...RESERVED_ENV, 'MODEL_REPOSITORY']) delete env[k];
  for (const e of serverEnv(spec)) {
    if ('value' in e) env[e.name] = e.value;
    else if (base[e.name] !== undefined) env[e.name] = base[e.name];
    else {
      const ref = 'secretKeyRef' in e.valueFrom ? `Secret ${e.valueFrom.secretKeyRef.name} (key ${e.valueFrom.secretKeyRef.key})` : `ConfigMap ${e.valueFrom.configMapKeyRef.name} (key ${e.valueFrom.configMapKeyRef.key})`;
      throw new HttpFailure(503, `function '${spec.name}': env ${e.name} comes from ${ref} in the cluster; set ${e.name} in kinfer dev's environment`);
    }
  }
  delete env.GRPC_PORT;
  delete env.KINFER_REST_PORT;
  return env;
}

export async function startLocalServing(opts: LocalServingOptions & { port: number; host: string }): Promise<LocalServing> {
  const t0 = performance.now();
  const instances = new Map<string, Instance>(
    opts.functions.map((spec) => [
      spec.name,
      { spec, replicas: [], waiting: [], autoscaler: new LocalAutoscaler(deciderSpec(spec)), load: new TimeAverage(t0), arrivals: 0, stopping: new Set(), failures: 0, retryAt: 0 },
    ]),
  );
  const names = new Set(instances.keys());
  const maxReplicas = opts.maxReplicas ?? DEFAULT_MAX_REPLICAS;
  const event = (fn: string, text: string, replica?: Replica) => opts.onEvent?.(fn, replica && replica.id > 1 ? `replica ${replica.id}: ${text}` : text);
  let closing = false;

  /** The replicas that take requests, or will once ready (one being stopped is no longer in `replicas`). */
  const serving = (inst: Instance) => inst.replicas.filter((r) => !r.draining);
  /** The ready replica with a free slot under containerConcurrency and the fewest requests. */
  const freeReplica = (inst: Instance): Replica | undefined => {
    const cap = inst.spec.scaling.containerConcurrency;
    let best: Replica | undefined;
    for (const r of inst.replicas) if (r.ready && !r.draining && (cap === 0 || r.inflight < cap) && (!best || r.inflight < best.inflight)) best = r;
    return best;
  };

  const failWaiters = (inst: Instance, status: number, message: string) => {
    for (const w of inst.waiting.splice(0)) w.fail(status, message);
  };

  /** Hands free slots to waiting requests, in order. */
  const pump = (inst: Instance) => {
    for (let r = freeReplica(inst); r && inst.waiting.length > 0; r = freeReplica(inst)) {
      r.inflight++;
      inst.waiting.shift()!.grant(r);
    }
  };

  const armIdle = (inst: Instance) => {
    clearTimeout(inst.idleTimer);
    const busy = inst.waiting.length > 0 || inst.replicas.some((r) => r.inflight > 0);
    if (closing || inst.spec.scaling.minScale > 0 || !serving(inst).some((r) => r.ready) || busy) return;
    inst.idleTimer = setTimeout(() => {
      event(inst.spec.name, `scaled to zero after ${(opts.idleMs / 1000).toFixed(opts.idleMs < 1000 ? 1 : 0)} s without requests`);
      for (const r of [...inst.replicas]) void stop(inst, r);
    }, opts.idleMs);
    inst.idleTimer.unref();
  };

  /**
   * Spawns one more process of the function; waiting requests get its slots when it is ready. A
   * start that fails fails the waiting requests when no other process is up or starting. Throws
   * HttpFailure when its env cannot be made (a Secret's value missing).
   */
  const start = (inst: Instance, why: string): Replica | undefined => {
    if (closing) return undefined;
    const spec = inst.spec;
    const uri = opts.storageUris?.[spec.name];
    const env = localEnv(uri && spec.model ? { ...spec, model: { ...spec.model, storageUri: uri } } : spec, opts.env ?? process.env); // throws HttpFailure
    const module = opts.modules?.[spec.name];
    if (module) env.KINFER_FUNCTION = module;
    else delete env.KINFER_FUNCTION;
    // Free among those still stopping too: an id names a model folder and a log prefix.
    let id = 1;
    while (inst.replicas.some((r) => r.id === id) || [...inst.stopping].some((r) => r.id === id)) id++;
    // As Knative sets them; and a model folder of its own, as a pod has.
    Object.assign(env, { HOST: '127.0.0.1', K_SERVICE: spec.name, K_CONFIGURATION: spec.name, K_REVISION: `${spec.name}-local`, MODEL_REPOSITORY: join(tmpdir(), 'kinfer-dev', id === 1 ? spec.name : `${spec.name}-${id}`) });
    const replica = { id, ready: false, draining: false, stopping: false, inflight: 0 } as Replica;
    event(spec.name, `starting (${why})`, replica);
    const began = performance.now();
    // The last output of each stream, for the reason a process that exits before ready gives.
    const tails = { stdout: '', stderr: '' };
    inst.replicas.push(replica);
    replica.started = (async () => {
      replica.port = await freePort();
      const [cmd, ...args] = opts.command;
      const child = spawn(cmd, [...args, 'serve'], { env: { ...env, PORT: String(replica.port) }, stdio: ['ignore', 'pipe', 'pipe'] });
      replica.child = child;
      const output = (stream: NodeJS.ReadableStream, tail: keyof typeof tails) => {
        const lines = lineSplitter((line) => opts.onOutput?.(spec.name, line, id));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          tails[tail] = (tails[tail] + chunk).slice(-TAIL_CHARS);
          lines.write(chunk);
        });
        stream.on('end', () => lines.end());
      };
      output(child.stdout!, 'stdout');
      output(child.stderr!, 'stderr');
      replica.closed = new Promise<void>((resolve) => {
        child.once('error', () => resolve()); // a spawn that failed: no exit, no close
        child.once('close', () => resolve());
      });
      void replica.closed.then(() => exited(inst, replica, child));
      const deadline = began + spec.scaling.startupSeconds * 1000;
      for (;;) {
        if (replica.stopping) throw new HttpFailure(503, `function '${spec.name}' was stopped while starting`);
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
          await replica.closed;
          const line = exitReason(tails);
          throw new HttpFailure(503, `function '${spec.name}' exited before it was ready (${child.signalCode ?? `code ${child.exitCode}`}): ${line.length > 500 ? `${line.slice(0, 500)}…` : line}`);
        }
        if (performance.now() > deadline) {
          child.kill('SIGKILL');
          throw new HttpFailure(503, `function '${spec.name}' was not ready within startupSeconds (${spec.scaling.startupSeconds} s)`);
        }
        // Another process may have taken the port between the probe and the bind: only an answer while ours runs counts.
        if ((await ready(replica.port)) && child.exitCode === null && inst.replicas.includes(replica)) break;
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
      }
      replica.ready = true;
      inst.failures = 0;
      event(spec.name, `ready in ${Math.round(performance.now() - began)} ms`, replica);
      pump(inst);
      armIdle(inst);
    })();
    replica.started.catch((err: unknown) => {
      const e = err instanceof HttpFailure ? err : new HttpFailure(503, `function '${spec.name}': ${String(err)}`);
      if (!forget(inst, replica) || closing) return; // stopped on purpose
      killed(inst, replica);
      const delay = backOff(inst);
      event(spec.name, `failed to start: ${e.message}${inst.spec.scaling.minScale > 0 || serving(inst).length > 0 ? `; the next start in ${Math.round(delay / 100) / 10} s at the earliest` : ''}`, replica);
      // Those waiting now wait for another process, if one is up or starting.
      if (serving(inst).length === 0) failWaiters(inst, e.status, e.message);
    });
    return replica;
  };

  /**
   * A failed start: the next start that is not a request's waits RESTART_DELAY_MS, doubled for each
   * round that failed (several processes failing together count once), at most MAX_RESTART_DELAY_MS.
   * Returns the wait left.
   */
  const backOff = (inst: Instance): number => {
    const now = performance.now();
    if (now >= inst.retryAt) inst.retryAt = now + Math.min(RESTART_DELAY_MS * 2 ** inst.failures++, MAX_RESTART_DELAY_MS);
    return inst.retryAt - now;
  };

  /** SIGKILL for a process that is forgotten: its id (model folder) stays taken until it has exited. */
  const killed = (inst: Instance, replica: Replica) => {
    replica.child?.kill('SIGKILL');
    inst.stopping.add(replica);
    void (replica.closed ?? Promise.resolve()).finally(() => inst.stopping.delete(replica));
  };

  /** Takes a replica out of the function's list (the idle timer goes with the last); false when it was out already. */
  const forget = (inst: Instance, replica: Replica): boolean => {
    const i = inst.replicas.indexOf(replica);
    if (i < 0) return false;
    inst.replicas.splice(i, 1);
    if (serving(inst).length === 0) clearTimeout(inst.idleTimer);
    return true;
  };

  /**
   * A ready process ended: forget it, and start another after RESTART_DELAY_MS if requests wait with
   * no other process (the tick restores minScale). One that ends before it is ready is the start's failure.
   */
  const exited = (inst: Instance, replica: Replica, child: ChildProcess) => {
    if (!replica.ready || !forget(inst, replica)) return;
    event(inst.spec.name, `exited (${child.signalCode ?? `code ${child.exitCode}`})`, replica);
    // A crash loop spins no faster: the tick restores minScale after this, the requests waiting are served after it too.
    inst.retryAt = Math.max(inst.retryAt, performance.now() + RESTART_DELAY_MS);
    const needed = () => !closing && inst.waiting.length > 0 && serving(inst).length === 0;
    if (needed()) setTimeout(() => needed() && restart(inst, 'restarting after the exit'), RESTART_DELAY_MS).unref();
  };

  /** `start` for those already waiting: a failure to make the env is theirs when no other process can take them. */
  const restart = (inst: Instance, why: string) => {
    try {
      start(inst, why);
    } catch (err) {
      const e = err instanceof HttpFailure ? err : new HttpFailure(503, String(err));
      backOff(inst);
      event(inst.spec.name, `cannot start: ${e.message}`);
      if (serving(inst).length === 0) failWaiters(inst, e.status, e.message);
    }
  };

  /** Stops one process: SIGTERM (the server drains), SIGKILL after STOP_GRACE_MS. */
  const stop = async (inst: Instance, replica: Replica, why?: string): Promise<void> => {
    if (!forget(inst, replica)) return;
    replica.stopping = true;
    inst.stopping.add(replica);
    if (why) event(inst.spec.name, why, replica);
    try {
      await replica.started.catch(() => undefined);
      const child = replica.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.kill('SIGTERM');
      await replica.closed;
      clearTimeout(kill);
    } finally {
      inst.stopping.delete(replica);
    }
  };

  /**
   * One autoscaler tick: the KPA's count, kept within [minScale (at least 1 while any process
   * runs), maxScale and --max-replicas]. Scale from zero is the first request's, scale to zero
   * the idle timer's. Going down drains the starting processes first, then the least busy.
   */
  const tick = (inst: Instance, now: number) => {
    if (closing) return;
    const up = serving(inst);
    const s = inst.spec.scaling;
    const upper = s.maxScale === 0 ? maxReplicas : Math.min(s.maxScale, maxReplicas);
    // minScale is kept whatever the metric says (a process that crashed, a start that failed), after the backoff.
    const floor = Math.min(s.minScale, upper);
    if (up.length < floor) {
      if (now < inst.retryAt) return;
      for (let i = up.length; i < floor; i++) restart(inst, 'restarting (minScale)');
      return;
    }
    const decision = inst.autoscaler.scale(now, up.filter((r) => r.ready).length);
    if (!decision || up.length === 0) return;
    const want = Math.min(Math.max(decision.desired, floor, 1), upper);
    if (want === up.length || (want > up.length && now < inst.retryAt)) return;
    const metric = s.metric === 'rps' ? 'requests/s' : 'concurrency';
    const spec = inst.autoscaler.spec;
    const seen = decision.panicking ? `panic: ${metric} ${decision.panic.toFixed(1)} over ${spec.panicWindowMs / 1000} s` : `${metric} ${decision.stable.toFixed(1)} over ${spec.stableWindowMs / 1000} s`;
    event(inst.spec.name, `scaling ${up.length} → ${want} (${seen}, ${+spec.targetValue.toFixed(2)} per replica)`);
    if (want > up.length) {
      for (let i = up.length; i < want; i++) restart(inst, 'scale up');
      return;
    }
    const victims = [...up].sort((a, b) => Number(a.ready) - Number(b.ready) || a.inflight - b.inflight || b.id - a.id).slice(0, up.length - want);
    for (const r of victims) {
      r.draining = true;
      if (r.inflight === 0) void stop(inst, r, 'stopped (scale down)');
    }
  };

  // Knative's metric pipeline at one-second buckets, its decider every TICK_MS.
  let samples = 0;
  const sampler = setInterval(() => {
    const now = performance.now();
    const tickNow = ++samples % (TICK_MS / BUCKET_MS) === 0;
    for (const inst of instances.values()) {
      const load = inst.load.read(now);
      inst.autoscaler.record(now, inst.spec.scaling.metric === 'rps' ? inst.arrivals : load);
      inst.arrivals = 0;
      if (tickNow) tick(inst, now);
    }
  }, BUCKET_MS);
  sampler.unref();

  /**
   * A slot on a replica for one request: a process started if none is up, a free slot under
   * containerConcurrency waited for. Fails at `deadline` (504), when the client goes, or with the start's failure.
   */
  const admit = (inst: Instance, deadline: number, client: ServerResponse): Promise<Replica> => {
    clearTimeout(inst.idleTimer);
    if (closing) return Promise.reject(new HttpFailure(503, 'kinfer dev is stopping'));
    const free = inst.waiting.length === 0 ? freeReplica(inst) : undefined;
    if (free) {
      free.inflight++;
      return Promise.resolve(free);
    }
    if (inst.waiting.length >= MAX_WAITING) return Promise.reject(new HttpFailure(503, `function '${inst.spec.name}': ${MAX_WAITING} requests are waiting already`));
    return new Promise<Replica>((resolve, reject) => {
      const leave = () => {
        const i = inst.waiting.indexOf(w);
        if (i >= 0) inst.waiting.splice(i, 1);
        clearTimeout(timer);
        client.off('close', gone);
      };
      const w: Waiter = {
        grant: (r) => (leave(), resolve(r)),
        fail: (status, message) => (leave(), reject(new HttpFailure(status, message))),
      };
      const timer = setTimeout(() => w.fail(504, `function '${inst.spec.name}': no answer within timeoutSeconds (${inst.spec.scaling.timeoutSeconds} s), waiting included`), Math.max(0, deadline - Date.now()));
      const gone = () => w.fail(499, 'the client went away');
      client.once('close', gone);
      inst.waiting.push(w);
      if (serving(inst).length > 0) return;
      // A minScale function in its crash-loop backoff is started again by the tick, not by each request.
      if (inst.spec.scaling.minScale > 0 && performance.now() < inst.retryAt) return;
      try {
        start(inst, inst.spec.scaling.minScale > 0 ? 'restarting' : 'scale from zero');
      } catch (err) {
        const e = err instanceof HttpFailure ? err : new HttpFailure(503, String(err));
        w.fail(e.status, e.message);
      }
    });
  };

  const release = (inst: Instance, replica: Replica) => {
    replica.inflight--;
    if (replica.draining && replica.inflight === 0) void stop(inst, replica, 'stopped (scale down)');
    pump(inst);
    armIdle(inst);
  };

  /** A process that refused a connection or died (its exit maybe not seen yet): forgotten and killed; a new one starts for who waits. */
  const lost = (inst: Instance, replica: Replica) => {
    if (!forget(inst, replica)) return;
    event(inst.spec.name, 'lost its process; starting again', replica);
    killed(inst, replica);
    if (inst.waiting.length > 0 && serving(inst).length === 0) restart(inst, 'restarting');
  };

  /**
   * Forwards the request to `replica`. Resolves `{ retry }` when the connection failed (`retry`
   * when it was refused and the request has no body: nothing was delivered, it can go to another
   * process), else undefined.
   */
  const proxy = (inst: Instance, replica: Replica, req: IncomingMessage, res: ServerResponse, deadline: number): Promise<{ retry: boolean } | undefined> =>
    new Promise((done) => {
      const resolve = () => done(undefined);
      if (res.destroyed) return resolve();
      // A connection per request (agent: false): a pooled one to a process that just died would fail
      // as a reset, which cannot tell a request never delivered from one that was.
      const upstream = httpRequest({ host: '127.0.0.1', port: replica.port, method: req.method, path: req.url, headers: forwardHeaders(req), agent: false }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', resolve);
        answer.on('error', () => (res.destroy(), resolve()));
      });
      const timer = setTimeout(() => {
        upstream.destroy();
        if (!res.headersSent) sendError(res, 504, `function '${inst.spec.name}': no answer within timeoutSeconds (${inst.spec.scaling.timeoutSeconds} s), waiting included`);
        else res.destroy();
        resolve();
      }, Math.max(0, deadline - Date.now()));
      res.on('close', () => {
        clearTimeout(timer);
        upstream.destroy();
        resolve();
      });
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const retry = !res.headersSent && err.code === 'ECONNREFUSED' && !hasBody(req);
        if (!retry && !res.headersSent) sendError(res, 502, `function '${inst.spec.name}': ${err.message}`);
        done({ retry });
      });
      req.pipe(upstream);
    });

  const namespace = opts.namespace ?? 'default';
  const broker = startLocalBroker({
    namespace,
    triggers: opts.functions.flatMap((spec) => spec.triggers.map((t) => localTrigger(spec.name, t))),
    delivery: opts.delivery,
    // A function through this ingress, as a Trigger's subscriber resolves to its Knative Service: scaled from zero, capped, timed.
    send: (target, headers, body, signal) =>
      'function' in target ? post((server.address() as AddressInfo).port, `${target.function}.${namespace}.svc.cluster.local`, headers, body, signal) : postUri(target.uri, headers, body, signal),
    onEvent: opts.onBrokerEvent,
  });

  const server: Server = createServer({ requestTimeout: 0 }, (req, res) => {
    const fn = functionOfHost(req.headers.host, names);
    if (!fn && broker.claims(req.url ?? '/')) return broker.ingress(req, res);
    if (!fn) return sendError(res, 404, `no function answers Host ${JSON.stringify(req.headers.host ?? '')}; use Host: <function>.<anything> with one of: ${[...names].join(', ')}`);
    const inst = instances.get(fn)!;
    // One deadline per request, from its arrival: the wait for a start or a slot, and the answer.
    const deadline = Date.now() + inst.spec.scaling.timeoutSeconds * 1000;
    inst.arrivals++;
    inst.load.add(performance.now(), 1);
    const serve = (): Promise<void> =>
      admit(inst, deadline, res).then(
        async (replica) => {
          const failed = await proxy(inst, replica, req, res, deadline);
          if (failed) {
            // A broken connection: if the process is dying, see it go before the slot is handed on,
            // so no one else is sent there.
            await Promise.race([replica.closed, new Promise((r) => setTimeout(r, DEATH_WAIT_MS))]);
            if (failed.retry || replica.child.exitCode !== null || replica.child.signalCode !== null) lost(inst, replica);
          }
          release(inst, replica);
          if (failed?.retry) return serve();
        },
        (err: unknown) => {
          const e = err instanceof HttpFailure ? err : new HttpFailure(500, String(err));
          if (!res.destroyed) sendError(res, e.status, e.message);
          armIdle(inst);
        },
      );
    void serve().finally(() => inst.load.add(performance.now(), -1));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const close = async () => {
    closing = true;
    clearInterval(sampler);
    broker.close();
    for (const inst of instances.values()) failWaiters(inst, 503, 'kinfer dev is stopping');
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise((r) => setImmediate(r)); // the 503s above go out first
    server.closeAllConnections();
    await serverClosed;
    await Promise.all([...instances.values()].flatMap((i) => [...[...i.replicas].map((r) => stop(i, r, 'stopping')), ...[...i.stopping].map((r) => r.started.catch(() => undefined).then(() => r.closed))]));
  };
  // minScale ≥ 1: running before the first request, and kept.
  try {
    await Promise.all(
      [...instances.values()].flatMap((i) => Array.from({ length: Math.min(i.spec.scaling.minScale, maxReplicas) }, () => start(i, 'minScale ≥ 1')?.started)),
    );
  } catch (err) {
    await close();
    throw err;
  }
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url,
    brokers: Object.fromEntries([...new Set(opts.functions.flatMap((s) => s.triggers.map((t) => t.broker)))].map((b) => [b, `${url}/${namespace}/${b}`])),
    running: (fn) => (instances.get(fn)?.replicas.length ?? 0) > 0,
    replicas: (fn) => {
      const inst = instances.get(fn);
      return inst ? serving(inst).filter((r) => r.ready).length : 0;
    },
    close,
  };
}

/** A function's Trigger as the local Broker runs it: its delivery spec in milliseconds, its dead-letter sink. */
function localTrigger(fn: string, t: FunctionSpec['triggers'][number]): LocalTrigger {
  const out: LocalTrigger = { name: `${fn}-${t.name}`, broker: t.broker, filters: t.filters, ...(t.where ? { where: t.where } : {}), subscriber: fn };
  const d = t.delivery;
  if (!d) return out;
  // A Trigger's delivery replaces the Broker's whole: a retry left out is none, and without both a
  // policy and a delay Knative retries at once (RetryConfigFromDeliverySpec).
  const backoff = d.backoffPolicy !== undefined && d.backoffDelay !== undefined;
  out.delivery = { retry: d.retry ?? 0, backoffPolicy: d.backoffPolicy ?? 'exponential', backoffDelayMs: backoff ? isoDurationMs(d.backoffDelay!) : 0, ...(d.timeout ? { timeoutMs: isoDurationMs(d.timeout) } : {}) };
  if (d.deadLetterSink) out.deadLetter = d.deadLetterSink;
  return out;
}

/** Output kept per stream of a starting process: room for a fatal log line with its stack. */
const TAIL_CHARS = 64 * 1024;

/**
 * Why a process ended before it was ready, from the last of its output: the message of its last
 * fatal or error log line (`kinfer serve` logs JSON to stdout), else stderr's last line, else stdout's.
 */
export function exitReason(tails: { stdout: string; stderr: string }): string {
  const lines = (text: string) => text.trim().split('\n').filter(Boolean);
  for (const line of [...lines(tails.stdout), ...lines(tails.stderr)].reverse()) {
    try {
      const log = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((log.level === 'fatal' || log.level === 'error' || log.level === 60 || log.level === 50) && typeof log.msg === 'string') return log.msg;
    } catch {
      // not a log line
    }
  }
  return lines(tails.stderr).pop() ?? lines(tails.stdout).pop() ?? '(no output)';
}

/** A POST to a URI (a dead-letter sink outside kinfer dev), bounded to a minute. */
export async function postUri(uri: string, headers: Record<string, string>, body: Buffer, signal?: AbortSignal): Promise<Answer> {
  // A Trigger's delivery timeout, else a minute.
  const res = await fetch(uri, { method: 'POST', headers, body: new Uint8Array(body), signal: signal ?? AbortSignal.timeout(60_000) });
  // Read as post() reads: up to MAX_EVENT_BYTES (a sink answering 800 MiB took kinfer dev to 2.6 GB).
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.byteLength;
    // Leaving the loop cancels the body.
    if (size > MAX_EVENT_BYTES) throw new Error(`the answer is over ${MAX_EVENT_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.concat(chunks) };
}

/** A POST to this ingress with its own Host (fetch cannot set one); the answer read whole, up to MAX_EVENT_BYTES. */
function post(port: number, host: string, headers: Record<string, string>, body: Buffer, signal?: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    // Removed once the answer is read or the request failed: a listener keeps the timer's signal,
    // and with it this request and its body, alive until the timeout.
    const abort = () => req.destroy(signal!.reason as Error);
    const done = () => signal?.removeEventListener('abort', abort);
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { ...headers, host, 'content-length': String(body.byteLength) } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.byteLength;
        if (size > MAX_EVENT_BYTES) res.destroy(new Error(`the answer is over ${MAX_EVENT_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => (done(), resolve({ status: res.statusCode ?? 502, headers: flatHeaders(res.headers), body: Buffer.concat(chunks) })));
      res.on('error', (err) => (done(), reject(err)));
    });
    req.on('error', (err) => (done(), reject(err)));
    // The attempt's timeout: the connection goes (the ingress frees the slot), and the reason is the signal's.
    signal?.addEventListener('abort', abort, { once: true });
    req.end(body);
  });
}

/** Whether a request carries a body (then it cannot be sent again once read). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** Hop-by-hop headers stay on their hop (RFC 9110 §7.6.1); the client's address goes on as X-Forwarded-For. */
function forwardHeaders(req: IncomingMessage): Record<string, string | string[] | undefined> {
  const headers: Record<string, string | string[] | undefined> = { ...req.headers };
  const named = String(req.headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase());
  for (const h of ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', ...named]) if (h !== 'transfer-encoding') delete headers[h];
  const forwarded = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = `${forwarded ? `${String(forwarded)}, ` : ''}${req.socket.remoteAddress ?? ''}`;
  return headers;
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


function sendError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}
