/**
 * @module repository/version-policy
 * Applies a model's `version_policy` to the versions its folder holds, as Triton's
 * model repository manager does: `latest { num_versions: n }` the n highest, `all`
 * every one, `specific { versions: [...] }` those listed that exist (the missing ones
 * are reported, not fatal). Selecting none is an error.
 *
 * @example
 * selectVersions(['1', '2', '10'], { kind: 'latest', numVersions: 2 }); // { versions: ['2', '10'], missing: [] }
 */
import { InvalidArgument } from '../core/errors.js';
import type { VersionPolicy } from './model-config.js';

export const DEFAULT_VERSION_POLICY: VersionPolicy = { kind: 'latest', numVersions: 1 };

export interface VersionSelection {
  /** Ascending by number, never empty. */
  versions: string[];
  /** `specific` versions with no folder. */
  missing: string[];
}

/** `available`: the folder's versions, ascending by number (readModelLayout's order). */
export function selectVersions(name: string, available: readonly string[], policy: VersionPolicy = DEFAULT_VERSION_POLICY): VersionSelection {
  let versions: string[];
  let missing: string[] = [];
  switch (policy.kind) {
    case 'latest':
      versions = available.slice(-policy.numVersions);
      break;
    case 'all':
      versions = [...available];
      break;
    case 'specific': {
      const wanted = new Set(policy.versions.map(String));
      versions = available.filter((v) => wanted.has(v));
      missing = [...wanted].filter((v) => !available.includes(v)).sort((a, b) => Number(a) - Number(b));
      break;
    }
  }
  if (versions.length === 0) {
    throw new InvalidArgument(
      `model '${name}': version_policy ${describeVersionPolicy(policy)} selects none of the versions present (${available.join(', ') || 'none'})`,
    );
  }
  return { versions, missing };
}

/** The policy in config.pbtxt's words, for errors and logs. */
export function describeVersionPolicy(policy: VersionPolicy): string {
  switch (policy.kind) {
    case 'latest':
      return `latest { num_versions: ${policy.numVersions} }`;
    case 'all':
      return 'all { }';
    case 'specific':
      return `specific { versions: [${policy.versions.join(', ')}] }`;
  }
}

/** Triton's JSON form of the policy (the model_configuration extension and the gRPC ModelConfig). */
export function versionPolicyJson(policy: VersionPolicy = DEFAULT_VERSION_POLICY): Record<string, unknown> {
  switch (policy.kind) {
    case 'latest':
      return { latest: { num_versions: policy.numVersions } };
    case 'all':
      return { all: {} };
    case 'specific':
      return { specific: { versions: policy.versions } };
  }
}
