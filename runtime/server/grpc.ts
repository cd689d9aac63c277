/**
 * @module server/grpc
 * The gRPC transport: `inference.GRPCInferenceService` (protocol/grpc/) over
 * HTTP/2 cleartext (or TLS: grpc-tls.ts) on its own port, as KServe's `grpc-v2` protocol and
 * Triton's gRPC clients expect. Thin, like the REST routes: decode → data
 * plane → encode; errors carry the gRPC code from core/grpc-status.ts and the
 * same message the REST route would put in `{"error": ...}`.
 */
import type { GrpcTls } from './grpc-tls.js';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { Logger } from 'pino';
import protobuf from 'protobufjs';
import { GRPC_CODE, toGrpcError } from '../core/grpc-status.js';
import { toHttpError } from '../core/http-status.js';
import { InvalidArgument, NotFound, PayloadTooLarge, Unsupported } from '../core/errors.js';
import { allowedRegions, noCudaRegions, type SystemSharedMemory } from '../shared-memory/system-shared-memory.js';
import { extractContext, tracingEnabled, withoutTrace, withSpan } from '../observability/tracing.js';
import type { TraceSettings } from '../observability/trace-settings.js';
import type { LogControl } from '../observability/log-settings.js';
import type { DataPlane } from '../dataplane.js';
import { requestSeries, type Metrics } from '../observability/metrics.js';
import { decodeGrpcInferRequest, encodeGrpcInferResponse, packageDefinitionOf, parametersOf, type WireInferRequest, type WireParameter } from '../protocol/grpc/codec.js';
import type { Parameters } from '../core/tensor.js';
import { SERVICE_PROTO } from '../protocol/grpc/service-proto.js';
import { FILE_PREFIX } from '../repository/override-files.js';
import { healthPackageDefinition, healthService } from './grpc-health.js';
import { restrictGrpc } from './grpc-restricted.js';
import type { Restrictions } from './restricted.js';
import { deadlineOf, streamInferHandler, type InferOne } from './grpc-stream.js';
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
  /** REST's JSON limit (KINFER_MAX_JSON_BYTES): typed `contents` may cost an eighth of it in decode units (see decodeCost). */
  maxContentsBytes: number;
  /** Client shared-memory regions, shared with REST (`--allow-client-shm`); absent: refused. */
  sharedMemory?: SystemSharedMemory;
  /** Triton's trace settings, shared with REST: which calls are traced. */
  traceSettings?: TraceSettings;
  /** Triton's logging extension, shared with REST's /v2/logging. */
  logs?: LogControl;
  /** TLS (mutual when `clientCa` is set) instead of h2c. */
  tls?: GrpcTls;
  /** Triton's --grpc-restricted-protocol: methods whose calls need `triton-grpc-protocol-<key>` metadata. */
  restrictions?: Restrictions;
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
    const pkg = grpc.loadPackageDefinition(grpcPackageDefinition());
    definition = ((pkg.inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor).service;
  }
  return definition;
}

/** REST's extensions that gRPC does not serve (binary tensors are raw contents there; the rest are HTTP routes). */
const REST_ONLY = new Set(['binary_tensor_data', 'cloudevents', 'hardware']);


