/**
 * @module cli/commands/list
 * `kinfer list`: the kinfer functions (Knative Services) of a namespace.
 */
import { Command } from 'commander';
import { kubeOptions, runVerb, withKube, type KubeFlags } from './common.js';

export function listCommand(): Command {
  const cmd = new Command('list').description('list the kinfer functions deployed in a namespace');
  withKube(cmd);
  return cmd.action(async (flags: KubeFlags) => {
    await runVerb('list', flags, async (out) => {
      const { list } = await import('../../knative/commands.js');
      const fns = await list(kubeOptions(flags));
      out.data(fns);
      if (fns.length === 0) out.line('(no kinfer functions)');
      for (const f of fns) out.line(`${f.name}\t${f.ready ? 'ready' : 'not ready'}\t${f.url ?? '-'}\t${f.latestReadyRevision ?? '-'}`);
    });
  });
}
