/**
 * @module cli/commands/deploy
 * `kinfer deploy <function>`: server-side apply of the function's generated
 * manifests (Knative Service + Triggers, or `--kserve` the KServe form);
 * `--wait` then waits until they are Ready.
 */
import { Command, InvalidArgumentError } from 'commander';
import { kubeOptions, positiveSeconds, runVerb, UsageError, withKube, type KubeFlags } from './common.js';

function percentOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 100) throw new InvalidArgumentError(`expected a whole percent from 0 to 100, got '${v}'`);
  return n;
}

interface DeployFlags extends KubeFlags {
  dryRun?: boolean;
  kserve?: boolean;
  force?: boolean;
  manifests?: string;
  wait?: boolean;
  waitTimeout: number;
  canary?: number;
}

export function deployCommand(): Command {
  const cmd = new Command('deploy')
    .description("apply a function's generated manifests to the cluster (server-side apply)")
    .argument('<function>', 'function name (a folder of manifests/)')
    .option('--dry-run', 'print what would be applied; needs no cluster')
    .option('--kserve', 'apply the KServe form (InferenceService/TrainedModel) instead of the Knative Service')
    .option('--force', 'take over fields another field manager owns')
    .option('--manifests <dir>', 'manifests folder (default: manifests/ of the package)')
    .option('--wait', 'after applying, wait until each object is Ready at its new generation (as kn does); progress on stderr')
    .option('--wait-timeout <seconds>', 'with --wait: give up after this long, exit 1 (as kn)', positiveSeconds, 600)
    .option('--canary <percent>', "send this percent of traffic to the new revision, the rest to the one serving now (tags candidate and current); a later deploy without it promotes", percentOption);
  withKube(cmd);
  return cmd.action(async (fn: string, flags: DeployFlags) => {
    await runVerb('deploy', flags, async (out) => {
      const { deploy } = await import('../../knative/commands.js');
      if (flags.wait && flags.dryRun) throw new UsageError('--wait waits for what was applied; a --dry-run applies nothing');
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      if (flags.wait) process.once('SIGINT', onSignal);
      const applied = await deploy(fn, {
        ...kubeOptions(flags),
        dryRun: flags.dryRun,
        kserve: flags.kserve,
        force: flags.force,
        manifestsDir: flags.manifests,
        canary: flags.canary,
        // In --json mode the YAML of a dry run would break the JSON on stdout.
        out: flags.json ? (t: string) => process.stderr.write(t) : undefined,
        wait: flags.wait ? { timeoutMs: flags.waitTimeout * 1000, signal: stop.signal, onProgress: (line) => process.stderr.write(`kinfer deploy: ${line}\n`) } : undefined,
      }).finally(() => process.off('SIGINT', onSignal));
      out.data(applied);
      for (const a of applied) out.line(`${flags.dryRun ? 'would apply' : 'applied'} ${a.kind} ${a.namespace ? `${a.namespace}/` : ''}${a.name}${flags.wait ? `: ready${a.url ? ` at ${a.url}` : ''}` : ''}`);
    });
  });
}
