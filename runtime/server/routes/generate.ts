/**
 * @module server/routes/generate
 * Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` answers one
 * JSON object, `.../generate_stream` the same object as a Server-Sent Event. Thin: decode →
 * data plane → encode (codec: `protocol/v2/generate.ts`).
 *
 * Errors: a request refused before it runs (unknown model, bad body, an input the model
 * refuses) is the usual `{"error"}` JSON with its status on both routes. On generate_stream
 * an error from running an accepted request (deadline, queue full, the backend) is sent as
 * Triton sends a failed response: status from the error table, `text/event-stream`, and a
 * `data: {"error": "..."}` event.
 */
import { Hono, type Context } from 'hono';
import type { Logger } from 'pino';
import type { DataPlane, InferOutcome } from '../../dataplane.js';
import { toHttpError } from '../../core/http-status.js';
import { parseJson } from '../../protocol/v2/decode.js';
import { decodeGenerateRequest, encodeGenerateResponse, sseEvent, SSE_CONTENT_TYPE } from '../../protocol/v2/generate.js';
import type { Metrics } from '../../observability/metrics.js';
import { readBody } from '../body.js';
import type { KinferEnv } from '../context.js';
import { okWithHeaders } from '../reply.js';
import { stage } from '../stages.js';

export interface GenerateRouteOptions {
  dataplane: DataPlane;
  metrics: Metrics;
  logger: Logger;
  maxBodyBytes: number;
  maxJsonBytes?: number;
}

/** The generate routes' paths, for the app's metrics and tracing middleware. */
export const GENERATE_PATHS = ['generate', 'generate_stream'].flatMap((verb) => [`/v2/models/:model/${verb}`, `/v2/models/:model/versions/:version/${verb}`]);

export function generateRoutes(opts: GenerateRouteOptions): Hono<KinferEnv> {
  const dp = opts.dataplane;
  const app = new Hono<KinferEnv>();

  const generate = (stream: boolean) => async (c: Context<KinferEnv>) => {
    const model = c.req.param('model')!;
    const version = c.req.param('version');
    const serving = dp.assertServing(model, version);
    c.set('model', model);
    c.set('modelVersion', serving);
    c.set('protocol', stream ? 'generate-stream' : 'generate');
    const body = await readBody(c, opts.maxBodyBytes);
    const labels = { model, version: serving };
    const target = { name: model, ...(version !== undefined ? { version } : {}), ...dp.inputSpecs(model, version) };
    const request = stage('decode', opts.metrics, labels, () =>
      decodeGenerateRequest(parseJson(body, { contentType: c.req.header('content-type'), maxJsonBytes: opts.maxJsonBytes }), target),
    );
    let admitted = false;
    let outcome: InferOutcome;
    let json: string;
    try {
      outcome = await dp.infer(request, { requestId: c.get('requestId'), admitted: () => (admitted = true) }, () => c.req.raw.signal);
      c.set('modelVersion', outcome.response.modelVersion);
      c.set('batchSize', outcome.batch.batchSize);
      json = stage('encode', opts.metrics, { model, version: outcome.response.modelVersion ?? serving }, () => encodeGenerateResponse(outcome.response));
    } catch (err) {
      if (!stream || !admitted) throw err;
      // The request ran and failed: answered as Triton answers a failed streamed response.
      const { status, body: error, headers } = toHttpError(err);
      if (status >= 500) opts.logger.error({ err, requestId: c.get('requestId') }, error.error);
      return c.body(sseEvent(JSON.stringify(error)), status as 500, { ...headers, 'Content-Type': SSE_CONTENT_TYPE });
    }
    return stream ? okWithHeaders(c, sseEvent(json), { 'Content-Type': SSE_CONTENT_TYPE }) : okWithHeaders(c, json, { 'Content-Type': 'application/json' });
  };
  app.post('/v2/models/:model/generate', generate(false));
  app.post('/v2/models/:model/versions/:version/generate', generate(false));
  app.post('/v2/models/:model/generate_stream', generate(true));
  app.post('/v2/models/:model/versions/:version/generate_stream', generate(true));
  return app;
}
