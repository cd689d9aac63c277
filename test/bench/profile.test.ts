/**
 * @module test/bench/profile.test
 * The profile summary, folded stacks and flame graph of a real
 * `node --cpu-prof` profile: a child process that spends its time in one
 * named busy function must show it first and widest.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flameGraphSvg, foldStacks, renderFolded } from './flamegraph.js';
import { ownerOf, readProfile, renderProfile, summarizeProfile } from './profile.js';

describe('CPU profile summary', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kinfer-prof-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('ranks the function that burned the time first, attributes it to its file, and keeps idle apart', async () => {
    const script = join(dir, 'busy.cjs');
    // ~300 ms in spinHard, then ~200 ms asleep (idle).
    await writeFile(
      script,
      'function spinHard(ms) { const end = Date.now() + ms; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }\n' +
        'spinHard(300); setTimeout(() => {}, 200);\n',
    );
    execFileSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, script], { timeout: 20_000 });
    const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    expect(files).toHaveLength(1);
    const s = summarizeProfile(await readProfile(join(dir, files[0]!)), dir);
    expect(s.functions[0]!.name).toBe('spinHard busy.cjs:1');
    expect(s.functions[0]!.ms).toBeGreaterThan(150);
    expect(s.packages[0]!.name).toBe('kinfer:busy.cjs');
    expect(s.idleMs).toBeGreaterThan(100);
    expect(s.totalMs).toBeGreaterThanOrEqual(s.idleMs + s.functions[0]!.ms);
    const text = renderProfile('busy', s);
    expect(text).toMatch(/^profile busy: \d+ ms sampled, \d+ ms busy \(GC \d+ ms\)/);
    expect(text).toContain('spinHard busy.cjs:1');

    // The same profile as folded stacks and a flame graph.
    const profile = await readProfile(join(dir, files[0]!));
    const folded = foldStacks(profile, dir);
    const spin = [...folded].filter(([stack]) => stack.endsWith(';spinHard busy.cjs:1') || stack === 'spinHard busy.cjs:1');
    expect(spin.length).toBeGreaterThan(0);
    // Its caller is the script's top level, root first.
    expect(spin[0]![0].split(';')).toContain('(anonymous) busy.cjs:1');
    const spinUs = spin.reduce((n, [, us]) => n + us, 0);
    expect(spinUs / 1000).toBeCloseTo(s.functions[0]!.ms, 0);
    const busyUs = [...folded.values()].reduce((a, b) => a + b, 0);
    // Idle is left out: the folded total is the busy time.
    expect(busyUs / 1000).toBeCloseTo(s.totalMs - s.idleMs, 0);
    expect(renderFolded(folded).split('\n')[0]).toMatch(/spinHard busy\.cjs:1 \d+$/);

    const svg = flameGraphSvg(folded, 'busy <main>', 1000);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('busy &lt;main&gt;');
    // The spinning frame is drawn, as wide as its share of busy time, in the project's colour.
    const rect = new RegExp('<title>spinHard busy\\.cjs:1 \\([\\d.]+ ms, ([\\d.]+)%\\)</title><rect x="[\\d.]+" y="\\d+" width="([\\d.]+)" height="16" fill="([^"]+)"').exec(svg);
    expect(rect).not.toBeNull();
    expect(Number(rect![1])).toBeGreaterThan(50);
    expect(Number(rect![2])).toBeCloseTo((1000 * spinUs) / busyUs, -1);
    expect(rect![3]).toBe('#e0803c');
  });

  it('draws nested frames on top of their callers and escapes names', () => {
    const folded = new Map([
      ['main a.js:1;work <T> node_modules-free.js:2', 3000],
      ['main a.js:1;emit node:events:10', 1000],
      ['main a.js:1', 1000],
      ['(garbage collector)', 5000],
    ]);
    const svg = flameGraphSvg(folded, 't', 100);
    const frame = (name: string) => new RegExp(`<title>${name} \\(([\\d.]+) ms, [\\d.]+%\\)</title><rect x="([\\d.]+)" y="(\\d+)" width="([\\d.]+)" height="16" fill="([^"]+)"`).exec(svg);
    const main = frame('main a\\.js:1')!;
    const work = frame('work &lt;T&gt; node_modules-free\\.js:2')!;
    const emit = frame('emit node:events:10')!;
    const gc = frame('\\(garbage collector\\)')!;
    expect([main[1], work[1], emit[1], gc[1]]).toEqual(['5.0', '3.0', '1.0', '5.0']);
    expect([Number(main[4]), Number(gc[4])]).toEqual([50, 50]);
    // Callees sit one row above their caller, inside its span.
    expect(Number(work[3])).toBe(Number(main[3]) - 17);
    expect(Number(work[2])).toBeGreaterThanOrEqual(Number(main[2]));
    expect(Number(emit[2]) + Number(emit[4])).toBeLessThanOrEqual(Number(main[2]) + Number(main[4]) + 0.01);
    expect([main[5], emit[5], gc[5]]).toEqual(['#e0803c', '#70ad47', '#c00000']);
    const all = frame('all')!;
    expect([all[1], all[4], all[5]]).toEqual(['10.0', '100.0', '#d9d9d9']);
  });

  it('names owners: packages (scoped too), node internals, the project, native frames', () => {
    expect(ownerOf('file:///app/node_modules/@hono/node-server/dist/index.mjs', '/app')).toBe('pkg:@hono/node-server');
    expect(ownerOf('file:///app/node_modules/zod/v4/core/core.js', '/app')).toBe('pkg:zod');
    expect(ownerOf('node:internal/streams/readable', '/app')).toBe('node:internal');
    expect(ownerOf('node:events', '/app')).toBe('node:events');
    expect(ownerOf('file:///app/dist/runtime/dataplane.js', '/app')).toBe('kinfer:dist/runtime/dataplane.js');
    expect(ownerOf('', '/app')).toBe('(native)');
  });

  it('refuses a file that is not a V8 profile', async () => {
    const bad = join(dir, 'bad.cpuprofile');
    await writeFile(bad, '{"hello": 1}');
    await expect(readProfile(bad)).rejects.toThrow(/not a V8 \.cpuprofile/);
  });
});
