/**
 * @module backends/xmodel.test
 * XModelBackend end to end through the native addon and the fake vendor
 * libraries. No FPGA hardware ran: the "DPU" is native/fake-vendor/fake_vart.c.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Internal, InvalidArgument, Unavailable } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { defaultConfig, type ModelConfig } from '../repository/model-config.js';
import type { ModelFiles } from './backend.js';
import { XModelBackend, hasHardware, listDevices, registerXModelMetrics, resetDeviceCache } from './xmodel.js';
import { nativeCounters } from '../../native/device.js';
import {
  NO_HARDWARE,
  SECOND_PF,
  SHELL,
  USER_PF,
  buildFakeVendor,
  ensureAddon,
  fakeVendorEnv,
  holdDeviceInChild,
  killChild,
  makeFakeSysfs,
  withEnv,
  writeFakeXmodel,
  type FakeVendor,
} from '../../native/testing.js';

let vendor: FakeVendor;
let addonPath: string;
let tmp: string;
let restore: (() => void) | undefined;

function useFake(extra: Record<string, string | undefined> = {}): void {
  restore = withEnv(fakeVendorEnv(vendor, tmp, { XLNX_VART_FIRMWARE: undefined, ...extra }));
  resetDeviceCache();
}

function modelDir(name: string, m: Parameters<typeof writeFakeXmodel>[1]): string {
  const dir = join(tmp, 'repo', name, '1');
  writeFakeXmodel(join(dir, 'model.xmodel'), m);
  return dir;
}

function files(name: string, dir: string, config: Partial<ModelConfig> = {}): ModelFiles {
  return { name, version: '1', dir, config: { ...defaultConfig(name), platform: 'vitis_xmodel', ...config } };
}

const affine = {
  batch: 4,
  input: { name: 'data', datatype: 'INT8' as const, dims: [3] },
  outputs: [
    { name: 'scaled', datatype: 'INT8' as const, dims: [3] },
    { name: 'rowsum', datatype: 'FP32' as const, dims: [1] },
  ],
  scale: 2,
  bias: 1,
};

function int8Input(rows: number): Tensor {
  const data = new Int8Array(rows * 3).map((_, i) => (i % 50) - 20);
  return { name: 'data', datatype: 'INT8', shape: [rows, 3], data };
}

describe(`XModelBackend (${NO_HARDWARE})`, () => {
  beforeAll(() => {
    addonPath = ensureAddon();
    vendor = buildFakeVendor();
    tmp = mkdtempSync(join(tmpdir(), 'kinfer-xmodel-'));
    makeFakeSysfs(join(tmp, 'sys'), [
      { bdf: '0000:3b:00.0', driver: 'xclmgmt', shell: SHELL },
      { bdf: USER_PF, driver: 'xocl', shell: SHELL },
      { bdf: SECOND_PF, driver: 'xocl', shell: SHELL },
    ]);
  });
  afterEach(() => {
    restore?.();
    restore = undefined;
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('loads, reports runner metadata, and runs a batch cut into padded runner chunks on two threads', async () => {
    useFake();
    const b = new XModelBackend();
    const meta = await b.load(files('xmodel-affine', modelDir('xmodel-affine', affine), { parameters: { threads: '2' } }));
    expect(meta).toEqual({
      platform: 'vitis_xmodel',
      inputs: [{ name: 'data', datatype: 'INT8', shape: [-1, 3] }],
      outputs: [
        { name: 'scaled', datatype: 'INT8', shape: [-1, 3] },
        { name: 'rowsum', datatype: 'FP32', shape: [-1, 1] },
      ],
      batchable: true,
      maxBatchSize: 8,
    });
    expect(nativeCounters()).toMatchObject({ devicesOpen: 1, runnersAlive: 2, openDevices: [USER_PF] });
    expect(b.health()).toEqual({ ready: true, device: USER_PF });

    const input = int8Input(10); // chunks of 4, 4 and 2 (padded)
    const inputCopy = Int8Array.from(input.data as Int8Array);
    const [scaled, rowsum] = await b.infer([input], []);
    const x = Array.from(inputCopy);
    expect(scaled).toMatchObject({ name: 'scaled', datatype: 'INT8', shape: [10, 3] });
    expect(Array.from(scaled!.data as Int8Array)).toEqual(x.map((v) => Math.max(-128, Math.min(127, v * 2 + 1))));
    expect(rowsum).toMatchObject({ name: 'rowsum', datatype: 'FP32', shape: [10, 1] });
    const sums = Array.from({ length: 10 }, (_, r) => x[3 * r]! + x[3 * r + 1]! + x[3 * r + 2]!);
    expect(Array.from(rowsum!.data as Float32Array)).toEqual(sums);
    expect(Array.from(input.data as Int8Array)).toEqual(x); // inputs untouched

    const only = await b.infer([int8Input(4)], ['rowsum']);
    expect(only.map((t) => t.name)).toEqual(['rowsum']);

    await b.unload();
    await b.unload();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
    await expect(b.infer([int8Input(1)], [])).rejects.toThrow(/not loaded/);
  });

  it('rejects bad requests with specific InvalidArgument errors', async () => {
    useFake();
    const b = new XModelBackend();
    await b.load(files('xmodel-affine', modelDir('xmodel-affine', affine)));
    await expect(b.infer([{ ...int8Input(2), name: 'other' }], [])).rejects.toThrow(/missing input 'data'/);
    await expect(b.infer([{ name: 'data', datatype: 'FP32', shape: [1, 3], data: new Float32Array(3) }], [])).rejects.toThrow(
      /input 'data' must be INT8, got FP32/,
    );
    await expect(b.infer([{ name: 'data', datatype: 'INT8', shape: [1, 4], data: new Int8Array(4) }], [])).rejects.toBeInstanceOf(InvalidArgument);
    await expect(b.infer([int8Input(1)], ['nope'])).rejects.toThrow(/unknown output 'nope' \(outputs: scaled, rowsum\)/);
    await b.unload();
  });

  it('fails a load with the missing piece named, and leaves nothing open', async () => {
    const dir = modelDir('xmodel-affine', affine);
    useFake({ KINFER_SYSFS_ROOT: join(tmp, 'none'), FAKE_XRT_DEVICES: '0' });
    await expect(new XModelBackend().load(files('xmodel-affine', dir))).rejects.toThrow(
      /^model 'xmodel-affine': no Xilinx FPGA found \(sysfs: no PCI device with vendor 0x10ee/,
    );
    restore!();
    useFake({ KINFER_VART_LIB: undefined });
    const err = await new XModelBackend().load(files('xmodel-affine', dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/Vitis AI runtime not available: libkinfer_vart\.so not found \(the kinfer shim over libvart-runner\.so/);
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
    restore!();
    useFake();
    await expect(new XModelBackend().load(files('xmodel-affine', dir, { parameters: { threads: '0' } }))).rejects.toThrow(
      /parameters\.threads: expected an integer from 1 to 64, got "0"/,
    );
    await expect(
      new XModelBackend().load(files('xmodel-affine', dir, { inputs: [{ name: 'image', datatype: 'INT8', shape: [3] }] })),
    ).rejects.toThrow(/config input 'image' is not in the xmodel \(runner inputs: data\)/);
    await expect(new XModelBackend().load(files('xmodel-empty', join(tmp, 'repo')))).rejects.toThrow(/no \.xmodel file in/);
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
    // After all those failures a good load still works.
    const ok = new XModelBackend();
    await ok.load(files('xmodel-affine', dir));
    await ok.unload();
  });

  it('answers 400 for an xclbin parameter that is missing or not an xclbin, before touching a device', async () => {
    useFake();
    const dir = modelDir('xmodel-affine', affine);
    const missing = join(tmp, 'nowhere.xclbin');
    const err = await new XModelBackend().load(files('xmodel-affine', dir, { parameters: { xclbin: missing } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toBe(`model 'xmodel-affine': xclbin ${missing}: no such file`);
    const notXclbin = join(dir, 'model.xmodel');
    await expect(new XModelBackend().load(files('xmodel-affine', dir, { parameters: { xclbin: notXclbin } }))).rejects.toThrow(
      new InvalidArgument(`model 'xmodel-affine': xclbin ${notXclbin}: not an xclbin (bad magic)`),
    );
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
  });

  it('fails a load on a device another process holds, and picks a free one when none is named', async () => {
    useFake();
    const dir = modelDir('xmodel-affine', affine);
    const child = await holdDeviceInChild(addonPath, USER_PF, { ...process.env });
    try {
      const err = await new XModelBackend().load(files('xmodel-affine', dir, { parameters: { device: USER_PF } })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Error).message).toMatch(/FPGA 0000:3b:00\.1 is busy: locked by another process \(pid \d+\)/);
      const b = new XModelBackend();
      await b.load(files('xmodel-affine', dir));
      expect(b.health().device).toBe(SECOND_PF);
      await b.unload();
    } finally {
      await killChild(child);
    }
  });

  it('turns run failures into Internal errors and reports itself unhealthy after repeated ones', async () => {
    useFake();
    const b = new XModelBackend();
    await b.load(files('xmodel-broken', modelDir('xmodel-broken', { ...affine, failRun: true })));
    for (let i = 0; i < 3; i++) {
      const err = await b.infer([int8Input(1)], []).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Internal);
      expect((err as Error).message).toMatch(/^model 'xmodel-broken': runner for .*model\.xmodel failed: fake DPU run timed out/);
    }
    expect(b.health()).toMatchObject({ ready: false, lastError: expect.stringContaining('fake DPU run timed out') });
    await b.unload();
  });

  it('settles a failed batch only after every runner has stopped, and the next batch runs at once', async () => {
    useFake();
    const counter = join(tmp, 'runs-count');
    const b = new XModelBackend();
    // Chunk 0 (first element -20) fails on runner 0; each run takes 20 ms, so runner 1 is mid-run then.
    await b.load(files('xmodel-partial', modelDir('xmodel-partial', { ...affine, sleepMs: 20, failValue: -20, countFile: counter }), { parameters: { threads: '2' } }));
    const runs = () => (existsSync(counter) ? readFileSync(counter).length : 0);
    const input = int8Input(40); // 10 chunks of 4: runner 0 takes 0, 2, ..., runner 1 takes 1, 3, ...
    await expect(b.infer([input], [])).rejects.toThrow(/fake DPU run failed/);
    const atSettle = runs();
    expect(atSettle).toBeGreaterThanOrEqual(2);
    expect(atSettle).toBeLessThan(10); // the other runner stopped after its current chunk, not at the end
    await new Promise((r) => setTimeout(r, 150)); // longer than the rest of runner 1's chunks would take
    expect(runs()).toBe(atSettle); // nothing ran after the promise settled: the callers' buffers are theirs again
    const [scaled] = await b.infer([{ ...int8Input(4), data: new Int8Array(12).fill(3) }], []);
    expect(Array.from(scaled!.data as Int8Array)).toEqual(new Array(12).fill(7));
    await b.unload();
  });

  it('answers POST /v2/hardware questions and exports device metrics', async () => {
    useFake({ FAKE_XRT_NAME: 'DPUCADF8H' });
    expect(listDevices().map((d) => d.bdf)).toEqual(['0000:3b:00.0', USER_PF, SECOND_PF]);
    expect(hasHardware('fpga', 2)).toBe(true);
    expect(hasHardware('fpga', 3)).toBe(false); // the management PF does not count
    expect(hasHardware('DPUCADF8H', 2)).toBe(true);
    expect(hasHardware(SHELL, 1)).toBe(true);
    expect(hasHardware('alveo-u999', 1)).toBe(false);

    const registry = new Registry();
    registerXModelMetrics(registry);
    const b = new XModelBackend();
    await b.load(files('xmodel-affine', modelDir('xmodel-affine', affine)));
    await new XModelBackend().load(files('xmodel-affine', modelDir('xmodel-affine', affine), { parameters: { device: '9' } })).catch(() => undefined);
    const text = await registry.metrics();
    expect(text).toContain('kinfer_fpga_devices{source="sysfs"} 3');
    expect(text).toContain('kinfer_fpga_devices{source="xrt"} 2');
    expect(text).toContain(`kinfer_fpga_device_locked{device="${USER_PF}"} 1`);
    expect(text).toContain('kinfer_native_addon_loaded 1');
    expect(text).toMatch(/kinfer_fpga_errors_total\{code="NO_DEVICE"\} [1-9]/);
    expect(text).toContain('kinfer_native_tasks{state="runners"} 1');
    await b.unload();
    expect(await registry.metrics()).not.toContain('kinfer_fpga_device_locked{');

    useFake({ KINFER_SYSFS_ROOT: join(tmp, 'none'), KINFER_XRT_LIB: join(tmp, 'libnone.so') });
    expect(listDevices()).toEqual([]);
    expect(hasHardware('fpga', 0)).toBe(true);
    expect(hasHardware('fpga', 1)).toBe(false);
  });

  it('without the addon binary, load names it and the device list is empty', async () => {
    vi.resetModules();
    const undo = withEnv({ KINFER_NATIVE_ADDON: join(tmp, 'missing', 'kinfer_native.node') });
    try {
      const fresh = await import('./xmodel.js');
      expect(fresh.listDevices()).toEqual([]);
      expect(fresh.hasHardware('fpga', 1)).toBe(false);
      const err = await new fresh.XModelBackend().load(files('xmodel-affine', modelDir('xmodel-affine', affine))).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/kinfer native addon not available: .*missing\/kinfer_native\.node not found; build it with "npm run native"/);
      expect((err as { code?: string }).code).toBe('UNAVAILABLE');
    } finally {
      undo();
      vi.resetModules();
    }
  });
});
