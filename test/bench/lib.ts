/**
 * @module test/bench/lib
 * Benchmark harness helpers: bounded load runs (wrk or autocannon in a
 * CPU-pinned child, autocannon in this process), spawned servers, medians, result tables
 * (terminal and Markdown) and machine info. Scenarios in `scenarios/` use
 * these; `run.ts` strings them together.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type Ort from 'onnxruntime-node';
import { freePort } from '../helpers/loopback.js';
import { parseWrkOutput, wrkArgs, type LoadGenerator } from './wrk.js';

export { freePort };

const require = createRequire(import.meta.url);

/** The repository root: the nearest folder up from here whose package.json is kinfer's. */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 8; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kinfer') return dir;
    dir = dirname(dir);
  }
  throw new Error(`bench: no kinfer package.json above ${start}`);
}

/** Compiled harness scripts (children) live here after `npm run build`. */
export const DIST_BENCH = join(ROOT, 'dist', 'test', 'bench');
/** What `npm start`, the image and the package bin run: the esbuild bundle of dist/cli/main.js. */
export const CLI = join(ROOT, 'dist', 'bundle', 'main.cjs');
/** tsc's output, one file per module: profiled servers run it, so a profile tells packages apart. */
export const CLI_UNBUNDLED = join(ROOT, 'dist', 'cli', 'main.js');

export interface BenchContext {
  quick: boolean;
  /** Seconds per load run. */
  durationSec: number;
  /** Repeats per measurement; tables show the median. */
  repeats: number;
  /** Cores for the server (and other measured children) and for the load generator; undefined = not pinned. */
  serverCpu?: number;
  loadCpu?: number;
  /** Set by `--profile DIR`: every spawned kinfer server writes V8 CPU profiles there. */
  profileDir?: string;
  /** What drives the HTTP loads: wrk where installed (see wrk.ts), else autocannon. */
  loadGen: LoadGenerator;
  /** valgrind's version when the protocol scenario counts instructions per request (instructions.ts); undefined = not counted. */
  callgrind?: string;
  log: (msg: string) => void;
}

// ---------- statistics ----------

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---------- tables ----------

export interface Row {
  case: string;
  /** Formatted measured value (kinfer side). */
  kinfer: string;
  baseline: string;
  /** kinfer / baseline, formatted; '' when there is no baseline. */
  ratio: string;
  target: string;
  result: 'PASS' | 'MISS' | '';
  /** Raw numbers, for tests and JSON. */
  raw: { value: number; baseline?: number; ratio?: number };
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** What the baseline column is. */
  baselineLabel: string;
  rows: Row[];
  notes: string[];
}

export type Unit = 'req/s' | 'items/s' | 'items' | 'ms' | 'µs' | 'MB' | 'MB/s' | 'ops/s' | 'ms/s' | '/s' | 'x' | 'M instr';

export function fmt(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return 'n/a';
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  const n = v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return unit === 'x' ? `${n}×` : unit === '/s' ? `${n}/s` : `${n} ${unit}`;
}

/**
 * A row comparing kinfer with a baseline. `min` (higher is better) passes when
 * ratio ≥ min; `max` (lower is better) passes when ratio ≤ max; neither = report only.
 * `ratio` replaces value / baseline: the median of paired runs' ratios, which
 * drift between the pairs does not move.
 */
export function compareRow(
  name: string,
  value: number,
  baseline: number | undefined,
  unit: Unit,
  target: { min?: number; max?: number; text?: string; ratio?: number } = {},
): Row {
  const ratio = target.ratio ?? (baseline !== undefined && baseline > 0 ? value / baseline : undefined);
  let result: Row['result'] = '';
  let targetText = target.text ?? '';
  if (target.min !== undefined) {
    targetText ||= `≥ ${target.min}×`;
    result = ratio !== undefined && ratio >= target.min ? 'PASS' : 'MISS';
  } else if (target.max !== undefined) {
    targetText ||= `≤ ${target.max}×`;
    result = ratio !== undefined && ratio <= target.max ? 'PASS' : 'MISS';
  }
  return {
    case: name,
    kinfer: fmt(value, unit),
    baseline: baseline === undefined ? '' : fmt(baseline, unit),
    ratio: ratio === undefined ? '' : `${ratio.toFixed(2)}×`,
    target: targetText,
    result,
    raw: { value, ...(baseline !== undefined ? { baseline } : {}), ...(ratio !== undefined ? { ratio } : {}) },
  };
}

