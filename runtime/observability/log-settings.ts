/**
 * @module observability/log-settings
 * Triton's logging extension, transport-neutral: the running server's log
 * settings read and changed at run time (REST `/v2/logging`, gRPC
 * `LogSettings`), so an operator can turn on debug logs (or silence the
 * per-request access lines) in a pod without a new revision. kinfer logs JSON
 * lines to stdout through pino, whose level is a threshold:
 * `log_verbose_level` ≥ 1 is debug (≥ 2 trace), else `log_info` is info, else
 * `log_warning` warn, else `log_error` error, else silent. A combination a
 * threshold cannot express (info on, warnings off) is refused.
 *
 * @example
 * const logs = new LogControl(logger, processLogger);
 * logs.update({ log_verbose_level: 1 }); // debug, on every logger given
 */
import type { Logger } from 'pino';
import * as z from 'zod';
import { InvalidArgument } from '../core/errors.js';

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

export class LogControl {
  private format: LogSettings['log_format'] = 'default';
  private readonly logger: Logger;
  private readonly loggers: Logger[];

  /** The server's logger first, then any other that must follow it (the process-wide one the backends log through). */
  constructor(...loggers: Logger[]) {
    this.logger = loggers[0]!;
    this.loggers = loggers;
  }

  get(): LogSettings {
    return settingsOf(this.logger.level, this.format);
  }

  /** Applies `patch` (any subset of the settings); InvalidArgument naming the field, with nothing changed, otherwise. */
  update(patch: unknown): LogSettings {
    const parsed = Update.safeParse(patch);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InvalidArgument(`logging settings: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    const update = parsed.data;
    const logger = this.logger;
    const next = { ...this.get(), ...update };
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
      for (const l of this.loggers) l.level = level;
      if (!said) say();
    }
    this.format = next.log_format;
    return this.get();
  }
}
