/**
 * @module backends/xmodel
 * `XModelBackend`: runs a Vitis AI `.xmodel` on a Xilinx FPGA through the
 * native addon (`native/`). Load opens and locks a device, creates `threads`
 * VART runners (the original server's `threads` load parameter), and reads the
 * metadata from the runner. A batch is cut into runner-sized chunks (the last
 * one zero-padded) that run in parallel, one per runner, off the JS thread;
 * outputs are written by the runtime straight into the result arrays.
 *
 * Load parameters (config `parameters`): `threads` (1-64, default 1),
 * `device` (XRT index or PCI BDF; default the first device no other process
 * holds), `xclbin` (path; default env XLNX_VART_FIRMWARE when set).
 *
 * Also the device view for `POST /v2/hardware` (`listDevices`, `hasHardware`)
 * and `/metrics` (`registerXModelMetrics`).
 *
 * @example
 * const backend = new XModelBackend();
 * const meta = await backend.load({ name: 'xmodel-resnet', version: '1', dir, config });
 * const [out] = await backend.infer([input], []);
 * await backend.unload();
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { allocate, type NumericArray } from '../core/datatypes.js';
import { Internal, InvalidArgument, KinferError, NotReady, invalidArgument } from '../core/errors.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';
import type { Backend, ModelFiles, ModelMetadata } from './backend.js';
import {
  enumerateDevices,
  nativeCounters,
  nativeErrorCounts,
  openDevice,
  type DeviceInfo,
  type FpgaDevice,
  type RunnerTensor,
  type XRunner,
} from '../../native/device.js';
import { loadNative } from '../../native/index.js';

export type { DeviceInfo } from '../../native/device.js';

export const XMODEL_PLATFORM = 'vitis_xmodel';
const MAX_THREADS = 64;
/** Consecutive failed runs after which the model reports itself not ready. */
const UNHEALTHY_AFTER = 3;

export interface XModelHealth {
  ready: boolean;
  /** BDF (or XRT index) of the device this model holds. */
  device?: string;
  lastError?: string;
}

export class XModelBackend implements Backend {
  #name = '';
  #device: FpgaDevice | undefined;
  #runners: XRunner[] = [];
  #failures = 0;
  #lastError: string | undefined;

