/**
 * @module server/routes/v2
 * KServe v2 / Open Inference Protocol REST routes: health, server and model
 * metadata, model list, infer. Thin: decode → data plane → encode.
 */
import { Hono, type Context } from 'hono';
import type { DataPlane } from '../../dataplane.js';
import { NotFound } from '../../core/errors.js';
import { decodeInferRequest, encodeInferResponse } from '../../protocol/v2/index.js';
import { readBody } from '../body.js';
import type { KinferEnv } from '../context.js';
import { okWithHeaders } from '../reply.js';
import type { Metrics } from '../../observability/metrics.js';
import { stage } from '../stages.js';
import type { SharedMemoryAccess } from '../../core/shared-memory.js';

export interface V2RouteOptions {
  dataplane: DataPlane;
  metrics: Metrics;
  maxBodyBytes: number;
  maxJsonBytes?: number;
  /** Registered shared-memory regions (`--allow-client-shm`); absent: tensors in shared memory are refused. */
  sharedMemory?: SharedMemoryAccess;
  /** CloudEvents arriving on the infer route are handed here (binary or structured mode). */
  cloudEvent?: (c: Context<KinferEnv>, model: string, version: string | undefined) => Promise<Response>;
}

export function isCloudEvent(c: Context): boolean {
  return (
    c.req.header('ce-specversion') !== undefined ||
    (c.req.header('content-type') ?? '').toLowerCase().startsWith('application/cloudevents')
  );
}

export function v2Routes(opts: V2RouteOptions): Hono<KinferEnv> {
  const dp = opts.dataplane;
  const app = new Hono<KinferEnv>();

  app.get('/v2/health/live', async (c) => ((await dp.live()) ? c.json({ live: true }) : c.json({ live: false }, 503)));
  app.get('/v2/health/ready', async (c) => ((await dp.ready()) ? c.json({ ready: true }) : c.json({ ready: false }, 503)));
  // The protocol's OpenAPI document names `/v2/`; its text and Triton's clients use `/v2`.
  app.get('/v2', (c) => c.json(dp.serverMetadata()));
  app.get('/v2/', (c) => c.json(dp.serverMetadata()));
  app.get('/v2/models', (c) => c.json({ models: dp.modelNames() }));
  // Triton's statistics extension; before `/v2/models/:model`, so `stats` is not taken for a model name.
  app.get('/v2/models/stats', (c) => c.json({ model_stats: dp.modelStatistics() }));
  const stats = (c: Context<KinferEnv>) => c.json({ model_stats: dp.modelStatistics(c.req.param('model')!, c.req.param('version')) });
  app.get('/v2/models/:model/stats', stats);
  app.get('/v2/models/:model/versions/:version/stats', stats);

  const metadata = (c: Context<KinferEnv>) => c.json(dp.modelMetadata(c.req.param('model')!, c.req.param('version')));
  app.get('/v2/models/:model', metadata);
  app.get('/v2/models/:model/versions/:version', metadata);

  // Ready is 200 with {"ready": true}, else 503 with {"ready": false}, as KServe's v2 server answers.
  const ready = (c: Context<KinferEnv>) => {
    const ok = dp.modelReady(c.req.param('model')!, c.req.param('version'));
    return c.json({ name: c.req.param('model'), ready: ok }, ok ? 200 : 503);
  };
  app.get('/v2/models/:model/ready', ready);
  app.get('/v2/models/:model/versions/:version/ready', ready);

  // Triton's model_configuration extension.
  const config = (c: Context<KinferEnv>) => c.json(dp.modelConfig(c.req.param('model')!, c.req.param('version')));
  app.get('/v2/models/:model/config', config);
  app.get('/v2/models/:model/versions/:version/config', config);

  const infer = async (c: Context<KinferEnv>) => {
    const model = c.req.param('model')!;
    const version = c.req.param('version');
    if (opts.cloudEvent && isCloudEvent(c)) return opts.cloudEvent(c, model, version);
    const serving = dp.assertServing(model, version);
    c.set('model', model);
    c.set('modelVersion', serving);
    const headerLength = c.req.header('inference-header-content-length');
    // Land the binary section 8-byte aligned so its tensors are views, not copies.
    const body = await readBody(c, opts.maxBodyBytes, headerLength === undefined ? undefined : Number(headerLength));
    c.set('protocol', headerLength !== undefined ? 'v2-binary' : 'v2-json');
    const decoded = stage('decode', opts.metrics, { model, version: serving }, () =>
      decodeInferRequest(body, {
        modelName: model,
        modelVersion: version,
        contentType: c.req.header('content-type'),
        inferenceHeaderContentLength: headerLength,
        rawInput: () => dp.rawInputSpec(model, version),
        maxJsonBytes: opts.maxJsonBytes,
        sharedMemory: opts.sharedMemory,
      }),
    );
    // The signal (an AbortController in @hono/node-server, made on first read) only when the request may queue.
    const { response, batch } = await dp.infer(decoded.request, { requestId: c.get('requestId') }, () => c.req.raw.signal);
    c.set('modelVersion', response.modelVersion);
    c.set('batchSize', batch.batchSize);
    const encoded = stage('encode', opts.metrics, { model, version: response.modelVersion ?? '' }, () =>
      encodeInferResponse(response, decoded.binaryOutputs, opts.sharedMemory),
    );
    return okWithHeaders(c, encoded.body, encoded.headers);
  };
  app.post('/v2/models/:model/infer', infer);
  app.post('/v2/models/:model/versions/:version/infer', infer);

  app.all('/v2/*', (c) => {
    throw new NotFound(`no route for ${c.req.method} ${c.req.path}`);
  });
  return app;
}
