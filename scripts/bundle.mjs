/**
 * Builds the CLI users run, `dist/bundle/` (after tsc, as `npm run build`):
 *
 * - `kinfer.cjs`: esbuild's one-file CommonJS bundle of `dist/cli/main.js`.
 * - `main.cjs`: the entry (tsc's `dist/cli/code-cache.cjs`), which compiles
 *   kinfer.cjs with V8's code cache and runs it.
 * - `kinfer.cache`: that code cache, written by a training run: the bundle
 *   serves the package's models (ocr-det's session on the event loop) on
 *   127.0.0.1 and answers a fixed set of requests, then exits.
 *
 * Why a bundle: Node 20 has no compile cache, and `kinfer serve` loaded ~350
 * files before it listened (zod alone is 99). Resolving, reading and compiling
 * them one by one was ~80 ms of a ~360 ms cold start on one core.
 * Why CommonJS and one file: a vm.Script can take a code cache in Node 20, an
 * ES module cannot. Against the ESM bundle with split chunks, the cached
 * bundle reached ready ~40 ms sooner (436 → 395 ms, median of 8 interleaved
 * spawns, ocr-det, one core). `import()` of kinfer's own modules becomes a lazy
 * init in the file, so the verbs `serve` never runs are not run at start.
 *
 * Only the packages the server needs before it is ready are bundled
 * (BUNDLED); every other package stays an external `require`/`import` that
 * Node resolves from node_modules at run time, exactly as in `dist/cli`.
 * Packages that load native code or read files beside their own sources
 * (the AWS and Google SDKs, @kubernetes/client-node, tar, …) therefore behave
 * as they always did, and stay lazy where they were lazy. onnxruntime-node is
 * the exception: its JavaScript is inlined, its native binding is not
 * (ortBindingPath).
 *
 * The bundle sits at the same depth as `dist/cli/`, so the paths the code
 * derives from `import.meta.url` (package root, native addon, functions/)
 * resolve the same from both.
 *
 * Usage: node scripts/bundle.mjs   (run by `npm run build` after tsc)
 */
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
  // Their JavaScript only; the native binding stays in node_modules (ortBindingPath).
  'onnxruntime-node',
  'onnxruntime-common',
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

/**
 * onnxruntime-node loads its native binding by a path relative to its own
 * dist/ folder (`require(`../bin/napi-vN/${platform}/${arch}/...node`)`),
 * which would point into dist/ once inlined. Rewritten to the same path under
 * the package's folder in node_modules, resolved at run time; the build fails
 * if the line is no longer there.
 */
const ortBindingPath = {
  name: 'ort-binding-path',
  setup(b) {
    b.onLoad({ filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const relative = /require\(`\.\.\/(bin\/[^`]*)`\)/;
      if (!relative.test(source)) throw new Error(`${args.path}: the require of the native binding changed; update ortBindingPath in scripts/bundle.mjs`);
      const contents = source.replace(relative, (_, rest) => `require(require.resolve('onnxruntime-node/package.json').slice(0, -'package.json'.length) + \`${rest}\`)`);
      return { contents, loader: 'js' };
    });
  },
};

/** Mode-selecting variables the training run must not inherit from the build's environment. */
const SERVE_ENV = ['MODEL_NAME', 'STORAGE_URI', 'MULTI_MODEL_SERVER', 'MODEL_REPOSITORY', 'KINFER_FUNCTION', 'KINFER_MODEL_CONFIG', 'PORT', 'HOST'];
const TRAIN_TIMEOUT_MS = 60_000;

/**
 * Runs the bundle as `kinfer serve` over a copy of the package's models/ with
 * KINFER_WRITE_CODE_CACHE=1, sends the requests a server answers in its first
 * seconds (probes, metadata, JSON and binary infer on echo and ocr-det, errors,
 * metrics), stops it with SIGTERM, and checks that it wrote the cache.
 */
