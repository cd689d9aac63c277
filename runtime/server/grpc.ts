/**
 * @module server/grpc
 * The gRPC transport: `inference.GRPCInferenceService` (protocol/grpc/) over
 * HTTP/2 cleartext on its own port, as KServe's `grpc-v2` protocol and
 * Triton's gRPC clients expect. Thin, like the REST routes: decode → data
 * plane → encode; errors carry the gRPC code from core/grpc-status.ts and the
 * same message the REST route would put in `{"error": ...}`.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import protobuf from 'protobufjs';
import { GRPC_CODE, toGrpcError } from '../core/grpc-status.js';
import { HTTP_STATUS } from '../core/http-status.js';
import { KinferError, PayloadTooLarge, Unsupported } from '../core/errors.js';
import type { DataPlane } from '../dataplane.js';
import { requestSeries, type Metrics } from '../observability/metrics.js';
import { decodeGrpcInferRequest, encodeGrpcInferResponse, GRPC_LOADER_OPTIONS, type WireInferRequest } from '../protocol/grpc/codec.js';
import { SERVICE_PROTO } from '../protocol/grpc/service-proto.js';
import { stage } from './stages.js';

export interface GrpcServerOptions {
  dataplane: DataPlane;
  logger: Logger;
  metrics: Metrics;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest request message, bytes (the REST body limit). */
  maxMessageBytes: number;
  /**
   * Largest total of the inputs' typed `contents`, bytes (the REST JSON limit): decoded, a packed
   * field becomes a JS array of up to one element per byte, before any handler could refuse it.
   */
  maxContentsBytes: number;
}

export interface RunningGrpcServer {
  port: number;
  /** Stops taking calls (GOAWAY: clients reconnect elsewhere); settles when running ones have finished. */
  stop(): Promise<void>;
  /** Cancels the calls still running. */
  kill(): void;
}

/** The service definition, parsed once per process. */
let definition: grpc.ServiceDefinition | undefined;

