/**
 * @module native/build
 * Builds native/build/Release/kinfer_native.node with node-gyp, incrementally:
 * configure once, then `make` rebuilds only what changed. Uses the local Node
 * headers (<prefix>/include/node) when they exist, so no download is needed.
 *
 *   node native/build.mjs            # build; on failure warn and exit 0 (npm install)
 *   node native/build.mjs --strict   # build; exit 1 on failure (make native, tests)
 *   node native/build.mjs --debug    # Debug build with -g (valgrind)
 *
 * The addon is optional at run time: without it the xmodel backend reports
 * what is missing and every other backend works.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const debug = process.argv.includes('--debug');
const buildDir = join(here, 'build');
const binary = join(buildDir, debug ? 'Debug' : 'Release', 'kinfer_native.node');

function newestSource() {
  let newest = statSync(join(here, 'binding.gyp')).mtimeMs;
  for (const f of readdirSync(join(here, 'src'))) newest = Math.max(newest, statSync(join(here, 'src', f)).mtimeMs);
  return newest;
}

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const require = createRequire(import.meta.url);
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // npm bundles node-gyp; find it beside the npm that runs this node.
  }
  const prefix = dirname(dirname(process.execPath));
  for (const p of [
    join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/share/nodejs/node-gyp/bin/node-gyp.js',
  ]) {
    if (existsSync(p)) return p;
  }
  return undefined;
}

function nodedirArgs() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** Serialises concurrent builds (parallel test files) with a mkdir lock, bounded in time. */
function withLock(fn) {
  mkdirSync(buildDir, { recursive: true });
  const lock = join(buildDir, '.build-lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function run(gyp, args) {
  const r = spawnSync(process.execPath, [gyp, ...args, ...nodedirArgs()], { cwd: here, stdio: 'inherit' });
  return r.status === 0;
}

function build() {
  if (existsSync(binary) && statSync(binary).mtimeMs >= newestSource()) return true;
  const gyp = nodeGyp();
  if (!gyp) {
    console.error('kinfer native: node-gyp not found (it ships with npm); cannot build the FPGA addon');
    return false;
  }
  return withLock(() => {
    if (existsSync(binary) && statSync(binary).mtimeMs >= newestSource()) return true;
    const mode = debug ? ['--debug'] : [];
    if (!existsSync(join(buildDir, 'Makefile')) || !existsSync(join(buildDir, 'config.gypi'))) {
      if (!run(gyp, ['configure', ...mode])) return false;
    }
    return run(gyp, ['build', ...mode, '--jobs=2']);
  });
}

const ok = build();
if (!ok) {
  console.error(
    `kinfer native: the FPGA addon did not build (needs g++, make, python3 and Node headers).\n` +
      `kinfer still runs; the xmodel backend will report the missing ${binary}. Retry with: npm run native`,
  );
  process.exit(strict ? 1 : 0);
}
