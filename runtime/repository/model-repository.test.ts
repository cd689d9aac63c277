import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Batcher } from '../batching/batcher.js';
import { InvalidArgument, NotFound, Unavailable } from '../core/errors.js';
import { defaultConfig } from './model-config.js';
import { applyLoadParameters, checkModelName, MAX_INSTANCES, ModelRepository, type BatcherFactory } from './model-repository.js';

/** A batcher factory for tests that never infer: counts the batchers made and drained. */
function idleBatchers() {
  const count = { made: 0, drained: 0 };
  const createBatcher: BatcherFactory = () => {
    count.made++;
    return { enqueue: () => Promise.reject(new Error('unused')), pending: 0, queuedRequests: 0, startsAtOnce: true, drain: async () => void count.drained++, abandon: () => {} };
  };
  return { count, createBatcher };
}

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
      queuedRequests: 0,
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

  it('leaves a model unloaded when a reload (a repository poll) was queued behind its unload', async () => {
    const { repo, gate, state, cleanup } = await setup();
    try {
      await repo.load('m');
      gate.hold = true;
      const unloading = repo.unload('m');
      const polled = repo.reload('m');
      gate.release();
      await Promise.all([unloading, polled]);
      expect(repo.isReady('m')).toBe(false);
      expect(await state()).toBe('UNAVAILABLE');
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
      // A request arriving during the drain: UNAVAILABLE (retried elsewhere), not NOT_FOUND, for a model it served or not.
      for (const name of ['m', 'other']) {
        expect(() => repo.get(name)).toThrow(Unavailable);
        expect(() => repo.get(name)).toThrow(`model '${name}' is not served: the server is shutting down; send the request to another replica`);
      }
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
      const repo = new ModelRepository({ repoDir: dir, logger, createBatcher: idleBatchers().createBatcher });
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

  it(`refuses more than ${MAX_INSTANCES} instances before making any, keeping the version that serves (1e9 ran the process out of memory)`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-repo-'));
    try {
      await mkdir(join(dir, 'm'));
      await writeFile(join(dir, 'm', 'config.pbtxt'), 'platform: "echo"\n');
      const repo = new ModelRepository({ repoDir: dir, logger: pino({ level: 'silent' }), createBatcher: idleBatchers().createBatcher });
      await repo.load('m');
      const loads: Record<string, string | number>[] = [
        { config: JSON.stringify({ platform: 'echo', instance_group: [{ count: 1e9 }] }) },
        { config: JSON.stringify({ platform: 'echo', instance_group: [{ count: 200 }, { count: 57 }] }) },
        { threads: MAX_INSTANCES + 1 },
      ];
      for (const params of loads) {
        const err = await repo.load('m', params).catch((e: unknown) => e);
        expect(err, JSON.stringify(params)).toBeInstanceOf(InvalidArgument);
        expect((err as Error).message).toMatch(new RegExp(`^model 'm': \\d+ instances asked for \\(instance_group counts or threads\\); at most ${MAX_INSTANCES}$`));
        expect(repo.isReady('m')).toBe(true);
      }
      await repo.load('m', { threads: MAX_INSTANCES });
      expect(repo.isReady('m')).toBe(true);
      await repo.closeAll();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelRepository: versions (version_policy)', () => {
  /** Echo model `m` with the given version folders and config lines; counts batchers made and drained. */
  async function versioned(configLines: string, versions = ['1', '2', '3']) {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-repo-'));
    for (const v of versions) await mkdir(join(dir, 'm', v), { recursive: true });
    await writeFile(join(dir, 'm', 'config.pbtxt'), `platform: "echo"\n${configLines}\n`);
    const { count, createBatcher } = idleBatchers();
    const repo = new ModelRepository({ repoDir: dir, logger: pino({ level: 'silent' }), createBatcher });
    return { dir, repo, count, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }

  it('serves only the highest version by default', async () => {
    const { repo, cleanup } = await versioned('');
    try {
      await repo.load('m');
      expect(repo.versions('m')).toEqual(['3']);
      expect(() => repo.get('m', '2')).toThrow("model 'm' has no version '2' loaded (serving version 3)");
    } finally {
      await cleanup();
    }
  });

  it('serves every selected version; a request without a version gets the highest; the index lists each', async () => {
    const { repo, cleanup } = await versioned('version_policy { all { } }');
    try {
      await repo.load('m');
      expect(repo.versions('m')).toEqual(['1', '2', '3']);
      expect(repo.get('m').version).toBe('3');
      expect(repo.get('m', '').version).toBe('3');
      expect(repo.get('m', '1').version).toBe('1');
      expect(() => repo.get('m', '4')).toThrow(NotFound);
      expect(() => repo.get('m', '4')).toThrow(/serving versions 1, 2, 3/);
      expect(repo.isReady('m', '2')).toBe(true);
      expect(repo.isReady('m', '4')).toBe(false);
      expect(repo.loaded().map((h) => h.version)).toEqual(['1', '2', '3']);
      expect(repo.loadedNames()).toEqual(['m']);
      expect(await repo.index()).toEqual([1, 2, 3].map((v) => ({ name: 'm', version: String(v), state: 'READY' })));
      await repo.unload('m');
      expect(repo.versions('m')).toEqual([]);
      expect(await repo.index()).toEqual([{ name: 'm', state: 'UNAVAILABLE', reason: 'unloaded' }]);
    } finally {
      await cleanup();
    }
  });

  it('swaps the whole set on a reload under another policy and closes every old version', async () => {
    const { repo, count, cleanup } = await versioned('version_policy { latest { num_versions: 2 } }');
    try {
      await repo.load('m');
      expect(repo.versions('m')).toEqual(['2', '3']);
      await repo.load('m', { config: JSON.stringify({ platform: 'echo', version_policy: { specific: { versions: [1] } } }) });
      expect(repo.versions('m')).toEqual(['1']);
      expect(count).toEqual({ made: 3, drained: 2 });
    } finally {
      await cleanup();
    }
  });

  it('keeps the serving set when one version of a reload fails, and releases the versions loaded before it', async () => {
    const { dir, repo, count, cleanup } = await versioned('version_policy { specific { versions: [1, 2] } }');
    try {
      await repo.load('m');
      const before = repo.loaded();
      // Version 3 holds two model files and neither is model.onnx: only a policy that picks it sees that.
      await writeFile(join(dir, 'm', '3', 'a.onnx'), 'x');
      await writeFile(join(dir, 'm', '3', 'b.onnx'), 'x');
      await repo.load('m'); // still specific [1, 2], their folders and the config unchanged: kept serving
      expect(count).toEqual({ made: 2, drained: 0 });
      const serving = repo.loaded();
      expect(serving.every((h, i) => h === before[i])).toBe(true);
      await expect(repo.load('m', { config: JSON.stringify({ platform: 'echo', version_policy: { all: {} } }) })).rejects.toThrow(
        /model 'm' version 3: several \.onnx files/,
      );
      expect(repo.loaded().every((h, i) => h === serving[i])).toBe(true);
      // The config changed: the reload made versions 1 and 2 anew, then closed them when 3 failed.
      expect(count).toEqual({ made: 4, drained: 2 });
      expect((await repo.index()).map((e) => [e.version, e.state])).toEqual([['1', 'READY'], ['2', 'READY']]);
    } finally {
      await cleanup();
    }
  });

  it("reloads with the parameters of the load before it in the queue, not those of when it was asked (a poll racing an API load)", async () => {
    const { repo, cleanup } = await versioned('');
    try {
      await repo.load('m');
      const api = repo.load('m', { config: JSON.stringify({ platform: 'echo', version_policy: { all: {} } }) });
      const poll = repo.reload('m'); // asked while the API load is still running
      await Promise.all([api, poll]);
      expect(repo.versions('m')).toEqual(['1', '2', '3']);
    } finally {
      await cleanup();
    }
  });

  it('refuses a policy that selects none of the folders, naming what is there', async () => {
    const { repo, cleanup } = await versioned('version_policy { specific { versions: [7] } }');
    try {
      await expect(repo.load('m')).rejects.toThrow("model 'm': version_policy specific { versions: [7] } selects none of the versions present (1, 2, 3)");
      expect(await repo.index()).toEqual([{ name: 'm', state: 'UNAVAILABLE', reason: "model 'm': version_policy specific { versions: [7] } selects none of the versions present (1, 2, 3)" }]);
    } finally {
      await cleanup();
    }
  });
});

describe('ModelRepository: model files sent with the load (file: overrides)', () => {
  /** A repository whose echo model `m` has a folder; os.tmpdir() points at a folder of the test's own, to see what is staged. */
  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'kinfer-repo-'));
    await mkdir(join(dir, 'm', '1'), { recursive: true });
    await writeFile(join(dir, 'm', 'config.pbtxt'), 'platform: "echo"\n');
    const staging = await mkdtemp(join(tmpdir(), 'kinfer-staging-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = staging;
    const repo = new ModelRepository({ repoDir: dir, logger: pino({ level: 'silent' }), createBatcher: idleBatchers().createBatcher });
    // Only kinfer's own folders: libraries write their own files into TMPDIR too.
    const staged = async () => (await readdir(staging)).filter((n) => n.startsWith('kinfer-files-')).length;
    return {
      repo,
      staged,
      cleanup: async () => {
        if (savedTmp === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = savedTmp;
        await Promise.all([rm(dir, { recursive: true, force: true }), rm(staging, { recursive: true, force: true })]);
      },
    };
  }
  const echoConfig = (policy: object = {}) => JSON.stringify({ platform: 'echo', ...policy });
  const file = (text: string) => new Uint8Array(Buffer.from(text));

  it('serves the versions the files hold, keeps one staged copy, and reads the repository again on a load without files', async () => {
    const { repo, staged, cleanup } = await setup();
    try {
      await repo.load('m', { config: echoConfig({ version_policy: { all: {} } }) }, new Map([['4/a.txt', file('a')], ['7/b.txt', file('b')]]));
      expect(repo.versions('m')).toEqual(['4', '7']);
      expect(await staged()).toBe(1);
      await repo.load('m', { config: echoConfig() }, new Map([['9/c.txt', file('c')]]));
      expect(repo.versions('m')).toEqual(['9']);
      expect(await staged()).toBe(1); // the first copy went with the versions it served
      await repo.load('m');
      expect(repo.versions('m')).toEqual(['1']);
      expect(await staged()).toBe(0);
      // Polling leaves a model alone while files sent with its load serve it.
      await repo.load('m', { config: echoConfig() }, new Map([['9/c.txt', file('c')]]));
      await repo.reload('m');
      expect(repo.versions('m')).toEqual(['9']);
      await repo.load('m');
      // A model with no repository folder at all can be sent whole, and its unload removes the files.
      await repo.load('pushed', { config: echoConfig() }, new Map([['2/x.txt', file('x')]]));
      expect(repo.versions('pushed')).toEqual(['2']);
      await repo.unload('pushed');
      expect(await staged()).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('keeps the serving versions and leaves nothing staged when the files fail to load', async () => {
    const { repo, staged, cleanup } = await setup();
    try {
      await repo.load('m');
      const bad = repo.load('m', { config: JSON.stringify({ platform: 'onnxruntime_onnx' }) }, new Map([['1/model.onnx', file('not a model')]]));
      await expect(bad).rejects.toThrow();
      expect(repo.versions('m')).toEqual(['1']);
      expect(repo.get('m').metadata.platform).toBe('echo');
      expect(await staged()).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('reads label files, and refuses a missing one or one too large to be labels (a weights file named by mistake)', async () => {
    const { repo, cleanup } = await setup();
    const labelled = (name: string) => JSON.stringify({ platform: 'echo', output: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3], label_filename: name }] });
    try {
      const files = new Map([['1/x', file('x')], ['labels.txt', file('ant\nbee\ncat\n')], ['big.bin', file('')]]);
      await repo.load('m', { config: labelled('labels.txt') }, files);
      expect(repo.get('m').labels.get('x')).toEqual(['ant', 'bee', 'cat']);
      await expect(repo.load('m', { config: labelled('nope.txt') }, files)).rejects.toThrow(/output 'x': cannot read label_filename "nope.txt" in .*: ENOENT/);
      // 65 MiB: its size refuses it before it is read; the version serving keeps its labels.
      await expect(
        repo.load('m', { config: labelled('big.bin') }, new Map([...files, ['big.bin', new Uint8Array(65 * 2 ** 20)]])),
      ).rejects.toThrow(/cannot read label_filename "big.bin" in .*: 68157440 bytes, over the 64 MiB a label file may have/);
      expect(repo.get('m').labels.get('x')).toEqual(['ant', 'bee', 'cat']);
    } finally {
      await cleanup();
    }
  });

  it('refuses files without a config, beside a storage_uri, or outside the model folder', async () => {
    const { repo, staged, cleanup } = await setup();
    try {
      const one = new Map([['1/model.onnx', file('x')]]);
      await expect(repo.load('m', {}, one)).rejects.toThrow("model 'm': file: parameters need a config parameter (the model's config as JSON)");
      await expect(repo.load('m', { config: echoConfig(), storage_uri: 'file:///x' }, one)).rejects.toThrow(/both name the model's files/);
      for (const path of ['../escape', '/abs', '1//x', '1/./x', 'a\\b', `1/${'€'.repeat(100)}`]) {
        await expect(repo.load('m', { config: echoConfig() }, new Map([[path, file('x')]])), path).rejects.toBeInstanceOf(InvalidArgument);
      }
      expect(await repo.index()).toEqual([{ name: 'm', state: 'UNAVAILABLE', reason: 'unloaded' }]);
      // Paths that contradict each other show only while the files are written: a failed load, nothing left staged.
      await expect(repo.load('m', { config: echoConfig() }, new Map([['1', file('x')], ['1/y', file('y')]]))).rejects.toThrow(/overlapping paths/);
      expect(await staged()).toBe(0);
    } finally {
      await cleanup();
    }
  });
});
