/**
 * @module test/bench/wrk
 * wrk (Debian's `wrk`, C, epoll) as the harness's load generator. At c=1 on
 * this 2-core VM, autocannon (JavaScript) took 0.73 ms median, 1.65 ms mean,
 * from a server's response to its next request; wrk 0.28 ms median, 0.36 ms
 * mean. That client time counts against every served side at low concurrency,
 * so with autocannon a bare node:http server running the MLP at c=1 measured
 * 0.85× in-process onnxruntime, and with wrk 0.98×: the table measured the
 * load generator. autocannon stays the fallback where wrk is absent.
 *
 * The request (method, headers, body read from a file) is set once in a Lua
 * script; `done` prints the summary as one JSON line. No `response` callback:
 * it makes wrk parse every response for Lua.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from './lib.js';

export type LoadGenerator = 'wrk' | 'autocannon';

/** wrk's version line (`wrk debian/4.1.0-3+b2 [epoll] ...` → `4.1.0-3+b2`), or undefined when it is not on PATH. */
export function wrkVersion(): string | undefined {
  // `wrk --version` prints its banner and usage, then exits 1.
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return undefined;
  const m = /^wrk (\S+)/m.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1]!.replace(/^debian\//, '') : undefined;
}

/**
 * wrk's version, installing Debian's package first when it is missing and
 * this process may (root with apt-get). Undefined when that fails: the
 * harness then uses autocannon and says so in the report.
 */
export function ensureWrk(log: (msg: string) => void): string | undefined {
  const have = wrkVersion();
  if (have || process.getuid?.() !== 0) return have;
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  log('bench: installing wrk (apt-get install wrk)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'wrk'], { env, stdio: 'ignore', timeout: 180_000 }).status === 0;
  // A fresh machine may have no package lists yet.
  if (!install()) {
    spawnSync('apt-get', ['update'], { env, stdio: 'ignore', timeout: 180_000 });
    if (!install()) log('bench: could not install wrk; using autocannon');
  }
  return wrkVersion();
}

/** `s` as a Lua string literal: printable ASCII kept, everything else (quotes, backslash, bytes ≥ 0x7f) as `\ddd`. */
export function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** The Lua script for one load: the request, and a `done` that prints one JSON line (latencies in µs). */
export function wrkScript(spec: Pick<LoadSpec, 'method' | 'headers' | 'body'>, bodyFile: string | undefined): string {
  const lines = [`wrk.method = ${luaString(spec.method ?? (spec.body === undefined ? 'GET' : 'POST'))}`];
  for (const [k, v] of Object.entries(spec.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  if (bodyFile) {
    lines.push(`local f = assert(io.open(${luaString(bodyFile)}, "rb"))`, 'wrk.body = f:read("*a")', 'f:close()');
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'\\n{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\\n\',',
    '    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.timeout, e.status))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

interface WrkSummary {
  requests: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  status: number;
}

/** The load result from wrk's stdout (the last JSON line, written by the script's `done`). */
export function parseWrkOutput(stdout: string): LoadResult {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('{"requests":'));
  if (!line) throw new Error(`bench: wrk printed no summary:\n${stdout.slice(-2000)}`);
  const s = JSON.parse(line) as WrkSummary;
  const seconds = s.durationUs / 1e6;
  // wrk counts every completed response in `requests`; `status` is how many were not 2xx/3xx.
  const ok = s.requests - s.status;
  return {
    rps: seconds > 0 ? ok / seconds : 0,
    p50: s.p50Us / 1000,
    p99: s.p99Us / 1000,
    ok,
    // A read error is also how wrk counts a connection the server closed; each one is a failure here.
    errors: s.connect + s.read + s.write + s.timeout,
    non2xx: s.status,
    durationSec: seconds,
  };
}

/** wrk's threads: one, on the load core. */
export const WRK_THREADS = 1;

/**
 * Writes the script into `dir` and returns wrk's argv: `WRK_THREADS` threads (the load
 * core), `connections` keep-alive connections, `durationSec` (wrk is bounded
 * by time; the caller's process timeout bounds it too).
 */
export async function wrkArgs(spec: LoadSpec, dir: string, bodyFile: string | undefined): Promise<string[]> {
  if (spec.connections < 1) throw new Error('bench: wrk needs at least one connection');
  const script = join(dir, 'load.lua');
  await writeFile(script, wrkScript(spec, bodyFile));
  return [`-t${WRK_THREADS}`, `-c${spec.connections}`, `-d${Math.max(1, Math.round(spec.durationSec))}s`, '--timeout', '30s', '-s', script, spec.url];
}
