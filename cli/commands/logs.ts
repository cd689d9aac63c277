/**
 * @module cli/commands/logs
 * `kinfer logs <function>`: the server container's logs of each pod of the
 * function's current revision; with `--follow`, streamed until Ctrl-C or the pods go.
 */
import { Command } from 'commander';
import { positiveInt, runVerb, UsageError, withKube, type KubeFlags } from './common.js';

export function logsCommand(): Command {
  const cmd = new Command('logs')
    .description("print the logs of a function's pods (current revision)")
    .argument('<function>', 'function name')
    .option('--tail <n>', 'last lines per pod', positiveInt, 200)
    .option('-f, --follow', 'stream the logs until Ctrl-C (or until the pods go); lines are prefixed with their pod');
  withKube(cmd);
  return cmd.action(async (fn: string, flags: KubeFlags & { tail: number; follow?: boolean }) => {
    await runVerb('logs', flags, async (out) => {
      const { followLogs, logs } = await import('../../knative/commands.js');
      if (flags.follow) {
        if (flags.json) throw new UsageError('--follow prints lines as they come; it does not take --json');
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          const pods = await followLogs(fn, {
            namespace: flags.namespace,
            kubeconfig: flags.kubeconfig,
            tailLines: flags.tail,
            signal: stop.signal,
            onLine: (pod, line) => out.line(`[${pod}] ${line}`),
            onError: (pod, err) => process.stderr.write(`kinfer logs: ${pod}: ${err.message}\n`),
          });
          if (pods.length === 0) out.line('(no pods: the function may be scaled to zero)');
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        return;
      }
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
