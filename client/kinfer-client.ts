/**
 * @module client/kinfer-client
 * `KinferClient`: a typed client for the KServe v2 / Open Inference Protocol
 * REST API as kinfer (and KServe, Triton) serve it, with the binary tensor
 * extension, the repository extension, kinfer's `/v2/hardware` and
 * CloudEvents. Built on `node:http` so that the `Host` header can be set for
 * ingress routing (fetch/undici will not send a caller's `Host`).
 *
 * Retries: a 503 or 429 answer is retried (after `Retry-After` when sent,
 * else exponential backoff) up to `retries` times; a refused connection is
 * retried for every call (nothing reached the server); other connection
 * failures only for idempotent calls. Every wait is bounded.
 *
 * @example
 * const client = new KinferClient('http://127.0.0.1:8080', { host: 'echo.default.example.com' });
 * await client.waitUntilReady({ timeoutMs: 10_000, model: 'echo' });
 * const res = await client.infer('echo', [{ name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }]);
 * res.output('x').data; // Float32Array [1, 2]
 * client.close();
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import {
  KinferConnectionError,
  KinferHttpError,
  KinferInputError,
  KinferProtocolError,
  KinferTimeoutError,
} from './errors.js';
import {
  binarySize,
  decodeInferResponse,
  encodeInferRequest,
  InferResult,
  jsonCannotCarry,
  parseJsonExact,
  toTensor,
  type InferInput,
  type Parameters,
  type RequestedOutput,
  type Tensor,
} from './tensors.js';

const gzipAsync = promisify(zlib.gzip);

export interface KinferClientOptions {
  /** `Host` header for every request: routes through a Knative/Istio ingress (`<svc>.<ns>.example.com`). */
  host?: string;
  /** Extra headers for every request (e.g. `Authorization`). */
  headers?: Record<string, string>;
  /** Per attempt, from sending to the full answer; 0 = no timeout. At most 2^31 - 1 ms. Default 60 000 ms. */
  timeoutMs?: number;
  /** Retries after the first attempt (see the module comment). Default 2. */
  retries?: number;
  /** First backoff delay; doubles per retry, with jitter. Default 100 ms. */
  retryBaseMs?: number;
  /** Upper bound of one wait between attempts, `Retry-After` included. Default 10 000 ms. */
  maxRetryDelayMs?: number;
  /** `infer` sends the binary extension when inputs total at least this many bytes (unless `binary` is given). Default 64 KiB. */
  binaryThreshold?: number;
  /** gzip request bodies of at least this many bytes (`true` = 1 KiB). Default off. */
  gzip?: boolean | number;
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
  [key: string]: unknown;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  [key: string]: unknown;
}

/** A count and a summed duration in nanoseconds (Triton's `$duration_stat`). */
export interface DurationStat {
  count: number;
  ns: number;
}

/** One `$model_stat` of Triton's statistics extension. */
export interface ModelStatistics {
  name: string;
  version?: string;
  /** Milliseconds since the epoch; 0 before any request. */
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', DurationStat>;
  batch_stats: { batch_size: number; compute_input: DurationStat; compute_infer: DurationStat; compute_output: DurationStat }[];
  [key: string]: unknown;
}

export interface RepositoryIndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

/** A registered system shared-memory region (Triton's status entry). */
export interface SharedMemoryRegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

