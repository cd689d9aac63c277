/**
 * @module test/bench/run
 * `npm run bench [-- --quick] [--repeats N] [--duration S] [--no-write] [--profile DIR] [--load wrk|autocannon] [--[no-]instructions] [scenario ...]`:
 * runs the scenarios (all by default) against servers it starts itself on
 * 127.0.0.1, prints one table per scenario and writes them as Markdown to
 * `bench/results/<YYYY-MM-DD>.md` (`-quick` suffix for quick runs). A full run
 * of every scenario also refreshes the latest table in README.md (Benchmarks).
 * `--profile DIR` runs every kinfer server under `--cpu-prof`, keeps the
 * profiles in DIR, prints where each thread's time went, and writes no
 * results (the profiler's overhead makes the numbers incomparable).
 * Loads run on wrk, installed from Debian's packages when missing and the
 * harness runs as root (wrk.ts says why), else on autocannon; `--load` picks.
 * Where valgrind is installed, the protocol scenario also counts instructions
 * per request under callgrind (instructions.ts): by default unless `--quick`
 * (`--no-instructions` skips it, `--instructions` adds it to quick runs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CLI, DIST_BENCH, hasTaskset, machineInfo, renderMarkdown, renderText, ROOT, runScript,
  type BenchContext, type MachineInfo, type Scenario, type ScenarioResult,
} from './lib.js';
import type { Calibration } from './calibrate.js';
import { flameGraphSvg, foldStacks, renderFolded } from './flamegraph.js';
import { readProfile, renderProfile, summarizeProfile } from './profile.js';
import { callgrindVersion } from './instructions.js';
import { ensureWrk, WRK_THREADS, type LoadGenerator } from './wrk.js';
import { coldStart } from './scenarios/cold-start.js';
import { largeTensors } from './scenarios/large-tensors.js';
import { modelPath } from './scenarios/model-path.js';
import { protocol } from './scenarios/protocol.js';
import { storage } from './scenarios/storage.js';

export const SCENARIOS: Scenario[] = [protocol, largeTensors, modelPath, coldStart, storage];

interface Args {
  quick: boolean;
  repeats?: number;
  duration?: number;
  write: boolean;
  profileDir?: string;
  load?: LoadGenerator;
  /** Count instructions per request under callgrind; undefined = unless --quick. */
  instructions?: boolean;
  names: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, write: true, names: [] };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    const num = (flag: string): number => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: expected a positive number, got ${argv[i]}`);
      return n;
    };
    if (v === '--quick') a.quick = true;
    else if (v === '--repeats') a.repeats = Math.round(num(v));
    else if (v === '--duration') a.duration = num(v);
    else if (v === '--no-write') a.write = false;
    else if (v === '--profile') {
      const dir = argv[++i];
      if (!dir || dir.startsWith('-')) throw new Error('--profile: expected a folder for the .cpuprofile files');
      a.profileDir = resolve(dir);
      a.write = false;
    } else if (v === '--load') {
      const gen = argv[++i];
      if (gen !== 'wrk' && gen !== 'autocannon') throw new Error(`--load: expected wrk or autocannon, got ${gen}`);
      a.load = gen;
    } else if (v === '--instructions' || v === '--no-instructions') a.instructions = v === '--instructions';
    else if (v === '--help' || v === '-h') {
      process.stdout.write(
        `usage: npm run bench -- [--quick] [--repeats N] [--duration S] [--no-write] [--profile DIR] [--load wrk|autocannon] [--[no-]instructions] [${SCENARIOS.map((s) => s.name).join('|')} ...]\n`,
      );
      process.exit(0);
    } else if (v.startsWith('-')) throw new Error(`unknown option ${v}`);
    else a.names.push(...v.split(','));
  }
  const known = new Set(SCENARIOS.map((s) => s.name));
  for (const n of a.names) if (!known.has(n)) throw new Error(`unknown scenario '${n}'; known: ${[...known].join(', ')}`);
  return a;
}

/** The machine's phase on the server's core (`calibrate.ts`), before the first scenario and after the last. */
export interface Phase {
  before: Calibration;
  after: Calibration;
}

export function phaseLine(p: Phase): string {
  const f = (c: Calibration) => `${c.cpuMs.toFixed(1)} ms, ${c.memGBps.toFixed(1)} GB/s`;
  return `- Machine phase (calibrate.ts on the server's core; a 2^24-step integer loop, and reading 64 MiB): before ${f(p.before)}; after ${f(p.after)}`;
}

