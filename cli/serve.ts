/**
 * @module cli/serve
 * `kinfer serve`: picks the mode from flags and the environment (DESIGN.md
 * "Modes of the same server"), starts the server, and exits cleanly on
 * SIGTERM/SIGINT. A startup that fails (a function's pull or load, an
 * unreadable repository) exits 1 with the reason, so Kubernetes restarts the
 * pod and shows why.
 */
import { defaultModelRepository, defaultPullRepository, parseEnv } from '../runtime/config.js';
import type { Logger } from 'pino';
import { createLogger } from '../runtime/observability/logger.js';
import { startServer, type ServeMode } from '../runtime/server/serve.js';
import type { GrpcTlsFiles } from '../runtime/server/grpc-tls.js';
import { parseRestrictions, type Restrictions } from '../runtime/server/restricted.js';
import { storagePuller } from '../runtime/storage/puller.js';

/** Triton's `--model-control-mode`. */
export type ModelControlMode = 'none' | 'poll' | 'explicit';

export interface ServeFlags {
  modelRepository?: string;
  port?: number;
  grpcPort?: number;
  host?: string;
  repositoryMonitoring?: boolean;
  modelControlMode?: ModelControlMode;
  loadModel?: string[];
  repositoryPollSecs?: number;
  allowClientShm?: boolean;
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  grpcTlsClientCa?: string;
  httpRestrictedApi?: string[];
  grpcRestrictedProtocol?: string[];
  /** A bundled function name or module path whose lifecycle hooks the server calls. */
  function?: string;
}

/**
 * Triton's model control modes, in repository mode: `none` loads every model at start and refuses
 * the repository API's load and unload; `poll` is `--repository-monitoring`; `explicit` loads only
 * the `--load-model` models at start (`*`: all). Without a mode, kinfer loads every model at start
 * and takes API loads.
 */
export function modelControl(flags: Pick<ServeFlags, 'modelControlMode' | 'loadModel' | 'repositoryMonitoring'>, mode: ServeMode): { mode?: ModelControlMode } {
  const m = flags.modelControlMode;
  if (m && mode !== 'repository') throw new Error(`--model-control-mode is for repository mode; this is ${mode} mode`);
  if (flags.loadModel?.length && m !== 'explicit') throw new Error('--load-model needs --model-control-mode explicit');
  if (flags.repositoryMonitoring && m && m !== 'poll') throw new Error(`--repository-monitoring is --model-control-mode poll, not ${m}`);
  return m ? { mode: m } : {};
}

/**
 * Triton's restricted API groups from the flag (repeated) or, without it, the variable (groups
 * separated by `;`); undefined when neither is given.
 */
export function restrictions(flag: string[] | undefined, env: string | undefined, flagName: string, envName: string): Restrictions | undefined {
  if (flag?.length) return parseRestrictions(flag, flagName);
  const groups = (env ?? '').split(';').filter((g) => g.trim() !== '');
  return groups.length ? parseRestrictions(groups, envName) : undefined;
}

/** The gRPC TLS files, when any is given: certificate and key together; a client CA only with them. */
export function grpcTlsFiles(cert: string | undefined, key: string | undefined, clientCa: string | undefined): GrpcTlsFiles | undefined {
  if (!cert && !key && !clientCa) return undefined;
  if (!cert || !key) throw new Error('gRPC TLS needs both a certificate and its key (--grpc-tls-cert and --grpc-tls-key, or KINFER_GRPC_TLS_CERT and KINFER_GRPC_TLS_KEY)');
  return clientCa ? { cert, key, clientCa } : { cert, key };
}

