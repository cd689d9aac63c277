/**
 * Bundles the built CLI (`dist/cli/main.js`, tsc's output) into `dist/bundle/`
 * with esbuild: one ESM entry plus split chunks, so `import()` stays lazy.
 *
 * Why: Node 20 has no compile cache for ES modules, and `kinfer serve` loaded
 * ~350 files before it listened (zod alone is 99). Resolving, reading and
 * compiling them one by one was ~80 ms of a ~360 ms cold start on one core.
 *
 * Only the packages the server needs before it is ready are bundled
 * (BUNDLED); every other package stays an external `import`/`require` that
 * Node resolves from node_modules at run time, exactly as in `dist/cli`.
 * Packages that load native code or read files beside their own sources
 * (onnxruntime-node, the AWS and Google SDKs, @kubernetes/client-node, tar, …)
 * therefore behave as they always did, and stay lazy where they were lazy.
 *
 * The bundle sits at the same depth as `dist/cli/`, so the paths the code
 * derives from `import.meta.url` (package root, native addon, functions/)
 * resolve the same from both.
 *
 * Usage: node scripts/bundle.mjs   (run by `npm run build` after tsc)
 */
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');

/** Packages inlined into the bundle: what `kinfer serve` imports before it reports ready. */
const BUNDLED = new Set([
  'zod',
  'hono',
  '@hono/node-server',
  'prom-client',
  'bintrees',
  'tdigest',
  '@opentelemetry/api',
  'pino',
  'pino-std-serializers',
  '@pinojs/redact',
  'sonic-boom',
  'thread-stream',
  'atomic-sleep',
  'on-exit-leak-free',
  'quick-format-unescaped',
  'safe-stable-stringify',
  'process-warning',
  'commander',
]);

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`; relative and node: specifiers → undefined. */
function packageOf(specifier) {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const onlyServingPackages = {
  name: 'only-serving-packages',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      const pkg = packageOf(args.path);
      if (pkg === undefined || BUNDLED.has(pkg)) return undefined;
      return { path: args.path, external: true };
    });
  },
};

await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: join(root, 'dist', 'cli', 'main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS packages inside the bundle (prom-client, pino, commander) call require().
  banner: { js: "import { createRequire as __kinferCreateRequire } from 'node:module'; const require = __kinferCreateRequire(import.meta.url);" },
  plugins: [onlyServingPackages],
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`bundle: ${inputs} modules → ${Object.keys(result.metafile.outputs).length} files in dist/bundle/`);
