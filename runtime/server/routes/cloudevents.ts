/**
 * @module server/routes/cloudevents
 * CloudEvents onto the same inference path: `POST /` (what a Knative Trigger
 * delivers to) and CloudEvents sent to the v2 infer route. Errors are answered
 * as plain v2 errors, not events.
 */
import type { Context } from 'hono';
import type { DataPlane } from '../../dataplane.js';
import { InvalidArgument } from '../../core/errors.js';
import { decodeInferRequest, encodeInferResponse } from '../../protocol/v2/index.js';
import type * as CloudEventCodec from '../../protocol/cloudevent.js';
import { readBody } from '../body.js';
import type { KinferEnv } from '../context.js';
import { okWithHeaders } from '../reply.js';
import type { Metrics } from '../../observability/metrics.js';
import { stage } from '../stages.js';
import { traceHeaders, tracingEnabled } from '../../observability/tracing.js';

export interface CloudEventOptions {
  dataplane: DataPlane;
  metrics: Metrics;
  maxBodyBytes: number;
  maxJsonBytes?: number;
  /** Reply event type; default `io.kinfer.inference.response`. */
  responseType?: string;
  /** Reply source; `{model}` is replaced by the model name. Default `/models/{model}`. */
  responseSource?: string;
  /** The function's own model: the target when the event names none. */
  defaultModel?: () => string | undefined;
}

// The CloudEvents SDK (with its ajv validator) costs ~30 ms to import: load it with the first event, not at cold start.
let codec: Promise<typeof CloudEventCodec> | undefined;
const loadCodec = () => (codec ??= import('../../protocol/cloudevent.js'));

export type CloudEventHandler = (c: Context<KinferEnv>, model?: string, version?: string) => Promise<Response>;

export function cloudEventHandler(opts: CloudEventOptions): CloudEventHandler {
  const dp = opts.dataplane;
  const type = opts.responseType ?? 'io.kinfer.inference.response';
  const source = opts.responseSource ?? '/models/{model}';
  return async function handleCloudEvent(c, routeModel, version) {
    const { decodeCloudEvent, encodeCloudEventReply } = await loadCodec();
    const headerLength = c.req.header('inference-header-content-length');
    const body = await readBody(c, opts.maxBodyBytes, headerLength === undefined ? undefined : Number(headerLength));
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
    const event = decodeCloudEvent(headers, body, { maxJsonBytes: opts.maxJsonBytes });
    c.set('protocol', `cloudevent-${event.mode}`);
    // Target: the route's model; else the event's `model` extension; else its subject when that names a
    // model served here (sources set subjects of their own, e.g. a file name); else the function's own model.
    const bySubject = event.subject !== undefined && dp.knows(event.subject) ? event.subject : undefined;
    const model = routeModel ?? event.model ?? bySubject ?? opts.defaultModel?.();
    if (!model) {
      const subject = event.subject === undefined ? '' : ` (its subject ${JSON.stringify(event.subject)} names no model served here)`;
      throw new InvalidArgument(
        `CloudEvent names no model${subject}: set the 'model' extension attribute or 'subject' (this server serves several models)`,
      );
    }
    const serving = dp.assertServing(model, version);
    c.set('model', model);
    c.set('modelVersion', serving);
    if (!c.get('traceId') && event.traceparent) c.set('traceId', event.traceparent.split('-')[1]);
    const decoded = stage('decode', opts.metrics, { model, version: serving }, () =>
      decodeInferRequest(event.body, {
        modelName: model,
        modelVersion: version,
        contentType: event.contentType,
        inferenceHeaderContentLength: event.inferenceHeaderContentLength,
        rawInput: () => dp.rawInputSpec(model, version),
        maxJsonBytes: opts.maxJsonBytes,
      }),
    );
    const { response, batch } = await dp.infer(decoded.request, { requestId: c.get('requestId') }, () => c.req.raw.signal);
    c.set('modelVersion', response.modelVersion);
    c.set('batchSize', batch.batchSize);
    const encoded = stage('encode', opts.metrics, { model, version: response.modelVersion ?? '' }, () =>
      encodeInferResponse(response, decoded.binaryOutputs),
    );
    const ours = tracingEnabled() ? traceHeaders() : {};
    const reply = encodeCloudEventReply(event, encoded, {
      type,
      source: source.replace('{model}', model),
      requestId: decoded.request.id ?? event.id,
      // Our span when tracing is on (a child of the caller's), else the caller's context as received.
      traceparent: ours.traceparent ?? event.traceparent ?? c.req.header('traceparent'),
      tracestate: ours.tracestate ?? event.tracestate ?? c.req.header('tracestate'),
    });
    return okWithHeaders(c, reply.body, reply.headers);
  };
}
