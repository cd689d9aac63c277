/**
 * @module test/bench/instructions
 * Instructions per request, counted by valgrind's callgrind: the CPU work a
 * server does for one request, in a number this VM's noise does not move
 * (two full bench runs gave the same counts to three digits, where req/s
 * moves by ±20% from minute to minute).
 *
 * The server runs under callgrind (no cache simulation). A warm-up lets V8's
 * tiers settle (under valgrind, whose threads run one at a time, they settle
 * slowly: after 3,000 requests the next round still reads 2-4% lower); then, per round, the counters are zeroed
 * (`callgrind_control -z`), a fixed number of requests is sent, and the
 * counters are dumped (`-d`). The count covers every thread of the process
 * (GC and compiler threads too) but user space only: system calls, cache and
 * TLB misses cost time that it does not show. A throughput ratio well below
 * the instruction ratio therefore says the rest of the gap is not work the
 * server's code does.
 *
 * Under valgrind a request takes ~50x longer (c=16 echo of a 1x784 tensor:
 * ~12 ms), so the counts are of a few thousand requests.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertClean, freePort, loadInProcess, pinned, sleep, waitExit } from './lib.js';

/** valgrind's version when valgrind and callgrind_control are installed, else undefined. */
export function callgrindVersion(): string | undefined {
  const v = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  const c = spawnSync('callgrind_control', ['-h'], { encoding: 'utf8' });
  return v.status === 0 && !c.error ? v.stdout.trim().replace(/^valgrind-/, '') : undefined;
}

export interface InstructionCount {
  /** Requests whose instructions each round counted. */
  requests: number;
  /** Instructions per request, one per round. */
  perRequest: number[];
}

export interface CountSpec {
  /** The server's argv after `node`; `{PORT}` is replaced by a free port. */
  args: string[];
  /** Path of the request (and of the readiness probe: the same request until it answers 200). */
  path: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  warmUpRequests: number;
  requests: number;
  rounds: number;
  cpu?: number;
  env?: NodeJS.ProcessEnv;
}

/** The first `summary:` (or `totals:`) count in a callgrind output file, i.e. its instructions (Ir). */
export function callgrindTotal(text: string): number | undefined {
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

const READY_TIMEOUT_MS = 120_000;
const DUMP_TIMEOUT_MS = 30_000;

/** Starts the server under callgrind, warms it up, and counts `rounds` rounds of `requests` requests. */
export async function countInstructions(spec: CountSpec): Promise<InstructionCount> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'kinfer-callgrind-'));
  const argv = spec.args.map((a) => a.replace('{PORT}', String(port)));
  const [cmd, args] = pinned(spec.cpu, 'valgrind', ['--tool=callgrind', '--cache-sim=no', `--callgrind-out-file=${join(dir, 'out.%p')}`, process.execPath, ...argv]);
  // taskset execs valgrind, and valgrind runs node in its own process: the child's pid is the one callgrind_control wants.
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...spec.env } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const url = `http://127.0.0.1:${port}${spec.path}`;
  const load = (n: number) =>
    loadInProcess({ url, body: spec.body, headers: spec.headers, connections: spec.connections, durationSec: 600, maxRequests: n });
  const control = (flag: '-z' | '-d') => {
    const r = spawnSync('callgrind_control', [flag, String(child.pid)], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`bench: callgrind_control ${flag} failed: ${r.stderr || r.stdout}`);
  };
  try {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`bench: server under valgrind exited ${child.exitCode}: ${stderr}`);
      const ok = await fetch(url, { method: 'POST', body: spec.body, headers: spec.headers, signal: AbortSignal.timeout(5000) })
        .then(async (r) => (await r.arrayBuffer(), r.status === 200))
        .catch(() => false);
      if (ok) break;
      if (performance.now() > deadline) throw new Error(`bench: server under valgrind not ready in ${READY_TIMEOUT_MS / 1000} s: ${stderr}`);
      await sleep(250);
    }
    assertClean('callgrind warm-up', await load(spec.warmUpRequests));
    const perRequest: number[] = [];
    for (let round = 1; round <= spec.rounds; round++) {
      control('-z');
      const r = assertClean(`callgrind round ${round}`, await load(spec.requests));
      control('-d');
      const total = await waitForDump(dir, round);
      perRequest.push(total / r.ok);
    }
    return { requests: spec.requests, perRequest };
  } finally {
    child.kill('SIGKILL');
    await waitExit(child, 10_000);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Dump n is `out.<pid>.<n>`; callgrind writes it after callgrind_control returns. */
async function waitForDump(dir: string, n: number): Promise<number> {
  const deadline = performance.now() + DUMP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const file = (await readdir(dir)).find((f) => f.endsWith(`.${n}`));
    const total = file ? callgrindTotal(await readFile(join(dir, file), 'utf8')) : undefined;
    if (total !== undefined) return total;
    await sleep(100);
  }
  throw new Error(`bench: callgrind dump ${n} not written in ${DUMP_TIMEOUT_MS / 1000} s`);
}
