/**
 * Builds `dist/` once before any test file runs (tsc, then the esbuild bundle
 * in `dist/bundle/`, as `npm run build` does), so tests that spawn the
 * `kinfer` binary run what users run. Skipped with KINFER_TEST_SKIP_BUILD=1
 * when dist/ is known fresh.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  if (process.env.KINFER_TEST_SKIP_BUILD === '1') return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  execFileSync(process.execPath, [`${root}scripts/bundle.mjs`], { cwd: root, stdio: 'inherit' });
}
