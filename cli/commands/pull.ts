/**
 * @module cli/commands/pull
 * `kinfer pull <storageUri> <dir>`: downloads a model artifact the way a
 * function-mode server does (same schemes, cache, retries, archive checks),
 * into `dir`. Progress goes to stderr: one updating bar on a TTY, plain lines
 * otherwise. It is read from the storage layer's progress log records. Ctrl-C
 * (or SIGTERM) cancels the pull, whose clean-up removes its staging folders,
 * then exits 130 (143); a second one ends the process at once.
 */
import { Writable } from 'node:stream';
import { Command } from 'commander';
import pino from 'pino';
import { positiveMs, runVerb, withJson } from './common.js';

interface PullFlags {
  json?: boolean;
  cacheDir?: string;
  progressInterval?: number;
  progress?: boolean;
}

interface ProgressRecord {
  msg?: string;
  level?: number;
  bytes?: number;
  totalBytes?: number;
  bytesPerSecond?: number;
}

export function pullCommand(): Command {
  const cmd = new Command('pull')
    .description('download a model (file://, pvc://, http(s)://, s3://, gs://, or a path) into a folder')
    .argument('<storageUri>', 'where the model is, e.g. s3://bucket/models/resnet50 or https://host/model.tar.gz')
    .argument('<dir>', 'destination folder (replaced atomically when the download is complete)')
    .option('--cache-dir <dir>', 'artifact cache (default: KINFER_CACHE_DIR)')
    .option('--progress-interval <ms>', 'progress update interval (default: 250 on a TTY, 2000 otherwise)', positiveMs)
    .option('--no-progress', 'no progress output');
  withJson(cmd);
  return cmd.action(async (uri: string, dir: string, flags: PullFlags) => {
    // Taken before the pull starts: a signal's default would end the process with the staging folder left behind.
    const stop = new AbortController();
    let exitCode: number | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      exitCode = signal === 'SIGINT' ? 130 : 143;
      stop.abort();
      // Bounded: should something hold the event loop after the clean-up, still exit.
      setTimeout(() => process.exit(exitCode), 10_000).unref();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await runPull(uri, dir, flags, stop.signal);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (exitCode !== undefined) process.exitCode = exitCode;
  });
}

async function runPull(uri: string, dir: string, flags: PullFlags, signal: AbortSignal): Promise<void> {
  await runVerb('pull', flags, async (out) => {
    const { pull } = await import('../../runtime/storage/pull.js');
    const tty = Boolean(process.stderr.isTTY);
    const bar = new ProgressPrinter(tty && !flags.json, flags.progress !== false);
    const logger = pino({ level: 'info' }, bar.stream());
    try {
      const res = await pull(uri, {
        dest: dir,
        cacheDir: flags.cacheDir,
        logger,
        copy: true,
        signal,
        progressIntervalMs: flags.progress === false ? 0 : flags.progressInterval ?? (tty ? 250 : 2000),
      });
      bar.complete(res.bytes);
      out.data(res);
      out.line(`pulled ${uri} into ${res.dir}${res.cached ? ' (from the cache)' : ''}: ${human(res.bytes)} downloaded`);
    } finally {
      bar.done();
    }
  });
}

/** Renders the storage layer's JSON log lines as progress on stderr. */
class ProgressPrinter {
  private drawn = false;
  private lastTotal: number | undefined;
  private lastRate: number | undefined;
  constructor(
    private readonly tty: boolean,
    private readonly enabled: boolean,
  ) {}

  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.record(line);
        cb();
      },
    });
  }

  private record(line: string): void {
    let r: ProgressRecord;
    try {
      r = JSON.parse(line) as ProgressRecord;
    } catch {
      return;
    }
    if (r.msg === 'storage: download progress') {
      if (this.enabled) this.progress(r);
    } else if ((r.level ?? 0) >= 40) {
      this.clear();
      process.stderr.write(`kinfer pull: ${r.msg ?? 'warning'}\n`);
    }
  }

  private progress(r: ProgressRecord): void {
    const bytes = r.bytes ?? 0;
    const total = r.totalBytes;
    this.lastTotal = total;
    this.lastRate = r.bytesPerSecond;
    const rate = `${human(r.bytesPerSecond ?? 0)}/s`;
    if (!this.tty) {
      const pct = total ? ` (${Math.floor((bytes / total) * 100)}%)` : '';
      process.stderr.write(`pull: ${human(bytes)}${total ? ` of ${human(total)}` : ''}${pct}, ${rate}\n`);
      return;
    }
    const width = 30;
    const frac = total ? Math.min(1, bytes / total) : 0;
    const barText = total ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${String(Math.floor(frac * 100)).padStart(3)}% ` : '';
    process.stderr.write(`\r${barText}${human(bytes)}${total ? ` / ${human(total)}` : ''}  ${rate}\x1b[K`);
    this.drawn = true;
  }

  /** Redraws the bar at 100% (the last timed update is usually short of it). */
  complete(bytes: number): void {
    if (this.drawn && this.tty) this.progress({ bytes, totalBytes: this.lastTotal ?? bytes, bytesPerSecond: this.lastRate });
    this.done();
  }

  private clear(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
  }

  done(): void {
    if (this.drawn) process.stderr.write('\n');
    this.drawn = false;
  }
}

export function human(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
