/**
 * @module cli/commands/logs
 * `kinfer logs <function>`: the server container's logs of each pod of the
 * function's current revision.
 */
import { Command } from 'commander';
import { positiveInt, runVerb, withKube, type KubeFlags } from './common.js';

export function logsCommand(): Command {
  const cmd = new Command('logs')
    .description("print the logs of a function's pods (current revision)")
    .argument('<function>', 'function name')
    .option('--tail <n>', 'last lines per pod', positiveInt, 200);
  withKube(cmd);
  return cmd.action(async (fn: string, flags: KubeFlags & { tail: number }) => {
    await runVerb('logs', flags, async (out) => {
      const { logs } = await import('../../knative/commands.js');
      const pods = await logs(fn, { namespace: flags.namespace, kubeconfig: flags.kubeconfig, tailLines: flags.tail });
      out.data(pods);
      if (pods.length === 0) out.line('(no pods: the function may be scaled to zero)');
      for (const p of pods) {
        out.line(`==> ${p.pod} (${p.revision}) <==`);
        out.line(p.log.replace(/\n$/, ''));
      }
    });
  });
}