export interface InferOptions {
  /** Force the binary extension on (true) or off (false); default: on above `binaryThreshold`. */
  binary?: boolean;
  /** Ask for outputs in the binary section; default: same as the request. */
  binaryOutputs?: boolean;
  version?: string;
  /** Outputs to return (all when omitted). */
  outputs?: readonly (string | RequestedOutput)[];
  /** Request id, echoed back by the server. */
  id?: string;
  parameters?: Parameters;
  /**
   * For a stateful model (`sequence_batching`): the request's sequence, sent as Triton's
   * `sequence_id`, `sequence_start` and `sequence_end` parameters.
   */
  sequence?: { id: number | string; start?: boolean; end?: boolean };
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface InferEventOptions extends InferOptions {
  /** CloudEvents HTTP binding mode. Default `binary`. */
  mode?: 'binary' | 'structured';
  /** Event type. Default `io.kinfer.inference.request`. */
  type?: string;
  /** Event source. Default `/kinfer/client`. */
  source?: string;
  /** Event id. Default: a new UUID. */
  eventId?: string;
  subject?: string;
  /** More extension attributes (lower-case alphanumeric names). */
  extensions?: Record<string, string>;
  /** Where to send: `/` (what a Knative Trigger delivers to, default) or the model's infer route. */
  target?: 'root' | 'infer';
}

export interface CloudEventReply {
  /** Context attributes of the reply (`id`, `type`, `source`, `inresponseto`, ...). */
  attributes: Record<string, string>;
  mode: 'binary' | 'structured';
  result: InferResult;
}

export interface WaitOptions {
  /** Give up after this long. Default 30 000 ms. */
  timeoutMs?: number;
  /** Wait for this model (else the server) to be ready. */
  model?: string;
  version?: string;
  /** Between polls. Default 250 ms. */
  intervalMs?: number;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: string;
}

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: Uint8Array;
  headers?: Record<string, string>;
  /** Safe to resend after a connection failed mid-way. */
  idempotent: boolean;
  /**
   * Retry on 503/429 answers (not for probes, whose 503 is the answer). 'with-retry-after': only
   * when the server says when (a model load's 503 after the server's own pull retries is final).
   */
  retryUnavailable: boolean | 'with-retry-after';
  timeoutMs?: number;
}

const RETRIABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

export class KinferClient {
  readonly baseUrl: URL;
  private readonly opts: Required<Omit<KinferClientOptions, 'host' | 'headers' | 'gzip'>> & {
    host?: string;
    headers: Record<string, string>;
    gzipAt: number;
  };
  private readonly agent: http.Agent;