export async function runServe(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cfg = parseEnv(env);
  const logger = createLogger(env);
  logCodeCache(logger);
  let mode: ServeMode = 'repository';
  let repo = flags.modelRepository ?? cfg.MODEL_REPOSITORY ?? defaultModelRepository();
  const storageUri = cfg.STORAGE_URI ?? cfg.KINFER_STORAGE_URI;
  if (cfg.MULTI_MODEL_SERVER) {
    mode = 'multi-model';
    repo = flags.modelRepository ?? cfg.MODEL_REPOSITORY ?? '/mnt/models';
  } else if (cfg.MODEL_NAME) {
    mode = 'function';
    repo = flags.modelRepository ?? cfg.MODEL_REPOSITORY ?? (storageUri ? defaultPullRepository() : repo);
  }
  const control = modelControl(flags, mode);
  const fn = flags.function ?? cfg.KINFER_FUNCTION;
  // Imported only when a function is named: its zod schemas (functions/define.ts) took ~9 ms of every start.
  const hooks = fn ? await (await import('./function-hooks.js')).loadFunctionHooks(fn) : undefined;
  const server = await startServer({
    hooks,
    mode,
    modelRepository: repo,
    modelName: cfg.MODEL_NAME,
    storageUri,
    modelConfig: cfg.KINFER_MODEL_CONFIG,
    port: flags.port ?? cfg.KINFER_REST_PORT ?? cfg.PORT,
    grpcPort: flags.grpcPort ?? cfg.GRPC_PORT,
    // TLS flags replace the TLS environment as a whole: an image's client CA must not make a command line's TLS mutual.
    grpcTls:
      flags.grpcTlsCert || flags.grpcTlsKey || flags.grpcTlsClientCa
        ? grpcTlsFiles(flags.grpcTlsCert, flags.grpcTlsKey, flags.grpcTlsClientCa)
        : grpcTlsFiles(cfg.KINFER_GRPC_TLS_CERT, cfg.KINFER_GRPC_TLS_KEY, cfg.KINFER_GRPC_TLS_CLIENT_CA),
    httpRestrictions: restrictions(flags.httpRestrictedApi, cfg.KINFER_HTTP_RESTRICTED_API, '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API'),
    grpcRestrictions: restrictions(flags.grpcRestrictedProtocol, cfg.KINFER_GRPC_RESTRICTED_PROTOCOL, '--grpc-restricted-protocol', 'KINFER_GRPC_RESTRICTED_PROTOCOL'),
    host: flags.host ?? cfg.HOST,
    logger,
    env,
    maxBodyBytes: cfg.KINFER_MAX_BODY_BYTES,
    maxJsonBytes: cfg.KINFER_MAX_JSON_BYTES,
    requestTimeoutMs: cfg.KINFER_REQUEST_TIMEOUT_MS,
    drainTimeoutMs: cfg.KINFER_DRAIN_TIMEOUT_MS,
    responseCacheBytes: cfg.KINFER_RESPONSE_CACHE_BYTES,
    keepAliveTimeoutMs: cfg.KINFER_KEEP_ALIVE_TIMEOUT_MS,
    allowClientShm: flags.allowClientShm ?? cfg.KINFER_ALLOW_CLIENT_SHM,
    repositoryPollMs: flags.repositoryMonitoring || control.mode === 'poll' ? (flags.repositoryPollSecs ?? 2) * 1000 : undefined,
    startupModels: control.mode === 'explicit' ? (flags.loadModel ?? []) : undefined,
    modelControlOff: control.mode === 'none',
    pull: storagePuller({ cacheDir: cfg.KINFER_CACHE_DIR, cacheMaxBytes: cfg.KINFER_CACHE_MAX_BYTES, logger, env }),
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'signal', signal }, `received ${signal}`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await server.startup;
  } catch (err) {
    // As Triton exits on an unreadable repository: a pod that restarts shows the failure, one that idles unready hides it.
    logger.fatal({ event: 'startup_failed', err: (err as Error).message }, `startup failed: ${(err as Error).message}`);
    stopping = true; // a signal meanwhile must not turn this exit into a 0
    await server.close();
    process.exit(1);
  }
}

const CODE_CACHE_PROBLEM = {
  absent: 'dist/bundle/kinfer.cache is missing',
  stale: 'dist/bundle/kinfer.cache was made from another kinfer.cjs',
  rejected: 'V8 rejected dist/bundle/kinfer.cache (another Node version or V8 flags than the build)',
} as const;

/** What the built CLI's entry (cli/code-cache.cts) did with the code cache; nothing when run from dist/cli. */
function logCodeCache(logger: Logger): void {
  const status = (globalThis as Record<symbol, unknown>)[Symbol.for('kinfer.codeCache')];
  if (status === 'used') logger.info({ event: 'code_cache', status }, 'compiled from the V8 code cache');
  else if (typeof status === 'string' && status in CODE_CACHE_PROBLEM) {
    const problem = CODE_CACHE_PROBLEM[status as keyof typeof CODE_CACHE_PROBLEM];
    logger.warn({ event: 'code_cache', status }, `${problem}: compiled from source, a slower start (npm run build writes it)`);
  }
}