/** A row with an absolute limit (e.g. peak RSS < 150 MB). */
export function limitRow(name: string, value: number, unit: Unit, limit: number, text: string): Row {
  return {
    case: name,
    kinfer: fmt(value, unit),
    baseline: '',
    ratio: '',
    target: text,
    result: value < limit ? 'PASS' : 'MISS',
    raw: { value },
  };
}

const HEAD = ['case', 'kinfer', 'baseline', 'ratio', 'target', 'result'] as const;

export function renderText(s: ScenarioResult): string {
  const cells = [HEAD.map((h) => (h === 'baseline' ? s.baselineLabel : h)), ...s.rows.map((r) => HEAD.map((h) => r[h]))];
  const widths = HEAD.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [`== ${s.title}`, line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)];
  for (const n of s.notes) out.push(`   ${n}`);
  return out.join('\n');
}

export function renderMarkdown(s: ScenarioResult): string {
  const esc = (v: string) => v.replace(/\|/g, '\\|');
  const head = HEAD.map((h) => (h === 'baseline' ? s.baselineLabel : h));
  const out = [
    `### ${s.title}`,
    '',
    `| ${head.map(esc).join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...s.rows.map((r) => `| ${HEAD.map((h) => esc(r[h])).join(' | ')} |`),
  ];
  if (s.notes.length) out.push('', ...s.notes.map((n) => `- ${n}`));
  return out.join('\n');
}

// ---------- machine ----------

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  node: string;
  versions: Record<string, string>;
  /** The HTTP load generator and its version, e.g. `wrk 4.1.0-3+b2`. */
  load: string;
  commit: string;
  pinned: boolean;
  memGiB: number;
}

export function hasTaskset(): boolean {
  return spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

export function machineInfo(pinned: boolean, load = `autocannon ${pkgVersion('autocannon')}`): MachineInfo {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  const kinfer = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    date: new Date().toISOString(),
    cpu,
    // cpus(), not availableParallelism(): the harness pins itself to one core.
    cores: cpus().length,
    node: process.version,
    versions: {
      kinfer,
      hono: pkgVersion('hono'),
      '@hono/node-server': pkgVersion('@hono/node-server'),
      'onnxruntime-node': pkgVersion('onnxruntime-node'),
    },
    load,
    commit: git.status === 0 ? `${git.stdout.trim()}${dirty.stdout.trim() ? ' (+ uncommitted changes)' : ''}` : 'unknown',
    pinned,
    memGiB: Math.round(totalmem() / 2 ** 30),
  };
}

// ---------- processes ----------

/** argv for running `cmd args` pinned to `cpu` with taskset, or unpinned. */
export function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}


export async function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resident set size of a live process, in MB (Linux /proc). */
export function rssMB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU each thread of a live process has used (Linux
 * /proc/<pid>/task/<tid>/schedstat), by thread id: `runMs` on a CPU, and
 * `slices`, the times the thread was put on a CPU (≈ wake-ups for a mostly
 * idle thread). Empty when the process is gone.
 */
export function threadCpu(pid: number): Map<number, { runMs: number; slices: number }> {
  const out = new Map<number, { runMs: number; slices: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const [run, , n] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      out.set(Number(tid), { runMs: (run ?? 0) / 1e6, slices: n ?? 0 });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU a live process has used, summed over its threads (see `threadCpu`); NaN when it is gone. */
export function cpuUse(pid: number): { runMs: number; slices: number } {
  const threads = threadCpu(pid);
  if (!threads.size) return { runMs: NaN, slices: NaN };
  let runMs = 0;
  let slices = 0;
  for (const t of threads.values()) {
    runMs += t.runMs;
    slices += t.slices;
  }
  return { runMs, slices };
}

/**
 * CPU ms a server's threads used between two `threadCpu` snapshots: the main
 * thread (tid = pid), the busiest other thread (a kinfer server's ONNX
 * session thread under load), and all the others together (V8's compiler and
 * GC helpers, libuv's pool).
 */
export function splitThreadCpu(
  pid: number,
  before: Map<number, { runMs: number }>,
  after: Map<number, { runMs: number }>,
): { main: number; busiest: number; rest: number } {
  let main = 0;
  let busiest = 0;
  let total = 0;
  for (const [tid, t] of after) {
    const d = t.runMs - (before.get(tid)?.runMs ?? 0);
    if (tid === pid) main = d;
    else {
      total += d;
      if (d > busiest) busiest = d;
    }
  }
  return { main, busiest, rest: total - busiest };
}

/** Waits for the child to exit, killing it after `timeoutMs`. */
export async function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment the image (Dockerfile `ENV`) and `npm start` give the server: glibc's malloc
 * asks the kernel for transparent huge pages (glibc >= 2.35; effective where THP is `madvise`
 * or `always`). Every harness process that runs ONNX Runtime gets it (kinfer, the bare floor,
 * the in-process baselines), so the ratios measure serving, not the allocator; the rows that
 * show what the setting buys run a side with `WITHOUT_HUGE_PAGES` as well.
 */
export const SERVER_ENV: Readonly<Record<string, string>> = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' };
/** glibc's default malloc: no tunables. */
export const WITHOUT_HUGE_PAGES: Readonly<Record<string, string>> = { GLIBC_TUNABLES: '' };

/** The environment of a harness child that runs ONNX Runtime: this process's, SERVER_ENV over it, `over` over both. */
function serverEnv(over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...SERVER_ENV, ...over };
}

/** Runs a command to completion (killed after `timeoutMs`), collecting its output. */
export async function run(cmd: string, args: string[], opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; cpu?: number }): Promise<ChildResult> {
  const [c, a] = pinned(opts.cpu, cmd, args);
  const child = spawn(c, a, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await waitExit(child, opts.timeoutMs);
  return { code, stdout, stderr };
}

/** Runs a compiled harness script (`dist/test/bench/<script>`) with SERVER_ENV (`opts.env` over it) and parses the last stdout line as JSON. */
export async function runScript<T>(script: string, args: string[], opts: { timeoutMs: number; cpu?: number; env?: NodeJS.ProcessEnv }): Promise<T> {
  const r = await run(process.execPath, [join(DIST_BENCH, script), ...args], { ...opts, env: serverEnv(opts.env) });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) {
    throw new Error(`bench: ${script} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().slice(-800) || r.stdout.slice(-400)}`);
  }
  return JSON.parse(last) as T;
}

/**
 * Pause between readiness probes. A probe is refused before the server listens and waits in the
 * accept queue while the model loads, so what the pause adds is the gap between the server turning
 * ready and the next probe: up to 10 ms at 10 ms, against an in-process baseline that has none.
 */
const READY_POLL_MS = 2;

export interface SpawnedServer {
  url: string;
  pid: number;
  /** Spawn to first 200 from /v2/health/ready, ms. */
  readyMs: number;
  close(): Promise<void>;
}

/**
 * Spawns `kinfer serve` on 127.0.0.1 (pinned to `cpu`) with SERVER_ENV (`opts.env` over it) and waits
 * for readiness, polling every READY_POLL_MS up to `timeoutMs`. With `profileDir`, node
 * runs the unbundled CLI with `--cpu-prof` and writes one profile per thread
 * there on exit.
 */
export async function spawnKinfer(
  repo: string,
  opts: { cpu?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv; profileDir?: string } = {},
): Promise<SpawnedServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const profile = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : [];
  const [cmd, args] = pinned(opts.cpu, process.execPath, [...profile, opts.profileDir ? CLI_UNBUNDLED : CLI, 'serve', '--model-repository', repo, '--port', String(port), '--host', '127.0.0.1']);
  const t0 = performance.now();
  const child = spawn(cmd, args, {
    env: serverEnv({ LOG_LEVEL: 'warn', ...opts.env }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await waitExit(child, 10_000);
    }
  };
  const deadline = t0 + (opts.timeoutMs ?? 60_000);
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`bench: kinfer exited ${child.exitCode} before ready: ${stderr}`);
    try {
      const res = await fetch(`${url}/v2/health/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return { url, pid: child.pid!, readyMs: performance.now() - t0, close };
    } catch {
      /* not listening yet */
    }
    await sleep(READY_POLL_MS);
  }
  await close();
  throw new Error(`bench: kinfer not ready within ${opts.timeoutMs ?? 60_000} ms: ${stderr}`);
}

