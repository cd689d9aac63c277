/**
 * @module native/testing
 * Test support for the FPGA path, which no test here runs on hardware: builds
 * the addon and the fake vendor libraries (same dlopen path as real XRT/VART),
 * writes fake sysfs PCI trees and fake xmodel files, and sets the env that
 * points the addon at them.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonCandidates } from './index.js';

export const NO_HARDWARE = 'no FPGA hardware ran: fake XRT/VART libraries built from native/fake-vendor';

const here = dirname(fileURLToPath(import.meta.url));

export interface FakeVendor {
  xrt: string;
  /** Lacks xrtDeviceLoadXclbinFile. */
  xrtNoSymbol: string;
  /** Lacks xclProbe: no XRT device list, devices opened by BDF only. */
  xrtNoProbe: string;
  vart: string;
  /** Lacks kinfer_vart_runner_run. */
  vartNoSymbol: string;
}

/** Builds the addon (incremental; throws with the compiler output on failure). */
export function ensureAddon(): string {
  const r = spawnSync(process.execPath, [join(here, 'build.mjs'), '--strict'], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`native addon build failed:\n${r.stdout}\n${r.stderr}`);
  return addonCandidates()[0]!;
}

/** Compiles the fake vendor libraries from native/fake-vendor/*.c (incremental). */
export function buildFakeVendor(): FakeVendor {
  const r = spawnSync(process.execPath, [join(here, 'fake-vendor', 'build.mjs')], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`fake vendor build failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as FakeVendor;
}

export interface FakePciDevice {
  bdf: string;
  vendor?: string;
  device?: string;
  driver?: string;
  shell?: string;
}

/** Writes `<root>/bus/pci/devices/<bdf>/{vendor,device,subsystem_device,numa_node,driver,rom.0/VBNV}`. */
export function makeFakeSysfs(root: string, devices: FakePciDevice[]): string {
  const dir = join(root, 'bus', 'pci', 'devices');
  mkdirSync(dir, { recursive: true });
  for (const d of devices) {
    const dev = join(dir, d.bdf);
    mkdirSync(dev, { recursive: true });
    writeFileSync(join(dev, 'vendor'), `${d.vendor ?? '0x10ee'}\n`);
    writeFileSync(join(dev, 'device'), `${d.device ?? '0x5005'}\n`);
    writeFileSync(join(dev, 'subsystem_device'), '0x000e\n');
    writeFileSync(join(dev, 'numa_node'), '0\n');
    if (d.driver) symlinkSync(`../../../bus/pci/drivers/${d.driver}`, join(dev, 'driver'));
    if (d.shell) {
      mkdirSync(join(dev, 'rom.0'));
      writeFileSync(join(dev, 'rom.0', 'VBNV'), `${d.shell}\n`);
    }
  }
  return root;
}

export interface FakeTensor {
  name: string;
  datatype: 'INT8' | 'FP32';
  /** bigint for dims past 2^53 (the fake reads them as C longs). */
  dims: Array<number | bigint>;
}

export interface FakeXmodel {
  batch: number;
  input: FakeTensor;
  outputs: FakeTensor[];
  scale?: number;
  bias?: number;
  sleepMs?: number;
  failRun?: boolean;
  /** A run fails when its first input element is this. */
  failValue?: number;
  /** Each run appends one byte to this file. */
  countFile?: string;
}

/** Writes a kinfer-fake-xmodel file (see fake-vendor/fake_vart.c for what it computes). */
export function writeFakeXmodel(path: string, m: FakeXmodel): string {
  const t = (kind: string, x: FakeTensor) => `${kind} ${x.name} ${x.datatype} ${x.dims.join(' ')}`;
  const lines = [
    'kinfer-fake-xmodel 1',
    `batch ${m.batch}`,
    t('input', m.input),
    ...m.outputs.map((o) => t('output', o)),
    `scale ${m.scale ?? 1}`,
    `bias ${m.bias ?? 0}`,
    `sleep_ms ${m.sleepMs ?? 0}`,
    `fail_run ${m.failRun ? 1 : 0}`,
    ...(m.failValue === undefined ? [] : [`fail_value ${m.failValue}`]),
    ...(m.countFile === undefined ? [] : [`count_file ${m.countFile}`]),
  ];
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** The user PF XRT lists as device 0 in `fakeVendorEnv`. */
export const USER_PF = '0000:3b:00.1';
/** The user PF XRT lists as device 1 in `fakeVendorEnv`. */
export const SECOND_PF = '0000:5e:00.1';
/** A real U250 shell name, for fake sysfs entries. */
export const SHELL = 'xilinx_u250_gen3x16_xdma_shell_4_1';

/**
 * The env (for `withEnv`) that points the addon at the fake vendor libraries,
 * the fake sysfs at `<tmp>/sys` and locks under `<tmp>/lock`, with fake XRT
 * listing USER_PF and SECOND_PF. `extra` adds or overrides (undefined deletes).
 */
export function fakeVendorEnv(vendor: FakeVendor, tmp: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    KINFER_XRT_LIB: vendor.xrt,
    KINFER_VART_LIB: vendor.vart,
    KINFER_SYSFS_ROOT: join(tmp, 'sys'),
    KINFER_LOCK_DIR: join(tmp, 'lock'),
    FAKE_XRT_DEVICES: '2',
    FAKE_XRT_BDFS: `${USER_PF},${SECOND_PF}`,
    ...extra,
  };
}

/** Sets env vars (undefined deletes); returns a function that restores the previous values. */
export function withEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  return () => apply(saved);
}

/**
 * Starts another Node process that opens `selector` through the addon and
 * holds it until killed. Resolves once it reports "locked" (bounded: 15 s).
 * `wrap` is a command the child runs under (e.g. setpriv ... --).
 */
export async function holdDeviceInChild(
  addonPath: string,
  selector: string,
  env: NodeJS.ProcessEnv,
  wrap: string[] = [],
): Promise<ChildProcessWithoutNullStreams> {
  const script = `
    const addon = require(${JSON.stringify(addonPath)});
    addon.openDevice(${JSON.stringify(selector)}, '').then(
      (d) => { globalThis.held = d; process.stdout.write('locked ' + d.info().lockPath + '\\n'); setInterval(() => {}, 1000); },
      (e) => { process.stdout.write('error ' + e.code + ' ' + e.message + '\\n'); process.exit(1); });`;
  const argv = [...wrap, process.execPath, '-e', script];
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: 'pipe' });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`child did not lock within 15 s: ${out}`)), 15_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('locked')) {
        clearTimeout(timer);
        resolve();
      } else if (out.includes('error')) {
        clearTimeout(timer);
        reject(new Error(`child failed: ${out}`));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!out.includes('locked')) reject(new Error(`child exited ${code}: ${out}`));
    });
  });
  return child;
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a CommonJS `script` in a fresh Node process and resolves when it ends
 * (killed after 30 s): for checks whose failure mode is a crash (a signal or
 * exit 134) that must not take the test process with it.
 */
export async function runNodeScript(script: string, env: NodeJS.ProcessEnv): Promise<ScriptResult> {
  const child = spawn(process.execPath, ['-e', script], { env, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

/**
 * A command prefix under which a child process cannot write files it may only
 * read: none for an ordinary user; as root, setpriv dropping CAP_DAC_OVERRIDE
 * (undefined when setpriv cannot, and the caller should skip).
 */
export function withoutWriteOverride(): string[] | undefined {
  if (process.getuid?.() !== 0) return [];
  const wrap = ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--'];
  const r = spawnSync(wrap[0]!, [...wrap.slice(1), process.execPath, '-e', '0'], { stdio: 'ignore' });
  return r.status === 0 ? wrap : undefined;
}

/** Kills a child and waits until it is gone (bounded: 10 s). */
export async function killChild(child: ChildProcessWithoutNullStreams, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