  constructor(url: string, options: KinferClientOptions = {}) {
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new KinferInputError(`invalid server URL ${JSON.stringify(url)}: expected e.g. http://127.0.0.1:8080`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new KinferInputError(`invalid server URL ${JSON.stringify(url)}: only http:// and https:// are supported`);
    }
    this.baseUrl = base;
    const num = (v: number | undefined, d: number, what: string) => {
      if (v === undefined) return d;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new KinferInputError(`${what} must be a non-negative number, got ${v}`);
      return v;
    };
    this.opts = {
      host: options.host,
      headers: { ...options.headers },
      timeoutMs: timerMs(options.timeoutMs, 60_000, 'timeoutMs'),
      retries: Math.floor(num(options.retries, 2, 'retries')),
      retryBaseMs: timerMs(options.retryBaseMs, 100, 'retryBaseMs'),
      maxRetryDelayMs: timerMs(options.maxRetryDelayMs, 10_000, 'maxRetryDelayMs'),
      binaryThreshold: num(options.binaryThreshold, 64 * 1024, 'binaryThreshold'),
      gzipAt: options.gzip === true ? 1024 : options.gzip === false || options.gzip === undefined ? Infinity : num(options.gzip, 1024, 'gzip'),
    };
    this.agent = base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  /** Closes idle keep-alive connections. The client may still be used afterwards. */
  close(): void {
    this.agent.destroy();
  }

  // ---- health and metadata ----

  /** `GET /v2/health/live`: true on 200, false on 503. */
  serverLive(): Promise<boolean> {
    return this.probe('/v2/health/live');
  }

  /** `GET /v2/health/ready`: true on 200, false on 503. */
  serverReady(): Promise<boolean> {
    return this.probe('/v2/health/ready');
  }

  /** `GET /v2`. */
  serverMetadata(): Promise<ServerMetadata> {
    return this.getJson<ServerMetadata>('/v2');
  }

  /** `GET /v2/models`: names of the loaded models. */
  async modelList(): Promise<string[]> {
    const body = await this.getJson<{ models?: unknown }>('/v2/models');
    if (!Array.isArray(body.models)) throw new KinferProtocolError('GET /v2/models: expected {"models": [...]}');
    return body.models.map((m) => (typeof m === 'string' ? m : String((m as { name?: unknown }).name)));
  }

  /** `GET /v2/models/{model}[/versions/{version}]`. */
  async modelMetadata(model: string, opts: { version?: string } = {}): Promise<ModelMetadata> {
    return this.getJson<ModelMetadata>(modelPath(model, opts.version));
  }

  /**
   * `GET .../ready`: true on 200, false on 503 or 409 (loading). kinfer answers
   * an unknown model with 503 (false); servers that answer 404 make this throw.
   */
  async modelReady(model: string, opts: { version?: string } = {}): Promise<boolean> {
    return this.probe(`${modelPath(model, opts.version)}/ready`);
  }

  /** `GET .../config`: the serving version's configuration in Triton's JSON form (model_configuration extension). */
  async modelConfig(model: string, opts: { version?: string } = {}): Promise<Record<string, unknown>> {
    return this.getJson<Record<string, unknown>>(`${modelPath(model, opts.version)}/config`);
  }

  /** `GET /v2/models[/{model}[/versions/{version}]]/stats`: Triton's statistics extension, every model without `model`. */
  async modelStatistics(model?: string, opts: { version?: string } = {}): Promise<ModelStatistics[]> {
    const path = model === undefined ? '/v2/models/stats' : `${modelPath(model, opts.version)}/stats`;
    const body = await this.getJson<{ model_stats?: unknown }>(path);
    if (!Array.isArray(body.model_stats)) throw new KinferProtocolError(`GET ${path}: expected {"model_stats": [...]}`);
    return body.model_stats as ModelStatistics[];
  }

  // ---- repository extension ----

  /** `POST /v2/repository/index`; `ready: true` lists only ready models. */
  async repositoryIndex(opts: { ready?: boolean } = {}): Promise<RepositoryIndexEntry[]> {
    const body = opts.ready === undefined ? {} : { ready: opts.ready };
    const res = await this.postJson('/v2/repository/index', body, true);
    if (!Array.isArray(res)) throw new KinferProtocolError('POST /v2/repository/index: expected a JSON list');
    return res as RepositoryIndexEntry[];
  }

  /**
   * `POST /v2/repository/models/{model}/load` with optional `parameters` (e.g. `config`, `batch_size`).
   * `files` (path in the model folder → contents, e.g. `1/model.onnx`) sends the model itself, as
   * Triton's `file:<path>` parameters in base64; the server then needs `parameters.config`.
   */
  async modelLoad(model: string, opts: { parameters?: Parameters; files?: Record<string, Uint8Array>; timeoutMs?: number } = {}): Promise<void> {
    const parameters: Parameters = { ...opts.parameters };
    for (const [path, bytes] of Object.entries(opts.files ?? {})) parameters[`file:${path}`] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    await this.postJson(`/v2/repository/models/${seg(model)}/load`, paramsBody(parameters), false, opts.timeoutMs, 'with-retry-after');
  }

  /** `POST /v2/repository/models/{model}/unload`. */
  async modelUnload(model: string, opts: { parameters?: Parameters; timeoutMs?: number } = {}): Promise<void> {
    await this.postJson(`/v2/repository/models/${seg(model)}/unload`, paramsBody(opts.parameters), false, opts.timeoutMs, 'with-retry-after');
  }

  // ---- Triton's settings and shared-memory extensions ----

  /** `GET /v2/logging`: the running log settings (`log_info`, `log_verbose_level`, ...). */
  logSettings(): Promise<Record<string, unknown>> {
    return this.getJson<Record<string, unknown>>('/v2/logging');
  }

  /** `POST /v2/logging` with the settings to change; returns them all as they now are. */
  async updateLogSettings(settings: Record<string, unknown>): Promise<Record<string, unknown>> {
    return (await this.postJson('/v2/logging', settings, true)) as Record<string, unknown>;
  }

  /** `GET /v2[/models/{model}]/trace/setting`: which requests are traced (Triton's trace extension). */
  async traceSettings(model?: string): Promise<Record<string, string | string[]>> {
    return this.getJson<Record<string, string | string[]>>(tracePath(model));
  }

  /** `POST /v2[/models/{model}]/trace/setting`: e.g. `{ trace_rate: '10' }`; null puts a setting back. Returns them all. */
  async updateTraceSettings(settings: Record<string, string | string[] | null>, model?: string): Promise<Record<string, string | string[]>> {
    return (await this.postJson(tracePath(model), settings, true)) as Record<string, string | string[]>;
  }

  /** `GET /v2/systemsharedmemory[/region/{region}]/status`: the registered regions. */
  async systemSharedMemoryStatus(region?: string): Promise<SharedMemoryRegionStatus[]> {
    const path = region === undefined ? '/v2/systemsharedmemory/status' : `/v2/systemsharedmemory/region/${seg(region, 'region name')}/status`;
    const body = await this.getJson<unknown>(path);
    if (!Array.isArray(body)) throw new KinferProtocolError(`GET ${path}: expected a JSON list`);
    return body as SharedMemoryRegionStatus[];
  }

  /**
   * `POST /v2/systemsharedmemory/region/{region}/register`: `byteSize` bytes at `offset` of the
   * POSIX shared-memory object `key` (`/name`, which the caller created with shm_open).
   */
  async systemSharedMemoryRegister(region: string, key: string, byteSize: number, offset = 0): Promise<void> {
    await this.postJson(`/v2/systemsharedmemory/region/${seg(region, 'region name')}/register`, { key, offset, byte_size: byteSize }, false);
  }

  /** `POST /v2/systemsharedmemory[/region/{region}]/unregister`: one region, or every one. */
  async systemSharedMemoryUnregister(region?: string): Promise<void> {
    const path = region === undefined ? '/v2/systemsharedmemory/unregister' : `/v2/systemsharedmemory/region/${seg(region, 'region name')}/unregister`;
    await this.postJson(path, {}, true);
  }

  /** `POST /v2/hardware`: are at least `num` devices named `name` present? (200 → true, 404 → false) */
  async hasHardware(name: string, num = 1): Promise<boolean> {
    const res = await this.send({
      method: 'POST',
      path: '/v2/hardware',
      body: Buffer.from(JSON.stringify({ name, num })),
      headers: { 'Content-Type': 'application/json' },
      idempotent: true,
      retryUnavailable: true,
    });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw httpError(res);
  }

  // ---- inference ----

  /**
   * `POST /v2/models/{model}[/versions/{v}]/infer`. Inputs are checked and
   * converted first (`KinferInputError` names the bad one). The body is JSON
   * unless `binary` is true or the inputs reach `binaryThreshold` bytes (or a
   * BYTES element is not UTF-8); the answer is decoded either way.
   */
  async infer(model: string, inputs: readonly InferInput[], opts: InferOptions = {}): Promise<InferResult> {
    const encoded = this.encode(inputs, opts);
    const res = await this.send({
      method: 'POST',
      path: `${modelPath(model, opts.version)}/infer`,
      body: encoded.body,
      headers: { ...encoded.headers, ...opts.headers },
      idempotent: false,
      retryUnavailable: true,
      timeoutMs: opts.timeoutMs,
    });
    if (res.status !== 200) throw httpError(res);
    return decodeInferResponse(res.body, header(res, 'inference-header-content-length'));
  }

  /**
   * Sends the inference request as a CloudEvent (binary or structured mode)
   * and decodes the reply event. The model travels in the `model` extension
   * attribute (and in the path when `target: 'infer'`).
   */
  async inferEvent(model: string, inputs: readonly InferInput[], opts: InferEventOptions = {}): Promise<CloudEventReply> {
    const mode = opts.mode ?? 'binary';
    const encoded = this.encode(inputs, opts);
    const attrs: Record<string, string> = {
      specversion: '1.0',
      id: opts.eventId ?? randomUUID(),
      type: opts.type ?? 'io.kinfer.inference.request',
      source: opts.source ?? '/kinfer/client',
      model,
      ...opts.extensions,
    };
    if (opts.subject !== undefined) attrs.subject = opts.subject;
    for (const k of Object.keys(attrs)) {
      if (!/^[a-z0-9]{1,20}$/.test(k)) throw new KinferInputError(`CloudEvent attribute name '${k}' must be 1-20 lower-case letters or digits`);
    }
    const headers: Record<string, string> = {};
    let body: Uint8Array;
    if (mode === 'binary') {
      for (const [k, v] of Object.entries(attrs)) headers[`ce-${k}`] = percentEncode(v);
      Object.assign(headers, encoded.headers);
      body = encoded.body;
    } else if (mode === 'structured') {
      const event: Record<string, unknown> = { ...attrs, datacontenttype: encoded.headers['Content-Type'] };
      if (encoded.binary) {
        event.data_base64 = Buffer.from(encoded.body).toString('base64');
        event.inferenceheadercontentlength = String(encoded.jsonLength);
      } else {
        event.data = JSON.parse(Buffer.from(encoded.body).toString('utf8'));
      }
      headers['Content-Type'] = 'application/cloudevents+json; charset=utf-8';
      body = Buffer.from(JSON.stringify(event));
    } else {
      throw new KinferInputError(`CloudEvent mode must be 'binary' or 'structured', got ${JSON.stringify(mode)}`);
    }
    const res = await this.send({
      method: 'POST',
      path: opts.target === 'infer' ? `${modelPath(model, opts.version)}/infer` : '/',
      body,
      headers: { ...headers, ...opts.headers },
      idempotent: false,
      retryUnavailable: true,
      timeoutMs: opts.timeoutMs,
    });
    if (res.status !== 200) throw httpError(res);
    return decodeEventReply(res);
  }

  /**
   * Polls until the server (or `model`) is ready, at most `timeoutMs`.
   * Connection failures and unknown models count as "not yet". Throws
   * `KinferTimeoutError` with the last reason when time runs out.
   */
  async waitUntilReady(opts: WaitOptions = {}): Promise<void> {
    const timeoutMs = timerMs(opts.timeoutMs, 30_000, 'waitUntilReady timeoutMs');
    const intervalMs = Math.max(10, timerMs(opts.intervalMs, 250, 'waitUntilReady intervalMs'));
    const deadline = Date.now() + timeoutMs;
    const maxPolls = Math.ceil(timeoutMs / intervalMs) + 1;
    let last = 'not ready';
    // Whether `last` is the server's own answer, which a probe cut short by the deadline must not replace.
    let answered = false;
    for (let i = 0; i < maxPolls; i++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const probeOpts = { timeoutMs: Math.max(1, Math.min(remaining, 5000)), retries: 0 };
        const ok = opts.model
          ? await this.probe(`${modelPath(opts.model, opts.version)}/ready`, probeOpts)
          : await this.probe('/v2/health/ready', probeOpts);
        if (ok) return;
        last = opts.model ? `model '${opts.model}' is not ready` : 'server is not ready';
        answered = true;
      } catch (err) {
        if (err instanceof KinferHttpError && err.status === 404) {
          last = `model '${opts.model}': ${err.message}`;
          answered = true;
        } else if (err instanceof KinferTimeoutError && answered) {
          // The last probe only had the deadline's remainder; the server's earlier answer says more.
        } else if (err instanceof KinferConnectionError) {
          last = err.message;
          answered = false;
        } else throw err;
      }
      await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    }
    throw new KinferTimeoutError(this.baseUrl.toString(), `not ready after ${timeoutMs} ms: ${last}`, 'ETIMEDOUT');
  }

