/**
 * @module backends/echo
 * `EchoBackend`: returns every input as an output of the same name, datatype
 * and shape. It declares no inputs or outputs (it takes whatever it is sent)
 * and is not batchable. Used for smoke tests of the whole path without a model
 * file (the original server's `echo` worker).
 *
 * @example
 * const echo = new EchoBackend();
 * await echo.load({ name: 'echo', version: '1', dir, config: defaultConfig('echo') });
 * const [x] = await echo.infer([input], []);
 */
import { ownCopy } from '../core/bytes.js';
import type { TensorData } from '../core/datatypes.js';
import { InvalidArgument, NotReady } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { Backend, ModelFiles, ModelMetadata } from './backend.js';

export class EchoBackend implements Backend {
  private name: string | undefined;

  async load(files: ModelFiles): Promise<ModelMetadata> {
    this.name = files.name;
    return { platform: 'echo', inputs: [], outputs: [], batchable: false, maxBatchSize: 0 };
  }

  async infer(inputs: Tensor[], outputNames: readonly string[]): Promise<Tensor[]> {
    if (this.name === undefined) throw new NotReady('echo model is not loaded');
    const byName = new Map(inputs.map((t) => [t.name, t]));
    const picked = outputNames.length === 0 ? inputs : outputNames.map((n) => {
      const t = byName.get(n);
      if (!t) {
        throw new InvalidArgument(`model '${this.name}': unknown output '${n}': echo returns its inputs (${inputs.map((i) => i.name).join(', ') || 'none'})`);
      }
      return t;
    });
    // Copies: the caller owns the input buffers only until this promise settles.
    return picked.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape], data: copy(t.data) }));
  }

  async unload(): Promise<void> {
    this.name = undefined;
  }
}

function copy(data: TensorData): TensorData {
  return Array.isArray(data) ? data.map(ownCopy) : ownCopy(data);
}
