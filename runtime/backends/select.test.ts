/**
 * @module backends/select.test
 */
import { describe, expect, it } from 'vitest';
import { KinferError, Unsupported } from '../core/errors.js';
import { defaultConfig } from '../repository/model-config.js';
import type { ModelFiles } from './backend.js';
import { EchoBackend } from './echo.js';
import { OnnxBackend } from './onnx.js';
import { backendKind, selectBackend } from './select.js';
import { XModelBackend } from './xmodel.js';

function files(name: string, platform?: string, modelFile?: string): ModelFiles {
  return {
    name,
    version: '1',
    dir: '/repo/' + name,
    ...(modelFile ? { modelFile } : {}),
    config: { ...defaultConfig(name), ...(platform ? { platform } : {}) },
  };
}

describe('selectBackend', () => {
  it('chooses by platform first', () => {
    for (const p of ['onnx_onnxv1', 'onnxruntime_onnx', 'onnx', 'ONNX_ONNXV1']) expect(backendKind(files('m', p, '/x/model.xmodel'))).toBe('onnx');
    for (const p of ['vitis_xmodel', 'xmodel']) expect(backendKind(files('m', p, '/x/model.onnx'))).toBe('xmodel');
    expect(backendKind(files('m', 'echo'))).toBe('echo');
    expect(selectBackend(files('m', 'onnx_onnxv1'))()).toBeInstanceOf(OnnxBackend);
    expect(selectBackend(files('m', 'echo'))()).toBeInstanceOf(EchoBackend);
  });

  it('then by file extension, then by the xmodel- prefix, then echo by name', () => {
    expect(backendKind(files('m', undefined, '/x/net.ONNX'))).toBe('onnx');
    expect(backendKind(files('m', undefined, '/x/net.xmodel'))).toBe('xmodel');
    expect(backendKind(files('xmodel-resnet'))).toBe('xmodel');
    expect(backendKind(files('xmodel-resnet', undefined, '/x/r.onnx'))).toBe('onnx');
    expect(backendKind(files('echo'))).toBe('echo');
  });

  it('refuses an unknown platform naming it and the supported ones', () => {
    const err = (() => {
      try {
        selectBackend(files('m', 'tensorflow_graphdef'));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(Unsupported);
    expect(err!.message).toBe(
      "model 'm': platform 'tensorflow_graphdef' is not supported; supported platforms: onnx_onnxv1, onnxruntime_onnx, onnx, vitis_xmodel, xmodel, echo, ensemble",
    );
  });

  it('refuses a model with nothing to go by', () => {
    expect(() => selectBackend(files('resnet'))).toThrow(/model 'resnet' version 1: cannot choose a backend: .* holds no \.onnx or \.xmodel file/);
    expect(() => selectBackend(files('resnet'))).toThrow(Unsupported);
  });

  it('gives xmodel-* the XModel backend, whose load says what is missing on a machine without an FPGA', async () => {
    const backend = selectBackend(files('xmodel-resnet'))();
    expect(backend).toBeInstanceOf(XModelBackend);
    const err = await backend.load(files('xmodel-resnet')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KinferError);
    expect((err as Error).message).toMatch(/FPGA|libvart|libxrt|addon|\.xmodel/i);
    await expect(backend.unload()).resolves.toBeUndefined();
  });
});