/**
 * Session options of the in-process baselines: the server's defaults
 * (runtime/backends/onnx.ts `sessionOptions`): intra-op threads = available
 * cores, graph optimisation all, sequential, no spinning; so the only
 * difference left is the serving.
 */
export function baselineSessionOptions(): Ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: Math.max(1, availableParallelism()),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/**
 * Spawns a harness script (`dist/test/bench/<script>`) with SERVER_ENV, pinned to `cpu`, and
 * waits up to `timeoutMs` for the line on its stdout that `listening` parses
 * (undefined for other lines); the child is killed if it exits, stays silent,
 * or `listening` throws on a line.
 */
export async function spawnScript<T>(
  script: string,
  args: string[],
  cpu: number | undefined,
  listening: (line: string) => T | undefined,
  timeoutMs = 10_000,
): Promise<{ value: T; pid: number; close(): Promise<void> }> {
  const [cmd, cmdArgs] = pinned(cpu, process.execPath, [join(DIST_BENCH, script), ...args]);
  const child = spawn(cmd, cmdArgs, { env: serverEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await waitExit(child, 5000);
    }
  };
  try {
    const value = await new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`bench: ${script} did not listen within ${timeoutMs / 1000} s`)), timeoutMs);
      let buf = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) {
          let v: T | undefined;
          try {
            v = listening(line);
          } catch (err) {
            clearTimeout(t);
            return reject(new Error(`bench: ${script} printed a line its caller cannot read (${(err as Error).message}): ${line.slice(0, 200)}`));
          }
          if (v === undefined) continue;
          clearTimeout(t);
          return resolve(v);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`bench: ${script} exited ${code} before it listened`));
      });
    });
    return { value, pid: child.pid!, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Spawns the bare node:http floor server (`bare-server.js`) pinned to `cpu`;
 * with `modelFile`, the bare server runs that ONNX model on its event loop.
 */
export async function spawnBare(cpu: number | undefined, modelFile?: string): Promise<SpawnedServer> {
  const t0 = performance.now();
  const s = await spawnScript('bare-server.js', ['0', ...(modelFile ? [modelFile] : [])], cpu, (line) => {
    const m = /^PORT (\d+)$/.exec(line.trim());
    return m ? Number(m[1]) : undefined;
  });
  return { url: `http://127.0.0.1:${s.value}`, pid: s.pid, readyMs: performance.now() - t0, close: s.close };
}

// ---------- load ----------

export interface LoadSpec {
  url: string;
  method?: 'GET' | 'POST';
  /** Request body (written to a temp file when the load runs in a child). */
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  connections: number;
  durationSec: number;
  /** Hard cap on requests, so a run is bounded in count as well as time (autocannon; wrk has none and stops at `durationSec`). */
  maxRequests?: number;
}

export interface LoadResult {
  /** 2xx responses per second over the run. */
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  errors: number;
  non2xx: number;
  durationSec: number;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number };
}

