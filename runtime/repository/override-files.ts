/**
 * @module repository/override-files
 * Triton's model file overrides: a load request may carry the model's files as
 * `file:<path>` parameters (base64 text over HTTP, bytes over gRPC), with a
 * `config` parameter. The model then loads from those files alone, staged in a
 * folder of their own; the repository folder is not touched, and a later load
 * without files reads the repository again.
 *
 * @example
 * // {"parameters": {"config": "{...}", "file:1/model.onnx": "<base64>"}}
 * const { parameters, files } = decodeFileParameters(body.parameters);
 * const staged = await stageOverrideFiles('m', files); // staged.dir holds 1/model.onnx
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isBase64Text } from '../core/bytes.js';
import { InvalidArgument } from '../core/errors.js';
import type { Parameters } from '../core/tensor.js';

export const FILE_PREFIX = 'file:';
/** Files per load: a model folder, not a dataset. */
const MAX_FILES = 1000;

/** Model file path → contents, relative to the model folder (`1/model.onnx`, `labels.txt`). */
export type OverrideFiles = ReadonlyMap<string, Uint8Array>;

/** A staged override: `dir` is the model folder; `remove` deletes it and its temporary parent. */
export interface StagedFiles {
  dir: string;
  remove(): Promise<void>;
}

/**
 * Splits the HTTP load parameters: `file:<path>` values (base64 strings) become files; the rest
 * stay parameters. InvalidArgument for a value that is not base64 text.
 */
export function decodeFileParameters(params: Parameters | undefined): { parameters: Parameters | undefined; files: OverrideFiles } {
  const files = new Map<string, Uint8Array>();
  if (!params) return { parameters: params, files };
  const parameters: Parameters = {};
  for (const [key, value] of Object.entries(params)) {
    if (!key.startsWith(FILE_PREFIX)) {
      parameters[key] = value;
      continue;
    }
    if (typeof value !== 'string' || value.length % 4 !== 0 || !isBase64Text(value)) {
      throw new InvalidArgument(`load parameter '${key}': expected the file's contents as base64 text`);
    }
    files.set(key.slice(FILE_PREFIX.length), Buffer.from(value, 'base64'));
  }
  return { parameters, files };
}

/** Refuses a file path that is not a plain relative path inside the model folder. */
export function checkOverridePath(path: string): void {
  const segments = path.split('/');
  const bad = segments.find((s) => s === '' || s === '.' || s === '..' || Buffer.byteLength(s) > 255 || /[\\\0]/.test(s));
  if (bad !== undefined || path.length > 4096) {
    throw new InvalidArgument(`load parameter 'file:${path.slice(0, 200)}': expected a relative path inside the model folder, such as file:1/model.onnx`);
  }
}

/**
 * Writes `files` into a fresh folder `<tmp>/kinfer-files-XXXXXX/<name>` (the layout's folder name
 * is the model's). Nothing is left behind when a write fails.
 */
export async function stageOverrideFiles(name: string, files: OverrideFiles): Promise<StagedFiles> {
  if (files.size > MAX_FILES) throw new InvalidArgument(`model '${name}': ${files.size} file: parameters; at most ${MAX_FILES} are taken`);
  for (const path of files.keys()) checkOverridePath(path);
  const root = await mkdtemp(join(tmpdir(), 'kinfer-files-'));
  const remove = () => rm(root, { recursive: true, force: true });
  const dir = join(root, name);
  try {
    for (const [path, bytes] of files) {
      const target = join(dir, path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, bytes, { flag: 'wx' });
    }
  } catch (err) {
    await remove();
    const code = (err as NodeJS.ErrnoException).code;
    // `1/model.onnx` beside a file `1`, or the reverse: the paths contradict each other.
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') throw new InvalidArgument(`model '${name}': the file: parameters name overlapping paths`);
    if (code === 'ENAMETOOLONG') throw new InvalidArgument(`model '${name}': a file: parameter's path is too long for the filesystem`);
    throw err;
  }
  return { dir, remove };
}
