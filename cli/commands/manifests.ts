/**
 * @module cli/commands/manifests
 * `kinfer manifests`: regenerate `manifests/` (and each `functions/<name>/func.yaml`)
 * from the compiled function definitions, then validate them against the CRD
 * schemas when the specs are present. `kinfer validate [dir]`: validation only.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { runVerb, withJson } from './common.js';

interface ManifestFlags {
  functions?: string;
  out?: string;
  funcYamlDir?: string;
  validate?: boolean;
  specs?: string;
  json?: boolean;
}

export function manifestsCommand(): Command {
  const cmd = new Command('manifests')
    .description('generate the Knative/KServe manifests of every function, then validate them')
    .option('--functions <dir>', 'compiled function definitions (default: dist/functions of the package)')
    .option('--out <dir>', 'output folder (default: manifests/ of the package)')
    .option('--func-yaml-dir <dir>', 'where func.yaml files go (default: functions/ of the package)')
    .option('--specs <dir>', 'CRD specs folder (default: KINFER_SPECS_DIR or ../shared/specs)')
    .option('--no-validate', 'skip schema validation');
  withJson(cmd);
  return cmd.action(async (flags: ManifestFlags) => {
    await runVerb('manifests', flags, async (out) => {
      const k = await import('../../knative/commands.js');
      const root = k.repoRoot();
      const outDir = flags.out ?? join(root, 'manifests');
      const gen = await k.generateManifests({
        functionsDir: flags.functions ?? join(root, 'dist', 'functions'),
        outDir,
        funcYamlDir: flags.funcYamlDir ?? join(root, 'functions'),
      });
      out.line(`generated ${gen.written.length} files for ${gen.functions.join(', ') || 'no functions'} in ${outDir}${gen.removed.length ? `; removed ${gen.removed.join(', ')}` : ''}`);
      for (const why of gen.funcYamlSkipped) process.stderr.write(`kinfer manifests: no func.yaml: ${why}\n`);
      const report: Record<string, unknown> = { outDir, ...gen };
      let ok = true;
      if (flags.validate !== false) {
        const specsDir = flags.specs ?? k.defaultSpecsDir();
        if (!k.specsAvailable(specsDir)) {
          out.line(`CRD specs not found at ${specsDir}: validation skipped`);
          report.validation = { skipped: `no CRD specs at ${specsDir}` };
        } else {
          const v = await k.validateManifests(outDir, { specsDir });
          for (const e of v.errors) process.stderr.write(`kinfer manifests: ${e}\n`);
          out.line(`validated ${v.documents} documents in ${v.files} files: ${v.errors.length} errors`);
          report.validation = v;
          ok = v.errors.length === 0;
        }
      }
      out.data(report);
      return ok;
    });
  });
}

export function validateCommand(): Command {
  const cmd = new Command('validate')
    .description('validate manifests against the Knative/KServe CRD schemas (unknown fields rejected)')
    .argument('[dir]', 'manifests folder (default: manifests/ of the package)')
    .option('--specs <dir>', 'CRD specs folder (default: KINFER_SPECS_DIR or ../shared/specs)');
  withJson(cmd);
  return cmd.action(async (dir: string | undefined, flags: { specs?: string; json?: boolean }) => {
    await runVerb('validate', flags, async (out) => {
      const k = await import('../../knative/commands.js');
      const target = dir ?? join(k.repoRoot(), 'manifests');
      const v = await k.validateManifests(target, { specsDir: flags.specs });
      out.data(v);
      for (const e of v.errors) process.stderr.write(`kinfer validate: ${e}\n`);
      out.line(`validated ${v.documents} documents in ${v.files} files: ${v.errors.length} errors`);
      return v.errors.length === 0;
    });
  });
}
