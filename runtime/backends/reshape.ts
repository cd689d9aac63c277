/**
 * @module backends/reshape
 * Triton's `reshape` on config inputs and outputs: clients send and get a tensor in its `dims`,
 * the backend takes or gives it in the reshape's shape. Only the shape changes (row-major data
 * reads the same either way), so a reshape copies nothing. Variable dims (-1) carry their
 * values over in order, as Triton's do; the config parser has checked that the two shapes have
 * as many of them and the same element counts between them.
 *
 * @example
 * // input "in" { dims: [ 1 ] reshape: { shape: [ ] } }, max_batch_size 8:
 * // a batch of 4 arrives as [4, 1] and the backend gets [4].
 * const factory = withReshape(selectBackend(files), files.config);
 */
import { Internal } from '../core/errors.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';
import type { ModelConfig } from '../repository/model-config.js';
import type { Backend, BackendFactory, ModelFiles, ModelMetadata, RunContext } from './backend.js';

/** One tensor's two shapes, without the batch dim. */
interface Reshape {
  served: readonly number[];
  backend: readonly number[];
}

/** `factory` itself when the config reshapes nothing (no cost on the request path), else a factory of reshaping wrappers. */
export function withReshape(factory: BackendFactory, config: ModelConfig): BackendFactory {
  const r = config.reshape;
  if (!r) return factory;
  const inputs = plans(config.inputs, r.inputs);
  const outputs = plans(config.outputs, r.outputs);
  // The backend checks its file against the shapes it will be given.
  const toBackend = (specs: TensorSpec[], to: Record<string, number[]>) => specs.map((s) => (to[s.name] ? { ...s, shape: [...to[s.name]!] } : s));
  const inner: ModelConfig = { ...config, inputs: toBackend(config.inputs, r.inputs), outputs: toBackend(config.outputs, r.outputs) };
  return () => new ReshapingBackend(factory(), inner, inputs, outputs);
}

function plans(specs: TensorSpec[], to: Record<string, number[]>): Map<string, Reshape> {
  const out = new Map<string, Reshape>();
  for (const s of specs) {
    const backend = to[s.name];
    if (backend) out.set(s.name, { served: s.shape, backend });
  }
  return out;
}

class ReshapingBackend implements Backend {
  private name = '';
  /** Leading (batch) dims before each reshaped tensor's shape, per role and name: fixed at load. */
  private readonly leads = new Map<string, number>();

  constructor(
    private readonly inner: Backend,
    private readonly innerConfig: ModelConfig,
    private readonly inputs: ReadonlyMap<string, Reshape>,
    private readonly outputs: ReadonlyMap<string, Reshape>,
  ) {}

  async load(files: ModelFiles): Promise<ModelMetadata> {
    this.name = files.name;
    const meta = await this.inner.load({ ...files, config: this.innerConfig });
    const batching = files.config.maxBatchSize > 0 ? 1 : 0;
    // Served metadata in the config's dims, after the leading batch dim the backend reported (a backend
    // that declares no spec, as echo, leads with the config's); a spec that does not end in its reshape is refused.
    const served = (role: 'input' | 'output', specs: TensorSpec[], plan: ReadonlyMap<string, Reshape>) => {
      for (const [name, p] of plan) {
        const s = specs.find((x) => x.name === name);
        const lead = s ? s.shape.length - p.backend.length : batching;
        if (lead < 0 || lead > 1 || (s && !p.backend.every((d, i) => d === -1 || s.shape[lead + i] === -1 || s.shape[lead + i] === d))) {
          throw new Internal(`model '${this.name}': the backend's ${role} '${name}' is [${s!.shape.join(',')}], which does not end in its reshape [${p.backend.join(',')}]`);
        }
        this.leads.set(`${role} ${name}`, lead);
      }
      return specs.map((s) => {
        const p = plan.get(s.name);
        return p ? { ...s, shape: [...s.shape.slice(0, this.leads.get(`${role} ${s.name}`)), ...p.served] } : s;
      });
    };
    return { ...meta, inputs: served('input', meta.inputs, this.inputs), outputs: served('output', meta.outputs, this.outputs) };
  }

  async infer(inputs: Tensor[], outputNames: readonly string[], run?: RunContext): Promise<Tensor[]> {
    const shaped = inputs.map((t) => {
      const p = this.inputs.get(t.name);
      return p ? { ...t, shape: this.reshaped(t, 'input', p.served, p.backend) } : t;
    });
    const outputs = await this.inner.infer(shaped, outputNames, run);
    return outputs.map((t) => {
      const p = this.outputs.get(t.name);
      return p ? { ...t, shape: this.reshaped(t, 'output', p.backend, p.served) } : t;
    });
  }

  unload(): Promise<void> {
    return this.inner.unload();
  }

  health(): { ready: boolean; lastError?: string } {
    return this.inner.health?.() ?? { ready: true };
  }

  /**
   * `t`'s shape, which is `from` after the tensor's leading batch dim (if it has one), as `to`: the
   * batch dim kept, each -1 of `to` taking the value of the matching -1 of `from`.
   */
  private reshaped(t: Tensor, role: 'input' | 'output', from: readonly number[], to: readonly number[]): number[] {
    const lead = this.leads.get(`${role} ${t.name}`)!;
    const fits = t.shape.length - from.length === lead && from.every((d, i) => d === -1 || d === t.shape[lead + i]);
    if (!fits) {
      // Inputs were checked against the served metadata: only a backend's output can get here.
      throw new Internal(`model '${this.name}': ${role} '${t.name}' has shape [${t.shape.join(',')}], which is not [${lead ? '-1,' : ''}${from.join(',')}] as its reshape says`);
    }
    const variable: number[] = [];
    from.forEach((d, i) => {
      if (d === -1) variable.push(t.shape[lead + i]!);
    });
    let next = 0;
    return [...t.shape.slice(0, lead), ...to.map((d) => (d === -1 ? variable[next++]! : d))];
  }
}