/** The package definition, for clients (tests, tools) that speak to this server. */
export function grpcPackageDefinition(): protoLoader.PackageDefinition {
  return packageDefinitionOf(SERVICE_PROTO);
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>;

export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const dp = opts.dataplane;
  const log = opts.logger;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': -1,
    ...(opts.restrictions?.size ? { interceptors: [restrictGrpc(opts.restrictions)] } : {}),
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

  /**
   * One inference request, whether a unary ModelInfer call or one message of a ModelStreamInfer
   * stream: decode → data plane → encode, counted in the request metrics and the access log as
   * REST counts its requests, in a kinfer.infer span whose parent is the call's traceparent.
   */
  const allowedShm = () => allowedRegions(opts.sharedMemory);

  const inferOne: InferOne = (m, metadata, signal, deadlineMs, method, requestId = firstValue(metadata.get('x-request-id'))) => {
    const headers = Object.fromEntries(Object.entries(metadata.getMap()).map(([k, v]) => [k, String(v)]));
    const parent = extractContext(headers);
    const run = () => inferMessage(m, signal, deadlineMs, method, requestId);
    if (tracingEnabled() && opts.traceSettings && !opts.traceSettings.sample(m.model_name)) return withoutTrace(run, parent);
    return withSpan('kinfer.infer', { 'rpc.system': 'grpc', 'rpc.method': method }, run, parent);
  };

  const inferMessage = async (m: WireInferRequest, signal: AbortSignal, deadlineMs: number | undefined, method: string, requestId: string | undefined) => {
    const started = performance.now();
    const version = m.model_version || undefined;
    let model = '';
    let serving = '';
    let status = 200;
    let batchSize: number | undefined;
    try {
      if ('refused' in m) throw (m as unknown as Refused).refused;
      serving = dp.assertServing(m.model_name, version);
      model = m.model_name;
      const labels = { model, version: serving };
      const decoded = stage('decode', opts.metrics, labels, () => decodeGrpcInferRequest(m, opts.sharedMemory));
      const ctx = { signal, ...(requestId ? { requestId } : {}), ...(deadlineMs !== undefined ? { deadline: performance.now() + (deadlineMs - Date.now()) } : {}) };
      const { response, batch } = await dp.infer(decoded.request, ctx);
      batchSize = batch.batchSize;
      return stage('encode', opts.metrics, { model, version: response.modelVersion ?? '' }, () => encodeGrpcInferResponse(response, decoded.raw, decoded.sharedMemory, opts.sharedMemory));
    } catch (err) {
      status = toHttpError(err).status;
      throw err;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      requestSeries(opts.metrics, model, serving, 'grpc', status).observe(seconds);
      if (log.isLevelEnabled('info')) {
        log.info({ requestId, method, status, ms: Math.round(seconds * 1e6) / 1000, model: model || undefined, version: serving || undefined, protocol: 'grpc', batchSize }, 'request');
      }
    }
  };

  const infer = (call: grpc.ServerUnaryCall<WireInferRequest, unknown>) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    if (call.cancelled) abort.abort();
    return inferOne(call.request, call.metadata, abort.signal, deadlineOf(call), 'ModelInfer');
  };
  const streams = streamInferHandler(inferOne, log);

  // Inference requests are weighed on the wire before protobufjs turns their values into objects.
  const service = { ...serviceDefinition() };
  for (const name of ['ModelInfer', 'ModelStreamInfer']) {
    const method = service[name]!;
    service[name] = {
      ...method,
      requestDeserialize: (buf: Buffer) => {
        const refused = decodeCost(buf, opts.maxContentsBytes);
        return refused ? ({ refused, ...identityOf(buf) } satisfies Refused) : method.requestDeserialize(buf);
      },
    };
  }
  server.addService(service, {
    ServerLive: unary('ServerLive', async () => ({ live: await dp.live() })),
    ServerReady: unary('ServerReady', async () => ({ ready: await dp.ready() })),
    ModelReady: unary<{ name: string; version: string }, unknown>('ModelReady', (call) => ({
      ready: dp.modelReady(call.request.name, call.request.version || undefined),
    })),
    ServerMetadata: unary('ServerMetadata', () => {
      const meta = dp.serverMetadata();
      return { ...meta, extensions: meta.extensions.filter((e) => !REST_ONLY.has(e)) };
    }),
    ModelMetadata: unary<{ name: string; version: string }, unknown>('ModelMetadata', (call) => {
      const md = dp.modelMetadata(call.request.name, call.request.version || undefined);
      return { ...md, properties: {} };
    }),
    ModelInfer: unary('ModelInfer', infer),
    ModelStreamInfer: streams.handler,
    ModelConfig: unary<{ name: string; version: string }, unknown>('ModelConfig', (call) => ({
      config: dp.modelConfig(call.request.name, call.request.version || undefined),
    })),
    ModelStatistics: unary<{ name: string; version: string }, unknown>('ModelStatistics', (call) => {
      // An empty name asks for every model, as in Triton; a version then names nothing.
      if (!call.request.name && call.request.version) throw new InvalidArgument(`version '${call.request.version}' given without a model name`);
      return { model_stats: dp.modelStatistics(call.request.name || undefined, call.request.version || undefined) };
    }),
    RepositoryIndex: unary<{ ready: boolean }, unknown>('RepositoryIndex', async (call) => {
      const models = (await dp.repositoryIndex(call.request.ready)).map((e) => ({
        name: e.name,
        version: e.version ?? '',
        state: e.state,
        reason: e.reason ?? '',
      }));
      return { models };
    }),
    RepositoryModelLoad: unary<{ model_name: string; parameters?: Record<string, WireRepositoryParameter> }, unknown>('RepositoryModelLoad', async (call) => {
      const { parameters, files } = repositoryParameters(call.request.parameters);
      await dp.load(call.request.model_name, parameters, files);
      return {};
    }),
    RepositoryModelUnload: unary<{ model_name: string; parameters?: Record<string, WireRepositoryParameter> }, unknown>('RepositoryModelUnload', async (call) => {
      const { parameters, files } = repositoryParameters(call.request.parameters);
      if (files.size > 0) throw new InvalidArgument('unload: file:<path> parameters are for loads');
      const dependents = parameters?.unload_dependents;
      if (dependents !== undefined && typeof dependents !== 'boolean') throw new InvalidArgument(`parameter unload_dependents: expected bool_param, got ${JSON.stringify(dependents)}`);
      await dp.unload(call.request.model_name, { unloadDependents: dependents === true });
      return {};
    }),
    // Triton's shared-memory extension: the same regions as REST's /v2/systemsharedmemory.
    SystemSharedMemoryStatus: unary<{ name: string }, unknown>('SystemSharedMemoryStatus', (call) => {
      const name = call.request.name;
      const regions = name ? allowedShm().status(name) : (opts.sharedMemory?.status() ?? []);
      return { regions: Object.fromEntries(regions.map((r) => [r.name, { name: r.name, key: r.key, offset: String(r.offset), byte_size: String(r.byte_size) }])) };
    }),
    SystemSharedMemoryRegister: unary<{ name: string; key: string; offset: string; byte_size: string }, unknown>('SystemSharedMemoryRegister', (call) => {
      const { name, key, offset, byte_size } = call.request;
      allowedShm().register(name, key, Number(offset), Number(byte_size));
      return {};
    }),
    SystemSharedMemoryUnregister: unary<{ name: string }, unknown>('SystemSharedMemoryUnregister', (call) => {
      opts.sharedMemory?.unregister(call.request.name || undefined);
      return {};
    }),
    CudaSharedMemoryStatus: unary<{ name: string }, unknown>('CudaSharedMemoryStatus', (call) => (call.request.name ? noCudaRegions() : { regions: {} })),
    CudaSharedMemoryRegister: unary('CudaSharedMemoryRegister', noCudaRegions),
    CudaSharedMemoryUnregister: unary('CudaSharedMemoryUnregister', () => ({})),
    // Triton's logging extension: the same settings as REST's /v2/logging, each value in its oneof.
    LogSettings: unary<{ settings: Record<string, { parameter_choice?: 'bool_param' | 'uint32_param' | 'string_param'; bool_param?: boolean; uint32_param?: number; string_param?: string }> }, unknown>('LogSettings', (call) => {
      const logs = opts.logs;
      if (!logs) throw new Unsupported('log settings are not served here');
      const patch = Object.fromEntries(
        Object.entries(call.request.settings ?? {}).map(([k, v]) => {
          if (!v.parameter_choice) throw new InvalidArgument(`log setting '${k}': no value given (bool_param, uint32_param or string_param)`);
          return [k, v[v.parameter_choice]];
        }),
      );
      const now = Object.keys(patch).length ? logs.update(patch) : logs.get();
      const wire = (v: unknown) => (typeof v === 'boolean' ? { bool_param: v } : typeof v === 'number' ? { uint32_param: v } : { string_param: String(v) });
      return { settings: Object.fromEntries(Object.entries(now).map(([k, v]) => [k, wire(v)])) };
    }),
    // Triton's trace extension: the same settings as REST's /v2[/models/{m}]/trace/setting. An empty value list clears a model's setting.
    TraceSetting: unary<{ settings: Record<string, { value: string[] }>; model_name: string }, unknown>('TraceSetting', (call) => {
      const traces = opts.traceSettings;
      if (!traces) throw new Unsupported('trace settings are not served here');
      const model = call.request.model_name || undefined;
      if (model !== undefined && !dp.knows(model)) throw new NotFound(`model '${model}' is not found`);
      const patch = Object.fromEntries(Object.entries(call.request.settings ?? {}).map(([k, v]) => [k, v.value.length ? (k === 'trace_level' ? v.value : v.value[0]) : null]));
      const now = Object.keys(patch).length ? traces.update(patch, model) : traces.get(model);
      return { settings: Object.fromEntries(Object.entries(now).map(([k, v]) => [k, { value: Array.isArray(v) ? v : [v] }])) };
    }),
  } as grpc.UntypedServiceImplementation);

  const health = healthService(dp, (err) => log.error({ event: 'grpc_health_failed', err }, 'gRPC health check failed'));
  server.addService(health.definition, health.implementation);
  // Server reflection (v1 and v1alpha): grpcurl and other tools list and call the services without a .proto.
  new ReflectionService({ ...grpcPackageDefinition(), ...healthPackageDefinition() }).addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    const tls = opts.tls;
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined)
      : grpc.ServerCredentials.createInsecure();
    server.bindAsync(`${host}:${opts.port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  const security = opts.tls ? (opts.tls.clientCa ? 'mutual TLS' : 'TLS') : 'h2c';
  log.info({ event: 'listening', protocol: 'grpc', port, security }, `kinfer gRPC (${security}) listening on ${opts.host}:${port}`);

  let stopped: Promise<void> | undefined;
  return {
    port,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        health.close();
        streams.close();
      })),
    kill: () => {
      health.close();
      server.forceShutdown();
    },
  };
}

/** What the ModelInfer deserializer hands over instead of a request too costly to decode: why, and which request it was. */
interface Refused {
  refused: PayloadTooLarge | InvalidArgument;
  model_name: string;
  model_version: string;
  id: string;
}

/** model_name (1), model_version (2) and id (3) of an encoded ModelInferRequest, nothing else decoded. */
function identityOf(buf: Uint8Array): { model_name: string; model_version: string; id: string } {
  const out = { model_name: '', model_version: '', id: '' };
  try {
    const r = protobuf.Reader.create(buf);
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if ((tag & 7) === 2 && field >= 1 && field <= 3) out[(['model_name', 'model_version', 'id'] as const)[field - 1]!] = r.string();
      else r.skipType(tag & 7);
    }
  } catch {
    // malformed: what was read so far
  }
  return out;
}

/** Bytes a legitimate request spends outside its tensor data (names, shapes, parameters, outputs). */
const MAX_META_BYTES = 1024 * 1024;
/** Decode cost per element: a 64-bit integer becomes LongBits, Long and a string; a byte string a Buffer. */
const HEAVY_ELEMENT = 4;

/**
 * Why an encoded ModelInferRequest is too costly to decode, or undefined. protobufjs turns each
 * element of a typed `contents` field into a JS value (1 wire byte can become a Long and a string),
 * so contents are weighed by element against `budget / 8` units (REST's JSON limit spends about
 * 2 bytes per value), 64-bit integers and byte strings at HEAVY_ELEMENT each; everything but the
 * tensor data (raw_input_contents and contents) may take MAX_META_BYTES; raw_input_contents
 * may not have more entries than there are inputs (2 wire bytes each, a Buffer each once decoded).
 * Read with protobufjs's Reader, nothing decoded; a malformed message throws, as decoding would.
 */
export function decodeCost(buf: Uint8Array, budget: number): PayloadTooLarge | InvalidArgument | undefined {
  const r = protobuf.Reader.create(buf);
  let meta = 0;
  let units = 0;
  let inputs = 0;
  let raws = 0;
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    if (tag >>> 3 === 7) raws++; // each entry, empty or not, becomes a Buffer
    if (tag >>> 3 === 5 && (tag & 7) === 2) {
      inputs++;
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const at = r.pos;
        const inner = r.uint32();
        if (inner >>> 3 === 5 && (inner & 7) === 2) {
          const n = r.uint32();
          units += contentsUnits(buf.subarray(r.pos, r.pos + n));
          r.skip(n);
        } else {
          r.skipType(inner & 7);
          meta += r.pos - at;
        }
      }
    } else {
      r.skipType(tag & 7);
      if (tag >>> 3 !== 7) meta += r.pos - start;
    }
  }
  // The decoded request is refused for this too (codec.ts); here before a Buffer is made per entry.
  if (raws > inputs) return new InvalidArgument(`raw_input_contents has ${raws} entries for ${inputs} inputs; when used, it carries every input not in shared memory, in order`);
  if (units > budget / 8) return new PayloadTooLarge(`the request's typed contents weigh ${units} units to decode, over ${Math.floor(budget / 8)} (KINFER_MAX_JSON_BYTES / 8; a 64-bit integer or byte string counts ${HEAVY_ELEMENT}); send large tensors in raw_input_contents`);
  if (meta > MAX_META_BYTES) return new PayloadTooLarge(`the request has ${meta} bytes besides its tensor data (names, shapes, parameters, outputs), over ${MAX_META_BYTES}`);
  return undefined;
}

