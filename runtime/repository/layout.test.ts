/**
 * @module repository/layout.test
 * Versions, the KServe agent layout, markers, model-file choice (ONNX model folders included) and names.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgument, NotFound } from '../core/errors.js';
import { checkModelName, listModelNames, modelFolderStamp, readModelLayout, versionFiles, type ModelLayout } from './layout.js';

let repo: string;
beforeEach(async () => {
  repo = await mkdtemp(join(tmpdir(), 'kinfer-layout-'));
});
afterEach(async () => {
  await rm(repo, { recursive: true, force: true });
});

/** The layout's version `i` with its model file, as the repository resolves it once the policy picked it. */
async function filesOf(layout: ModelLayout, i: number) {
  return versionFiles(layout.name, layout.versions[i]!, layout.config.platform);
}

async function touch(...parts: string[]): Promise<string> {
  const path = join(repo, ...parts);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, 'x');
  return path;
}

describe('readModelLayout', () => {
  it('lists numeric versions in numeric order and ignores other folders', async () => {
    await touch('m', '10', 'model.onnx');
    await touch('m', '2', 'model.onnx');
    await touch('m', '1', 'model.onnx');
    await touch('m', '0', 'model.onnx'); // Triton ignores 0 and leading zeros
    await touch('m', '03', 'model.onnx');
    await touch('m', 'extra', 'model.onnx');
    await writeFile(join(repo, 'm', 'config.pbtxt'), '# nothing but a comment\n');
    const layout = await readModelLayout(repo, 'm');
    expect(layout.versions.map((v) => v.version)).toEqual(['1', '2', '10']);
    expect(await filesOf(layout, 2)).toEqual({ version: '10', dir: join(repo, 'm', '10'), modelFile: join(repo, 'm', '10', 'model.onnx') });
    expect(layout.config.name).toBe('m');
    expect(layout.dir).toBe(join(repo, 'm'));
  });

  it('reads the KServe agent layout (files directly in the model folder) as version 1, ignoring SUCCESS markers and dotfiles', async () => {
    const file = await touch('agent', 'resnet.onnx');
    await touch('agent', 'SUCCESS.4b1d9a0c');
    await touch('agent', '.hidden.onnx');
    const layout = await readModelLayout(repo, 'agent');
    expect(layout.versions).toEqual([{ version: '1', dir: join(repo, 'agent') }]);
    expect(await filesOf(layout, 0)).toEqual({ version: '1', dir: join(repo, 'agent'), modelFile: file });
  });

  it('finds no model file for a folder with only a config (echo)', async () => {
    await mkdir(join(repo, 'echo'));
    await writeFile(join(repo, 'echo', 'config.toml'), 'platform = "echo"');
    const layout = await readModelLayout(repo, 'echo');
    expect(layout.config.platform).toBe('echo');
    expect(await filesOf(layout, 0)).toEqual({ version: '1', dir: join(repo, 'echo') });
  });

  it('prefers model.<ext> among several files and refuses an ambiguous folder', async () => {
    await touch('m', '1', 'a.onnx');
    await touch('m', '1', 'model.onnx');
    expect((await filesOf(await readModelLayout(repo, 'm'), 0)).modelFile).toBe(join(repo, 'm', '1', 'model.onnx'));
    await touch('n', '1', 'a.onnx');
    await touch('n', '1', 'b.onnx');
    await touch('n', '2', 'model.onnx');
    // Only the version a policy picks is looked into: version 2 alone still loads.
    const n = await readModelLayout(repo, 'n');
    expect((await filesOf(n, 1)).modelFile).toBe(join(repo, 'n', '2', 'model.onnx'));
    await expect(filesOf(n, 0)).rejects.toThrow(/model 'n' version 1: several \.onnx files \(a\.onnx, b\.onnx\) and none is named model\.onnx/);
  });

  it('uses the platform to pick between an .onnx and an .xmodel file', async () => {
    await touch('m', '1', 'net.onnx');
    const xm = await touch('m', '1', 'net.xmodel');
    await writeFile(join(repo, 'm', 'config.toml'), 'platform = "vitis_xmodel"');
    expect((await filesOf(await readModelLayout(repo, 'm'), 0)).modelFile).toBe(xm);
  });

  it("takes an ONNX model folder (Triton's directory form) as its inner model.onnx, also when default_model_filename names it", async () => {
    await touch('m', '1', 'model.onnx', 'model.onnx');
    await touch('m', '1', 'model.onnx', 'weights.bin');
    await touch('m', '1', 'other.onnx'); // model.onnx is preferred, folder or file
    const m = await readModelLayout(repo, 'm');
    expect(await filesOf(m, 0)).toEqual({ version: '1', dir: join(repo, 'm', '1'), modelFile: join(repo, 'm', '1', 'model.onnx', 'model.onnx') });
    await touch('n', '1', 'net.onnx', 'model.onnx');
    await touch('n', '1', 'model.onnx');
    const n = (await readModelLayout(repo, 'n')).versions[0]!;
    expect((await versionFiles('n', n, 'onnxruntime_onnx', 'net.onnx')).modelFile).toBe(join(repo, 'n', '1', 'net.onnx', 'model.onnx'));
    // The only .onnx entry, a folder; a folder does not count for an .xmodel platform
    await touch('o', '1', 'resnet.onnx', 'model.onnx');
    expect((await filesOf(await readModelLayout(repo, 'o'), 0)).modelFile).toBe(join(repo, 'o', '1', 'resnet.onnx', 'model.onnx'));
    await expect(versionFiles('o', (await readModelLayout(repo, 'o')).versions[0]!, 'vitis_xmodel', 'resnet.onnx')).rejects.toThrow(
      /default_model_filename 'resnet\.onnx' is not a file in /,
    );
  });

  it('refuses an ONNX model folder without model.onnx inside, naming the missing path', async () => {
    await touch('m', '1', 'model.onnx', 'weights.bin');
    await touch('m', '1', 'net.onnx', 'model.onnx', 'nested'); // model.onnx inside is a folder, not the graph
    const v = (await readModelLayout(repo, 'm')).versions[0]!;
    const missing = (p: string) =>
      `model 'm' version 1: ${p} is a folder and ${join(v.dir, p, 'model.onnx')} is missing: an ONNX model folder (Triton's directory form) holds its graph as model.onnx, with its external data beside it`;
    const err = await versionFiles('m', v, undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toBe(missing('model.onnx'));
    await expect(versionFiles('m', v, 'onnxruntime_onnx', 'net.onnx')).rejects.toThrow(missing('net.onnx'));
    await expect(versionFiles('m', v, undefined, 'absent.onnx')).rejects.toThrow(/default_model_filename 'absent\.onnx' is not a file or an ONNX model folder in /);
  });

  it('follows symlinked version folders', async () => {
    const file = await touch('store', 'model.onnx');
    await mkdir(join(repo, 'm'));
    await symlink(join(repo, 'store'), join(repo, 'm', '3'));
    expect(await filesOf(await readModelLayout(repo, 'm'), 0)).toEqual({ version: '3', dir: join(repo, 'm', '3'), modelFile: join(repo, 'm', '3', 'model.onnx') });
    expect(file).toBe(join(repo, 'store', 'model.onnx'));
  });

  it('throws NotFound for a missing model and InvalidArgument for a bad name', async () => {
    await expect(readModelLayout(repo, 'nope')).rejects.toBeInstanceOf(NotFound);
    await touch('plainfile');
    await expect(readModelLayout(repo, 'plainfile')).rejects.toThrow(/is not a folder/);
    for (const bad of ['..', '.', '../etc', 'a/b', '', '-x', '.hidden', 'a\\b', 'x y']) {
      await expect(readModelLayout(repo, bad), bad).rejects.toBeInstanceOf(InvalidArgument);
    }
  });

  it('propagates a malformed config as InvalidArgument naming the file', async () => {
    await touch('m', '1', 'model.onnx');
    await writeFile(join(repo, 'm', 'config.pbtxt'), 'input {');
    await expect(readModelLayout(repo, 'm')).rejects.toThrow(/^config\.pbtxt line 1: missing '}'/);
  });
});

describe('checkModelName', () => {
  it('accepts plain names', () => {
    for (const ok of ['resnet50', 'xmodel-resnet', 'a.b_c-d', '0abc']) expect(() => checkModelName(ok)).not.toThrow();
  });
});

describe('listModelNames', () => {
  it('lists model folders sorted, skipping files, dotfiles and markers', async () => {
    await touch('b', '1', 'model.onnx');
    await mkdir(join(repo, 'a'));
    await mkdir(join(repo, '.cache'));
    await touch('SUCCESS.abc');
    await touch('readme.txt');
    await mkdir(join(repo, 'has space'));
    expect(await listModelNames(repo)).toEqual(['a', 'b']);
  });

  it('throws NotFound for a missing repository', async () => {
    await expect(listModelNames(join(repo, 'missing'))).rejects.toBeInstanceOf(NotFound);
  });
});

describe('modelFolderStamp', () => {
  it('changes when a version folder comes or goes, a model file is rewritten or the config edited, and only then', async () => {
    await touch('m', '1', 'model.onnx');
    await writeFile(join(repo, 'm', 'config.pbtxt'), 'platform: "onnxruntime_onnx"');
    const dir = join(repo, 'm');
    const stamps = [await modelFolderStamp(dir)];
    expect(await modelFolderStamp(dir)).toBe(stamps[0]);
    await touch('m', '2', 'model.onnx');
    stamps.push(await modelFolderStamp(dir));
    await writeFile(join(repo, 'm', '2', 'model.onnx'), 'longer contents');
    stamps.push(await modelFolderStamp(dir));
    await writeFile(join(repo, 'm', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\nmax_batch_size: 2');
    stamps.push(await modelFolderStamp(dir));
    await rm(join(repo, 'm', '1'), { recursive: true });
    stamps.push(await modelFolderStamp(dir));
    // A file deeper down (ONNX external data) counts too.
    await mkdir(join(repo, 'm', '2', 'data', 'w'), { recursive: true });
    await writeFile(join(repo, 'm', '2', 'data', 'w', 'weights.bin'), 'a');
    stamps.push(await modelFolderStamp(dir));
    await writeFile(join(repo, 'm', '2', 'data', 'w', 'weights.bin'), 'ab');
    stamps.push(await modelFolderStamp(dir));
    // So does one in an ONNX model folder (Triton's directory form).
    await touch('m', '2', 'net.onnx', 'model.onnx');
    stamps.push(await modelFolderStamp(dir));
    await writeFile(join(repo, 'm', '2', 'net.onnx', 'model.onnx'), 'xy');
    stamps.push(await modelFolderStamp(dir));
    expect(new Set(stamps).size).toBe(stamps.length);
    // Markers and dotfiles (the KServe agent's SUCCESS files, editors' swap files) do not count.
    await touch('m', '.config.pbtxt.swp');
    await touch('m', '2', 'SUCCESS.abc');
    expect(await modelFolderStamp(dir)).toBe(stamps.at(-1));
  });
});