type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: AutocannonResult) => void) => { stop(): void };

/** Runs autocannon in this process (keep-alive; bounded by duration and `maxRequests`). */
export async function loadInProcess(spec: LoadSpec): Promise<LoadResult> {
  const autocannon = require('autocannon') as Autocannon;
  // autocannon appends every response chunk to a JS string (`req.body += chunk`), UTF-8
  // decoding it. For a 600 KB binary-extension response of random floats that caps the
  // client at ~140 req/s while the server idles 76% (measured). Loads here never check
  // bodies (verifyBody/expectBody unused; correctness is checked before each load), so
  // the accumulation is switched off.
  const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody(data: unknown): void } };
  queue.prototype.addBody = function addBody() {};
  const body = spec.body === undefined ? undefined : typeof spec.body === 'string' ? spec.body : Buffer.from(spec.body.buffer, spec.body.byteOffset, spec.body.byteLength);
  const res = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: spec.url,
        method: spec.method ?? (body === undefined ? 'GET' : 'POST'),
        body,
        headers: spec.headers ?? {},
        connections: spec.connections,
        duration: spec.durationSec,
        ...(spec.maxRequests ? { maxOverallRequests: spec.maxRequests } : {}),
        timeout: 30,
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
  });
  const seconds = res.duration || spec.durationSec;
  return {
    rps: res['2xx'] / seconds,
    p50: res.latency.p50,
    p99: res.latency.p99,
    ok: res['2xx'],
    errors: res.errors + res.timeouts,
    non2xx: res.non2xx,
    durationSec: seconds,
  };
}

