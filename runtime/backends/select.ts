/**
 * @module backends/select
 * Chooses the backend for a model version: by the config's `platform`, else by
 * the model file's extension, else by the name (`xmodel-*`, as the original
 * server did; `echo` for a model without a file).
 *
 * @example
 * const factory = selectBackend(files);
 * const backend = factory();
 * const metadata = await backend.load(files);
 */
import { extname } from 'node:path';
import { Unsupported } from '../core/errors.js';
import type { BackendFactory, ModelFiles } from './backend.js';
import { EchoBackend } from './echo.js';
import { ENSEMBLE_PLATFORM } from './ensemble.js';
import { ONNX_PLATFORMS, OnnxBackend } from './onnx.js';
import { XModelBackend } from './xmodel.js';

export const XMODEL_PLATFORMS = ['vitis_xmodel', 'xmodel'] as const;
export const ECHO_PLATFORMS = ['echo'] as const;
// `ensemble` too, which the repository builds itself (an EnsembleBackend needs the data plane).
export const SUPPORTED_PLATFORMS: readonly string[] = [...ONNX_PLATFORMS, ...XMODEL_PLATFORMS, ...ECHO_PLATFORMS, ENSEMBLE_PLATFORM];

export type BackendKind = 'onnx' | 'xmodel' | 'echo';

const xmodelFactory: BackendFactory = () => new XModelBackend();

const FACTORIES: Record<BackendKind, BackendFactory> = {
  onnx: () => new OnnxBackend(),
  xmodel: xmodelFactory,
  echo: () => new EchoBackend(),
};

/** Which backend kind serves `files`; throws Unsupported naming the platform and the supported ones. */
export function backendKind(files: ModelFiles): BackendKind {
  const platform = files.config.platform?.trim();
  if (platform) {
    const p = platform.toLowerCase();
    if ((ONNX_PLATFORMS as readonly string[]).includes(p)) return 'onnx';
    if ((XMODEL_PLATFORMS as readonly string[]).includes(p)) return 'xmodel';
    if ((ECHO_PLATFORMS as readonly string[]).includes(p)) return 'echo';
    throw new Unsupported(
      `model '${files.name}': platform '${platform}' is not supported; supported platforms: ${SUPPORTED_PLATFORMS.join(', ')}`,
    );
  }
  const ext = files.modelFile ? extname(files.modelFile).toLowerCase() : '';
  if (ext === '.onnx') return 'onnx';
  if (ext === '.xmodel') return 'xmodel';
  if (files.name.startsWith('xmodel-')) return 'xmodel';
  if (!files.modelFile && files.name === 'echo') return 'echo';
  throw new Unsupported(
    `model '${files.name}' version ${files.version}: cannot choose a backend: the config names no platform and ${files.dir} holds no .onnx or .xmodel file; ` +
      `set platform to one of ${SUPPORTED_PLATFORMS.join(', ')}`,
  );
}

/** The factory for `files`' backend (see `backendKind`). Each call of the factory makes one instance. */
export function selectBackend(files: ModelFiles): BackendFactory {
  return FACTORIES[backendKind(files)];
}