  // ---- plumbing ----

  private encode(inputs: readonly InferInput[], opts: InferOptions) {
    if (!Array.isArray(inputs) || inputs.length === 0) throw new KinferInputError('infer needs at least one input');
    const tensors: Tensor[] = inputs.map(toTensor);
    const binary = opts.binary ?? (tensors.reduce((n, t) => n + binarySize(t), 0) >= this.opts.binaryThreshold || tensors.some(jsonCannotCarry));
    return encodeInferRequest(tensors, {
      binary,
      binaryOutputs: opts.binaryOutputs,
      outputs: opts.outputs,
      id: opts.id,
      parameters: opts.sequence ? { ...opts.parameters, ...sequenceParameters(opts.sequence) } : opts.parameters,
    });
  }

  private async probe(path: string, over: { timeoutMs?: number; retries?: number } = {}): Promise<boolean> {
    const res = await this.send(
      { method: 'GET', path, idempotent: true, retryUnavailable: false, timeoutMs: over.timeoutMs },
      over.retries,
    );
    if (res.status === 200) return true;
    if (res.status === 503 || res.status === 409) return false;
    throw httpError(res);
  }

  private async getJson<T>(path: string): Promise<T> {
    const res = await this.send({ method: 'GET', path, idempotent: true, retryUnavailable: true });
    if (res.status !== 200) throw httpError(res);
    return parseBody(res) as T;
  }

