/**
 * @module cli/commands/logs
 * `kinfer logs <function>`: the server container's logs of each pod of the
 * function's current revision; with `--follow`, streamed until Ctrl-C, pods that
 * start later included. Log lines go to stdout; which pods come and go, to stderr.
 */
import { Command } from 'commander';
import { kubeOptions, positiveInt, runVerb, UsageError, withKube, type KubeFlags } from './common.js';

export function logsCommand(): Command {
  const cmd = new Command('logs')
    .description("print the logs of a function's pods (current revision)")
    .argument('<function>', 'function name')
    .option('--tail <n>', 'last lines per pod', positiveInt, 200)
    .option('-f, --follow', 'stream the logs until Ctrl-C, pods that start later included; lines are prefixed with their pod');
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
          const note = (text: string) => process.stderr.write(`kinfer logs: ${text}\n`);
          await followLogs(fn, {
            ...kubeOptions(flags),
            tailLines: flags.tail,
            signal: stop.signal,
            onLine: (pod, line) => out.line(`[${pod}] ${line}`),
            onError: (source, err) => note(`${source}: ${err.message}`),
            onPod: (pod, revision, open) => note(`${open ? '+' : '-'} ${pod} (${revision})`),
            onIdle: () => note(`no pod of ${fn} is running (scaled to zero?); waiting for one, Ctrl-C to stop`),
          });
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        return;
      }
      const pods = await logs(fn, { ...kubeOptions(flags), tailLines: flags.tail });
      out.data(pods);
      if (pods.length === 0) out.line('(no pods: the function may be scaled to zero)');
      for (const p of pods) {
        out.line(`==> ${p.pod} (${p.revision}) <==`);
        out.line(p.log.replace(/\n$/, ''));
      }
    });
  });
}
