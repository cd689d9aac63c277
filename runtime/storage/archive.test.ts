import { mkdtemp, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import { makeTar, makeTarGz, makeZip, type ArchiveEntry } from '../../test/helpers/http-fixture.js';
import { archiveKind, extractArchive, type ArchiveKind } from './archive.js';

let root: string;
let out: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'kinfer-archive-'));
  out = path.join(root, 'model');
  await mkdir(out);
});
afterEach(() => rm(root, { recursive: true, force: true }));

async function extract(kind: ArchiveKind | 'tgz', entries: ArchiveEntry[], maxBytes = 1 << 20): Promise<number> {
  const file = path.join(root, `a.${kind}`);
  await writeFile(file, kind === 'zip' ? makeZip(entries) : kind === 'tgz' ? makeTarGz(entries) : makeTar(entries));
  return extractArchive(file, kind === 'tgz' ? 'tar' : kind, out, { maxBytes });
}

/** Everything under `root` except the archive files and the model folder's legitimate content. */
async function strays(): Promise<string[]> {
  return (await readdir(root)).filter((n) => !n.startsWith('a.') && n !== 'model');
}

describe('archiveKind', () => {
  it('goes by extension first, then by Content-Type', () => {
    expect(archiveKind('m.zip')).toBe('zip');
    expect(archiveKind('m.TAR.GZ')).toBe('tar');
    expect(archiveKind('m.tgz')).toBe('tar');
    expect(archiveKind('m.tar')).toBe('tar');
    expect(archiveKind('model.onnx')).toBeUndefined();
    expect(archiveKind('download', 'application/zip')).toBe('zip');
    expect(archiveKind('download', 'application/x-tar; charset=binary')).toBe('tar');
    expect(archiveKind('download', 'application/octet-stream')).toBeUndefined();
  });
});

