/**
 * @module native
 * Loads `kinfer_native.node` (built by `npm install` / `npm run native`). When
 * the binary is missing or cannot load, `loadNative()` says so in one message
 * and nothing else in kinfer is affected: only the xmodel backend needs it.
 *
 * @example
 * const native = loadNative();
 * if (!native.ok) console.warn(native.error);
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Datatype } from '../runtime/core/datatypes.js';

/** A runner tensor; shape[0] is the runner's batch size. */
export interface NativeTensorInfo {
  name: string;
  datatype: Datatype;
  shape: number[];
  byteSize: number;
  fixPoint: number;
}

export interface NativeDeviceEntry {
  /** XRT index, -1 when XRT does not list the device (only sysfs sees it). */
  index: number;
  /** PCI address, e.g. 0000:3b:00.1 ("" when only XRT sees it). */
  bdf: string;
  vendorId: string;
  deviceId: string;
  subsystemId: string;
  /** Bound kernel driver: xocl (user PF), xclmgmt (management PF), or "". */
  driver: string;
  /** Shell (VBNV) the driver exposes, "" when unknown. */
  shell: string;
  /** XRT's name when known, else the shell, else xilinx_fpga_<device id>. */
  name: string;
  numaNode: number;
  /** Seen in sysfs / listed by XRT. */
  sysfs: boolean;
  xrt: boolean;
}

export interface NativeEnumeration {
  devices: NativeDeviceEntry[];
  sysfsDir: string;
  /** -1 when XRT did not load (then xrtError says why). */
  xrtCount: number;
  xrtError?: string;
}

export interface NativeRunner {
  readonly inputs: NativeTensorInfo[];
  readonly outputs: NativeTensorInfo[];
  /** Runs one full batch in place: the arrays are read and written by the vendor runtime directly. */
  run(inputs: ArrayBufferView[], outputs: ArrayBufferView[]): Promise<void>;
  close(): Promise<void>;
}

export interface NativeDeviceInfo {
  open: boolean;
  bdf?: string;
  index?: number;
  lockPath?: string;
  xclbin?: string;
  xrtLibrary?: string;
}

export interface NativeDevice {
  info(): NativeDeviceInfo;
  createRunner(xmodelPath: string): Promise<NativeRunner>;
  close(): Promise<void>;
}

export interface NativeCounters {
  devicesOpen: number;
  runnersAlive: number;
  queued: number;
  running: number;
  openDevices: string[];
}

export interface NativeAddon {
  enumerate(): NativeEnumeration;
  enumerateAsync(): Promise<NativeEnumeration>;
  openDevice(selector: string, xclbin: string): Promise<NativeDevice>;
  counters(): NativeCounters;
  abiVersion: number;
}

export type NativeLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; error: string };

const here = dirname(fileURLToPath(import.meta.url));
const BINARY = join('build', 'Release', 'kinfer_native.node');

/** Where the binary may be: KINFER_NATIVE_ADDON, beside this file, or (from dist/native) in the source tree. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.KINFER_NATIVE_ADDON) return [resolve(env.KINFER_NATIVE_ADDON)];
  return [join(here, BINARY), resolve(here, '..', '..', 'native', BINARY)];
}

let cached: NativeLoad | undefined;

/** Loads the addon once per process; never throws. */
export function loadNative(): NativeLoad {
  cached ??= load();
  return cached;
}

function load(): NativeLoad {
  const candidates = addonCandidates();
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    return {
      ok: false,
      error:
        `kinfer native addon not available: ${candidates[0]} not found; ` +
        `build it with "npm run native" (node-gyp with g++, make, python3 and Node headers)`,
    };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    return { ok: true, addon, path };
  } catch (err) {
    return { ok: false, error: `kinfer native addon at ${path} failed to load: ${(err as Error).message}` };
  }
}
