/**
 * @module repository/layout
 * The on-disk model repository: which model folders exist, which versions
 * each holds, and which file in a version is the model.
 *
 * ```
 * <repo>/<model>/config.{toml,pbtxt,json}         optional
 * <repo>/<model>/<version>/<model file>           versions: positive integers, as Triton
 * <repo>/<model>/<model file>                     KServe agent layout: version "1"
 * <repo>/<model>/<version>/model.onnx/model.onnx  Triton's ONNX directory form, external data beside it
 * ```
 *
 * @example
 * const layout = await readModelLayout('/mnt/models', 'resnet');
 * const latest = await versionFiles('resnet', layout.versions.at(-1)!, layout.config.platform);
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { InvalidArgument, NotFound } from '../core/errors.js';
import { readModelConfig } from './config-files.js';
import { defaultConfig, type ModelConfig } from './model-config.js';

export interface ModelVersionDir {
  version: string;
  dir: string;
}

export interface ModelVersionFiles extends ModelVersionDir {
  /** The model file (e.g. `<dir>/model.onnx`), or undefined when there is none (echo). */
  modelFile?: string;
}

export interface ModelLayout {
  name: string;
  dir: string;
  config: ModelConfig;
  /** Ascending by number; never empty. Their model files are found once the version policy picked them (`versionFiles`). */
  versions: ModelVersionDir[];
}

/** File extensions that name a model file, in order of preference when a folder holds several kinds. */
export const MODEL_EXTENSIONS = ['.onnx', '.xmodel'] as const;

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Triton ignores version folders that are not positive integers (including "0" and "01").
const VERSION_NAME = /^[1-9][0-9]*$/;
const MAX_ENTRIES = 10_000;