  private async postJson(
    path: string,
    body: unknown,
    idempotent: boolean,
    timeoutMs?: number,
    retryUnavailable: RequestSpec['retryUnavailable'] = true,
  ): Promise<unknown> {
    const res = await this.send({
      method: 'POST',
      path,
      body: Buffer.from(JSON.stringify(body)),
      headers: { 'Content-Type': 'application/json' },
      idempotent,
      retryUnavailable,
      timeoutMs,
    });
    if (res.status < 200 || res.status > 299) throw httpError(res);
    return res.body.byteLength ? parseBody(res) : undefined;
  }

  /** One logical call: attempts with retries, bounded by `retries`. */
  private async send(spec: RequestSpec, retries = this.opts.retries): Promise<RawResponse> {
    let body = spec.body;
    const headers: Record<string, string> = { 'Accept-Encoding': 'gzip, deflate', ...this.opts.headers, ...spec.headers };
    if (this.opts.host) headers.Host = this.opts.host;
    if (body && body.byteLength >= this.opts.gzipAt) {
      body = await gzipAsync(body);
      headers['Content-Encoding'] = 'gzip';
    }
    for (let attempt = 0; ; attempt++) {
      let res: RawResponse;
      try {
        res = await this.attempt(spec, headers, body);
      } catch (err) {
        const e = err as KinferConnectionError & { reused?: boolean };
        // Refused: nothing reached the server. Reset on a reused keep-alive socket: the server closed it idle.
        const safe = e.code === 'ECONNREFUSED' || spec.idempotent || (e.reused === true && e.code === 'ECONNRESET');
        if (attempt < retries && safe && RETRIABLE_CODES.has(e.code ?? '')) {
          await sleep(this.backoff(attempt));
          continue;
        }
        throw err;
      }
      const after = res.status === 503 || res.status === 429 ? retryAfterMs(res) : undefined;
      const retry = spec.retryUnavailable === true || (spec.retryUnavailable === 'with-retry-after' && after !== undefined);
      if (retry && (res.status === 503 || res.status === 429) && attempt < retries) {
        await sleep(Math.min(after ?? this.backoff(attempt), this.opts.maxRetryDelayMs));
        continue;
      }
      return res;
    }
  }

