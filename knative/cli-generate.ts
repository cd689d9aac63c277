/**
 * @module knative/cli-generate
 * Entry of `make manifests` (run from dist after `npm run build`): regenerate
 * `manifests/` and `functions/<name>/func.yaml`, then validate the result when
 * the shared CRD specs are present. Exit 1 on any validation error.
 */
import { join } from 'node:path';
import { generateManifests } from './generate.js';
import { defaultSpecsDir, repoRoot, specsAvailable } from './specs.js';
import { validateManifests } from './validate.js';

async function main(): Promise<number> {
  const root = repoRoot();
  // Definitions are imported from the compiled tree (dist/functions), output goes to the source tree.
  const compiledFunctions = join(root, 'dist', 'functions');
  const outDir = join(root, 'manifests');
  // func.yaml belongs beside the source definitions, not in dist.
  const r = await generateManifests({ functionsDir: compiledFunctions, outDir, funcYamlDir: join(root, 'functions') });
  console.log(`kinfer: generated ${r.written.length} files for ${r.functions.join(', ')} in ${outDir}${r.removed.length ? `; removed ${r.removed.join(', ')}` : ''}`);
  const specsDir = defaultSpecsDir();
  if (!specsAvailable(specsDir)) {
    console.log(`kinfer: CRD specs not found at ${specsDir}: schema validation skipped`);
    return 0;
  }
  const v = await validateManifests(outDir, { specsDir });
  for (const e of v.errors) console.error(`kinfer: ${e}`);
  console.log(`kinfer: validated ${v.documents} documents in ${v.files} files: ${v.errors.length} errors`);
  return v.errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`kinfer: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
