/**
 * @module test/bench/profile
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) and says where the
 * thread's time went: self time by function and by package, idle and GC apart.
 * `npm run bench -- --profile DIR` runs every spawned kinfer server with
 * `--cpu-prof` and prints this for each profile, and writes a flame graph of
 * each (flamegraph.ts); the files themselves also open in Chrome DevTools
 * (Performance → Load profile) or speedscope.
 *
 * The sampler records wall time on the profiled thread: a thread preempted by
 * another one on the same core (the ONNX worker, when pinned) is charged to
 * whatever it was running. Read the shares of a pinned server with that in mind.
 */
import { readFile } from 'node:fs/promises';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  /** Ids of the callees. */
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled milliseconds in total, idle included. */
  totalMs: number;
  idleMs: number;
  gcMs: number;
  /** Self time by function (`name url:line`), largest first; idle, GC and `(program)` left out. */
  functions: { name: string; ms: number }[];
  /** Self time by package (`node_modules/<pkg>`), `node:` internals, or the project's own files. */
  packages: { name: string; ms: number }[];
}

/** Where a frame's code lives: `pkg:<name>` for node_modules, `node:internal`, `node:<module>`, `kinfer:<path>` or `(native)`. */
export function ownerOf(url: string, root: string): string {
  if (!url) return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return `pkg:${nm[1]}`;
  if (url.startsWith('node:internal')) return 'node:internal';
  if (url.startsWith('node:')) return url;
  const path = url.replace(/^file:\/\//, '');
  return `kinfer:${path.startsWith(root) ? path.slice(root.length).replace(/^\//, '') : path}`;
}

function ranked(m: Map<string, number>, top: number): { name: string; ms: number }[] {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, ms: us / 1000 }));
}

/** Sampled µs per profile node (its self time). */
export function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  return self;
}

/** Where a frame's code is, as `file:line` (a package by its name, the project's files relative to `root`); undefined for native frames. */
export function frameLocation(frame: CpuProfileNode['callFrame'], root: string): string | undefined {
  return frame.url ? `${ownerOf(frame.url, root).replace(/^(pkg|kinfer):/, '')}:${frame.lineNumber + 1}` : undefined;
}

/** Summarises one profile; `root` shortens the project's own paths. */
export function summarizeProfile(profile: CpuProfile, root: string, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = selfTimes(profile);
  let total = 0;
  for (const us of self.values()) total += us;
  let idle = 0;
  let gc = 0;
  const fns = new Map<string, number>();
  const pkgs = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (frame.functionName === '(garbage collector)') {
      gc += us;
      continue;
    }
    if (frame.functionName === '(program)' || frame.functionName === '(root)') continue;
    const owner = ownerOf(frame.url, root);
    const key = `${frame.functionName || '(anonymous)'} ${frameLocation(frame, root) ?? owner}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    pkgs.set(owner, (pkgs.get(owner) ?? 0) + us);
  }
  return { totalMs: total / 1000, idleMs: idle / 1000, gcMs: gc / 1000, functions: ranked(fns, top), packages: ranked(pkgs, top) };
}

export async function readProfile(file: string): Promise<CpuProfile> {
  const p = JSON.parse(await readFile(file, 'utf8')) as Partial<CpuProfile>;
  if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas)) {
    throw new Error(`${file}: not a V8 .cpuprofile (nodes, samples and timeDeltas expected)`);
  }
  return p as CpuProfile;
}

/** The summary as text lines: busy time, then the top packages and functions with their share of busy time. */
export function renderProfile(file: string, s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number) => `${((100 * ms) / Math.max(busy, 1e-9)).toFixed(1).padStart(5)}%`;
  return [
    `profile ${file}: ${s.totalMs.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (GC ${s.gcMs.toFixed(0)} ms)`,
    '  by package:',
    ...s.packages.map((p) => `  ${pct(p.ms)}  ${p.name}`),
    '  by function:',
    ...s.functions.map((f) => `  ${pct(f.ms)}  ${f.name}`),
  ].join('\n');
}
