/**
 * @module native/fake-vendor/build
 * Compiles the fake vendor libraries from this folder's C sources into
 * native/build/fake-vendor/ (rebuilt only when a source is newer; written to
 * a temp name and renamed, so parallel test files never see half a library).
 * Prints the JSON map { xrt, xrtNoSymbol, xrtNoProbe, vart, vartNoSymbol } of paths.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'build', 'fake-vendor');
const header = join(here, '..', 'src', 'vendor.h');

const libs = {
  xrt: ['fake_xrt.c', 'libfake_xrt.so', []],
  xrtNoSymbol: ['fake_xrt.c', 'libfake_xrt_nosym.so', ['-DFAKE_OMIT_LOAD_XCLBIN']],
  xrtNoProbe: ['fake_xrt.c', 'libfake_xrt_noprobe.so', ['-DFAKE_OMIT_PROBE']],
  vart: ['fake_vart.c', 'libfake_vart.so', []],
  vartNoSymbol: ['fake_vart.c', 'libfake_vart_nosym.so', ['-DFAKE_OMIT_RUN']],
};

mkdirSync(out, { recursive: true });
const paths = {};
for (const [key, [src, lib, flags]] of Object.entries(libs)) {
  const target = join(out, lib);
  paths[key] = target;
  const newest = Math.max(statSync(join(here, src)).mtimeMs, statSync(header).mtimeMs);
  if (existsSync(target) && statSync(target).mtimeMs >= newest) continue;
  const tmp = `${target}.${process.pid}.tmp`;
  const cc = process.env.CC || 'gcc';
  const r = spawnSync(cc, ['-shared', '-fPIC', '-g', '-O1', '-Wall', '-Wextra', '-Werror', ...flags, '-o', tmp, join(here, src)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) {
    console.error(`fake vendor: ${cc} failed to build ${lib}`);
    process.exit(1);
  }
  renameSync(tmp, target);
}
console.log(JSON.stringify(paths));
