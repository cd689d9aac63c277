/**
 * @module server/app
 * The Hono app: middleware order, routes, and the one error handler that
 * turns every error into `{"error": "..."}` with the status from the table.
 */
import { Hono, type MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { DataPlane } from '../dataplane.js';
import { toHttpError } from '../core/http-status.js';
import type { Metrics } from '../observability/metrics.js';
import type { KinferEnv } from './context.js';
import { accessLog } from './middleware/access-log.js';
import { compressResponses } from './middleware/compress.js';
import { requestId } from './middleware/request-id.js';
import { requestMetrics } from './middleware/request-metrics.js';
import { tracing } from './middleware/tracing.js';
import { payloadLog } from './middleware/payload-log.js';
import type { PayloadLogger } from '../observability/payload-log.js';
import { loggingRoutes } from './routes/logging.js';
import { repositoryRoutes } from './routes/repository.js';
import { v1Routes } from './routes/v1.js';
import { v2Routes } from './routes/v2.js';
import { GENERATE_PATHS, generateRoutes } from './routes/generate.js';
import { cloudEventHandler } from './routes/cloudevents.js';
import { MAX_JSON_BYTES } from '../protocol/v2/decode.js';
import { sharedMemoryRoutes } from './routes/shared-memory.js';
import { traceRoutes } from './routes/trace.js';
import { restrictHttp, type Restrictions } from './restricted.js';
import type { TraceSettings } from '../observability/trace-settings.js';
import type { LogControl } from '../observability/log-settings.js';
import type { SystemSharedMemory } from '../shared-memory/system-shared-memory.js';

export interface AppOptions {
  dataplane: DataPlane;
  logger: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  /** Largest JSON part of an inference request; the decoder's default when absent. */
  maxJsonBytes?: number;
  hasHardware?: (name: string, num: number) => boolean;
  /** CloudEvent reply type and source (`{model}` is replaced); see routes/cloudevents.ts. */
  cloudEventType?: string;
  cloudEventSource?: string;
  /** The model an event goes to when it names none; default: the only loaded model. */
  defaultModel?: () => string | undefined;
  /** Triton's logging extension: the running log settings (`/v2/logging`), shared with gRPC. */
  logs: LogControl;
  /** Triton's trace settings: which requests are traced, per model (`/v2[/models/{m}]/trace/setting`). */
  traceSettings: TraceSettings;
  /** Client shared-memory regions, when the server allows them (`--allow-client-shm`). */
  sharedMemory?: SystemSharedMemory;
  /** Triton's --http-restricted-api: route categories that need a header's value. */
  restrictions?: Restrictions;
  /** Routes a function adds (e.g. `POST /` for CloudEvents). */
  extend?: (app: Hono<KinferEnv>) => void;
  /** KServe's payload logging of the inference routes, when a logger URL is set. */
  payloadLog?: PayloadLogger;
}

export function createApp(opts: AppOptions): Hono<KinferEnv> {
  const app = new Hono<KinferEnv>();

  app.use(requestId());
  app.use(accessLog({ logger: opts.logger }));
  // Refused before any other work (and logged); no middleware at all without restrictions.
  if (opts.restrictions?.size) app.use(restrictHttp(opts.restrictions));
  app.use(compressResponses());
  const inferMiddleware = [requestMetrics(opts.metrics), tracing(opts.traceSettings), ...(opts.payloadLog ? [payloadLog(opts.payloadLog)] : [])];
  // One registration per path with all its middleware, as before payload logging (one router entry each).
  const [first, ...rest] = inferMiddleware as [MiddlewareHandler<KinferEnv>, ...MiddlewareHandler<KinferEnv>[]];
  for (const path of ['/v2/models/:model/infer', '/v2/models/:model/versions/:version/infer', ...GENERATE_PATHS]) app.use(path, first, ...rest);
  app.on('POST', '/', first, ...rest);
  app.on('POST', ['/v1/models/:target', '/v1/models/:model/versions/:target'], first, ...rest);

  app.get('/metrics', async (c) => {
    const body = await opts.metrics.registry.metrics();
    return c.body(body, 200, { 'Content-Type': opts.metrics.registry.contentType });
  });

  app.route('/', loggingRoutes(opts.logs));
  app.route('/', repositoryRoutes({ dataplane: opts.dataplane, hasHardware: opts.hasHardware ?? (() => false), maxLoadBytes: opts.maxJsonBytes ?? MAX_JSON_BYTES }));
  const dp = opts.dataplane;
  const cloudEvent = cloudEventHandler({
    dataplane: dp,
    metrics: opts.metrics,
    maxBodyBytes: opts.maxBodyBytes,
    maxJsonBytes: opts.maxJsonBytes,
    responseType: opts.cloudEventType,
    responseSource: opts.cloudEventSource,
    defaultModel:
      opts.defaultModel ??
      (() => {
        const names = dp.modelNames();
        return names.length === 1 ? names[0] : undefined;
      }),
  });
  app.post('/', (c) => cloudEvent(c));
  opts.extend?.(app);
  app.route('/', v1Routes({ dataplane: dp, metrics: opts.metrics, maxBodyBytes: opts.maxBodyBytes, maxJsonBytes: opts.maxJsonBytes }));
  app.route('/', sharedMemoryRoutes(opts.sharedMemory));
  app.route('/', traceRoutes(opts.traceSettings, opts.dataplane));
  // Before the v2 routes, whose `/v2/*` catch-all would answer 404.
  app.route('/', generateRoutes({ dataplane: dp, metrics: opts.metrics, logger: opts.logger, maxBodyBytes: opts.maxBodyBytes, maxJsonBytes: opts.maxJsonBytes }));
  app.route('/', v2Routes({ dataplane: dp, metrics: opts.metrics, maxBodyBytes: opts.maxBodyBytes, maxJsonBytes: opts.maxJsonBytes, sharedMemory: opts.sharedMemory, cloudEvent }));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    const { status, body, headers } = toHttpError(err);
    if (status >= 500) opts.logger.error({ err, requestId: c.get('requestId') }, body.error);
    for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return c.json(body, status as 500);
  });
  return app;
}
