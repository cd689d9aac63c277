/**
 * @module config
 * The server's environment, parsed once with zod. Names follow Knative
 * (PORT, K_SERVICE, K_REVISION) and KServe (MODEL_NAME, STORAGE_URI,
 * MULTI_MODEL_SERVER, MODEL_REPOSITORY).
 */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import * as z from 'zod';
import { positiveByteQuantity } from './core/byte-quantity.js';

const bool = z
  .string()
  .optional()
  .transform((v) => v !== undefined && /^(1|true|yes|on)$/i.test(v));
/** A file path; empty is unset, as for the other variables. */
const filePath = z
  .string()
  .optional()
  .transform((v) => v || undefined);
const int = (dflt: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return dflt;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) {
        ctx.addIssue({ code: 'custom', message: `expected a non-negative integer, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return n;
    });

/** A positive byte count (plain, or a quantity such as 500Mi or 2Gi); undefined when unset. */
const byteQuantity = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return undefined;
    try {
      return positiveByteQuantity(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** A TCP port (0 = any free one); `dflt` when unset. */
const port = <D extends number | undefined>(dflt: D) =>
  z
    .string()
    .optional()
    .transform((v, ctx): number | D => {
      if (v === undefined || v === '') return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) {
        ctx.addIssue({ code: 'custom', message: `expected a port from 0 to 65535, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return n;
    });

/** KINFER_DRAIN_TIMEOUT_MS's default: how long SIGTERM, an unload or a reload waits for a model's requests. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** The largest request body by default (after decompression). */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

const EnvSchema = z.object({
  PORT: port(8080),
  /** gRPC (inference.GRPCInferenceService, h2c) port; off when unset. KServe's grpc-v2 runtimes use 8081. */
  GRPC_PORT: port(undefined),
  /**
   * REST's port when PORT is gRPC's: Knative sets PORT to the container's one port, which a
   * grpc-v2 function names h2c; REST (KServe's agent, /metrics) then listens here. Unset: PORT.
   */
  KINFER_REST_PORT: port(undefined),
  HOST: z.string().default('0.0.0.0'),
  MODEL_NAME: z.string().optional(),
  STORAGE_URI: z.string().optional(),
  /**
   * Read when STORAGE_URI is unset: a URI only kinfer reads. KServe turns a custom container's
   * STORAGE_URI into its storage initializer, which cannot fetch file:// paths inside the image.
   */
  KINFER_STORAGE_URI: z.string().optional(),
  MULTI_MODEL_SERVER: bool,
  /** Triton JSON model config replacing the artifact's own for MODEL_NAME, in any mode (set by generated manifests). */
  KINFER_MODEL_CONFIG: z.string().optional(),
  /** A bundled function name or module path whose lifecycle hooks the server calls. */
  KINFER_FUNCTION: z.string().optional(),
  MODEL_REPOSITORY: z.string().optional(),
  KINFER_CACHE_DIR: z.string().optional(),
  /** Bound on the artifact cache's bytes: least recently used entries are evicted past it. Unset: no bound. */
  KINFER_CACHE_MAX_BYTES: byteQuantity,
  /** Largest request body accepted, after decompression. */
  KINFER_MAX_BODY_BYTES: int(DEFAULT_MAX_BODY_BYTES),
  /** Largest JSON part of a request (whole JSON body, or a binary request's JSON header). */
  KINFER_MAX_JSON_BYTES: int(64 * 1024 * 1024),
  /** Server default per-request deadline in ms (0 = none); a request's `timeout` parameter overrides. */
  KINFER_REQUEST_TIMEOUT_MS: int(0),
  /** How long SIGTERM, an unload or a reload waits for a model's requests before answering them 503. */
  KINFER_DRAIN_TIMEOUT_MS: int(DEFAULT_DRAIN_TIMEOUT_MS),
  /** Bytes for Triton's response cache; 0 turns it off. Models opt in with `response_cache { enable: true }`. */
  KINFER_RESPONSE_CACHE_BYTES: int(0),
  /** Triton's --allow-client-shm: clients may register system shared-memory regions (a sidecar in the pod). */
  KINFER_ALLOW_CLIENT_SHM: bool,
  /** TLS for the gRPC port (PEM files): certificate chain and key, together; with a client CA, mutual TLS. */
  KINFER_GRPC_TLS_CERT: filePath,
  KINFER_GRPC_TLS_KEY: filePath,
  KINFER_GRPC_TLS_CLIENT_CA: filePath,
  /**
   * Triton's --http-restricted-api and --grpc-restricted-protocol: groups `<categories>:<key>=<value>`
   * separated by `;` (server/restricted.ts; checked at start). Put the value in a Secret.
   */
  KINFER_HTTP_RESTRICTED_API: z.string().optional(),
  KINFER_GRPC_RESTRICTED_PROTOCOL: z.string().optional(),
  /** How long an idle keep-alive connection stays open; see serve.ts DEFAULT_KEEP_ALIVE_TIMEOUT_MS. */
  KINFER_KEEP_ALIVE_TIMEOUT_MS: int(120_000),
  K_SERVICE: z.string().optional(),
  K_REVISION: z.string().optional(),
  K_CONFIGURATION: z.string().optional(),
});

export type Env = z.infer<typeof EnvSchema>;

export function parseEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid environment: ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

/** The package root (where package.json and the default `models/` live), from src or dist. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('kinfer package root not found above ' + fileURLToPath(import.meta.url));
}

/** The repository `npm start` serves: the package's own `models/`. */
export function defaultModelRepository(): string {
  return join(packageRoot(), 'models');
}

/** Where function mode pulls its one model when MODEL_REPOSITORY is not set. */
export function defaultPullRepository(): string {
  return join(tmpdir(), 'kinfer-models');
}
