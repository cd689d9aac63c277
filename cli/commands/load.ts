/**
 * @module cli/commands/load
 * `kinfer load <model> [--param k=v] [--config file] [--file path=local]` and
 * `kinfer unload <model>`: the model repository extension.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { collect, makeClient, parseParams, runVerb, UsageError, withConnection, type ConnectionFlags } from './common.js';

interface LoadFlags extends ConnectionFlags {
  param?: string[];
  config?: string;
  file?: string[];
}

export function loadCommand(): Command {
  const cmd = new Command('load')
    .description('load (or reload) a model of the server repository')
    .argument('<model>', 'model name (a folder of the repository)')
    .option('--param <key=value>', 'load parameter, e.g. batch_size=4, threads=2, storage_uri=s3://...; repeatable', collect)
    .option('--config <file>', 'a JSON model config to use instead of the config file (Triton `config` parameter)')
    .option('--file <path=local>', 'send a model file: its path in the model folder (1/model.onnx) = a local file; repeatable, needs --config (Triton `file:` parameters)', collect);
  withConnection(cmd);
  // Loading may download a model: a longer default timeout than other calls.
  cmd.setOptionValueWithSource('timeout', 600_000, 'default');
  return cmd.action(async (model: string, flags: LoadFlags) => {
    await runVerb('load', flags, async (out) => {
      const parameters = parseParams(flags.param);
      if (flags.config) {
        try {
          parameters.config = await readFile(flags.config, 'utf8');
        } catch (err) {
          throw new UsageError(`--config: cannot read ${flags.config}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      const files: Record<string, Uint8Array> = {};
      for (const spec of flags.file ?? []) {
        const eq = spec.indexOf('=');
        if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`--file '${spec}': expected <path in the model folder>=<local file>, e.g. 1/model.onnx=./model.onnx`);
        const local = spec.slice(eq + 1);
        try {
          files[spec.slice(0, eq)] = await readFile(local);
        } catch (err) {
          throw new UsageError(`--file: cannot read ${local}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      if (Object.keys(files).length && !flags.config) throw new UsageError('--file needs --config: the files replace the model folder, its config file included');
      const client = makeClient(flags);
      try {
        await client.modelLoad(model, { parameters, files });
        out.data({ name: model, load: true });
        out.line(`loaded ${model}`);
      } finally {
        client.close();
      }
    });
  });
}

export function unloadCommand(): Command {
  const cmd = new Command('unload')
    .description('unload a model')
    .argument('<model>', 'model name')
    .option('--param <key=value>', 'unload parameter; repeatable', collect);
  withConnection(cmd);
  return cmd.action(async (model: string, flags: LoadFlags) => {
    await runVerb('unload', flags, async (out) => {
      const client = makeClient(flags);
      try {
        await client.modelUnload(model, { parameters: parseParams(flags.param) });
        out.data({ name: model, unload: true });
        out.line(`unloaded ${model}`);
      } finally {
        client.close();
      }
    });
  });
}

