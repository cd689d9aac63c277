/**
 * @module server/context
 * Per-request values that travel through Hono's typed context variables.
 */
import type { PayloadCapture } from '../observability/payload-log.js';

export interface KinferVariables {
  requestId: string;
  /** Set by a route once it knows which model the request is for. */
  model?: string;
  modelVersion?: string;
  /** `v2-json`, `v2-binary`, `cloudevent-binary`, `cloudevent-structured`. */
  protocol?: string;
  /** Items in the batch the request ran in. */
  batchSize?: number;
  /** The W3C trace id the request belongs to (the caller's, or ours when tracing is on). */
  traceId?: string;
  /** The Content-Encoding chosen for the reply, until a handler or the compress middleware applies it. */
  pendingCompression?: 'gzip' | 'deflate';
  /** Payload logging's record of this request, when a logger URL is set (middleware/payload-log.ts). */
  payloadCapture?: PayloadCapture;
}

export type KinferEnv = { Variables: KinferVariables };
