/**
 * @module native/device.test
 * The FPGA addon against the fake vendor libraries: the real dlopen path,
 * marshalling, error mapping, locks and async behaviour. No FPGA hardware ran.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Internal, InvalidArgument, Unavailable } from '../runtime/core/errors.js';
import { enumerateDevices, enumerateDevicesAsync, nativeCodeOf, nativeCounters, openDevice } from './device.js';
import { loadNative } from './index.js';
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
  runNodeScript,
  withEnv,
  withoutWriteOverride,
  writeFakeXmodel,
  type FakeVendor,
} from './testing.js';

let vendor: FakeVendor;
let addonPath: string;
let tmp: string;
let restore: (() => void) | undefined;

function fakeEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return fakeVendorEnv(vendor, tmp, { FAKE_XRT_NAME: undefined, FAKE_XRT_OPEN_FAIL: undefined, FAKE_XRT_LOAD_FAIL: undefined, ...extra });
}

async function expectReject(p: Promise<unknown>, cls: new (...a: never[]) => Error, code: string, text: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(cls);
  expect(nativeCodeOf(err)).toBe(code);
  expect((err as Error).message).toMatch(text);
  return err as Error;
}

describe(`native FPGA addon (${NO_HARDWARE})`, () => {
  beforeAll(() => {
    addonPath = ensureAddon();
    vendor = buildFakeVendor();
    tmp = mkdtempSync(join(tmpdir(), 'kinfer-native-'));
    makeFakeSysfs(join(tmp, 'sys'), [
      { bdf: '0000:3b:00.0', driver: 'xclmgmt', shell: SHELL },
      { bdf: USER_PF, driver: 'xocl', shell: SHELL },
      { bdf: '0000:00:1f.0', vendor: '0x8086', device: '0xa1c8' },
      { bdf: '0000:5e:00.0', driver: 'xclmgmt' },
      { bdf: SECOND_PF, driver: 'xocl' },
    ]);
    writeFileSync(join(tmp, 'good.xclbin'), Buffer.concat([Buffer.from('xclbin2\0'), Buffer.alloc(64)]));
    writeFileSync(join(tmp, 'good2.xclbin'), Buffer.concat([Buffer.from('xclbin2\0'), Buffer.alloc(32)]));
    writeFileSync(join(tmp, 'bad.xclbin'), 'not an axlf image');
  });

  afterEach(() => {
    restore?.();
    restore = undefined;
  });

  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('loads the built binary', () => {
    const n = loadNative();
    expect(n.ok).toBe(true);
    if (n.ok) expect(n.path).toBe(addonPath);
  });

  it('says in one message why the binary cannot load, and the device list stays empty', async () => {
    const bogus = join(tmp, 'bogus.node');
    writeFileSync(bogus, 'not an ELF file');
    vi.resetModules();
    restore = withEnv({ KINFER_NATIVE_ADDON: bogus });
    try {
      const loader = await import('./index.js');
      const n = loader.loadNative();
      expect(n.ok).toBe(false);
      if (!n.ok) expect(n.error).toMatch(/^kinfer native addon at .*bogus\.node failed to load: .*(invalid ELF header|too short)/);
      const front = await import('./device.js');
      expect(front.enumerateDevices()).toMatchObject({ devices: [], addonError: expect.stringContaining('bogus.node') });
      await expect(front.openDevice()).rejects.toThrow(/kinfer native addon at .*bogus\.node failed to load/);
    } finally {
      vi.resetModules();
    }
  });

  it('returns an empty list, not an error, where there is no FPGA and no XRT', async () => {
    restore = withEnv({ ...fakeEnv(), KINFER_SYSFS_ROOT: join(tmp, 'empty-sys'), KINFER_XRT_LIB: join(tmp, 'libnone.so') });
    const e = enumerateDevices();
    expect(e.devices).toEqual([]);
    expect(e.xrt.count).toBeNull();
    expect(e.xrt.error).toContain('libnone.so');
    expect((await enumerateDevicesAsync()).devices).toEqual([]);
  });

  it('treats an xclProbe count past INT_MAX as an XRT error, not a negative count', async () => {
    restore = withEnv(fakeEnv({ FAKE_XRT_DEVICES: '4294967295' }));
    const e = enumerateDevices();
    expect(e.xrt).toEqual({ count: null, error: expect.stringMatching(/xclProbe returned 4294967295, not a device count$/) });
    // The sysfs view is still there.
    expect(e.devices.map((d) => [d.bdf, d.index])).toEqual([['0000:3b:00.0', -1], [USER_PF, -1], ['0000:5e:00.0', -1], [SECOND_PF, -1]]);
  });

  it('enumerates Xilinx functions from sysfs and joins XRT indices to the user PFs', async () => {
    restore = withEnv(fakeEnv({ FAKE_XRT_NAME: 'xilinx_u250_xdma_201830_2' }));
    const e = await enumerateDevicesAsync();
    expect(e.xrt).toEqual({ count: 2 });
    expect(e.devices.map((d) => d.bdf)).toEqual(['0000:3b:00.0', USER_PF, '0000:5e:00.0', SECOND_PF]);
    const user = e.devices.find((d) => d.bdf === USER_PF)!;
    expect(user).toMatchObject({ index: 0, driver: 'xocl', shell: SHELL, vendorId: '0x10ee', deviceId: '0x5005', sources: ['sysfs', 'xrt'] });
    expect(user.name).toBe('xilinx_u250_xdma_201830_2');
    const mgmt = e.devices.find((d) => d.bdf === '0000:3b:00.0')!;
    expect(mgmt).toMatchObject({ index: -1, driver: 'xclmgmt', name: SHELL, sources: ['sysfs'] });
    expect(e.devices.find((d) => d.bdf === SECOND_PF)!.index).toBe(1);
    expect(e.devices.find((d) => d.bdf === '0000:5e:00.0')!.name).toBe('xilinx_fpga_5005');
  });

  it('opens by index and by BDF, shares the device within the process, and releases it on close', async () => {
    restore = withEnv(fakeEnv());
    const a = await openDevice({ device: 0 });
    const info = a.info;
    expect(info).toMatchObject({ open: true, bdf: USER_PF, index: 0, xrtLibrary: vendor.xrt });
    expect(info.lockPath).toBe(join(tmp, 'lock', 'kinfer-fpga-0000_3b_00.1.lock'));
    expect(readFileSync(info.lockPath!, 'utf8').trim()).toBe(String(process.pid));
    const b = await openDevice({ device: '3b:00.1' });
    expect(nativeCounters()).toMatchObject({ devicesOpen: 1, openDevices: [USER_PF] });
    await a.close();
    expect(nativeCounters()!.devicesOpen).toBe(1);
    await b.close();
    await b.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, openDevices: [] });
    expect(readFileSync(info.lockPath!, 'utf8')).toBe('');
  });

  it('refuses a device another process holds, naming it, and gets it once that process dies', async () => {
    const env = fakeEnv();
    restore = withEnv(env);
    const child = await holdDeviceInChild(addonPath, USER_PF, { ...process.env });
    try {
      const err = await expectReject(openDevice({ device: USER_PF }), Unavailable, 'BUSY', /0000:3b:00\.1 is busy: locked by another process/);
      expect(err.message).toContain(`pid ${child.pid}`);
      expect((err as Unavailable).retryAfterSeconds).toBe(5);
      // Without a selector the next free device is taken instead.
      const other = await openDevice();
      expect(other.info.bdf).toBe(SECOND_PF);
      await other.close();
    } finally {
      await killChild(child);
    }
    const d = await openDevice({ device: USER_PF });
    expect(d.info.bdf).toBe(USER_PF);
    await d.close();
  });

  it('refuses a lock file that is a symbolic link or has other hard links, and leaves the file it names untouched', async () => {
    const dir = join(tmp, 'lock-planted');
    mkdirSync(dir);
    restore = withEnv(fakeEnv({ KINFER_LOCK_DIR: dir }));
    const lockPath = join(dir, 'kinfer-fpga-0000_3b_00.1.lock');
    const victim = join(tmp, 'victim.txt');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, lockPath);
    await expectReject(openDevice({ device: USER_PF }), Unavailable, 'LOCK_FAILED', /lock file .*kinfer-fpga-0000_3b_00\.1\.lock is a symbolic link: refused/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    rmSync(lockPath);
    linkSync(victim, lockPath);
    await expectReject(openDevice({ device: USER_PF }), Unavailable, 'LOCK_FAILED', /lock file .*kinfer-fpga-0000_3b_00\.1\.lock has 2 hard links: refused/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    rmSync(lockPath);
    // A FIFO: opened without blocking, then refused.
    execFileSync('mkfifo', ['-m', '0644', lockPath]);
    await expectReject(openDevice({ device: USER_PF }), Unavailable, 'LOCK_FAILED', /kinfer-fpga-0000_3b_00\.1\.lock is not a regular file: refused/);
    rmSync(lockPath);
    // Nothing planted: the open goes through.
    await (await openDevice({ device: USER_PF })).close();
    expect(nativeCounters()!.devicesOpen).toBe(0);
  });

  it('creates the lock dir sticky and world-writable and its lock files 0666, whatever the umask', async () => {
    const dir = join(tmp, 'lock-fresh');
    restore = withEnv(fakeEnv({ KINFER_LOCK_DIR: dir }));
    const old = process.umask(0o077);
    let d: Awaited<ReturnType<typeof openDevice>>;
    try {
      d = await openDevice({ device: USER_PF });
    } finally {
      process.umask(old);
    }
    expect(statSync(dir).mode & 0o7777).toBe(0o1777);
    expect(statSync(d.info.lockPath!).mode & 0o777).toBe(0o666);
    await d.close();
  });

  it('locks through a lock file it may only read (left by another user)', async (ctx) => {
    const wrap = withoutWriteOverride();
    if (!wrap) ctx.skip(); // root without setpriv: cannot make a file unwritable for the child
    const dir = join(tmp, 'lock-readonly');
    mkdirSync(dir);
    restore = withEnv(fakeEnv({ KINFER_LOCK_DIR: dir }));
    const lockPath = join(dir, 'kinfer-fpga-0000_3b_00.1.lock');
    writeFileSync(lockPath, '');
    chmodSync(lockPath, 0o444);
    const child = await holdDeviceInChild(addonPath, USER_PF, { ...process.env }, wrap);
    try {
      // The child holds the flock through its read-only descriptor; it could not write its pid.
      await expectReject(openDevice({ device: USER_PF }), Unavailable, 'BUSY', /0000:3b:00\.1 is busy: locked by another process through/);
      expect(readFileSync(lockPath, 'utf8')).toBe('');
    } finally {
      await killChild(child);
    }
    await (await openDevice({ device: USER_PF })).close();
  });

  it('an open racing the close of the same device in this process waits for the unlock, not BUSY with its own pid', async () => {
    const gates = join(tmp, 'gates-reopen');
    mkdirSync(gates);
    restore = withEnv(fakeEnv({ FAKE_XRT_GATE_DIR: gates }));
    const probes = () => (existsSync(join(gates, 'probe')) ? readFileSync(join(gates, 'probe')).length : 0);
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
      expect(ok(), what).toBe(true);
    };
    const d = await openDevice({ device: USER_PF });
    // The last hold goes: the device's state is being destroyed, xrtDeviceClose held at the gate, flock still held.
    const closing = d.close();
    await until('close started', () => existsSync(join(gates, 'close.started')));
    const before = probes();
    let settled = false;
    const opening = openDevice({ device: USER_PF }).then(
      (dev) => ((settled = true), { dev, error: undefined }),
      (error: unknown) => ((settled = true), { dev: undefined, error }),
    );
    // The racing open has enumerated (xclProbe) and goes on to the registry; give it the chance to
    // reach it before the close ends (only whether the race is hit depends on this, not the outcome).
    await until('open enumerated', () => probes() > before);
    for (let i = 0; i < 40 && !settled; i++) await new Promise((r) => setTimeout(r, 5));
    writeFileSync(join(gates, 'close.go'), '');
    await closing;
    const { dev: again, error } = await opening;
    expect(error).toBeUndefined();
    expect(again!.info.bdf).toBe(USER_PF);
    expect(readFileSync(again!.info.lockPath!, 'utf8').trim()).toBe(String(process.pid));
    await again!.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, openDevices: [] });
  });

  it('answers counters() at once while an xclbin load holds an open in progress', async () => {
    const gates = join(tmp, 'gates-load');
    mkdirSync(gates);
    restore = withEnv(fakeEnv({ FAKE_XRT_GATE_DIR: gates }));
    const opening = openDevice({ device: USER_PF, xclbin: join(tmp, 'good.xclbin') });
    for (let i = 0; i < 1000 && !existsSync(join(gates, 'load.started')); i++) await new Promise((r) => setTimeout(r, 5));
    expect(existsSync(join(gates, 'load.started'))).toBe(true);
    // Before the fix this call waited for the load (here: the fake's 10 s gate timeout) on the JS thread.
    const during = nativeCounters();
    expect(existsSync(join(gates, 'load.done')), 'counters() waited for the xclbin load').toBe(false);
    expect(during).toMatchObject({ devicesOpen: 0, openDevices: [] });
    writeFileSync(join(gates, 'load.go'), '');
    const d = await opening;
    expect(nativeCounters()).toMatchObject({ devicesOpen: 1, openDevices: [USER_PF] });
    await d.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, openDevices: [] });
  });

  it('lets go of a runner closed during its run off the JS thread: its device closes on a worker thread', async () => {
    const gates = join(tmp, 'gates-last-hold');
    mkdirSync(gates);
    writeFileSync(join(gates, 'close.go'), ''); // nothing held: the fake only records where xrtDeviceClose ran
    restore = withEnv(fakeEnv({ FAKE_XRT_GATE_DIR: gates }));
    const d = await openDevice({ device: USER_PF });
    const r = await d.createRunner(
      writeFakeXmodel(join(tmp, 'last-hold.xmodel'), {
        batch: 1,
        input: { name: 'x', datatype: 'INT8', dims: [2] },
        outputs: [{ name: 'y', datatype: 'INT8', dims: [2] }],
        sleepMs: 100,
      }),
    );
    await d.close(); // the runner alone holds the device now
    const run = r.run([new Int8Array(2)], [new Int8Array(2)]);
    for (let i = 0; i < 1000 && nativeCounters()!.running < 1; i++) await new Promise((res) => setTimeout(res, 2));
    expect(nativeCounters()!.running).toBe(1);
    await r.close(); // the run's hold is the last one
    await run;
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
    expect(existsSync(join(gates, 'close.done'))).toBe(true);
    expect(existsSync(join(gates, 'close.main-thread')), 'xrtDeviceClose ran on the JS thread').toBe(false);
  });

  it('says every device is busy when all are held', async () => {
    restore = withEnv(fakeEnv({ FAKE_XRT_DEVICES: '1', FAKE_XRT_BDFS: USER_PF }));
    const child = await holdDeviceInChild(addonPath, '', { ...process.env });
    try {
      await expectReject(openDevice(), Unavailable, 'BUSY', /all 1 Xilinx FPGA\(s\) are busy: FPGA 0000:3b:00\.1 is busy/);
    } finally {
      await killChild(child);
    }
  });

  it("without XRT's device list, opens an xocl-bound user function, never the management function before it", async () => {
    // An XRT without xclProbe: no XRT indices; the management PF 3b:00.0 sorts first in sysfs.
    restore = withEnv(fakeEnv({ KINFER_XRT_LIB: vendor.xrtNoProbe }));
    const d = await openDevice();
    expect(d.info.bdf).toBe(USER_PF);
    await d.close();
  });

  it('reports each missing library or symbol by name', async () => {
    restore = withEnv(fakeEnv({ KINFER_XRT_LIB: join(tmp, 'libxrt_missing.so') }));
    await expectReject(openDevice(), Unavailable, 'LIB_MISSING', /XRT runtime not available: .*libxrt_missing\.so not found/);
    restore();
    restore = withEnv(fakeEnv({ KINFER_XRT_LIB: vendor.xrtNoSymbol }));
    await expectReject(openDevice(), Unavailable, 'SYMBOL_MISSING', /lacks symbol\(s\): xrtDeviceLoadXclbinFile$/);
    restore();
    restore = withEnv(fakeEnv({ KINFER_VART_LIB: join(tmp, 'libvart_missing.so') }));
    const d = await openDevice();
    const xmodel = writeFakeXmodel(join(tmp, 'm1.xmodel'), { batch: 1, input: { name: 'x', datatype: 'INT8', dims: [2] }, outputs: [{ name: 'y', datatype: 'INT8', dims: [2] }] });
    await expectReject(d.createRunner(xmodel), Unavailable, 'LIB_MISSING', /Vitis AI runtime not available: .*libvart_missing\.so not found/);
    restore();
    restore = withEnv(fakeEnv({ KINFER_VART_LIB: vendor.vartNoSymbol }));
    await expectReject(d.createRunner(xmodel), Unavailable, 'SYMBOL_MISSING', /lacks symbol\(s\): kinfer_vart_runner_run$/);
    await d.close();
    expect(nativeCounters()!.devicesOpen).toBe(0);
  });

  it('maps device, open and xclbin failures to specific errors', async () => {
    restore = withEnv(fakeEnv({ KINFER_SYSFS_ROOT: join(tmp, 'empty-sys'), FAKE_XRT_DEVICES: '0' }));
    await expectReject(openDevice(), Unavailable, 'NO_DEVICE', /no Xilinx FPGA found \(sysfs: no PCI device with vendor 0x10ee .*XRT: reports 0/);
    restore();
    restore = withEnv(fakeEnv());
    await expectReject(openDevice({ device: '0000:af:00.1' }), Unavailable, 'NO_DEVICE', /no Xilinx FPGA at PCI address 0000:af:00\.1/);
    await expectReject(openDevice({ device: 7 }), Unavailable, 'NO_DEVICE', /no Xilinx FPGA with XRT index 7/);
    await expect(openDevice({ device: 'gpu0' })).rejects.toBeInstanceOf(InvalidArgument);
    await expect(openDevice({ device: -1 })).rejects.toThrow(/device: expected/);
    // A missing or non-xclbin file is the caller's mistake, found before any device is touched.
    const bad = await openDevice({ xclbin: join(tmp, 'bad.xclbin') }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgument);
    expect((bad as Error).message).toBe(`xclbin ${join(tmp, 'bad.xclbin')}: not an xclbin (bad magic)`);
    await expect(openDevice({ xclbin: join(tmp, 'absent.xclbin') })).rejects.toThrow(new InvalidArgument(`xclbin ${join(tmp, 'absent.xclbin')}: no such file`));
    await expect(openDevice({ xclbin: tmp })).rejects.toThrow(/^xclbin .*: not a regular file$/);
    expect(nativeCounters()!.devicesOpen).toBe(0);
    restore();
    restore = withEnv(fakeEnv({ FAKE_XRT_LOAD_FAIL: '-5' }));
    await expectReject(openDevice({ xclbin: join(tmp, 'good.xclbin') }), Unavailable, 'XCLBIN_FAILED', /xrtDeviceLoadXclbinFile\(.*good\.xclbin\) on FPGA 0000:3b:00\.1 failed with code -5/);
    restore();
    restore = withEnv(fakeEnv());
    const ok = await openDevice({ xclbin: join(tmp, 'good.xclbin') });
    expect(ok.info.xclbin).toBe(join(tmp, 'good.xclbin'));
    await expectReject(openDevice({ device: USER_PF, xclbin: join(tmp, 'good2.xclbin') }), Unavailable, 'BUSY', /already open in this process with xclbin/);
    await ok.close();
    // Held without an xclbin: loading one would reprogram the device under the holder's runners.
    const bare = await openDevice({ device: USER_PF });
    await expectReject(openDevice({ device: USER_PF, xclbin: join(tmp, 'good.xclbin') }), Unavailable, 'BUSY', /already open in this process without an xclbin .*cannot load .*good\.xclbin under them/);
    expect(bare.info.xclbin ?? '').toBe('');
    await bare.close();
    restore();
    restore = withEnv(fakeEnv({ FAKE_XRT_OPEN_FAIL: '1' }));
    await expectReject(openDevice(), Unavailable, 'OPEN_FAILED', /xrtDeviceOpenByBDF\(0000:3b:00\.1\) failed: Input\/output error/);
    expect(nativeCounters()!.devicesOpen).toBe(0);
    // A failed open leaves the device unlocked: the next open succeeds.
    restore();
    restore = withEnv(fakeEnv());
    await (await openDevice({ device: USER_PF })).close();
  });

  it('runs a fake DPU subgraph: metadata from the runner, outputs computed in place', async () => {
    restore = withEnv(fakeEnv());
    const d = await openDevice();
    const r = await d.createRunner(
      writeFakeXmodel(join(tmp, 'affine.xmodel'), {
        batch: 2,
        input: { name: 'data', datatype: 'INT8', dims: [3] },
        outputs: [{ name: 'scaled', datatype: 'INT8', dims: [3] }, { name: 'rowsum', datatype: 'FP32', dims: [1] }],
        scale: 2,
        bias: 1,
      }),
    );
    expect(r.batchSize).toBe(2);
    expect(r.inputs).toEqual([{ name: 'data', datatype: 'INT8', shape: [3], rowElements: 3, byteSize: 6 }]);
    expect(r.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['scaled', 'INT8', [3]], ['rowsum', 'FP32', [1]]]);
    const input = Int8Array.from([1, -2, 100, 0, 5, -100]);
    const scaled = new Int8Array(6);
    const rowsum = new Float32Array(2);
    await r.run([input], [scaled, rowsum]);
    expect(Array.from(scaled)).toEqual([3, -3, 127, 1, 11, -128]);
    expect(Array.from(rowsum)).toEqual([99, -95]);
    await expect(r.run([new Int8Array(5)], [scaled, rowsum])).rejects.toThrow(/inputs\[0\] 'data' byte length: expected 6, got 5/);
    await expect(r.run([input], [scaled])).rejects.toBeInstanceOf(InvalidArgument);
    await r.close();
    await expect(r.run([input], [scaled, rowsum])).rejects.toThrow(/runner is closed/);
    await d.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0, queued: 0, running: 0 });
  });

  it('maps runner creation and run failures', async () => {
    restore = withEnv(fakeEnv());
    const d = await openDevice();
    const notXmodel = join(tmp, 'real.xmodel');
    writeFileSync(notXmodel, Buffer.from([0x0a, 0x05, 0x72, 0x6f, 0x6f, 0x74]));
    await expectReject(d.createRunner(notXmodel), Unavailable, 'RUNNER_FAILED', /cannot create a VART runner for .*real\.xmodel: .*not a kinfer-fake-xmodel file/);
    await expectReject(d.createRunner(join(tmp, 'absent.xmodel')), Unavailable, 'RUNNER_FAILED', /cannot open .*absent\.xmodel: No such file/);
    const r = await d.createRunner(
      writeFakeXmodel(join(tmp, 'fail.xmodel'), { batch: 1, input: { name: 'x', datatype: 'FP32', dims: [4] }, outputs: [{ name: 'y', datatype: 'FP32', dims: [4] }], failRun: true }),
    );
    const err = await expectReject(r.run([new Float32Array(4)], [new Float32Array(4)]), Internal, 'RUN_FAILED', /runner for .*fail\.xmodel failed: fake DPU run timed out/);
    expect(err.stack).toContain('device.test.ts');
    await r.close();
    await d.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
  });

  it('refuses a runner whose tensor byte size overflows or passes 2^31-1 bytes', async () => {
    restore = withEnv(fakeEnv());
    const d = await openDevice();
    // (2^62 + 1) * 4 bytes wrap to 4 in 64 bits.
    const huge = 4611686018427387905n;
    const wrap = writeFakeXmodel(join(tmp, 'wrap.xmodel'), {
      batch: 1,
      input: { name: 'x', datatype: 'INT8', dims: [huge, 4] },
      outputs: [{ name: 'y', datatype: 'INT8', dims: [huge, 4] }],
    });
    await expectReject(d.createRunner(wrap), Unavailable, 'RUNNER_FAILED', /wrap\.xmodel: tensor 'x' is too large: shape \[1,4611686018427387905,4\] of INT8 is more than 2147483647 bytes/);
    const big = writeFakeXmodel(join(tmp, 'big.xmodel'), {
      batch: 2,
      input: { name: 'x', datatype: 'FP32', dims: [2 ** 28] },
      outputs: [{ name: 'y', datatype: 'FP32', dims: [2 ** 28] }],
    });
    // 2 * 2^28 * 4 = 2^31 bytes: no overflow, one byte past the cap.
    await expectReject(d.createRunner(big), Unavailable, 'RUNNER_FAILED', /tensor 'x' is too large: shape \[2,268435456\] of FP32 is more than 2147483647 bytes/);
    await d.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
  });

  it('rejects a SharedArrayBuffer-backed array with KINFER_INVALID naming the tensor', async () => {
    restore = withEnv(fakeEnv());
    const path = writeFakeXmodel(join(tmp, 'sab.xmodel'), {
      batch: 1,
      input: { name: 'data', datatype: 'INT8', dims: [4] },
      outputs: [{ name: 'out', datatype: 'INT8', dims: [4] }],
    });
    const d = await openDevice();
    const r = await d.createRunner(path);
    const shared = new Int8Array(new SharedArrayBuffer(4));
    await expectReject(r.run([shared], [new Int8Array(4)]), InvalidArgument, 'INVALID', /^input 'data': backed by a SharedArrayBuffer/);
    await expectReject(r.run([new Int8Array(4)], [shared]), InvalidArgument, 'INVALID', /^output 'out': backed by a SharedArrayBuffer/);
    // The addon itself rejects (no synchronous throw).
    const n = loadNative();
    if (!n.ok) throw new Error(n.error);
    const raw = await n.addon.openDevice('', '');
    const rawRunner = await raw.createRunner(path);
    let pending: Promise<void> | undefined;
    expect(() => (pending = rawRunner.run([shared], [new Int8Array(4)]))).not.toThrow();
    await expect(pending).rejects.toMatchObject({ code: 'KINFER_INVALID' });
    await rawRunner.close();
    await raw.close();
    await r.close();
    await d.close();
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0 });
  });

  it('runs off the JS thread: timers keep firing during a slow run, and parallel runners overlap', async () => {
    restore = withEnv(fakeEnv());
    const d = await openDevice();
    const path = writeFakeXmodel(join(tmp, 'slow.xmodel'), {
      batch: 1,
      input: { name: 'x', datatype: 'FP32', dims: [2] },
      outputs: [{ name: 'y', datatype: 'FP32', dims: [2] }],
      scale: 3,
      sleepMs: 300,
    });
    const [r1, r2] = await Promise.all([d.createRunner(path), d.createRunner(path)]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const out1 = new Float32Array(2);
    const out2 = new Float32Array(2);
    const t0 = performance.now();
    const runs = Promise.all([r1!.run([Float32Array.from([1, 2])], [out1]), r2!.run([Float32Array.from([3, 4])], [out2])]);
    let running = 0;
    for (let i = 0; i < 50 && running < 2; i++) {
      await new Promise((res) => setTimeout(res, 5));
      running = nativeCounters()!.running;
    }
    expect(running).toBe(2);
    await runs;
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(elapsed).toBeLessThan(590); // two 300 ms runs overlapped (in sequence: ≥ 600)
    expect(Array.from(out1)).toEqual([3, 6]);
    expect(Array.from(out2)).toEqual([9, 12]);
    await Promise.all([r1!.close(), r2!.close()]);
    await d.close();
  });

  it('keeps the device open while a runner holds it, and frees everything after repeated cycles', async () => {
    restore = withEnv(fakeEnv());
    const path = writeFakeXmodel(join(tmp, 'cycle.xmodel'), {
      batch: 4,
      input: { name: 'x', datatype: 'INT8', dims: [16] },
      outputs: [{ name: 'y', datatype: 'INT8', dims: [16] }],
      bias: 1,
    });
    for (let i = 0; i < 40; i++) {
      const d = await openDevice({ device: USER_PF });
      const r = await d.createRunner(path);
      await d.close();
      expect(nativeCounters()!.devicesOpen).toBe(1);
      const out = new Int8Array(64);
      await r.run([new Int8Array(64).fill(i)], [out]);
      expect(out[63]).toBe(i + 1);
      await r.close();
    }
    expect(nativeCounters()).toMatchObject({ devicesOpen: 0, runnersAlive: 0, queued: 0, running: 0 });
  });

  it('rejects a run whose input array getter closes the runner, without crashing', async () => {
    const xmodel = writeFakeXmodel(join(tmp, 'getter.xmodel'), {
      batch: 1,
      input: { name: 'x', datatype: 'INT8', dims: [2] },
      outputs: [{ name: 'y', datatype: 'INT8', dims: [2] }],
    });
    // In a child: before the fix the addon read the moved-out state through null (SIGSEGV).
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      (async () => {
        const d = await addon.openDevice('', '');
        const r = await d.createRunner(${JSON.stringify(xmodel)});
        const inputs = [];
        let closing;
        Object.defineProperty(inputs, 0, { enumerable: true, get() { closing = r.close(); return new Int8Array(2); } });
        const got = await r.run(inputs, [new Int8Array(2)]).then(() => 'resolved', (e) => e.code + ': ' + e.message);
        await closing;
        await d.close();
        console.log('run ' + got + '; runners ' + addon.counters().runnersAlive);
      })();`;
    const res = await runNodeScript(script, { ...process.env, ...fakeEnv() });
    expect(res.signal, res.stderr).toBeNull();
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe('run KINFER_INVALID: runner is closed; runners 0');
  });

  it('survives a worker thread terminated while its run is in flight', async () => {
    const xmodel = writeFakeXmodel(join(tmp, 'worker-slow.xmodel'), {
      batch: 1,
      input: { name: 'x', datatype: 'FP32', dims: [2] },
      outputs: [{ name: 'y', datatype: 'FP32', dims: [2] }],
      sleepMs: 500,
    });
    // Before the fix, settling the run's promise in the dying worker env threw out of node-addon-api: abort, exit 134.
    const script = `
      const { Worker } = require('node:worker_threads');
      const addon = require(${JSON.stringify(addonPath)});
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        const addon = require(${JSON.stringify(addonPath)});
        (async () => {
          const d = await addon.openDevice('', '');
          const r = await d.createRunner(${JSON.stringify(xmodel)});
          r.run([new Float32Array(2)], [new Float32Array(2)]);
          parentPort.postMessage('started');
        })();\`, { eval: true });
      w.once('message', async () => {
        while (addon.counters().running < 1) await new Promise((r) => setTimeout(r, 5));
        await w.terminate();
        while (addon.counters().running > 0) await new Promise((r) => setTimeout(r, 5));
        const d = await addon.openDevice('', '');
        console.log('terminated; reopened ' + d.info().bdf);
        await d.close();
      });`;
    const res = await runNodeScript(script, { ...process.env, ...fakeEnv() });
    expect(res.signal, res.stderr).toBeNull();
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe(`terminated; reopened ${USER_PF}`);
  });
});