/** Elements of one InferTensorContents, weighted: fields 1-8 in order bool, int32, int64, uint32, uint64, float, double, bytes. */
function contentsUnits(c: Uint8Array): number {
  const r = protobuf.Reader.create(c);
  let units = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    const weight = field === 3 || field === 5 || field === 8 ? HEAVY_ELEMENT : 1;
    if (wire !== 2 || field === 8) {
      // One element: an unpacked number, or one byte string.
      r.skipType(wire);
      units += weight;
      continue;
    }
    const n = r.uint32();
    const packed = c.subarray(r.pos, r.pos + n);
    r.skip(n);
    if (field === 6) units += n / 4;
    else if (field === 7) units += n / 8;
    else for (const b of packed) if (b < 0x80) units += weight; // one varint ends at each byte below 0x80
  }
  return units;
}

interface WireRepositoryParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  bytes_param?: Uint8Array;
}

/**
 * Triton's ModelRepositoryParameter map → the load parameters the REST route takes (`config` as a
 * string, ...; InferParameter's conversion) and the `file:<path>` overrides, whose contents come
 * as bytes. Bytes under any other key are refused.
 */
function repositoryParameters(wire: Record<string, WireRepositoryParameter> | undefined): { parameters: Parameters | undefined; files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  const rest: Record<string, WireRepositoryParameter> = {};
  for (const [key, p] of Object.entries(wire ?? {})) {
    if (key.startsWith(FILE_PREFIX)) {
      if (p.parameter_choice !== 'bytes_param' || !p.bytes_param) throw new InvalidArgument(`load parameter '${key}': expected the file's contents in bytes_param`);
      files.set(key.slice(FILE_PREFIX.length), p.bytes_param);
    } else if (p.parameter_choice === 'bytes_param') {
      throw new InvalidArgument(`load parameter '${key}': bytes are taken only for file:<path> parameters`);
    } else {
      rest[key] = p;
    }
  }
  return { parameters: parametersOf(rest as Record<string, WireParameter>), files };
}

function firstValue(values: grpc.MetadataValue[]): string | undefined {
  const v = values[0];
  return v === undefined ? undefined : String(v);
}

