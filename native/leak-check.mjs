/**
 * @module native/leak-check
 * Drives the addon through repeated open/run/close cycles and every error
 * path, against the fake vendor libraries (no FPGA hardware runs), then checks
 * that the native counters are back to zero. Run it under valgrind with
 * `make -f native/native.mk native-leak`; alone, it is a quick smoke check.
 *
 *   node --expose-gc native/leak-check.mjs [cycles=200]
 * Env: KINFER_NATIVE_ADDON (default native/build/Release/kinfer_native.node).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cycles = Math.min(Number(process.argv[2] ?? 200) || 200, 100_000);
const vendor = JSON.parse(execFileSync(process.execPath, [join(here, 'fake-vendor', 'build.mjs')], { encoding: 'utf8' }).trim().split('\n').pop());
const addonPath = process.env.KINFER_NATIVE_ADDON ?? join(here, 'build', 'Release', 'kinfer_native.node');
const addon = createRequire(import.meta.url)(addonPath);

const tmp = mkdtempSync(join(tmpdir(), 'kinfer-leak-'));
const bdf = '0000:3b:00.1';
const dev = join(tmp, 'sys', 'bus', 'pci', 'devices', bdf);
mkdirSync(dev, { recursive: true });
writeFileSync(join(dev, 'vendor'), '0x10ee\n');
writeFileSync(join(dev, 'device'), '0x5005\n');
symlinkSync('../../../bus/pci/drivers/xocl', join(dev, 'driver'));
const model = join(tmp, 'm.xmodel');
writeFileSync(model, 'kinfer-fake-xmodel 1\nbatch 2\ninput x INT8 8\noutput y INT8 8\noutput s FP32 1\nscale 2\nbias 1\n');
const failing = join(tmp, 'f.xmodel');
writeFileSync(failing, 'kinfer-fake-xmodel 1\nbatch 1\ninput x FP32 4\noutput y FP32 4\nfail_run 1\n');
const notModel = join(tmp, 'n.xmodel');
writeFileSync(notModel, 'protobuf bytes');
const good = { KINFER_XRT_LIB: vendor.xrt, KINFER_VART_LIB: vendor.vart };
Object.assign(process.env, good, { KINFER_SYSFS_ROOT: join(tmp, 'sys'), KINFER_LOCK_DIR: join(tmp, 'lock'), FAKE_XRT_DEVICES: '1' });

async function expectCode(promise, code) {
  try {
    await promise;
  } catch (e) {
    if (e.code !== `KINFER_${code}`) throw new Error(`expected KINFER_${code}, got ${e.code}: ${e.message}`);
    return;
  }
  throw new Error(`expected KINFER_${code}, got success`);
}

for (let i = 0; i < cycles; i++) {
  addon.enumerate();
  await addon.enumerateAsync();
  const d = await addon.openDevice('', '');
  const r = await d.createRunner(model);
  const out = new Int8Array(16);
  const sums = new Float32Array(2);
  for (let k = 0; k < 3; k++) await r.run([new Int8Array(16).fill(k)], [out, sums]);
  if (out[0] !== 5 || sums[1] !== 16) throw new Error(`wrong result ${out[0]} ${sums[1]}`);
  await expectCode(r.run([new Int8Array(3)], [out, sums]), 'INVALID');
  await expectCode(r.run([new Int8Array(new SharedArrayBuffer(16))], [out, sums]), 'INVALID');
  await expectCode(addon.openDevice(bdf, '/nonexistent.xclbin'), 'BUSY'); // held without an xclbin: no load under its runners
  const f = await d.createRunner(failing);
  await expectCode(f.run([new Float32Array(4)], [new Float32Array(4)]), 'RUN_FAILED');
  await expectCode(d.createRunner(notModel), 'RUNNER_FAILED');
  await Promise.all([f.close(), r.close(), d.close()]);
  await expectCode(addon.openDevice(bdf, '/nonexistent.xclbin'), 'XCLBIN_FAILED'); // opened, locked, load failed, released
  await expectCode(addon.openDevice('7', ''), 'NO_DEVICE');
  Object.assign(process.env, { KINFER_XRT_LIB: join(tmp, 'libnone.so') });
  await expectCode(addon.openDevice('', ''), 'LIB_MISSING');
  Object.assign(process.env, { KINFER_XRT_LIB: vendor.xrtNoSymbol });
  await expectCode(addon.openDevice('', ''), 'SYMBOL_MISSING');
  Object.assign(process.env, good, { KINFER_VART_LIB: vendor.vartNoSymbol });
  const d2 = await addon.openDevice('', '');
  await expectCode(d2.createRunner(model), 'SYMBOL_MISSING');
  await d2.close();
  Object.assign(process.env, good);
  if (i % 50 === 0) globalThis.gc?.();
}
globalThis.gc?.();
const c = addon.counters();
rmSync(tmp, { recursive: true, force: true });
if (c.devicesOpen !== 0 || c.runnersAlive !== 0 || c.queued !== 0 || c.running !== 0) {
  console.error(`leak-check: native objects left after ${cycles} cycles: ${JSON.stringify(c)}`);
  process.exit(1);
}
console.log(`leak-check: ${cycles} cycles of open/run/close and every error path; counters back to zero (no FPGA hardware ran)`);
