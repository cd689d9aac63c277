import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Batcher } from '../batching/batcher.js';
import { InvalidArgument, Unavailable } from '../core/errors.js';
import { defaultConfig } from './model-config.js';
import { applyLoadParameters, checkModelName, ModelRepository, type BatcherFactory } from './model-repository.js';

describe('applyLoadParameters', () => {
  const base = { ...defaultConfig('m'), platform: 'onnxruntime_onnx', parameters: { keep: 'me' } };

  it("maps the original server's batch_size, threads and timeout (ms) onto batching and instances", () => {
    const c = applyLoadParameters(base, { batch_size: 16, threads: '3', timeout: 5 }, 'm');
    expect(c.maxBatchSize).toBe(16);
    expect(c.instanceCount).toBe(3);
    expect(c.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 5000, preferredBatchSize: [], maxQueueSize: 0 });
    expect(c.parameters).toEqual({ keep: 'me' });
    expect(base.maxBatchSize).toBe(0); // the file config is not mutated
  });

  it("replaces the file config with Triton's `config` parameter and passes other keys to the backend", () => {
    const c = applyLoadParameters(
      base,
      { config: JSON.stringify({ platform: 'echo', max_batch_size: 4, dynamic_batching: {} }), intra_op_thread_count: 2 },
      'm',
    );
    expect(c.platform).toBe('echo');
    expect(c.maxBatchSize).toBe(4);
    expect(c.parameters).toEqual({ intra_op_thread_count: '2' });
  });

  it("takes the `config` parameter's own parameters in place of the file's (Triton replaces the file), and the load's other keys over it in any order", () => {
    const config = JSON.stringify({ platform: 'echo', parameters: { batch_policy: { string_value: 'adaptive' } } });
    for (const params of [{ config, threads: '2', batch_size: 4, extra: 'x' }, { threads: '2', batch_size: 4, extra: 'x', config }]) {
      const c = applyLoadParameters(base, params, 'm');
      expect(c.parameters).toEqual({ batch_policy: 'adaptive', extra: 'x' }); // the file's keep: 'me' is gone
      expect(c.instanceCount).toBe(2);
      expect(c.maxBatchSize).toBe(4);
    }
  });

  it('refuses bad values naming the parameter', () => {
    expect(() => applyLoadParameters(base, { batch_size: 0 }, 'm')).toThrow(/parameters.batch_size/);
    expect(() => applyLoadParameters(base, { threads: 'many' }, 'm')).toThrow(InvalidArgument);
    expect(() => applyLoadParameters(base, { config: '{not json' }, 'm')).toThrow(/parameters.config/);
    expect(() => applyLoadParameters(base, { config: 5 }, 'm')).toThrow(/parameters.config/);
  });
});

describe('checkModelName', () => {
  it('accepts plain names and refuses paths', () => {
    expect(checkModelName('ocr-det')).toBe('ocr-det');
    expect(checkModelName('xmodel-resnet_v1.2')).toBe('xmodel-resnet_v1.2');
    for (const bad of ['../x', 'a/b', '..', '.', '', '-x', 'a\\b']) expect(() => checkModelName(bad), bad).toThrow(InvalidArgument);
  });
});

describe('ModelRepository: loads and unloads of one model', () => {
  /** A repository of one echo model `m` whose batchers' drain waits for `release()` while `hold` is set. */
  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-repo-'));
    await mkdir(join(dir, 'm'));
    await writeFile(join(dir, 'm', 'config.pbtxt'), 'platform: "echo"\n');
    const gate = { hold: false, release: () => {} };
    const held = new Promise<void>((r) => (gate.release = r));
    const createBatcher: BatcherFactory = ({ instances }): Batcher => ({
      enqueue: async (req) => ({ outputs: await instances[0]!.infer(req.inputs, req.outputNames), batchSize: 1, queueMs: 0, computeMs: 0 }),
      pending: 0,
      startsAtOnce: true,
      drain: () => (gate.hold ? held : Promise.resolve()),
      abandon: () => {},
    });
    const repo = new ModelRepository({ repoDir: dir, logger: pino({ level: 'silent' }), createBatcher });
    const state = async () => (await repo.index()).find((e) => e.name === 'm')?.state;
    return { repo, gate, state, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }

  it('runs a load sent while an unload drains after it, and serves again', async () => {
    const { repo, gate, state, cleanup } = await setup();
    try {
      await repo.load('m');
      gate.hold = true;
      const unloading = repo.unload('m');
      const loading = repo.load('m');
      expect(await state()).toBe('UNLOADING');
      expect(repo.isReady('m')).toBe(false);
      gate.release();
      await unloading;
      const handle = await loading;
      expect(repo.isReady('m')).toBe(true);
      expect(repo.get('m')).toBe(handle);
      expect(await state()).toBe('READY');
      const x = { name: 'x', datatype: 'FP32' as const, shape: [1], data: Float32Array.of(2) };
      expect((await handle.batcher.enqueue({ inputs: [x], outputNames: [] })).outputs[0]!.data).toEqual(Float32Array.of(2));
    } finally {
      await cleanup();
    }
  });

  it('keeps the order of calls: load, unload, load ends loaded; a second unload then forgets the model', async () => {
    const { repo, state, cleanup } = await setup();
    try {
      const ops = [repo.load('m'), repo.unload('m'), repo.load('m')];
      expect(await state()).toBe('LOADING');
      await Promise.all(ops);
      expect(await state()).toBe('READY');
      await repo.unload('m');
      expect(await state()).toBe('UNAVAILABLE');
      await expect(repo.unload('m')).rejects.toThrow(/not loaded/);
    } finally {
      await cleanup();
    }
  });

  it('refuses loads once closeAll has begun (shutdown), after unloading what was loaded', async () => {
    const { repo, state, cleanup } = await setup();
    try {
      await repo.load('m');
      await repo.closeAll();
      expect(await state()).toBe('UNAVAILABLE');
      const late = repo.load('m');
      await expect(late).rejects.toBeInstanceOf(Unavailable);
      await expect(late).rejects.toThrow(/shutting down/);
      expect(repo.isReady('m')).toBe(false);
    } finally {
      await cleanup();
    }
  });
});

describe('ModelRepository: config fields', () => {
  it('logs the fields neither kinfer nor Triton knows at each load, and still loads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-repo-'));
    try {
      await mkdir(join(dir, 'm'));
      await writeFile(join(dir, 'm', 'config.pbtxt'), 'platform: "echo"\nmax_batch_sizes: 4\n');
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
      const createBatcher: BatcherFactory = () => ({ enqueue: () => Promise.reject(new Error('unused')), pending: 0, startsAtOnce: true, drain: async () => {}, abandon: () => {} });
      const repo = new ModelRepository({ repoDir: dir, logger, createBatcher });
      await repo.load('m');
      expect(repo.isReady('m')).toBe(true);
      expect(lines).toContainEqual(expect.objectContaining({ event: 'config_fields_unknown', model: 'm', fields: ['max_batch_sizes (did you mean max_batch_size?)'] }));
      await repo.load('m', { config: JSON.stringify({ platform: 'echo' }) }); // a replacing config without them: no new warning
      expect(lines.filter((l) => l.event === 'config_fields_unknown')).toHaveLength(1);
      await repo.closeAll();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
