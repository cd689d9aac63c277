/**
 * @module storage/pvc
 * `pvc://<claim>/<path>`: the claim is mounted by Kubernetes (KServe mounts it
 * at `/mnt/pvc`), so the URI maps to `<root>/<path>`, root from `KINFER_PVC_ROOT`
 * (default `/mnt/pvc`). From there it behaves like `file://`.
 */
import path from 'node:path';
import { InvalidArgument } from '../core/errors.js';

export const DEFAULT_PVC_ROOT = '/mnt/pvc';

const PVC_URI = /^pvc:\/\/([^/?#]*)(\/[^?#]*)?$/i;

/** The claim a `pvc://<claim>/<path>` URI names, or undefined for any other URI (the manifests mount it). */
export function pvcClaim(uri: string): string | undefined {
  return PVC_URI.exec(uri)?.[1] || undefined;
}

/** The local path a `pvc://` URI names; refuses a missing claim or a path that climbs out of the root. */
/** Where KServe mounts a claim: KINFER_PVC_ROOT, else /mnt/pvc. */
export function pvcRoot(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.KINFER_PVC_ROOT || DEFAULT_PVC_ROOT);
}

export function pvcPath(uri: string, env: NodeJS.ProcessEnv): string {
  const m = PVC_URI.exec(uri);
  if (!m) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: expected pvc://<claim>/<path>`);
  const claim = m[1]!;
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(claim)) {
    throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: ${JSON.stringify(claim)} is not a valid claim name`);
  }
  const root = pvcRoot(env);
  const rel = path.posix.normalize((m[2] ?? '/').replace(/^\/+/, '') || '.');
  if (rel === '..' || rel.startsWith('../') || path.isAbsolute(rel)) {
    throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: the path climbs out of the claim`);
  }
  return path.join(root, rel);
}
