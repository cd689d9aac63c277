/**
 * @module test/bench/profile.test
 * The profile summary on a real `node --cpu-prof` profile: a child process
 * that spends its time in one named busy function must show it first.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
