/**
 * @module native/device
 * The typed front of the FPGA addon: validates arguments in TS (one
 * `invalidArgument` helper), keeps the caller's stack across the async call,
 * and maps native error codes to KinferError classes.
 *
 * @example
 * const device = await openDevice({ device: '0000:3b:00.1' });
 * const runner = await device.createRunner('/mnt/models/resnet/1/model.xmodel');
 * await runner.run([input], [output]); // full batches of runner.batchSize rows
 * await runner.close();
 * await device.close();
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  Internal,
  InvalidArgument,
  KinferError,
  Unavailable,
  invalidArgument,
} from '../runtime/core/errors.js';
import type { Datatype, NumericArray } from '../runtime/core/datatypes.js';
import {
  loadNative,
  type NativeAddon,
  type NativeCounters,
  type NativeDevice,
  type NativeDeviceEntry,
  type NativeEnumeration,
  type NativeDeviceInfo,
  type NativeRunner,
  type NativeTensorInfo,
} from './index.js';

export type DeviceSource = 'sysfs' | 'xrt';

/** The addon's entry with its `sysfs`/`xrt` flags as a list of sources. */
export interface DeviceInfo extends Omit<NativeDeviceEntry, 'sysfs' | 'xrt'> {
  sources: DeviceSource[];
}

export interface Enumeration {
  devices: DeviceInfo[];
  sysfsDir: string;
  xrt: { count: number | null; error?: string };
  /** Set when the addon itself is missing: the list is then empty. */
  addonError?: string;
}

export interface RunnerTensor {
  name: string;
  datatype: Datatype;
  /** Shape without the batch dim. */
  shape: number[];
  /** Elements per batch row. */
  rowElements: number;
  /** Bytes of one full runner batch. */
  byteSize: number;
}

const errorCounts = new Map<string, number>();

/** Native failures seen by this process, by code (BUSY, NO_DEVICE, LIB_MISSING, ...), for /metrics. */
export function nativeErrorCounts(): ReadonlyMap<string, number> {
  return errorCounts;
}

/** Live native objects and queued/running work (sharp-style counters). */
export function nativeCounters(): NativeCounters | undefined {
  const n = loadNative();
  return n.ok ? n.addon.counters() : undefined;
}

function addon(): NativeAddon {
  const n = loadNative();
  if (!n.ok) {
    count('ADDON_MISSING');
    throw new Unavailable(n.error);
  }
  return n.addon;
}

function count(code: string): void {
  errorCounts.set(code, (errorCounts.get(code) ?? 0) + 1);
}

/** Maps a native rejection to a KinferError whose stack is the caller's (`trace`). */
export function mapNativeError(err: unknown, trace: Error): KinferError {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : '';
  const message = err instanceof Error ? err.message : String(err);
  const short = code.startsWith('KINFER_') ? code.slice(7) : 'INTERNAL';
  count(short);
  let mapped: KinferError;
  switch (short) {
    case 'INVALID':
      mapped = new InvalidArgument(message);
      break;
    case 'BUSY':
      mapped = new Unavailable(message, 5);
      break;
    case 'LIB_MISSING':
    case 'SYMBOL_MISSING':
    case 'NO_DEVICE':
    case 'LOCK_FAILED':
    case 'OPEN_FAILED':
    case 'XCLBIN_FAILED':
    case 'RUNNER_FAILED':
      mapped = new Unavailable(message);
      break;
    default:
      mapped = new Internal(message);
  }
  Object.defineProperty(mapped, 'nativeCode', { value: short, enumerable: false });
  mapped.stack = `${mapped.name}: ${mapped.message}\n${(trace.stack ?? '').split('\n').slice(1).join('\n')}`;
  return mapped;
}

/** The native code ("BUSY", "RUN_FAILED", ...) behind a mapped error, if any. */
export function nativeCodeOf(err: unknown): string | undefined {
  return (err as { nativeCode?: string } | undefined)?.nativeCode;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  const trace = new Error();
  try {
    return await fn();
  } catch (err) {
    throw err instanceof KinferError ? err : mapNativeError(err, trace);
  }
}

function toInfo(e: NativeDeviceEntry): DeviceInfo {
  const sources: DeviceSource[] = [];
  if (e.sysfs) sources.push('sysfs');
  if (e.xrt) sources.push('xrt');
  return {
    index: e.index,
    bdf: e.bdf,
    vendorId: e.vendorId,
    deviceId: e.deviceId,
    subsystemId: e.subsystemId,
    driver: e.driver,
    shell: e.shell,
    name: e.name,
    numaNode: e.numaNode,
    sources,
  };
}

function toEnumeration(raw: NativeEnumeration): Enumeration {
  return {
    devices: raw.devices.map(toInfo),
    sysfsDir: raw.sysfsDir,
    xrt: raw.xrtCount >= 0 ? { count: raw.xrtCount } : { count: null, ...(raw.xrtError ? { error: raw.xrtError } : {}) },
  };
}

/**
 * Xilinx/AMD FPGAs on this node (sysfs PCI vendor 0x10ee, and XRT's list when
 * XRT loads). Never throws: no device, no XRT or no addon give an empty list,
 * with the reason in `xrt.error` / `addonError`.
 */
export function enumerateDevices(): Enumeration {
  const n = loadNative();
  if (!n.ok) return { devices: [], sysfsDir: '', xrt: { count: null }, addonError: n.error };
  return toEnumeration(n.addon.enumerate());
}

/** As `enumerateDevices`, off the JS thread. */
export async function enumerateDevicesAsync(): Promise<Enumeration> {
  const n = loadNative();
  if (!n.ok) return { devices: [], sysfsDir: '', xrt: { count: null }, addonError: n.error };
  return toEnumeration(await n.addon.enumerateAsync());
}