/**
 * Unrecorded load before measuring: V8 compiles a server's request path with
 * TurboFan only after a few thousand requests. A kinfer server under c=8 MLP
 * load optimised 296, 132, 58 and 46 functions in four consecutive 5 s runs
 * while its req/s rose from 355 to ~390, so without this the first repeat
 * measured the JIT (and more so for kinfer, which runs more JavaScript per
 * request than a bare server). Each side gets the same warm-up.
 */
export async function warmUp(ctx: BenchContext, spec: Omit<LoadSpec, 'durationSec'>): Promise<void> {
  assertClean(`warm-up of ${spec.url}`, await loadInChild({ ...spec, durationSec: ctx.quick ? 1 : WARM_UP_SEC }, ctx));
}

/** Seconds of unrecorded load per server (and per model) before a scenario measures it. */
export const WARM_UP_SEC = 3;

/**
 * Runs the load in a child process pinned to `ctx.loadCpu`, so it does not
 * share the server's core: wrk itself, or autocannon in `load.js`.
 */
export async function loadInChild(spec: LoadSpec, ctx: Pick<BenchContext, 'loadCpu' | 'loadGen'>): Promise<LoadResult> {
  const dir = await mkdtemp(join(tmpdir(), 'kinfer-load-'));
  try {
    const bodyFile = spec.body === undefined ? undefined : join(dir, 'body');
    if (bodyFile) await writeFile(bodyFile, spec.body!);
    const timeoutMs = (spec.durationSec + 60) * 1000;
    if (ctx.loadGen === 'wrk') {
      const r = await run('wrk', await wrkArgs(spec, dir, bodyFile), { cpu: ctx.loadCpu, timeoutMs });
      if (r.code !== 0) throw new Error(`bench: wrk against ${spec.url} failed (exit ${r.code}): ${r.stderr.trim().slice(-800) || r.stdout.slice(-400)}`);
      return parseWrkOutput(r.stdout);
    }
    const specFile = join(dir, 'spec.json');
    await writeFile(specFile, JSON.stringify({ ...spec, body: undefined, bodyFile }));
    return await runScript<LoadResult>('load.js', [specFile], { cpu: ctx.loadCpu, timeoutMs });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads a spec written by `loadInChild` (used by load.js). */
export async function readLoadSpec(file: string): Promise<LoadSpec> {
  const spec = JSON.parse(await readFile(file, 'utf8')) as LoadSpec & { bodyFile?: string };
  if (spec.bodyFile) spec.body = new Uint8Array(await readFile(spec.bodyFile));
  return spec;
}

/** Throws when a load run saw errors: a benchmark of failing requests is meaningless. */
export function assertClean(what: string, r: LoadResult): LoadResult {
  if (r.errors > 0 || r.non2xx > 0 || r.ok === 0) {
    throw new Error(`bench: ${what}: ${r.ok} ok, ${r.non2xx} non-2xx, ${r.errors} errors/timeouts`);
  }
  return r;
}

/**
 * Runs each load `repeats` times, interleaved (a, b, a, b, ...) so drift on a
 * noisy machine hits every side alike; returns each side's runs.
 */
export async function interleaved(
  ctx: BenchContext,
  sides: { name: string; spec: LoadSpec }[],
  repeats = ctx.repeats,
): Promise<Map<string, LoadResult[]>> {
  const out = new Map<string, LoadResult[]>(sides.map((s) => [s.name, []]));
  for (let i = 0; i < repeats; i++) {
    // Odd rounds run the sides in reverse, so neither side always runs first (after the other's load).
    for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
      const r = assertClean(s.name, await loadInChild(s.spec, ctx));
      ctx.log(`  ${s.name} #${i + 1}: ${r.rps.toFixed(1)} req/s, p99 ${r.p99} ms`);
      out.get(s.name)!.push(r);
    }
  }
  return out;
}

/**
 * The median of the per-round ratios `a[i][key] / b[i][key]` of two sides run
 * in the same rounds of `interleaved`: each ratio compares runs made seconds
 * apart, so the VM's drift over a scenario (often 1.5x) cancels out.
 */
export function pairedRatio(a: LoadResult[], b: LoadResult[], key: 'rps' | 'p50' | 'p99'): number {
  if (a.length !== b.length || a.length === 0) throw new Error(`bench: paired ratio of ${a.length} and ${b.length} runs`);
  return median(a.map((r, i) => r[key] / b[i]![key]));
}

export function medianOf(runs: LoadResult[], key: 'rps' | 'p50' | 'p99'): number {
  return median(runs.map((r) => r[key]));
}

// ---------- request bodies ----------

/** Deterministic pseudo-random float32 values in [0, 1) (xorshift32). */
export function floats(n: number, seed = 42): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x / 2 ** 32;
  }
  return out;
}

/** A v2 JSON infer body with one FP32 input. */
export function v2JsonBody(name: string, shape: number[], data: Float32Array): string {
  return JSON.stringify({ inputs: [{ name, shape, datatype: 'FP32', data: Array.from(data) }] });
}

/** A v2 binary-extension body with one FP32 input, asking for binary outputs. */
export function v2BinaryBody(name: string, shape: number[], data: Float32Array): { body: Uint8Array; headerLength: number } {
  const head = Buffer.from(
    JSON.stringify({
      inputs: [{ name, shape, datatype: 'FP32', parameters: { binary_data_size: data.byteLength } }],
      parameters: { binary_data_output: true },
    }),
  );
  const body = new Uint8Array(head.byteLength + data.byteLength);
  body.set(head, 0);
  body.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), head.byteLength);
  return { body, headerLength: head.byteLength };
}

// ---------- scenarios ----------

export interface Scenario {
  /** Selects the scenario on the command line. */
  name: string;
  title: string;
  /** Drives HTTP load (wrk or autocannon); the harness looks for wrk only when a selected scenario does. */
  httpLoad: boolean;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

/** A temp model repository; `link` makes `<repo>/<name>` a symlink to an existing model folder. */
export async function tempRepo(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