  async load(files: ModelFiles): Promise<ModelMetadata> {
    if (this.#device) throw new Internal(`model '${files.name}': XModel backend instance is already loaded`);
    this.#name = files.name;
    const params = files.config.parameters;
    const threads = parseThreads(params.threads);
    const xmodel = await findXmodel(files);
    const xclbin = params.xclbin || process.env.XLNX_VART_FIRMWARE || undefined;
    const device = await openDevice({ device: params.device || undefined, xclbin }).catch((err: unknown) => {
      throw prefixed(files.name, err);
    });
    const runners: XRunner[] = [];
    try {
      for (let i = 0; i < threads; i++) runners.push(await device.createRunner(xmodel));
      const meta = metadataOf(runners[0]!, threads);
      checkConfig(files, meta);
      this.#device = device;
      this.#runners = runners;
      this.#failures = 0;
      this.#lastError = undefined;
      return meta;
    } catch (err) {
      await Promise.allSettled(runners.map((r) => r.close()));
      await device.close().catch(() => undefined);
      throw prefixed(files.name, err);
    }
  }

  async infer(inputs: Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    const runners = this.#runners;
    const first = runners[0];
    if (!first) throw new NotReady(`model '${this.#name}' is not loaded`);
    const ordered = first.inputs.map((spec) => {
      const t = inputs.find((i) => i.name === spec.name);
      if (!t) throw new InvalidArgument(`model '${this.#name}': missing input '${spec.name}'`);
      return t;
    });
    const rows = ordered[0]!.shape[0] ?? 0;
    ordered.forEach((t, i) => checkInput(this.#name, t, first.inputs[i]!, rows));
    const wanted = outputIndices(this.#name, first.outputs, outputNames);

    const batch = first.batchSize;
    const chunks = Math.ceil(rows / batch);
    // Results are allocated whole-chunk sized so each chunk's output is a view: no copy after the run.
    const outputs = first.outputs.map((o) => allocate(o.datatype as Exclude<typeof o.datatype, 'BYTES'>, chunks * batch * o.rowElements));
    const chunkInputs = (c: number): NumericArray[] =>
      ordered.map((t, i) => {
        const row = first.inputs[i]!.rowElements;
        const data = t.data as NumericArray;
        if ((c + 1) * batch <= rows) return data.subarray(c * batch * row, (c + 1) * batch * row) as NumericArray;
        const padded = allocate(t.datatype as Exclude<typeof t.datatype, 'BYTES'>, batch * row);
        padded.set(data.subarray(c * batch * row, rows * row) as never);
        return padded;
      });
    const chunkOutputs = (c: number): NumericArray[] =>
      outputs.map((o, i) => {
        const row = first.outputs[i]!.rowElements;
        return o.subarray(c * batch * row, (c + 1) * batch * row) as NumericArray;
      });
    try {
      // Runner k takes chunks k, k+threads, ...: one run per runner at a time. After a failure the
      // others stop at their next chunk, and this waits for all of them: the callers' buffers are
      // theirs again once the promise settles, and the next batch must not queue behind stray runs.
      const failed: { error?: unknown } = {};
      await Promise.all(
        runners.map(async (runner, k) => {
          try {
            for (let c = k; c < chunks && !('error' in failed); c += runners.length) await runner.run(chunkInputs(c), chunkOutputs(c));
          } catch (err) {
            if (!('error' in failed)) failed.error = err;
          }
        }),
      );
      if ('error' in failed) throw failed.error;
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      this.#lastError = (err as Error).message;
      throw prefixed(this.#name, err);
    }
    return wanted.map((i) => {
      const spec = first.outputs[i]!;
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape: [rows, ...spec.shape],
        data: outputs[i]!.subarray(0, rows * spec.rowElements) as NumericArray,
      };
    });
  }

  async unload(): Promise<void> {
    const runners = this.#runners;
    const device = this.#device;
    this.#runners = [];
    this.#device = undefined;
    await Promise.allSettled(runners.map((r) => r.close()));
    await device?.close();
  }

  /** Readiness input: loaded, device held, and runs not failing repeatedly. */
  health(): XModelHealth {
    const info = this.#device?.info;
    const device = info?.bdf || (info?.index !== undefined && info.index >= 0 ? `xrt${info.index}` : undefined);
    return {
      ready: this.#device !== undefined && this.#failures < UNHEALTHY_AFTER,
      ...(device ? { device } : {}),
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }
}

function prefixed(model: string, err: unknown): unknown {
  if (err instanceof KinferError && !err.message.startsWith(`model '`)) err.message = `model '${model}': ${err.message}`;
  return err;
}

function parseThreads(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) throw invalidArgument('parameters.threads', `an integer from 1 to ${MAX_THREADS}`, value);
  return n;
}

async function findXmodel(files: ModelFiles): Promise<string> {
  if (files.modelFile) return files.modelFile.startsWith('/') ? files.modelFile : join(files.dir, files.modelFile);
  const names = await readdir(files.dir).catch(() => [] as string[]);
  const found = names.filter((n) => n.endsWith('.xmodel')).sort();
  if (found.length === 0) throw new InvalidArgument(`model '${files.name}': no .xmodel file in ${files.dir}`);
  return join(files.dir, found[0]!);
}

function metadataOf(runner: XRunner, threads: number): ModelMetadata {
  const spec = (t: RunnerTensor): TensorSpec => ({ name: t.name, datatype: t.datatype, shape: [-1, ...t.shape] });
  return {
    platform: XMODEL_PLATFORM,
    inputs: runner.inputs.map(spec),
    outputs: runner.outputs.map(spec),
    batchable: true,
    // One merged batch fills every runner once.
    maxBatchSize: runner.batchSize * threads,
  };
}

/** A config that declares tensors must agree with the runner on names and datatypes. */
function checkConfig(files: ModelFiles, meta: ModelMetadata): void {
  const compare = (role: string, declared: TensorSpec[], actual: TensorSpec[]) => {
    for (const d of declared) {
      const a = actual.find((x) => x.name === d.name);
      if (!a) {
        throw new InvalidArgument(
          `model '${files.name}': config ${role} '${d.name}' is not in the xmodel (runner ${role}s: ${actual.map((x) => x.name).join(', ')})`,
        );
      }
      if (a.datatype !== d.datatype) {
        throw new InvalidArgument(`model '${files.name}': config ${role} '${d.name}' is ${d.datatype}, the xmodel has ${a.datatype}`);
      }
    }
  };
  compare('input', files.config.inputs, meta.inputs);
  compare('output', files.config.outputs, meta.outputs);
}

function checkInput(model: string, t: Tensor, spec: RunnerTensor, rows: number): void {
  if (t.datatype !== spec.datatype) {
    throw new InvalidArgument(`model '${model}': input '${t.name}' must be ${spec.datatype}, got ${t.datatype}`);
  }
  const ok = t.shape.length === spec.shape.length + 1 && t.shape[0] === rows && spec.shape.every((d, i) => t.shape[i + 1] === d);
  if (!ok) {
    throw new InvalidArgument(`model '${model}': input '${t.name}' must have shape [-1,${spec.shape.join(',')}] with one batch size for all inputs, got [${t.shape.join(',')}]`);
  }
  if ((t.data as NumericArray).length !== rows * spec.rowElements) {
    throw new InvalidArgument(`model '${model}': input '${t.name}' holds ${t.data.length} elements, shape needs ${rows * spec.rowElements}`);
  }
}

function outputIndices(model: string, outputs: RunnerTensor[], names: readonly string[]): number[] {
  if (names.length === 0) return outputs.map((_, i) => i);
  return names.map((n) => {
    const i = outputs.findIndex((o) => o.name === n);
    if (i < 0) throw new InvalidArgument(`model '${model}': unknown output '${n}' (outputs: ${outputs.map((o) => o.name).join(', ')})`);
    return i;
  });
}

// ---- devices for POST /v2/hardware and /metrics ------------------------------

const LIST_TTL_MS = 2000;
let listCache: { at: number; devices: DeviceInfo[] } | undefined;

/** Xilinx FPGAs on this node (cached for 2 s); empty when there are none, or no addon. */
export function listDevices(): DeviceInfo[] {
  const now = performance.now();
  if (!listCache || now - listCache.at > LIST_TTL_MS) listCache = { at: now, devices: enumerateDevices().devices };
  return listCache.devices;
}

/**
 * True when at least `num` devices match `name`: a device's name or shell, or
 * the generic "fpga" / "xilinx" for any Xilinx device. Management PFs (driver
 * xclmgmt) are not counted: they cannot run models.
 */
export function hasHardware(name: string, num: number): boolean {
  if (typeof name !== 'string' || !Number.isInteger(num) || num < 0) return false;
  const key = name.toLowerCase();
  const generic = key === 'fpga' || key === 'xilinx';
  const matching = listDevices().filter(
    (d) => d.driver !== 'xclmgmt' && (generic || d.name.toLowerCase() === key || (d.shell !== '' && d.shell.toLowerCase() === key)),
  );
  return num <= matching.length;
}

/** Test hook: forget the cached device list. */
export function resetDeviceCache(): void {
  listCache = undefined;
}

/**
 * Adds the FPGA gauges to `registry`: devices seen (by source), devices this
 * process holds locked, native runners and queued/running work, addon
 * presence, and native failures by code (BUSY, NO_DEVICE, LIB_MISSING, ...).
 */
export function registerXModelMetrics(registry: Registry): void {
  new Gauge({
    name: 'kinfer_fpga_devices',
    help: 'Xilinx FPGAs seen on this node, by source (sysfs PCI vendor 0x10ee, XRT)',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      const devices = listDevices();
      this.set({ source: 'sysfs' }, devices.filter((d) => d.sources.includes('sysfs')).length);
      this.set({ source: 'xrt' }, devices.filter((d) => d.sources.includes('xrt')).length);
    },
  });
  new Gauge({
    name: 'kinfer_fpga_device_locked',
    help: 'FPGAs this process holds open under its exclusive lock (1 per device)',
    labelNames: ['device'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of nativeCounters()?.openDevices ?? []) this.set({ device: d }, 1);
    },
  });
  new Gauge({
    name: 'kinfer_native_addon_loaded',
    help: '1 when the native FPGA addon loaded, 0 when it is missing',
    registers: [registry],
    collect() {
      this.set(loadNative().ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'kinfer_native_tasks',
    help: 'Native FPGA work by state (queued for a worker thread, running) and live runners',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = nativeCounters();
      this.set({ state: 'queued' }, c?.queued ?? 0);
      this.set({ state: 'running' }, c?.running ?? 0);
      this.set({ state: 'runners' }, c?.runnersAlive ?? 0);
    },
  });
  new Counter({
    name: 'kinfer_fpga_errors_total',
    help: 'Native FPGA failures by code (ADDON_MISSING, LIB_MISSING, SYMBOL_MISSING, NO_DEVICE, BUSY, RUN_FAILED, ...)',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of nativeErrorCounts()) this.inc({ code }, n);
    },
  });
}