  private backoff(attempt: number): number {
    const base = this.opts.retryBaseMs * 2 ** attempt;
    return Math.min(this.opts.maxRetryDelayMs, base / 2 + Math.random() * (base / 2));
  }

  private attempt(spec: RequestSpec, headers: Record<string, string>, body: Uint8Array | undefined): Promise<RawResponse> {
    const base = this.baseUrl;
    const url = new URL(base.pathname.replace(/\/+$/, '') + spec.path, base);
    const urlText = url.toString();
    const timeoutMs = timerMs(spec.timeoutMs, this.opts.timeoutMs, 'timeoutMs');
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const req = mod.request(url, {
        method: spec.method,
        agent: this.agent,
        headers: body ? { ...headers, 'Content-Length': String(body.byteLength) } : headers,
      });
      // timeoutMs 0: no timeout (as tritonclient's None).
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              const err = new KinferTimeoutError(urlText, `no answer from ${urlText} within ${timeoutMs} ms`, 'ETIMEDOUT');
              fail(err);
              req.destroy(err);
            }, timeoutMs)
          : undefined;
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof KinferTimeoutError) return fail(err);
        const detail = err.code && !err.message.includes(err.code) ? `${err.code} ${err.message}` : err.message;
        const e = new KinferConnectionError(
          urlText,
          `cannot reach ${urlText}: ${detail || 'connection failed'}`,
          err.code,
          { cause: err },
        ) as KinferConnectionError & { reused?: boolean };
        e.reused = req.reusedSocket;
        fail(e);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(new KinferConnectionError(urlText, `answer from ${urlText} broke off: ${err.message}`, 'ECONNRESET')));
        res.on('end', () => {
          if (!req.writableFinished) {
            // The server answered (a 404, a 413) before taking the whole body: the socket still has
            // writes in flight that will fail (EPIPE, ECONNRESET) and must not go back to the
            // keep-alive pool, where nothing listens for that error. Destroy it, and keep a
            // listener for whatever error it still reports until it closes.
            const socket = req.socket;
            if (socket) {
              const ignore = () => {};
              socket.on('error', ignore);
              socket.once('close', () => socket.off('error', ignore));
            }
            req.destroy();
          }
          if (settled) return;
          let data = Buffer.concat(chunks);
          const enc = String(res.headers['content-encoding'] ?? '').toLowerCase();
          try {
            if (enc === 'gzip') data = zlib.gunzipSync(data);
            else if (enc === 'deflate') data = zlib.inflateSync(data);
            else if (enc === 'br') data = zlib.brotliDecompressSync(data);
          } catch (err) {
            return fail(new KinferProtocolError(`answer from ${urlText} is not valid ${enc}: ${(err as Error).message}`));
          }
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data, url: urlText });
        });
      });
      req.end(body);
    });
  }
}