/** Throws InvalidArgument unless `name` is a plain model name (no path separators, not `.`/`..`). */
export function checkModelName(name: string): void {
  if (typeof name !== 'string' || !MODEL_NAME.test(name) || name === '.' || name === '..' || name.length > 255) {
    throw new InvalidArgument(
      `model name ${JSON.stringify(String(name).slice(0, 64))} is not valid: use letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  }
}

/** True for files the layout never treats as model content: dotfiles and the KServe agent's `SUCCESS.<sha>` markers. */
export function isIgnoredEntry(name: string): boolean {
  return name.startsWith('.') || name.startsWith('SUCCESS.') || name === 'SUCCESS';
}

/**
 * Reads `<repoDir>/<name>`: its config (or the default one) and its version folders.
 * Throws InvalidArgument for a bad name, NotFound when the folder does not exist,
 * and whatever `readModelConfig` throws.
 */
export async function readModelLayout(repoDir: string, name: string): Promise<ModelLayout> {
  checkModelName(name);
  const dir = join(repoDir, name);
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  if (!st) throw new NotFound(`model '${name}' not found in the model repository ${repoDir}`);
  if (!st.isDirectory()) throw new NotFound(`model '${name}': ${dir} is not a folder`);

  const config = (await readModelConfig(dir, name)) ?? defaultConfig(name);
  const entries = await listEntries(dir);
  const versionDirs = entries.filter((e) => e.isDir && VERSION_NAME.test(e.name)).map((e) => e.name);
  versionDirs.sort((a, b) => Number(a) - Number(b));

  const versions: ModelVersionDir[] = versionDirs.length === 0 ? [{ version: '1', dir }] : versionDirs.map((v) => ({ version: v, dir: join(dir, v) }));
  return { name, dir, config, versions };
}

/**
 * The model file of one version folder: the config's `default_model_filename` when it names one
 * (InvalidArgument when the folder lacks it), else the only file with a model extension, or
 * `model.<ext>` among several (InvalidArgument otherwise). With a platform, only its extension
 * counts. None (echo) leaves `modelFile` out. An ONNX model may be a folder (Triton's directory
 * form, `<v>/model.onnx/`): its graph is the `model.onnx` inside, where its external data resolves.
 */
export async function versionFiles(name: string, v: ModelVersionDir, platform: string | undefined, fileName?: string): Promise<ModelVersionFiles> {
  const entries = await listEntries(v.dir);
  const directoryForm = platformExtension(platform) !== '.xmodel';
  if (fileName !== undefined) {
    const entry = entries.find((e) => e.name === fileName && (e.isFile || (e.isDir && directoryForm)));
    if (!entry) {
      const what = directoryForm ? 'a file or an ONNX model folder' : 'a file';
      throw new InvalidArgument(`model '${name}' version ${v.version}: default_model_filename '${fileName}' is not ${what} in ${v.dir}`);
    }
    return { ...v, modelFile: await modelFileOf(name, v, entry) };
  }
  const entry = modelEntryIn(entries, name, v.version, platform);
  return entry ? { ...v, modelFile: await modelFileOf(name, v, entry) } : { ...v };
}

/** Triton's onnxruntime backend loads this file from a model "file" that is a folder. */
const DIRECTORY_FORM_GRAPH = 'model.onnx';

/** `entry`'s path; for a folder (the ONNX directory form), the graph inside, which must be a file. */
async function modelFileOf(name: string, v: ModelVersionDir, entry: Entry): Promise<string> {
  const path = join(v.dir, entry.name);
  if (!entry.isDir) return path;
  const graph = join(path, DIRECTORY_FORM_GRAPH);
  if (!(await stat(graph).catch(() => undefined))?.isFile()) {
    throw new InvalidArgument(
      `model '${name}' version ${v.version}: ${entry.name} is a folder and ${graph} is missing: an ONNX model folder (Triton's directory form) holds its graph as ${DIRECTORY_FORM_GRAPH}, with its external data beside it`,
    );
  }
  return graph;
}

/** Entries and levels past which a stamp stops (see the two stamps below). */
const STAMP_MAX_LINES = 10_000;
const STAMP_MAX_DEPTH = 8;

/**
 * Every file and folder under `dir` (bounded), as sorted `path<TAB>size<TAB>mtime` and `path/`
 * lines. A folder's own mtime is left out: its listing says what changed in it, and the mtime also
 * moves for markers and dotfiles. `strict`: any error, or the bounds, give undefined; otherwise an
 * entry that vanished meanwhile is skipped and the bounds cut the stamp short.
 */
async function stampLines(dir: string, strict: boolean): Promise<string[] | undefined> {
  const lines: string[] = [];
  const walk = async (d: string, prefix: string, depth: number): Promise<boolean> => {
    for (const e of await listEntries(d)) {
      if (lines.length >= STAMP_MAX_LINES) return false;
      const st = await stat(join(d, e.name)).catch((err: unknown) => {
        if (strict) throw err;
        return undefined; // removed meanwhile, or a dangling link
      });
      if (!st) continue;
      if (st.isDirectory()) {
        lines.push(`${prefix}${e.name}/`);
        if (depth === 0) return false;
        const sub = walk(join(d, e.name), `${prefix}${e.name}/`, depth - 1);
        if (!(await (strict ? sub : sub.catch(() => true)))) return false;
      } else {
        lines.push(`${prefix}${e.name}\t${st.size}\t${st.mtimeMs}`);
      }
    }
    return true;
  };
  const whole = await walk(dir, '', STAMP_MAX_DEPTH);
  return whole || !strict ? lines.sort() : undefined;
}

/**
 * A fingerprint of a model folder for repository polling: each entry's path, size and mtime, at
 * any depth (up to 8 levels and 10,000 entries). Adding or removing a version folder, replacing a
 * model file (ONNX external data in a subfolder included) or editing the config changes it.
 */
export async function modelFolderStamp(dir: string): Promise<string> {
  return (await stampLines(dir, false))!.join('\n');
}

/**
 * The same lines, for a reload to compare and keep a version whose files did not change.
 * Undefined when the folder cannot be read whole or is past the bounds: nothing is kept then.
 */
export async function modelSourceStamp(dir: string): Promise<string[] | undefined> {
  return stampLines(dir, true).catch(() => undefined);
}

/** Model folder names in `repoDir`, sorted; skips files, dotfiles, markers and names that are not plain. */
export async function listModelNames(repoDir: string): Promise<string[]> {
  const st = await stat(repoDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new NotFound(`model repository ${repoDir} does not exist or is not a folder`);
  const entries = await listEntries(repoDir);
  return entries
    .filter((e) => e.isDir && MODEL_NAME.test(e.name))
    .map((e) => e.name)
    .sort();
}

interface Entry {
  name: string;
  isDir: boolean;
  isFile: boolean;
}

async function listEntries(dir: string): Promise<Entry[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  if (dirents.length > MAX_ENTRIES) throw new InvalidArgument(`${dir} holds ${dirents.length} entries; at most ${MAX_ENTRIES} are read`);
  const out: Entry[] = [];
  for (const d of dirents) {
    if (isIgnoredEntry(d.name)) continue;
    let isDir = d.isDirectory();
    let isFile = d.isFile();
    if (d.isSymbolicLink()) {
      // Follow links (the KServe agent and PVC mounts use them); a dangling link is skipped.
      const target = await stat(join(dir, d.name)).catch(() => undefined);
      isDir = target?.isDirectory() ?? false;
      isFile = target?.isFile() ?? false;
    }
    out.push({ name: d.name, isDir, isFile });
  }
  return out;
}

function platformExtension(platform: string | undefined): string | undefined {
  if (!platform) return undefined;
  if (/onnx/i.test(platform)) return '.onnx';
  if (/xmodel/i.test(platform)) return '.xmodel';
  return undefined;
}

/** The entry that is the model among `entries`: a file, or a `.onnx` folder (directory form). */
function modelEntryIn(entries: Entry[], name: string, version: string, platform: string | undefined): Entry | undefined {
  const wanted = platformExtension(platform);
  const exts: readonly string[] = wanted ? [wanted] : MODEL_EXTENSIONS;
  for (const ext of exts) {
    const candidates = entries.filter((e) => (e.isFile || (e.isDir && ext === '.onnx')) && extname(e.name).toLowerCase() === ext);
    if (candidates.length === 0) continue;
    if (candidates.length === 1) return candidates[0];
    const preferred = candidates.find((c) => c.name.toLowerCase() === `model${ext}`);
    if (preferred) return preferred;
    throw new InvalidArgument(
      `model '${name}' version ${version}: several ${ext} files (${candidates.map((c) => c.name).sort().join(', ')}) and none is named model${ext}`,
    );
  }
  return undefined;
}