export function markdownReport(m: MachineInfo, ctx: Pick<BenchContext, 'quick' | 'repeats' | 'durationSec'>, results: ScenarioResult[], phase?: Phase): string {
  const versions = Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ');
  const load = m.load === 'none' ? 'none (no scenario drives HTTP load)' : m.load.startsWith('wrk') ? `${m.load} (${WRK_THREADS} thread${WRK_THREADS === 1 ? '' : 's'}, keep-alive)` : `${m.load} (keep-alive)`;
  return [
    `## Benchmark ${m.date.slice(0, 10)}${ctx.quick ? ' (quick)' : ''}`,
    '',
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB RAM; Node ${m.node}; ${versions}; commit ${m.commit}`,
    `- Run: ${m.date}; load generator ${load}; ${ctx.repeats} repeat(s) of ${ctx.durationSec} s per load, interleaved, median shown; ` +
      (m.pinned ? 'server and measured children pinned to core 1, load generator to core 0 (taskset)' : 'not pinned (no taskset)'),
    ...(phase ? [phaseLine(phase)] : []),
    '',
    ...results.flatMap((r) => [renderMarkdown(r), '']),
  ].join('\n');
}

const LATEST_START = '<!-- bench:latest:start -->';
const LATEST_END = '<!-- bench:latest:end -->';

async function updateDocs(markdown: string): Promise<boolean> {
  const file = join(ROOT, 'README.md');
  if (!existsSync(file)) return false;
  const text = await readFile(file, 'utf8');
  const a = text.indexOf(LATEST_START);
  const b = text.indexOf(LATEST_END);
  if (a < 0 || b < a) return false;
  // README's Benchmarks section is level 2 with "Latest results" at level 3: nest the report below it.
  const nested = markdown.trim().replace(/^(#+) /gm, '##$1 ');
  await writeFile(file, `${text.slice(0, a + LATEST_START.length)}\n${nested}\n${text.slice(b)}`);
  return true;
}

/**
 * Prints the summary of every profile in `dir` (node names them
 * CPU.<date>.<pid>.<thread>.<seq>.cpuprofile) and writes its flame graph
 * (`.svg`) and folded stacks (`.folded`) beside it.
 */
async function reportProfiles(dir: string): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  for (const f of files) {
    const thread = /\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1];
    const label = `${f} (${thread === '0' ? 'main thread' : `worker thread ${thread ?? '?'}`})`;
    const profile = await readProfile(join(dir, f));
    process.stdout.write(`\n${renderProfile(label, summarizeProfile(profile, ROOT))}\n`);
    const folded = foldStacks(profile, ROOT);
    const base = join(dir, f.replace(/\.cpuprofile$/, ''));
    await writeFile(`${base}.folded`, renderFolded(folded));
    await writeFile(`${base}.svg`, flameGraphSvg(folded, label));
  }
  process.stdout.write(`\nbench: ${files.length} profile(s) in ${dir}, each with a flame graph (.svg, open in a browser) and folded stacks (.folded); the .cpuprofile files also open in Chrome DevTools (Performance → Load profile) or speedscope\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI) || !existsSync(join(DIST_BENCH, 'load.js'))) throw new Error('run `npm run build` first (dist/ is missing)');
  const pin = hasTaskset();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const log = (msg: string) => process.stderr.write(`${msg}\n`);
  const selected = args.names.length ? SCENARIOS.filter((s) => args.names.includes(s.name)) : SCENARIOS;
  const httpLoad = selected.some((s) => s.httpLoad);
  const wantInstructions = (args.instructions ?? !args.quick) && selected.some((s) => s.name === 'protocol');
  const wrk = args.load === 'autocannon' || !httpLoad ? undefined : ensureWrk(log);
  if (httpLoad && args.load === 'wrk' && !wrk) throw new Error('--load wrk: wrk is not installed and could not be (apt-get install wrk, as root)');
  const ctx: BenchContext = {
    quick: args.quick,
    durationSec: args.duration ?? (args.quick ? 1 : 5),
    repeats: args.repeats ?? (args.quick ? 1 : 3),
    serverCpu: pin ? 1 : undefined,
    loadCpu: pin ? 0 : undefined,
    profileDir: args.profileDir,
    loadGen: wrk ? 'wrk' : 'autocannon',
    callgrind: wantInstructions ? callgrindVersion() : undefined,
    log,
  };
  if (wantInstructions && !ctx.callgrind) {
    if (args.instructions) throw new Error('--instructions: valgrind (with callgrind_control) is not installed (apt-get install valgrind)');
    log('bench: valgrind is not installed, so instructions per request are not counted (apt-get install valgrind)');
  }
  if (args.profileDir) await mkdir(args.profileDir, { recursive: true });
  const machine = machineInfo(pin, !httpLoad ? 'none' : wrk ? `wrk ${wrk}` : undefined);
  const results: ScenarioResult[] = [];
  const t0 = performance.now();
  const calibrateNow = () => runScript<Calibration>('calibrate.js', [], { timeoutMs: 60_000, cpu: ctx.serverCpu });
  const before = await calibrateNow();
  for (const s of selected) {
    ctx.log(`--- ${s.title}`);
    const r = await s.run(ctx);
    results.push(r);
    process.stdout.write(`\n${renderText(r)}\n\n`);
  }
  const phase = { before, after: await calibrateNow() };
  ctx.log(phaseLine(phase).slice(2));
  const md = markdownReport(machine, ctx, results, phase);
  ctx.log(`bench: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (args.profileDir) await reportProfiles(args.profileDir);
  if (!args.write) return;
  const dir = join(ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${machine.date.slice(0, 10)}${ctx.quick ? '-quick' : ''}.md`);
  const prev = existsSync(file) ? await readFile(file, 'utf8') : '';
  await writeFile(file, prev ? `${prev.trimEnd()}\n\n${md}` : `# kinfer benchmark results\n\n${md}`);
  ctx.log(`bench: wrote ${file}`);
  const full = !ctx.quick && selected.length === SCENARIOS.length && args.repeats === undefined && args.duration === undefined;
  if (full && (await updateDocs(md))) ctx.log('bench: updated the latest table in README.md');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