/** The longest delay setTimeout keeps (2^31 - 1 ms, about 24.8 days): a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** A duration option in milliseconds: `d` when undefined, else a number from 0 to MAX_TIMER_MS. */
function timerMs(v: number | undefined, d: number, what: string): number {
  if (v === undefined) return d;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new KinferInputError(`${what} must be a non-negative number of milliseconds, got ${v}`);
  if (v > MAX_TIMER_MS) throw new KinferInputError(`${what} must be at most ${MAX_TIMER_MS} ms (about 24.8 days), got ${v}`);
  return v;
}

/** One path segment. `.` and `..` are refused: URL resolution would drop them (or the segment before). */
function seg(s: string, what = 'model name'): string {
  if (typeof s !== 'string' || s === '') throw new KinferInputError(`${what} must be a non-empty string, got ${JSON.stringify(s)}`);
  if (s === '.' || s === '..') throw new KinferInputError(`${what} ${JSON.stringify(s)} cannot be sent: a URL path reads it as a relative segment`);
  return encodeURIComponent(s);
}

function modelPath(model: string, version?: string): string {
  return `/v2/models/${seg(model)}${version !== undefined ? `/versions/${seg(version, 'model version')}` : ''}`;
}

function tracePath(model?: string): string {
  return model === undefined ? '/v2/trace/setting' : `/v2/models/${seg(model)}/trace/setting`;
}

function sequenceParameters(seq: NonNullable<InferOptions['sequence']>): Parameters {
  const p: Parameters = { sequence_id: seq.id };
  if (seq.start) p.sequence_start = true;
  if (seq.end) p.sequence_end = true;
  return p;
}

function paramsBody(parameters?: Parameters): Record<string, unknown> {
  return parameters && Object.keys(parameters).length ? { parameters } : {};
}

function header(res: RawResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseBody(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    throw new KinferProtocolError(`answer from ${res.url} is not JSON: ${(err as Error).message}`);
  }
}

function retryAfterMs(res: RawResponse): number | undefined {
  const v = header(res, 'retry-after');
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function httpError(res: RawResponse): KinferHttpError {
  const text = res.body.toString('utf8');
  let message = `HTTP ${res.status} from ${res.url}`;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed?.error === 'string') message = parsed.error;
  } catch {
    if (text.trim()) message += `: ${text.trim().slice(0, 200)}`;
  }
  const after = retryAfterMs(res);
  return new KinferHttpError(res.status, message, text, res.url, after === undefined ? undefined : after / 1000);
}

function decodeEventReply(res: RawResponse): CloudEventReply {
  const contentType = String(res.headers['content-type'] ?? '').toLowerCase();
  if (contentType.startsWith('application/cloudevents+json')) {
    let event: Record<string, unknown>;
    try {
      event = parseJsonExact(res.body.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new KinferProtocolError(`structured CloudEvent reply is not JSON: ${(err as Error).message}`);
    }
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(event)) if (k !== 'data' && k !== 'data_base64') attributes[k] = String(v);
    let result: InferResult;
    if (typeof event.data_base64 === 'string') {
      result = decodeInferResponse(Buffer.from(event.data_base64, 'base64'), attributes.inferenceheadercontentlength);
    } else if (event.data !== undefined) {
      const data = typeof event.data === 'string' ? event.data : JSON.stringify(event.data);
      result = decodeInferResponse(Buffer.from(data));
    } else {
      throw new KinferProtocolError('CloudEvent reply carries no data');
    }
    return { attributes, mode: 'structured', result };
  }
  const attributes: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) {
    if (k.startsWith('ce-') && v !== undefined) attributes[k.slice(3)] = percentDecode(Array.isArray(v) ? v[0]! : v);
  }
  if (attributes.specversion === undefined) {
    throw new KinferProtocolError(`reply from ${res.url} is not a CloudEvent (no ce-specversion header)`);
  }
  if (res.headers['content-type']) attributes.datacontenttype = String(res.headers['content-type']);
  return { attributes, mode: 'binary', result: decodeInferResponse(res.body, header(res, 'inference-header-content-length')) };
}

/** CloudEvents HTTP binding 3.1.3.2: percent-encode space, '"', '%' and anything outside printable ASCII. */
function percentEncode(v: string): string {
  return Array.from(Buffer.from(v, 'utf8'))
    .map((b) => (b <= 0x20 || b >= 0x7f || b === 0x22 || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b)))
    .join('');
}

function percentDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
