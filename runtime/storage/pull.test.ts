import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cancelled, InvalidArgument, NotFound, PayloadTooLarge } from '../core/errors.js';
import { makeTar, makeZip } from '../../test/helpers/http-fixture.js';
import { pull, schemeOf } from './pull.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-pull-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

describe('schemeOf', () => {
  it('names the unknown scheme and the supported ones', () => {
    expect(() => schemeOf('ftp://host/model')).toThrow(InvalidArgument);
    expect(() => schemeOf('ftp://host/model')).toThrow(/unsupported scheme "ftp:\/\/".*s3:\/\/.*gs:\/\//);
    expect(() => schemeOf('s3:bucket/x')).toThrow(/malformed, expected s3:\/\//);
    expect(schemeOf('/mnt/models/a')).toBe('');
    expect(schemeOf('HTTPS://h/x')).toBe('https');
  });

  it('rejects empty and malformed URIs through pull', async () => {
    await expect(pull('', { dest: path.join(root, 'm') })).rejects.toBeInstanceOf(InvalidArgument);
    await expect(pull('gs://', { dest: path.join(root, 'm') })).rejects.toThrow(/expected gs:\/\/<bucket>/);
    await expect(pull('s3:///key', { dest: path.join(root, 'm') })).rejects.toThrow(/expected s3:\/\/<bucket>/);
    await expect(pull('http://', { dest: path.join(root, 'm') })).rejects.toBeInstanceOf(InvalidArgument);
  });
});

describe('file:// and plain paths', () => {
  it('uses a folder in place (no copy), for file:// and a plain path', async () => {
    const src = path.join(root, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'model.onnx'), 'x');
    const dest = path.join(root, 'dest');
    expect(await pull(`file://${src}`, { dest })).toEqual({ dir: src, cached: false, bytes: 0 });
    expect(await pull(src, { dest })).toEqual({ dir: src, cached: false, bytes: 0 });
    await expect(readdir(root)).resolves.not.toContain('dest');
  });

  it('copies a folder into dest when asked', async () => {
    const src = path.join(root, 'src');
    await mkdir(path.join(src, '1'), { recursive: true });
    await writeFile(path.join(src, '1', 'model.onnx'), 'onnx');
    const dest = path.join(root, 'dest');
    const r = await pull(src, { dest, copy: true });
    expect(r.dir).toBe(dest);
    expect(await readFile(path.join(dest, '1', 'model.onnx'), 'utf8')).toBe('onnx');
  });

  it('copies a single file to dest/<basename>', async () => {
    const file = path.join(root, 'model.onnx');
    await writeFile(file, 'weights');
    const dest = path.join(root, 'dest');
    const r = await pull(`file://${file}`, { dest });
    expect(r.dir).toBe(dest);
    expect(await readdir(dest)).toEqual(['model.onnx']);
  });

  it('unpacks a local archive', async () => {
    const file = path.join(root, 'model.zip');
    await writeFile(file, makeZip([{ name: '1/model.onnx', body: 'zipped' }]));
    const dest = path.join(root, 'dest');
    await pull(file, { dest });
    expect(await readFile(path.join(dest, '1', 'model.onnx'), 'utf8')).toBe('zipped');
  });

  it('a cancelled local copy leaves the destination as it was and no staging folder', async () => {
    const src = path.join(root, 'model.onnx');
    await writeFile(src, 'new');
    const dest = path.join(root, 'dest');
    await mkdir(dest);
    await writeFile(path.join(dest, 'model.onnx'), 'old');
    const ac = new AbortController();
    ac.abort();
    await expect(pull(src, { dest, signal: ac.signal })).rejects.toBeInstanceOf(Cancelled);
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('old');
    expect((await readdir(root)).sort()).toEqual(['dest', 'model.onnx']);
  });

  it('is NotFound for a missing path', async () => {
    await expect(pull(path.join(root, 'nope'), { dest: path.join(root, 'd') })).rejects.toBeInstanceOf(NotFound);
  });

  it('enforces the size limit on a local file', async () => {
    const file = path.join(root, 'big.bin');
    await writeFile(file, Buffer.alloc(2000));
    await expect(pull(file, { dest: path.join(root, 'd'), maxBytes: 1000 })).rejects.toBeInstanceOf(PayloadTooLarge);
  });

  it('a failed replacement leaves the old model and no temp folders', async () => {
    const dest = path.join(root, 'dest');
    await mkdir(dest);
    await writeFile(path.join(dest, 'model.onnx'), 'old');
    const bad = path.join(root, 'bad.tar');
    await writeFile(bad, makeTar([{ name: 'model.onnx', body: 'new' }, { name: '../escape', body: 'x' }]));
    await expect(pull(bad, { dest })).rejects.toThrow(/"\.\.\/escape"/);
    expect(await readFile(path.join(dest, 'model.onnx'), 'utf8')).toBe('old');
    expect((await readdir(root)).sort()).toEqual(['bad.tar', 'dest']);
  });

  it('replaces an existing model atomically on success', async () => {
    const dest = path.join(root, 'dest');
    await mkdir(dest);
    await writeFile(path.join(dest, 'stale.onnx'), 'old');
    const good = path.join(root, 'good.tar');
    await writeFile(good, makeTar([{ name: 'model.onnx', body: 'new' }]));
    await pull(good, { dest });
    expect(await readdir(dest)).toEqual(['model.onnx']);
    expect((await readdir(root)).sort()).toEqual(['dest', 'good.tar']);
  });

  it('removes leftovers of a crashed pull (dead pid) before pulling', async () => {
    const dest = path.join(root, 'dest');
    await mkdir(path.join(root, '.dest.pull-999999999-abcd1234'), { recursive: true });
    const file = path.join(root, 'm.onnx');
    await writeFile(file, 'w');
    await pull(file, { dest });
    expect((await readdir(root)).sort()).toEqual(['dest', 'm.onnx']);
  });
});

describe('pvc://', () => {
  it('maps pvc://<claim>/<path> to <KINFER_PVC_ROOT>/<path>', async () => {
    await mkdir(path.join(root, 'models', 'resnet'), { recursive: true });
    const env = { KINFER_PVC_ROOT: root };
    const r = await pull('pvc://my-claim/models/resnet', { dest: path.join(root, 'd'), env });
    expect(r.dir).toBe(path.join(root, 'models', 'resnet'));
  });

  it('refuses a path that climbs out of the claim and a bad claim name', async () => {
    const env = { KINFER_PVC_ROOT: root };
    await expect(pull('pvc://claim/../../etc', { dest: path.join(root, 'd'), env })).rejects.toThrow(/climbs out/);
    await expect(pull('pvc://Bad_Claim/x', { dest: path.join(root, 'd'), env })).rejects.toThrow(/not a valid claim name/);
  });
});
