/**
 * @module server/serve
 * Starts the HTTP server in one of the three modes (DESIGN.md "Modes"), runs
 * startup (pull + load), and shuts down gracefully: readiness false, in-flight
 * requests finish, models (and devices) are released.
 *
 * @example
 * const server = await startServer({ mode: 'repository', modelRepository: 'models', port: 0, host: '127.0.0.1' });
 * await server.startup;          // models loaded
 * await fetch(`${server.url}/v2/health/ready`);
 * await server.close();
 */
import { mkdir } from 'node:fs/promises';
import { STATUS_CODES, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import { DataPlane } from '../dataplane.js';
import type { InferResponse } from '../core/infer.js';
import { SystemSharedMemory } from '../shared-memory/system-shared-memory.js';
import { TraceSettings } from '../observability/trace-settings.js';
import { LogControl } from '../observability/log-settings.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES } from '../config.js';
import { MAX_JSON_BYTES } from '../protocol/v2/decode.js';
import { createLogger, logger as processLogger } from '../observability/logger.js';
import { initTracing, shutdownTracing } from '../observability/tracing.js';
import { createMetrics, registerResponseCacheMetrics, type Metrics } from '../observability/metrics.js';
import { registerTritonCpuMetrics, registerTritonMetrics } from '../observability/triton-metrics.js';
import { PayloadLogger, payloadLogConfig } from '../observability/payload-log.js';
import { ModelRepository, type BatcherFactory, type Puller } from '../repository/model-repository.js';
import { createApp } from './app.js';
import type { KinferEnv } from './context.js';
import { makeBatcherFactory } from './batcher-factory.js';
import { within } from '../core/within.js';
import { ResponseCache } from '../cache/response-cache.js';
import { monitorRepository, type RepositoryMonitor } from '../repository/monitor.js';
import { hasHardware, registerXModelMetrics } from '../backends/xmodel.js';
import { tuneV8ForServing } from './v8-tuning.js';
import type { RunningGrpcServer } from './grpc.js';
import { readGrpcTls, type GrpcTlsFiles } from './grpc-tls.js';
import type { Restrictions } from './restricted.js';
import { localLoadRootsOf } from '../storage/pull.js';

/** A function's lifecycle hooks (faas-js-runtime's `Function`); `functions/define.ts` FunctionHooks fits. */
export interface LifecycleHooks {
  /** After the model(s) loaded, before readiness turns true. A throw fails startup. */
  init?: () => void | Promise<void>;
  /** After in-flight requests drained and models were released. */
  shutdown?: () => void | Promise<void>;
  liveness?: () => boolean | Promise<boolean>;
  readiness?: () => boolean | Promise<boolean>;
}

export type ServeMode = 'repository' | 'multi-model' | 'function';

export interface ServeOptions {
  mode: ServeMode;
  /** Folder of model folders. Function mode pulls into `<modelRepository>/<modelName>`. */
  modelRepository: string;
  /** Function mode: the one model and where its artifact lives. */
  modelName?: string;
  storageUri?: string;
  /** Where a load request's local `storage_uri` may point; default from KINFER_LOAD_LOCAL_ROOTS (localLoadRootsOf). */
  localLoadRoots?: readonly string[];
  /**
   * A Triton JSON model config that replaces the artifact's own for `modelName` (KINFER_MODEL_CONFIG),
   * in every mode and on every load of that name without a `config` parameter.
   */
  modelConfig?: string;
  port?: number;
  /** Also serve `inference.GRPCInferenceService` (h2c, or TLS with `grpcTls`) on this port (0 = a free one); off when undefined. */
  grpcPort?: number;
  /** TLS for the gRPC port instead of h2c: certificate and key files, and a client CA for mutual TLS. */
  grpcTls?: GrpcTlsFiles;
  /** Triton's --http-restricted-api: categories of REST routes that need a header's value (server/restricted.ts). */
  httpRestrictions?: Restrictions;
  /** Triton's --grpc-restricted-protocol: the same for gRPC methods (metadata `triton-grpc-protocol-<key>`). */
  grpcRestrictions?: Restrictions;
  host?: string;
  logger?: Logger;
  metrics?: Metrics;
  maxBodyBytes?: number;
  /** Largest JSON part of an inference request (default 64 MiB; 413 above). */
  maxJsonBytes?: number;
  requestTimeoutMs?: number;
  drainTimeoutMs?: number;
  /** Bytes for Triton's response cache (KINFER_RESPONSE_CACHE_BYTES); 0 or absent: no cache. */
  responseCacheBytes?: number;
  /** Idle keep-alive connections close after this long (default DEFAULT_KEEP_ALIVE_TIMEOUT_MS). */
  keepAliveTimeoutMs?: number;
  /** Triton's `--allow-client-shm`: clients may register system shared-memory regions and send tensors through them. */
  allowClientShm?: boolean;
  /** Where shared-memory objects live (default `/dev/shm`); tests point it elsewhere. */
  sharedMemoryDir?: string;
  cacheDir?: string;
  /** Repository mode: poll the folder and load/unload models as folders appear and disappear (ms between polls). */
  repositoryPollMs?: number;
  /**
   * Repository mode, Triton's `--model-control-mode explicit` with `--load-model`: load only these
   * models at start (`*`: every one); undefined loads every one, as kinfer does by default.
   */
  startupModels?: readonly string[];
  /** Triton's `--model-control-mode none`: the repository API's load and unload are refused. */
  modelControlOff?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Overrides for tests and functions. */
  createBatcher?: BatcherFactory;
  pull?: Puller;
  extend?: (app: Hono<KinferEnv>) => void;
  hooks?: LifecycleHooks;
}

export interface RunningServer {
  url: string;
  port: number;
  /** The gRPC port, when `grpcPort` was given. */
  grpcPort?: number;
  app: Hono<KinferEnv>;
  dataplane: DataPlane;
  repository: ModelRepository;
  metrics: Metrics;
  /** Settles when startup loading is done; rejects when function mode cannot pull or load its model, or the repository cannot be read. */
  startup: Promise<void>;
  /** Readiness false, finish in-flight requests, release models, close the socket. Idempotent. */
  close(): Promise<void>;
}

const processStart = performance.timeOrigin;

/**
 * Longer than the idle timeout of the proxy in front: Knative's queue-proxy
 * reuses connections to the container for 90 s (Go's `IdleConnTimeout`).
 * With Node's default of 5 s the server closes a connection the proxy has just
 * picked for a request, and the proxy answers 502 (knative/serving#12414);
 * POSTs are not retried.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 120_000;

/** At shutdown, how long the payload log may take to send what it holds (the pod's grace is 30 s in all). */
const PAYLOAD_LOG_FLUSH_MS = 5000;

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  if (opts.grpcTls && opts.grpcPort === undefined) throw new Error('gRPC TLS files are given but gRPC is off: set GRPC_PORT or --grpc-port');
  if (opts.grpcRestrictions?.size && opts.grpcPort === undefined) throw new Error('gRPC restrictions are given but gRPC is off: set GRPC_PORT or --grpc-port');
  if (opts.grpcPort !== undefined && opts.grpcPort !== 0 && opts.grpcPort === (opts.port ?? 8080)) {
    throw new Error(`REST and gRPC are both on port ${opts.grpcPort}: when GRPC_PORT takes PORT (a grpc-v2 function on Knative), set KINFER_REST_PORT for REST`);
  }
  // Read before anything listens or loads: a wrong file stops the start naming it.
  const grpcTls = opts.grpcTls ? await readGrpcTls(opts.grpcTls) : undefined;
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? createLogger(env);
  const tracingStatus = initTracing(env);
  if (tracingStatus.enabled) logger.info({ event: 'tracing', ...tracingStatus }, `exporting traces to ${tracingStatus.url}`);
  const metrics = opts.metrics ?? createMetrics(env);
  registerXModelMetrics(metrics.registry);
  const payloadConfig = payloadLogConfig(env); // a bad KINFER_PAYLOAD_LOG_* stops the start here
  const payloadLogger = payloadConfig && new PayloadLogger(payloadConfig, logger, metrics.registry);
  if (payloadConfig) logger.info({ event: 'payload_log', url: payloadConfig.url, mode: payloadConfig.mode }, `logging inference payloads to ${payloadConfig.url}`);
  let startupDone = false;
  const hooks = opts.hooks ?? {};
  let draining = false;

  if (opts.mode === 'function' && !opts.modelName) throw new Error('function mode needs MODEL_NAME');
  const responseCache = opts.responseCacheBytes ? new ResponseCache(opts.responseCacheBytes) : undefined;
  if (responseCache) registerResponseCacheMetrics(metrics.registry, responseCache);
  const repository: ModelRepository = new ModelRepository({
    repoDir: opts.modelRepository,
    logger,
    metrics,
    createBatcher: opts.createBatcher ?? makeBatcherFactory(metrics),
    pull: opts.pull,
    drainTimeoutMs: opts.drainTimeoutMs,
    responseCache,
    defaultConfigs: opts.modelName && opts.modelConfig ? new Map([[opts.modelName, opts.modelConfig]]) : undefined,
    // An ensemble's steps are internal requests through the data plane (made below; called only once serving).
    localLoadRoots: opts.localLoadRoots ?? localLoadRootsOf(env),
    env,
    runStep: async (request, run): Promise<InferResponse> => (await dataplane.infer(request, { ...(run?.deadline !== undefined ? { deadline: run.deadline } : {}), ...(run?.signal ? { signal: run.signal } : {}) })).response,
  });
  registerTritonMetrics(metrics.registry, () =>
    repository.loaded().map((h) => ({ stat: h.statistics.snapshot(h.name, h.version), failures: h.statistics.failuresByReason(), pending: h.batcher.queuedRequests, loadSeconds: h.loadSeconds })),
  );
  const cpuMetrics = registerTritonCpuMetrics(metrics.registry);
  const dataplane: DataPlane = new DataPlane(
    repository,
    {
      live: async () => (hooks.liveness ? await hooks.liveness() : true),
      ready: async () =>
        startupDone &&
        !draining &&
        (opts.mode !== 'function' || repository.isReady(opts.modelName!)) &&
        (hooks.readiness ? await hooks.readiness() : true),
    },
    { requestTimeoutMs: opts.requestTimeoutMs ?? 0, sharedMemory: !!opts.allowClientShm, modelControlOff: !!opts.modelControlOff },
    responseCache,
  );
  const sharedMemory = opts.allowClientShm ? new SystemSharedMemory(opts.sharedMemoryDir, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES) : undefined;
  const traceSettings = new TraceSettings(tracingStatus.enabled);
  // The server's logger, and the process-wide one the backends log through when the server was given its own.
  const logs = new LogControl(logger, ...(logger === processLogger ? [] : [processLogger]));
  const app = createApp({
    dataplane,
    logger,
    metrics,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    maxJsonBytes: opts.maxJsonBytes,
    hasHardware,
    sharedMemory,
    traceSettings,
    logs,
    restrictions: opts.httpRestrictions,
    extend: opts.extend,
    payloadLog: payloadLogger,
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: opts.port ?? 8080, hostname: opts.host ?? '0.0.0.0' }, () => resolve(s));
    s.once('error', reject);
  });
  (server as HttpServer).keepAliveTimeout = opts.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  (server as HttpServer).on('clientError', answerClientError);
  const port = (server.address() as AddressInfo).port;
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ event: 'listening', url, mode: opts.mode, repository: opts.modelRepository }, `kinfer listening on ${url}`);
  let grpcServer: RunningGrpcServer | undefined;
  if (opts.grpcPort !== undefined) {
    try {
      // Imported only when asked for: @grpc/grpc-js is not on the start-up path of a REST-only server.
      const { startGrpcServer } = await import('./grpc.js');
      grpcServer = await startGrpcServer({
        tls: grpcTls,
        restrictions: opts.grpcRestrictions,
        dataplane,
        logger,
        metrics,
        host: opts.host ?? '0.0.0.0',
        port: opts.grpcPort,
        maxMessageBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxContentsBytes: opts.maxJsonBytes ?? MAX_JSON_BYTES,
        sharedMemory,
        traceSettings,
        logs,
      });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
  }

  let monitor: RepositoryMonitor | undefined;
  const startup = (async () => {
    if (opts.mode === 'function') {
      const name = opts.modelName!;
      if (opts.storageUri) {
        await mkdir(opts.modelRepository, { recursive: true });
        // The function's storageUri is its only source: what an earlier start left is not kept
        // (a failed removal of it is logged; the pull's own leftover sweep retries it).
        const pulled = await repository.pullInto(name, opts.storageUri);
        await pulled.commit().catch((err: unknown) => logger.warn({ event: 'pull_cleanup_failed', model: name, err: String(err) }, 'could not remove the replaced model folder'));
      }
      await repository.load(name); // with opts.modelConfig, through defaultConfigs
    } else if (opts.mode === 'repository') {
      const named = opts.startupModels;
      const loadAll = () => (named && !named.includes('*') ? repository.loadNamed(named) : repository.loadAll());
      if (opts.repositoryPollMs) {
        monitor = await monitorRepository(repository, logger, opts.repositoryPollMs, loadAll);
        if (draining) monitor.stop(); // closed while the models loaded
      } else {
        await loadAll();
      }
    } else {
      await mkdir(opts.modelRepository, { recursive: true }).catch(() => undefined);
    }
    await hooks.init?.();
    startupDone = true;
    const seconds = (performance.timeOrigin + performance.now() - processStart) / 1000;
    metrics.coldStart.set(seconds);
    logger.info({ event: 'ready', seconds, models: repository.loadedNames() }, 'kinfer ready');
    tuneV8ForServing();
  })();
  startup.catch(() => undefined); // the caller decides; never an unhandled rejection

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      monitor?.stop();
      logger.info({ event: 'shutdown' }, 'draining');
      // Knative's preStop hook has the queue-proxy drain before SIGTERM reaches us, so
      // no new requests arrive: finish what is queued or running, then close sockets.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // gRPC too stops taking calls now (GOAWAY, so clients reconnect to another replica); running ones finish.
      const grpcStopped = grpcServer?.stop();
      const http = server as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
      const limit = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
      const closedAll = repository.closeAll();
      // Regions close once every model has drained, however long that takes (their requests may still read them).
      void closedAll.finally(() => sharedMemory?.close());
      const drainedInTime = await within(closedAll.then(() => true), limit, false);
      if (!drainedInTime) logger.warn({ event: 'shutdown_timeout', ms: limit }, 'drain timed out; closing connections');
      http.closeIdleConnections?.();
      // Keep-alive sockets whose response is written but not yet read by the client get a short grace.
      await within(stopped, 1000, undefined);
      http.closeAllConnections?.();
      // Calls still running after the drain get the same grace as HTTP sockets, then are cancelled.
      if (grpcStopped && !(await within(grpcStopped.then(() => true), 1000, false))) grpcServer?.kill();
      await payloadLogger?.close(PAYLOAD_LOG_FLUSH_MS);
      cpuMetrics.stop();
      await shutdownTracing().catch((err: unknown) => logger.warn({ err }, 'trace flush failed'));
      try {
        await hooks.shutdown?.();
      } catch (err) {
        logger.error({ err }, 'shutdown hook failed');
      }
      logger.info({ event: 'stopped' }, 'kinfer stopped');
    })());

  return { url, port, ...(grpcServer ? { grpcPort: grpcServer.port } : {}), app, dataplane, repository, metrics, startup, close };
}

/**
 * What Node's HTTP parser refuses before any route runs (a broken request line, header or chunked
 * body; headers too large; too slow) gets the v2 error body too, not Node's bare status. As Node
 * does, only on a connection that has written nothing yet; one that has answered before is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }): void {
  if (err.code === 'ECONNRESET' || !socket.writable || (socket.bytesWritten ?? 0) > 0) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify({ error: `malformed HTTP request${err.code ? ` (${err.code})` : ''}: ${err.message}` });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
