/**
 * Checks of the production Dockerfile by reading it (no Docker engine runs here):
 * what it copies from the context exists, what it copies from the build stage is
 * produced by the build, and its CMD is the compiled CLI's `serve`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../knative/specs.js';
import { SERVER_ENV, WITHOUT_HUGE_PAGES } from './bench/lib.js';

const root = repoRoot();
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const lines = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}

const copies: Copy[] = lines
  .filter((l) => /^COPY\s/i.test(l))
  .map((l) => {
    const words = l.split(/\s+/).slice(1);
    const flags = words.filter((w) => w.startsWith('--'));
    const args = words.filter((w) => !w.startsWith('--'));
    const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: args.slice(0, -1), dest: args[args.length - 1]! };
  });

/** Files the build stage's `npm run build` makes: tsc with tsconfig.build.json, rootDir ".", outDir "dist". */
function producedByBuild(path: string): boolean {
  const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
  return tsconfig.compilerOptions.outDir === 'dist' && tsconfig.compilerOptions.rootDir === '.' && (path === 'dist' || path.startsWith('dist/'));
}

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage on node:20-bookworm-slim', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(lines.filter((l) => /^FROM /.test(l)).map((l) => l.split(/\s+/).slice(1).join(' '))).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE} AS runtime']);
  });

  it('every path copied from the build context exists and is not excluded by .dockerignore', () => {
    const fromContext = copies.filter((c) => !c.from).flatMap((c) => c.sources);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const src of fromContext) {
      expect(existsSync(join(root, src)), `COPY ${src}: missing in the repository`).toBe(true);
      if (src !== '.') expect(ignored.some((pat) => src === pat || src.startsWith(pat + '/')), `COPY ${src}: excluded by .dockerignore`).toBe(false);
    }
    // The build needs these, and .dockerignore must not drop them.
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'cli/main.ts', 'native/build.mjs', 'native/binding.gyp'])
      expect(ignored.includes(needed), needed).toBe(false);
  });

  it('every path copied from the build stage is in the context or produced by the build', () => {
    const fromBuild = copies.filter((c) => c.from === 'build').flatMap((c) => c.sources);
    expect(fromBuild.length).toBeGreaterThanOrEqual(4);
    for (const src of fromBuild) {
      expect(src.startsWith('/app/'), src).toBe(true);
      const rel = src.slice('/app/'.length);
      const ok =
        producedByBuild(rel) ||
        rel === 'node_modules' || // npm ci + npm prune
        rel.startsWith('native/build/') || // node native/build.mjs --strict
        existsSync(join(root, rel));
      expect(ok, `COPY --from=build ${src}: neither in the repository nor produced by the build`).toBe(true);
    }
    const run = lines.filter((l) => l.startsWith('RUN ')).join('\n');
    expect(run).toContain('npm ci');
    // npm ci runs the root package's install hooks; they need files copied only later (COPY . .).
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    const hooks = ['preinstall', 'install', 'postinstall', 'prepare'].filter((h) => pkg.scripts?.[h]);
    const ci = lines.find((l) => l.startsWith('RUN npm ci'))!;
    const ciIndex = lines.indexOf(ci);
    const copiedAll = lines.indexOf('COPY . .');
    expect(copiedAll).toBeGreaterThan(ciIndex);
    if (hooks.length > 0) expect(ci, `package.json has ${hooks.join(', ')}`).toContain('--ignore-scripts');
    expect(run).toContain('npm run build');
    expect(run).toContain('node native/build.mjs --strict');
    expect(run).toContain('npm prune --omit=dev');
    expect(dockerfile).toMatch(/^ENV ONNXRUNTIME_NODE_INSTALL=skip$/m);
  });

  it('runs as a non-root user with PORT 8080, and CMD is the built CLI entry `serve` in exec form', () => {
    const runtime = lines.slice(lines.findIndex((l) => l.endsWith('AS runtime')));
    // Numeric, so a pod with runAsNonRoot can verify it (a name fails: "image has non-numeric user").
    expect(runtime).toContain('USER 1000:1000');
    expect(runtime.find((l) => l.startsWith('ENV '))).toMatch(/PORT=8080/);
    expect(runtime).toContain('EXPOSE 8080');
    const cmd = runtime.find((l) => l.startsWith('CMD '))!;
    expect(JSON.parse(cmd.slice(4))).toEqual(['node', 'dist/bundle/main.cjs', 'serve']);
    expect(runtime.some((l) => l.startsWith('ENTRYPOINT'))).toBe(false);
  });

  it('the CMD entry is what `npm run build` makes of cli/main.ts (tsc, then the bundle), the package bin and npm start agree, and it has a serve command', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json && node scripts/bundle.mjs');
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[]; exclude: string[] };
    expect(build.include).toContain('cli');
    expect(producedByBuild('dist/cli/main.js')).toBe(true);
    expect(existsSync(join(root, 'cli/main.ts'))).toBe(true);
    // The bundle (kinfer.cjs) is esbuild's of tsc's dist/cli/main.js; its entry (main.cjs) runs it with the code cache the build trained.
    const bundler = readFileSync(join(root, 'scripts/bundle.mjs'), 'utf8');
    expect(bundler).toContain("entryPoints: [join(root, 'dist', 'cli', 'main.js')]");
    expect(bundler).toContain("join(root, 'dist', 'cli', 'code-cache.cjs')");
    for (const f of ['main.cjs', 'kinfer.cjs', 'kinfer.cache']) expect(existsSync(join(root, 'dist', 'bundle', f)), f).toBe(true);
    expect(readFileSync(join(root, 'dist/bundle/main.cjs'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
    expect(pkg.bin.kinfer).toBe('dist/bundle/main.cjs');
    expect(pkg.scripts.start).toBe(`GLIBC_TUNABLES=\${GLIBC_TUNABLES-${SERVER_ENV.GLIBC_TUNABLES}} node dist/bundle/main.cjs serve`);
    expect(readFileSync(join(root, 'cli/main.ts'), 'utf8')).toMatch(/\.command\('serve'\)/);
  });

  it("sets the server's malloc environment (huge pages), the one the benchmarks give every ONNX Runtime process", () => {
    const runtime = lines.slice(lines.findIndex((l) => l.endsWith('AS runtime')));
    const env = runtime.filter((l) => l.startsWith('ENV ')).flatMap((l) => l.slice(4).trim().split(/\s+/));
    expect(env).toContain(`GLIBC_TUNABLES=${SERVER_ENV.GLIBC_TUNABLES}`);
  });

  // Real behaviour of the setting on this machine's kernel and glibc, not of the image (no Docker here).
  const thp = existsSync('/sys/kernel/mm/transparent_hugepage/enabled') ? readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8') : '[never]';
  const thpOn = /\[(madvise|always)\]/.test(thp);
  if (!thpOn) console.warn(`skipping the huge-page check: transparent huge pages are off here (${thp.trim()})`);
  it.skipIf(!thpOn)('with that environment, a process gets huge pages for a large malloc; with GLIBC_TUNABLES empty and THP madvise, none', () => {
    const script = "const b = Buffer.alloc(64 << 20); b.fill(1); process.stdout.write(/AnonHugePages:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8'))[1])";
    const hugeKb = (env: Record<string, string>) => Number(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 }));
    // 64 MiB calloc'd: glibc maps it and, with hugetlb=1, madvises it. Here all of it lands in 2 MiB pages;
    // a fragmented host may back less, so the check is that some does.
    expect(hugeKb(SERVER_ENV)).toBeGreaterThanOrEqual(2048);
    if (thp.includes('[madvise]')) expect(hugeKb(WITHOUT_HUGE_PAGES)).toBe(0);
  });
});
