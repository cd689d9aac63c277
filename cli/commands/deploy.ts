/**
 * @module cli/commands/deploy
 * `kinfer deploy <function>`: server-side apply of the function's generated
 * manifests (Knative Service + Triggers, or `--kserve` the KServe form).
 */
import { Command } from 'commander';
import { runVerb, withKube, type KubeFlags } from './common.js';

interface DeployFlags extends KubeFlags {
  dryRun?: boolean;
  kserve?: boolean;
  force?: boolean;
  manifests?: string;
}

export function deployCommand(): Command {
  const cmd = new Command('deploy')
    .description("apply a function's generated manifests to the cluster (server-side apply)")
    .argument('<function>', 'function name (a folder of manifests/)')
    .option('--dry-run', 'print what would be applied; needs no cluster')
    .option('--kserve', 'apply the KServe form (InferenceService/TrainedModel) instead of the Knative Service')
    .option('--force', 'take over fields another field manager owns')
    .option('--manifests <dir>', 'manifests folder (default: manifests/ of the package)');
  withKube(cmd);
  return cmd.action(async (fn: string, flags: DeployFlags) => {
    await runVerb('deploy', flags, async (out) => {
      const { deploy } = await import('../../knative/commands.js');
      const applied = await deploy(fn, {
        namespace: flags.namespace,
        kubeconfig: flags.kubeconfig,
        dryRun: flags.dryRun,
        kserve: flags.kserve,
        force: flags.force,
        manifestsDir: flags.manifests,
        // In --json mode the YAML of a dry run would break the JSON on stdout.
        out: flags.json ? (t: string) => process.stderr.write(t) : undefined,
      });
      out.data(applied);
      for (const a of applied) out.line(`${flags.dryRun ? 'would apply' : 'applied'} ${a.kind} ${a.namespace ? `${a.namespace}/` : ''}${a.name}`);
    });
  });
}