describe.each(['tar', 'tgz', 'zip'] as const)('extractArchive (%s)', (kind) => {
  it('unpacks files, folders and an inside symlink', async () => {
    const bytes = await extract(kind, [
      { name: 'config.pbtxt', body: 'platform: "onnx_onnxv1"' },
      { name: '1/', type: 'dir' },
      { name: '1/model.onnx', body: 'ONNX' },
      { name: 'latest', type: 'symlink', target: '1' },
    ]);
    expect(await readFile(path.join(out, 'config.pbtxt'), 'utf8')).toBe('platform: "onnx_onnxv1"');
    expect(await readFile(path.join(out, '1/model.onnx'), 'utf8')).toBe('ONNX');
    expect(await readlink(path.join(out, 'latest'))).toBe('1');
    expect(bytes).toBe('platform: "onnx_onnxv1"'.length + 4);
  });

  it('refuses ../ traversal, naming the entry, and writes nothing outside', async () => {
    const err = await extract(kind, [
      { name: 'ok.txt', body: 'fine' },
      { name: '../evil.txt', body: 'pwned' },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain('"../evil.txt"');
    expect(await strays()).toEqual([]);
  });

  it('refuses a deeper traversal hidden behind a folder', async () => {
    const err = await extract(kind, [{ name: 'a/b/../../../evil.txt', body: 'pwned' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain('evil.txt');
    expect(await strays()).toEqual([]);
  });

  it('refuses an absolute path', async () => {
    const abs = path.join(root, 'abs-evil.txt');
    const err = await extract(kind, [{ name: abs, body: 'pwned' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain(abs);
    expect(await strays()).toEqual([]);
  });

  it('refuses a symlink pointing outside', async () => {
    const err = await extract(kind, [{ name: 'escape', type: 'symlink', target: '../../etc' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/"escape".*outside/);
    await expect(readdir(out)).resolves.toEqual([]);
  });

  it('refuses an absolute symlink', async () => {
    const err = await extract(kind, [{ name: 'etc', type: 'symlink', target: '/etc' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain('"etc"');
  });

  it('refuses writing through a symlink extracted earlier (chained links)', async () => {
    const err = await extract(kind, [
      { name: 'sub/', type: 'dir' },
      { name: 'sub/up', type: 'symlink', target: '..' },
      { name: 'sub/up/up2', type: 'symlink', target: '..' },
      { name: 'sub/up/up2/evil.txt', body: 'pwned' },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain('"sub/up/up2"');
    expect(await strays()).toEqual([]);
  });

  it("refuses a symlink target with '..' after a name: through an earlier link it climbs out", async () => {
    // `s -> .` makes `s/..` the model folder's parent, though it reads as `.`.
    const err = await extract(kind, [
      { name: 's', type: 'symlink', target: '.' },
      { name: 't', type: 'symlink', target: 's/..' },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/"t" is a symlink whose target has '\.\.' after a name \("s\/\.\."\)/);
    await rm(out, { recursive: true });
    await mkdir(out);
    await extract(kind, [
      { name: 'lib/real.bin', body: 'x' },
      { name: 'a/b/link', type: 'symlink', target: '../../lib/./real.bin' },
    ]);
    expect(await readlink(path.join(out, 'a/b/link'))).toBe('../../lib/./real.bin');
    expect(await readFile(path.join(out, 'a/b/link'), 'utf8')).toBe('x');
  });

  it('refuses an entry that needs a folder where an earlier entry is a file (400, not a raw EEXIST)', async () => {
    for (const later of [{ name: 'a/b', body: 'x' }, { name: 'a/', type: 'dir' as const }, { name: 'a/c/d', body: 'y' }]) {
      await rm(out, { recursive: true, force: true });
      await mkdir(out);
      const err = await extract(kind, [{ name: 'a', body: 'file' }, later]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgument);
      expect((err as Error).message).toMatch(new RegExp(`^archive entry ${JSON.stringify(later.name)} needs a folder at "a(/c)?" where an earlier entry is a file`));
      expect((err as Error).message).not.toContain(root);
    }
  });

  it('enforces the unpacked size limit', async () => {
    const err = await extract(kind, [{ name: 'big.bin', body: Buffer.alloc(4096, 1) }], 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/size limit of 1000 bytes/);
  });
});

describe('zip-only', () => {
  it('releases the archive file after a refused entry whose data was never read', async () => {
    const err = await extract('zip', [
      { name: 'd/', type: 'dir' },
      { name: 'd', body: 'replaces the folder' },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/"d" replaces a directory/);
    const archive = path.join(root, 'a.zip');
    const holders = async () =>
      (await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))).filter((p) => p === archive);
    // yauzl closes the descriptor on its own turn after the stream ends: poll briefly, bounded.
    for (let i = 0; i < 50 && (await holders()).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await holders()).toEqual([]);
  });
});

describe('tar-only entries', () => {
  it('refuses a hard link to a file outside', async () => {
    const err = await extract('tar', [{ name: 'passwd', type: 'link', target: '../../../etc/passwd' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/"passwd".*hard link/);
  });

  it('accepts a hard link to a file extracted before it', async () => {
    await extract('tar', [
      { name: 'a.bin', body: 'same' },
      { name: 'b.bin', type: 'link', target: 'a.bin' },
    ]);
    expect(await readFile(path.join(out, 'b.bin'), 'utf8')).toBe('same');
  });

  it('replaces an earlier symlink instead of writing through it', async () => {
    await writeFile(path.join(root, 'target.txt'), 'untouched');
    await extract('tar', [
      { name: 'x', type: 'symlink', target: 'y' },
      { name: 'x', body: 'plain file now' },
    ]);
    expect(await readFile(path.join(out, 'x'), 'utf8')).toBe('plain file now');
    expect(await readFile(path.join(root, 'target.txt'), 'utf8')).toBe('untouched');
  });

  it('reports a truncated archive as InvalidArgument', async () => {
    const file = path.join(root, 'a.tar');
    await writeFile(file, Buffer.concat([makeTar([{ name: 'f', body: 'x'.repeat(2000) }]).subarray(0, 700)]));
    const err = await extractArchive(file, 'tar', out, { maxBytes: 1 << 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toMatch(/not a valid tar/);
  });
});