function serviceDefinition(): grpc.ServiceDefinition {
  if (!definition) {
    const root = protobuf.parse(SERVICE_PROTO, { keepCase: true }).root;
    const pkg = grpc.loadPackageDefinition(protoLoader.fromJSON(root.toJSON(), GRPC_LOADER_OPTIONS));
    definition = ((pkg.inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor).service;
  }
  return definition;
}

/** The package definition, for clients (tests, tools) that speak to this server. */
export function grpcPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.fromJSON(protobuf.parse(SERVICE_PROTO, { keepCase: true }).root.toJSON(), GRPC_LOADER_OPTIONS);
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>;

export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const dp = opts.dataplane;
  const log = opts.logger;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': -1,
  });

  /** A unary handler whose throws become gRPC statuses (never a crash, never UNKNOWN for our errors). */
  const unary =
    <Req, Res>(method: string, fn: Unary<Req, Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => fn(call))
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            const e = toGrpcError(err);
            const metadata = new grpc.Metadata();
            if (e.retryAfterSeconds !== undefined) metadata.set('retry-after', String(e.retryAfterSeconds));
            if (e.code === GRPC_CODE.INTERNAL) log.error({ event: 'grpc_error', method, err }, e.details);
            callback({ code: e.code, details: e.details, metadata });
          },
        )
        .catch((err: unknown) => log.error({ event: 'grpc_reply_failed', method, err }, 'could not send the gRPC reply'));
    };

  const infer = async (call: grpc.ServerUnaryCall<WireInferRequest, unknown>) => {
    const started = performance.now();
    const m = call.request;
    const version = m.model_version || undefined;
    let model = '';
    let serving = '';
    let status = 200;
    let batchSize: number | undefined;
    const requestId = firstValue(call.metadata.get('x-request-id'));
    try {
      if ('oversized' in m) {
        throw new PayloadTooLarge(
          `the request's typed contents are ${(m as unknown as Oversized).oversized} bytes, over the limit of ${opts.maxContentsBytes} (KINFER_MAX_JSON_BYTES); send large tensors in raw_input_contents`,
        );
      }
      serving = dp.assertServing(m.model_name, version);
      model = m.model_name;
      const labels = { model, version: serving };
      const decoded = stage('decode', opts.metrics, labels, () => decodeGrpcInferRequest(m));
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      if (call.cancelled) abort.abort();
      const deadline = call.getDeadline();
      const ms = deadline instanceof Date ? deadline.getTime() : deadline;
      const ctx = { signal: abort.signal, ...(requestId ? { requestId } : {}), ...(Number.isFinite(ms) ? { deadline: performance.now() + (ms - Date.now()) } : {}) };
      const { response, batch } = await dp.infer(decoded.request, ctx);
      batchSize = batch.batchSize;
      return stage('encode', opts.metrics, { model, version: response.modelVersion ?? '' }, () => encodeGrpcInferResponse(response, decoded.raw));
    } catch (err) {
      status = err instanceof KinferError ? HTTP_STATUS[err.code] : 500;
      throw err;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      requestSeries(opts.metrics, model, serving, 'grpc', status).observe(seconds);
      if (log.isLevelEnabled('info')) {
        log.info({ requestId, method: 'ModelInfer', status, ms: Math.round(seconds * 1e6) / 1000, model: model || undefined, version: serving || undefined, protocol: 'grpc', batchSize }, 'request');
      }
    }
  };

  // ModelInfer's typed contents are sized on the wire before protobufjs turns them into arrays.
  const service = { ...serviceDefinition() };
  const modelInfer = service.ModelInfer!;
  service.ModelInfer = {
    ...modelInfer,
    requestDeserialize: (buf: Buffer) => {
      const typed = typedContentsBytes(buf);
      return typed > opts.maxContentsBytes ? ({ oversized: typed } satisfies Oversized) : modelInfer.requestDeserialize(buf);
    },
  };
  server.addService(service, {
    ServerLive: unary('ServerLive', async () => ({ live: await dp.live() })),
    ServerReady: unary('ServerReady', async () => ({ ready: await dp.ready() })),
    ModelReady: unary<{ name: string; version: string }, unknown>('ModelReady', (call) => ({
      ready: dp.modelReady(call.request.name, call.request.version || undefined),
    })),
    ServerMetadata: unary('ServerMetadata', () => dp.serverMetadata()),
    ModelMetadata: unary<{ name: string; version: string }, unknown>('ModelMetadata', (call) => {
      const md = dp.modelMetadata(call.request.name, call.request.version || undefined);
      return { ...md, properties: {} };
    }),
    ModelInfer: unary('ModelInfer', infer),
    RepositoryIndex: unary<{ ready: boolean }, unknown>('RepositoryIndex', async (call) => {
      const entries = await dp.repositoryIndex();
      const models = (call.request.ready ? entries.filter((e) => e.state === 'READY') : entries).map((e) => ({
        name: e.name,
        version: e.version ?? '',
        state: e.state,
        reason: e.reason ?? '',
      }));
      return { models };
    }),
    RepositoryModelLoad: unary<{ model_name: string; parameters?: Record<string, WireRepositoryParameter> }, unknown>('RepositoryModelLoad', async (call) => {
      await dp.load(call.request.model_name, repositoryParameters(call.request.parameters));
      return {};
    }),
    RepositoryModelUnload: unary<{ model_name: string }, unknown>('RepositoryModelUnload', async (call) => {
      await dp.unload(call.request.model_name);
      return {};
    }),
  } as grpc.UntypedServiceImplementation);

  const port = await new Promise<number>((resolve, reject) => {
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    server.bindAsync(`${host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  log.info({ event: 'listening', protocol: 'grpc', port }, `kinfer gRPC listening on ${opts.host}:${port}`);

  let stopped: Promise<void> | undefined;
  return {
    port,
    stop: () => (stopped ??= new Promise<void>((resolve) => server.tryShutdown(() => resolve()))),
    kill: () => server.forceShutdown(),
  };
}

/** What the ModelInfer deserializer hands over instead of a request whose typed contents are over the limit. */
interface Oversized {
  oversized: number;
}

/**
 * Bytes of every `inputs[].contents` in an encoded ModelInferRequest (fields 5 and 5.5), read
 * with protobufjs's Reader without decoding them. A malformed message throws, as decoding would.
 */
export function typedContentsBytes(buf: Uint8Array): number {
  const r = protobuf.Reader.create(buf);
  let total = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 5 && (tag & 7) === 2) {
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const inner = r.uint32();
        if (inner >>> 3 === 5 && (inner & 7) === 2) {
          const n = r.uint32();
          total += n;
          r.skip(n);
        } else r.skipType(inner & 7);
      }
    } else r.skipType(tag & 7);
  }
  return total;
}

interface WireRepositoryParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  bytes_param?: Uint8Array;
}

/** Triton's ModelRepositoryParameter map → the load parameters the REST route takes (`config` as a string, ...). */
function repositoryParameters(wire: Record<string, WireRepositoryParameter> | undefined): Record<string, string | number | boolean> | undefined {
  if (!wire) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const [key, p] of Object.entries(wire)) {
    const choice = p.parameter_choice;
    if (choice === undefined) continue;
    if (choice === 'bytes_param') {
      // Triton's `file:<path>` overrides ship model files in bytes_param; kinfer loads from its repository.
      throw new Unsupported(`load parameter '${key}': bytes parameters (Triton's file: overrides) are not supported`);
    }
    const v = p[choice]!;
    out[key] = choice === 'int64_param' ? Number(v) : (v as string | boolean);
  }
  return out;
}

function firstValue(values: grpc.MetadataValue[]): string | undefined {
  const v = values[0];
  return v === undefined ? undefined : String(v);
}