const BDF = /^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;

export interface OpenOptions {
  /** XRT index or PCI BDF; omitted: the first device no other process holds. */
  device?: string | number;
  /** xclbin to load on the device after opening. */
  xclbin?: string;
}

/**
 * Opens and exclusively locks an FPGA for this process (an flock under
 * KINFER_LOCK_DIR, default /var/lock, released on close or process death).
 * Opening the same device again in this process shares it.
 * Rejects with Unavailable naming what is missing (library, symbol, device) or
 * who holds the device.
 */
export async function openDevice(options: OpenOptions = {}): Promise<FpgaDevice> {
  let selector = '';
  const d = options.device;
  if (typeof d === 'number') {
    if (!Number.isSafeInteger(d) || d < 0) throw invalidArgument('device', 'an XRT index (integer ≥ 0) or a PCI BDF', d);
    selector = String(d);
  } else if (typeof d === 'string' && d !== '') {
    if (!/^\d{1,8}$/.test(d) && !BDF.test(d)) throw invalidArgument('device', 'an XRT index or a PCI BDF like 0000:3b:00.1', d);
    selector = d;
  } else if (d !== undefined && d !== '') {
    throw invalidArgument('device', 'an XRT index or a PCI BDF', d);
  }
  if (options.xclbin !== undefined && (typeof options.xclbin !== 'string' || options.xclbin === '')) {
    throw invalidArgument('xclbin', 'a file path', options.xclbin);
  }
  const native = addon();
  if (options.xclbin !== undefined) await checkXclbin(options.xclbin);
  const handle = await call(() => native.openDevice(selector, options.xclbin ?? ''));
  return new FpgaDevice(handle);
}

/** axlf's magic, the first 8 bytes of every xclbin. */
const XCLBIN_MAGIC = Buffer.from('xclbin2\0', 'latin1');

/**
 * An xclbin must be a readable file starting with the axlf magic: checked
 * here, so that a wrong path is a 400 naming it rather than XRT's error code.
 */
async function checkXclbin(path: string): Promise<void> {
  let head: Buffer;
  try {
    // Non-blocking: a FIFO in its place must not hold a libuv thread.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!(await file.stat()).isFile()) throw new InvalidArgument(`xclbin ${path}: not a regular file`);
      head = Buffer.alloc(XCLBIN_MAGIC.length);
      head = head.subarray(0, (await file.read(head, 0, head.length, 0)).bytesRead);
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof KinferError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InvalidArgument(`xclbin ${path}: ${code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : `cannot read it (${code ?? (err as Error).message})`}`);
  }
  if (!head.equals(XCLBIN_MAGIC)) throw new InvalidArgument(`xclbin ${path}: not an xclbin (bad magic)`);
}

export class FpgaDevice {
  #handle: NativeDevice;
  #closed = false;

  constructor(handle: NativeDevice) {
    this.#handle = handle;
  }

  get info(): NativeDeviceInfo {
    return this.#handle.info();
  }

  /** Deserialises the .xmodel and creates a VART runner for its DPU subgraph on this device. */
  async createRunner(xmodelPath: string): Promise<XRunner> {
    if (typeof xmodelPath !== 'string' || xmodelPath === '') throw invalidArgument('xmodel', 'a file path', xmodelPath);
    if (this.#closed) throw new Unavailable('FPGA device is closed');
    const handle = await call(() => this.#handle.createRunner(xmodelPath));
    return new XRunner(handle);
  }

  /** Releases this hold; the device closes and unlocks when no runner holds it either. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await call(() => this.#handle.close());
  }
}

function runnerTensor(t: NativeTensorInfo): RunnerTensor {
  const shape = t.shape.slice(1);
  return { name: t.name, datatype: t.datatype, shape, rowElements: shape.reduce((a, b) => a * b, 1), byteSize: t.byteSize };
}

export class XRunner {
  readonly inputs: RunnerTensor[];
  readonly outputs: RunnerTensor[];
  /** Rows per run: dim 0 of the runner's tensors. */
  readonly batchSize: number;
  #handle: NativeRunner;
  #closed = false;

  constructor(handle: NativeRunner) {
    this.#handle = handle;
    this.inputs = handle.inputs.map(runnerTensor);
    this.outputs = handle.outputs.map(runnerTensor);
    this.batchSize = handle.inputs[0]?.shape[0] ?? 1;
  }

  /**
   * Runs one full batch, off the JS thread. `inputs`/`outputs` follow the
   * runner's tensor order, each exactly one batch (`byteSize` bytes); outputs
   * are written in place. The caller must not touch the arrays until it settles.
   */
  async run(inputs: NumericArray[], outputs: NumericArray[]): Promise<void> {
    if (this.#closed) throw new Unavailable('runner is closed');
    check('inputs', inputs, this.inputs);
    check('outputs', outputs, this.outputs);
    await call(() => this.#handle.run(inputs, outputs));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await call(() => this.#handle.close());
  }
}

function check(role: string, arrays: unknown, specs: RunnerTensor[]): void {
  if (!Array.isArray(arrays) || arrays.length !== specs.length) {
    throw invalidArgument(role, `an array of ${specs.length} typed arrays`, arrays);
  }
  specs.forEach((s, i) => {
    const a: unknown = arrays[i];
    if (!ArrayBuffer.isView(a) || a instanceof DataView) throw invalidArgument(`${role}[${i}] '${s.name}'`, 'a typed array', a);
    if (a.byteLength !== s.byteSize) throw invalidArgument(`${role}[${i}] '${s.name}' byte length`, String(s.byteSize), a.byteLength);
  });
}
