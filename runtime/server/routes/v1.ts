/**
 * @module server/routes/v1
 * KServe's V1 data plane REST routes: list models, model ready, and
 * `:predict` (TensorFlow Serving's row and columnar formats) through the same
 * data plane, batcher and backends as v2. Thin: decode → data plane → encode.
 */
import { Hono, type Context } from 'hono';
import type { DataPlane } from '../../dataplane.js';
import { InvalidArgument, NotFound, Unavailable, Unsupported } from '../../core/errors.js';
import type { TensorSpec } from '../../core/tensor.js';
import { decodePredictRequest, encodePredictResponse } from '../../protocol/v1/index.js';
import { parseJson } from '../../protocol/v2/decode.js';
import { readBody } from '../body.js';
import type { KinferEnv } from '../context.js';
import { okWithHeaders } from '../reply.js';
import type { Metrics } from '../../observability/metrics.js';
import { stage } from '../stages.js';

export interface V1RouteOptions {
  dataplane: DataPlane;
  metrics: Metrics;
  maxBodyBytes: number;
  maxJsonBytes?: number;
}

/** The verb after the model in `/v1/models/<model>:<verb>`. */
const VERB = /^(.+):(predict|explain)$/;

export function v1Routes(opts: V1RouteOptions): Hono<KinferEnv> {
  const dp = opts.dataplane;
  const app = new Hono<KinferEnv>();

  // KServe's model server answers its root as a liveness check.
  app.get('/', async (c) => ((await dp.live()) ? c.json({ status: 'alive' }) : c.json({ status: 'not alive' }, 503)));
  app.get('/v1/models', (c) => c.json({ models: dp.modelNames() }));
  // KServe's V1 ready: 200 {"name", "ready": true}; 503 {"error"} while it loads or after a failed load; 404 when unknown.
  app.get('/v1/models/:model', (c) => {
    const name = c.req.param('model');
    if (VERB.test(name)) throw new NotFound(`no route for GET ${c.req.path}: ${name.replace(VERB, ':$2')} takes POST`);
    if (dp.modelReady(name)) return c.json({ name, ready: true });
    if (!dp.knows(name)) throw new NotFound(`model '${name}' is not loaded`);
    // KServe's ModelNotReady: 503 with an error body.
    throw new Unavailable(`model '${name}' is not ready`);
  });

  const predict = async (c: Context<KinferEnv>, model: string, verb: string, version: string | undefined) => {
    if (verb === 'explain') throw new Unsupported(`model '${model}': kinfer has no explainer; :explain is not served`);
    const serving = dp.assertServing(model, version);
    c.set('model', model);
    c.set('modelVersion', serving);
    c.set('protocol', 'v1');
    const body = await readBody(c, opts.maxBodyBytes);
    const labels = { model, version: serving };
    const meta = dp.modelMetadata(model, version);
    const decoded = stage('decode', opts.metrics, labels, () =>
      decodePredictRequest(parseJson(body, { contentType: c.req.header('content-type'), maxJsonBytes: opts.maxJsonBytes }), meta.inputs, model, version),
    );
    // Refused before the model runs: the row format answers one row per instance of every output.
    if (decoded.format === 'row') checkRowOutputs(meta.outputs, decoded.instances);
    const { response, batch } = await dp.infer(decoded.request, { requestId: c.get('requestId') }, () => c.req.raw.signal);
    c.set('batchSize', batch.batchSize);
    const text = stage('encode', opts.metrics, labels, () => encodePredictResponse(response, decoded.format, decoded.instances));
    return okWithHeaders(c, text, { 'Content-Type': 'application/json' });
  };
  /** `<a>:<verb>` of the last path segment, or NotFound. */
  const split = (c: Context<KinferEnv>): [string, string] => {
    const m = VERB.exec(c.req.param('target')!);
    if (!m) throw new NotFound(`no route for POST ${c.req.path}: expected /v1/models/<model>[/versions/<version>]:predict`);
    return [m[1]!, m[2]!];
  };
  app.post('/v1/models/:target', (c) => {
    const [model, verb] = split(c);
    return predict(c, model, verb, undefined);
  });
  // TensorFlow Serving's `/versions/<v>:predict`: the verb follows the version.
  app.post('/v1/models/:model/versions/:target', (c) => {
    const [version, verb] = split(c);
    return predict(c, c.req.param('model')!, verb, version);
  });

  app.all('/v1/*', (c) => {
    throw new NotFound(`no route for ${c.req.method} ${c.req.path}`);
  });
  return app;
}

/** Every declared output must have a dim 0 that can hold one row per instance. */
function checkRowOutputs(outputs: readonly TensorSpec[], instances: number): void {
  for (const o of outputs) {
    const d0 = o.shape[0];
    if (o.shape.length === 0 || (d0 !== -1 && d0 !== instances)) {
      throw new InvalidArgument(
        `output '${o.name}' has shape [${o.shape.join(',')}], not one row per instance (${instances}); send the columnar format ("inputs") for whole tensors`,
      );
    }
  }
}
