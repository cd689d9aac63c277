/**
 * @module cli/commands/metadata
 * `kinfer metadata [model]`: a model's metadata (platform, versions, inputs,
 * outputs), or the server's when no model is named.
 */
import { Command } from 'commander';
import { makeClient, runVerb, withConnection, type ConnectionFlags } from './common.js';

export function metadataCommand(): Command {
  const cmd = new Command('metadata')
    .description("show a model's metadata (inputs, outputs, platform), or the server's without a model")
    .argument('[model]', 'model name')
    .option('--model-version <v>', 'model version');
  withConnection(cmd);
  return cmd.action(async (model: string | undefined, flags: ConnectionFlags & { modelVersion?: string }) => {
    await runVerb('metadata', flags, async (out) => {
      const client = makeClient(flags);
      try {
        if (!model) {
          const meta = await client.serverMetadata();
          out.data(meta);
          out.line(`server ${meta.name} ${meta.version}`);
          out.line(`extensions: ${meta.extensions.join(', ')}`);
          return;
        }
        const meta = await client.modelMetadata(model, { version: flags.modelVersion });
        out.data(meta);
        out.line(`model ${meta.name}  platform ${meta.platform}  versions ${(meta.versions ?? []).join(', ') || '-'}`);
        for (const [role, list] of [['input', meta.inputs], ['output', meta.outputs]] as const) {
          if (list.length === 0) out.line(`${role}s: any (the model declares none)`);
          for (const t of list) out.line(`${role}  ${t.name}  ${t.datatype}  [${t.shape.join(',')}]`);
        }
      } finally {
        client.close();
      }
    });
  });
}
