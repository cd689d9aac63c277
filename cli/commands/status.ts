/**
 * @module cli/commands/status
 * `kinfer status <function>`: the Knative Service's URL, Ready condition,
 * revisions and ready pods. Exit 1 when it is not ready.
 */
import { Command } from 'commander';
import { kubeOptions, runVerb, withKube, type KubeFlags } from './common.js';

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description("a function's Knative Service: URL, readiness, revisions, pods (exit 1 if not ready)")
    .argument('<function>', 'function name');
  withKube(cmd);
  return cmd.action(async (fn: string, flags: KubeFlags) => {
    await runVerb('status', flags, async (out) => {
      const { status } = await import('../../knative/commands.js');
      const s = await status(fn, kubeOptions(flags));
      out.data(s);
      out.line(`${s.namespace}/${s.name}  ${s.ready ? 'ready' : 'not ready'}  ${s.url ?? '(no URL yet)'}`);
      out.line(`revision ${s.latestReadyRevision ?? '-'} (latest created ${s.latestCreatedRevision ?? '-'}), ${s.readyReplicas} ready pod(s)`);
      for (const c of s.conditions) out.line(`  ${c.type}=${c.status}${c.reason ? ` ${c.reason}` : ''}${c.message ? `: ${c.message}` : ''}`);
      // A split (a canary) is worth a line per revision; all traffic to one is the usual case, said above.
      if (s.traffic.length > 1) for (const t of s.traffic) out.line(`  traffic ${t.percent}% → ${t.revisionName ?? 'latest'}${t.tag ? ` (tag ${t.tag}${t.url ? `: ${t.url}` : ''})` : ''}`);
      return s.ready;
    });
  });
}
