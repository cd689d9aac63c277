/**
 * @module observability/logger
 * pino JSON logs. Level from LOG_LEVEL; Knative's K_SERVICE/K_REVISION become
 * base fields so every line says which revision wrote it.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  const base: Record<string, string> = {};
  if (env.K_SERVICE) base.service = env.K_SERVICE;
  if (env.K_REVISION) base.revision = env.K_REVISION;
  return pino({
    level: env.LOG_LEVEL ?? 'info',
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** The process-wide logger. Tests may pass their own to the server instead. */
export const logger: Logger = createLogger();
