/**
 * @module server/routes/logging
 * Triton's logging extension: `GET /v2/logging` reads and `POST /v2/logging`
 * changes the running server's log settings, so an operator can turn on
 * debug logs (or silence the per-request access lines) in a pod without a
 * new revision. kinfer logs JSON lines to stdout through one pino logger,
 * whose level is a threshold: `log_verbose_level` ≥ 1 is debug (≥ 2 trace),
 * else `log_info` is info, else `log_warning` warn, else `log_error` error,
 * else silent. A combination a threshold cannot express (info on, warnings
 * off) is refused.
 */
import { Hono } from 'hono';
import type { Logger } from 'pino';
import * as z from 'zod';
import { InvalidArgument } from '../../core/errors.js';
import { readJsonBody } from '../body.js';
import type { KinferEnv } from '../context.js';

export interface LogSettings {
  log_file: string;
  log_info: boolean;
  log_warning: boolean;
  log_error: boolean;
  log_verbose_level: number;
  log_format: 'default' | 'ISO8601';
}

const Update = z
  .object({
    log_file: z.string().refine((f) => f === '', 'kinfer logs to stdout (the container log) only; send ""'),
    log_info: z.boolean(),
    log_warning: z.boolean(),
    log_error: z.boolean(),
    log_verbose_level: z.number().int().min(0).max(1000),
    log_format: z.enum(['default', 'ISO8601']),
  })
  .partial()
  .strict();

/** The settings a pino level stands for. */
export function settingsOf(level: string, format: LogSettings['log_format'] = 'default'): LogSettings {
  const rank: Record<string, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, fatal: 5, silent: 6 };
  const r = rank[level] ?? 2;
  return { log_file: '', log_info: r <= 2, log_warning: r <= 3, log_error: r <= 4, log_verbose_level: r === 0 ? 2 : r === 1 ? 1 : 0, log_format: format };
}

/** The pino level for a set of settings, or InvalidArgument when a threshold cannot express them. */
export function levelOf(s: LogSettings): string {
  if (s.log_verbose_level > 0 && !s.log_info) throw new InvalidArgument('log_verbose_level > 0 needs log_info: true (pino levels are thresholds: debug includes info)');
  if (s.log_info && !s.log_warning) throw new InvalidArgument('log_info: true needs log_warning: true (pino levels are thresholds: info includes warnings)');
  if (s.log_warning && !s.log_error) throw new InvalidArgument('log_warning: true needs log_error: true (pino levels are thresholds: warn includes errors)');
  if (s.log_verbose_level >= 2) return 'trace';
  if (s.log_verbose_level === 1) return 'debug';
  if (s.log_info) return 'info';
  if (s.log_warning) return 'warn';
  if (s.log_error) return 'error';
  return 'silent';
}

/**
 * `loggers`: the server's logger first, then any other that must follow it (the process-wide one
 * that backends log through, when the server was given its own).
 */
export function loggingRoutes(...loggers: Logger[]): Hono<KinferEnv> {
  const app = new Hono<KinferEnv>();
  const logger = loggers[0]!;
  let format: LogSettings['log_format'] = 'default';
  app.get('/v2/logging', (c) => c.json(settingsOf(logger.level, format)));
  app.post('/v2/logging', async (c) => {
    const update = await readJsonBody(c, Update, 'logging');
    const next = { ...settingsOf(logger.level, format), ...update };
    // Only a change to a level field moves the level (fatal reads back as all-false, i.e. silent).
    const touchesLevel = ['log_info', 'log_warning', 'log_error', 'log_verbose_level'].some((k) => k in update);
    const level = touchesLevel ? levelOf(next) : logger.level;
    if (level !== logger.level) {
      // Before or after the change, at the first level either side shows: going silent is still on record.
      const from = logger.level;
      const line = { event: 'log_level', from, to: level };
      const say = () => {
        const at = (['warn', 'error', 'fatal'] as const).find((l) => logger.isLevelEnabled(l));
        if (at) logger[at](line, `log level ${from} → ${level}`);
        return at !== undefined;
      };
      const said = say();
      for (const l of loggers) l.level = level;
      if (!said) say();
    }
    format = next.log_format;
    return c.json(settingsOf(logger.level, format));
  });
  return app;
}