async function trainCodeCache(entry, cacheFile) {
  const env = { ...process.env, KINFER_WRITE_CODE_CACHE: '1', LOG_LEVEL: 'info' };
  for (const k of SERVE_ENV) delete env[k];
  // ocr-det's session on the event loop, as on one CPU (Knative's usual limit), so the cache holds the
  // inlined onnxruntime-node; in a worker thread (more CPUs) it is required from node_modules anyway.
  const repo = await mkdtemp(join(tmpdir(), 'kinfer-train-'));
  await symlink(join(root, 'models', 'echo'), join(repo, 'echo'));
  await mkdir(join(repo, 'ocr-det'));
  await symlink(join(root, 'models', 'ocr-det', '1'), join(repo, 'ocr-det', '1'));
  const config = await readFile(join(root, 'models', 'ocr-det', 'config.pbtxt'), 'utf8');
  await writeFile(join(repo, 'ocr-det', 'config.pbtxt'), `${config}\nparameters { key: "session_thread" value: { string_value: "event_loop" } }\n`);
  const child = spawn(process.execPath, [entry, 'serve', '--model-repository', repo, '--port', '0', '--host', '127.0.0.1'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const timer = setTimeout(() => child.kill('SIGKILL'), TRAIN_TIMEOUT_MS);
  try {
    const url = await new Promise((resolve, reject) => {
      const onData = (d) => {
        output = (output + d).slice(-8000);
        const m = /"event":"listening","url":"([^"]+)"/.exec(output);
        if (m) resolve(m[1]);
      };
      child.stdout.setEncoding('utf8').on('data', onData);
      child.stderr.setEncoding('utf8').on('data', onData);
      exited.then((code) => reject(new Error(`exited ${code} before listening`)));
    });
    const deadline = Date.now() + TRAIN_TIMEOUT_MS;
    while ((await fetch(`${url}/v2/health/ready`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('not ready in time');
      await new Promise((r) => setTimeout(r, 20));
    }
    const x = new Float32Array(4).fill(0.5);
    const image = new Float32Array(3 * 32 * 32);
    const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const header = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: x.byteLength } }],
      outputs: [{ name: 'x', parameters: { binary_data: true } }],
    });
    const requests = [
      ['/v2/health/live', {}, 200],
      ['/v2', {}, 200],
      ['/v2/models/echo', {}, 200],
      ['/v2/models/echo/ready', {}, 200],
      ['/v2/models/ocr-det', {}, 200],
      ['/v2/models/echo/infer', json({ id: 'train', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [...x] }] }), 200],
      ['/v2/models/echo/infer', json({ inputs: [{ name: 's', datatype: 'BYTES', shape: [1], data: ['kinfer'] }] }), 200],
      [
        '/v2/models/echo/infer',
        {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(Buffer.byteLength(header)) },
          body: Buffer.concat([Buffer.from(header), Buffer.from(x.buffer)]),
        },
        200,
      ],
      ['/v2/models/ocr-det/infer', json({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 32, 32], data: [...image] }] }), 200],
      ['/v2/models/ocr-det/infer', json({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, 32, 32], data: [...image] }] }), 200],
      ['/v2/models/echo/infer', json({ inputs: 'x' }), 400],
      ['/v2/models/nope/infer', json({ inputs: [] }), 404],
      ['/v2/repository/index', json({}), 200],
      ['/metrics', {}, 200],
    ];
    for (const [path, init, want] of requests) {
      const res = await fetch(`${url}${path}`, init);
      const body = await res.text();
      if (res.status !== want) throw new Error(`${path} answered ${res.status}, not ${want}: ${body.slice(0, 300)}`);
    }
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`exited ${code} after SIGTERM`);
    await stat(cacheFile);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`bundle: the code-cache training run failed: ${err.message}\n${output}`);
  } finally {
    clearTimeout(timer);
    await rm(repo, { recursive: true, force: true });
  }
}

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
const result = await build({
  entryPoints: [join(root, 'dist', 'cli', 'main.js')],
  outfile: join(outdir, 'kinfer.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // CommonJS has no import.meta; the code reads only import.meta.url.
  define: { 'import.meta.url': '__kinferImportMetaUrl' },
  // ASCII only, so V8 holds the source as a one-byte string (half the memory, a faster read and scan).
  charset: 'ascii',
  banner: { js: "const __kinferImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [onlyServingPackages, ortBindingPath],
  logLevel: 'warning',
  // ortBindingPath leaves require.resolve('onnxruntime-node/package.json') for run time on purpose.
  logOverride: { 'require-resolve-not-external': 'silent' },
  metafile: true,
  write: false,
});
// The entry compiles the bundle inside the module wrapper, where a hashbang line is a syntax error.
// charset 'ascii' escapes strings and identifiers, but esbuild keeps comments and regular expression
// literals as written; \uXXXX means the same in both (a regex without the u flag matches code units).
const ascii = result.outputFiles[0].text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
await writeFile(join(outdir, 'kinfer.cjs'), ascii.replace(/^#!.*\n/, ''));
const entry = join(outdir, 'main.cjs');
await copyFile(join(root, 'dist', 'cli', 'code-cache.cjs'), entry);
await writeFile(entry, `#!/usr/bin/env node\n${await readFile(entry, 'utf8')}`);
await chmod(entry, 0o755);
const t0 = performance.now();
await trainCodeCache(entry, join(outdir, 'kinfer.cache'));
const inputs = Object.keys(result.metafile.inputs).length;
const cacheKiB = (await stat(join(outdir, 'kinfer.cache'))).size / 1024;
console.log(`bundle: ${inputs} modules → dist/bundle/kinfer.cjs; code cache ${cacheKiB.toFixed(0)} KiB from a ${(performance.now() - t0).toFixed(0)} ms training run`);
