/**
 * @module cli/commands/models
 * `kinfer models [--all]`: the loaded models (`GET /v2/models`), or with
 * `--all` every model of the repository and its state (`POST /v2/repository/index`).
 */
import { Command } from 'commander';
import { makeClient, runVerb, withConnection, type ConnectionFlags } from './common.js';

export function modelsCommand(): Command {
  const cmd = new Command('models')
    .description('list the loaded models (--all: every repository model with its state)')
    .option('-a, --all', 'every model in the repository, with state and reason');
  withConnection(cmd);
  return cmd.action(async (flags: ConnectionFlags & { all?: boolean }) => {
    await runVerb('models', flags, async (out) => {
      const client = makeClient(flags);
      try {
        if (flags.all) {
          const index = await client.repositoryIndex();
          out.data(index);
          if (index.length === 0) out.line('(no models in the repository)');
          for (const e of index) {
            out.line([e.name, e.version ?? '-', e.state ?? '-', e.reason ?? ''].join('\t').trimEnd());
          }
        } else {
          const names = await client.modelList();
          out.data({ models: names });
          if (names.length === 0) out.line('(no models loaded)');
          for (const n of names) out.line(n);
        }
      } finally {
        client.close();
      }
    });
  });
}
