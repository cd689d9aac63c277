/**
 * @module knative/specs
 * Where the CRD specs live: `../shared/specs` relative to the repository root
 * (the folder holding kinfer's package.json), or `KINFER_SPECS_DIR`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest ancestor of this file with kinfer's package.json (works from src and dist). */
export function repoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 8; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kinfer') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`kinfer repository root not found above ${from}`);
}

export function defaultSpecsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KINFER_SPECS_DIR ? resolve(env.KINFER_SPECS_DIR) : resolve(repoRoot(), '..', 'shared', 'specs');
}

/** The CRD files the validator reads, relative to the specs folder. */
export const CRD_FILES = [
  'knative/serving/service.yaml',
  'knative/eventing/trigger.yaml',
  'knative/eventing/broker.yaml',
  'kserve/crd/serving.kserve.io_inferenceservices.yaml',
  'kserve/crd/serving.kserve.io_trainedmodels.yaml',
  'kserve/crd/serving.kserve.io_servingruntimes.yaml',
  'kserve/crd/serving.kserve.io_clusterservingruntimes.yaml',
];

export function specsAvailable(specsDir = defaultSpecsDir()): boolean {
  return CRD_FILES.every((f) => existsSync(join(specsDir, f)));
}
