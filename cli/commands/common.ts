/**
 * @module cli/commands/common
 * What every client verb shares: the `--url`, `--host`, `--timeout`, `--json`
 * options, the client they make, and one place that turns an error into a
 * message and an exit code (0 ok, 1 the server or cluster said no, 2 usage).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { KinferClient, MAX_TIMER_MS } from '../../client/kinfer-client.js';
import { KinferConnectionError, KinferHttpError, KinferInputError } from '../../client/errors.js';
import { KinferError } from '../../runtime/core/errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ConnectionFlags {
  url: string;
  host?: string;
  timeout?: number;
  json?: boolean;
}

/** A mistake in the command line itself: exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Adds `--url`, `--host`, `--timeout` (and `--json`) to a verb. */
export function withConnection(cmd: Command): Command {
  return withJson(
    cmd
      .addOption(new Option('--url <url>', 'server URL').env('KINFER_URL').default(DEFAULT_URL))
      .option('--host <host>', 'Host header for ingress routing, e.g. echo.default.example.com')
      .option('--timeout <ms>', 'per-request timeout in milliseconds', positiveMs),
  );
}

export function withJson(cmd: Command): Command {
  return cmd.option('--json', 'machine-readable JSON output on stdout');
}

export function makeClient(flags: ConnectionFlags, over: { retries?: number } = {}): KinferClient {
  try {
    return new KinferClient(flags.url, { host: flags.host, timeoutMs: flags.timeout, ...over });
  } catch (err) {
    if (err instanceof KinferInputError) throw new UsageError(`--url: ${err.message}`);
    throw err;
  }
}

/** Commander value parser: a positive integer. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  }
  return n;
}

/** Commander value parser: a positive integer of milliseconds that a timer can wait (at most 2^31 - 1, about 24.8 days). */
export function positiveMs(value: string): number {
  const n = positiveInt(value);
  if (n > MAX_TIMER_MS) throw new InvalidArgumentError(`expected at most ${MAX_TIMER_MS} milliseconds (about 24.8 days), got '${value}'`);
  return n;
}

/** Commander value parser: a positive integer of seconds that a timer can wait (at most 2147483, about 24.8 days). */
export function positiveSeconds(value: string): number {
  const n = positiveInt(value);
  if (n * 1000 > MAX_TIMER_MS) throw new InvalidArgumentError(`expected at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds (about 24.8 days), got '${value}'`);
  return n;
}

/** Commander value parser for repeatable options. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `k=v` pairs → parameters; `true`/`false` and numbers keep their type. */
export function parseParams(pairs: readonly string[] | undefined, what = '--param'): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const p of pairs ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`${what} '${p}': expected key=value`);
    const key = p.slice(0, eq);
    const raw = p.slice(eq + 1);
    out[key] = raw === 'true' ? true : raw === 'false' ? false : raw.trim() !== '' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw;
  }
  return out;
}

export interface Output {
  json: boolean;
  /** A line of human output (suppressed in --json mode). */
  line(text: string): void;
  /** The machine output (printed only in --json mode). */
  data(value: unknown): void;
}

function output(json: boolean): Output {
  return {
    json,
    line: (text) => {
      if (!json) process.stdout.write(text + '\n');
    },
    data: (value) => {
      if (json) process.stdout.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
    },
  };
}

/**
 * Runs a verb's body and maps what it throws to a message on stderr (and a
 * `{"error"}` object on stdout with --json) and `process.exitCode`. Returning
 * `false` from the body means "the answer is no" (exit 1, nothing more printed).
 */
export async function runVerb(
  verb: string,
  flags: { json?: boolean },
  body: (out: Output) => Promise<boolean | void>,
): Promise<void> {
  const out = output(Boolean(flags.json));
  try {
    const ok = await body(out);
    if (ok === false) process.exitCode = 1;
  } catch (err) {
    const { code, message, status } = describeError(err);
    if (code === 2) process.stderr.write(`kinfer ${verb}: ${message}\n(see 'kinfer ${verb} --help')\n`);
    else process.stderr.write(`kinfer ${verb}: ${message}\n`);
    if (out.json) out.data(status === undefined ? { error: message } : { error: message, status });
    process.exitCode = code;
  }
}

export function describeError(err: unknown): { code: 1 | 2; message: string; status?: number } {
  if (err instanceof UsageError || err instanceof KinferInputError) return { code: 2, message: err.message };
  if (err instanceof CommanderError) return { code: 2, message: err.message };
  if (err instanceof KinferHttpError) return { code: 1, message: `${err.status}: ${err.message}`, status: err.status };
  if (err instanceof KinferConnectionError) return { code: 1, message: err.message };
  if (err instanceof KinferError) return { code: 1, message: err.message };
  return { code: 1, message: err instanceof Error ? err.message : String(err) };
}

export interface KubeFlags {
  namespace?: string;
  kubeconfig?: string;
  /** Seconds each Kubernetes API request may take. */
  timeout?: number;
  json?: boolean;
}

/** The KubeOptions of a cluster verb's flags. */
export function kubeOptions(flags: KubeFlags): { namespace?: string; kubeconfig?: string; timeoutMs?: number } {
  return { namespace: flags.namespace, kubeconfig: flags.kubeconfig, timeoutMs: flags.timeout === undefined ? undefined : flags.timeout * 1000 };
}

/** Adds `-n/--namespace`, `--kubeconfig`, `--timeout` and `--json` to a cluster verb. */
export function withKube(cmd: Command): Command {
  return withJson(
    cmd
      .option('-n, --namespace <ns>', "namespace (default: the kubeconfig context's, else default)")
      .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
      .option('--timeout <seconds>', 'each Kubernetes API request fails after this long, exit 1 (default 30)', positiveSeconds),
  );
}
