/**
 * @module repository/version-policy.test
 * Which version folders each policy serves, as Triton chooses them.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import { describeVersionPolicy, selectVersions, versionPolicyJson } from './version-policy.js';

const present = ['1', '2', '10'];

describe('selectVersions', () => {
  it('serves the highest version by default, and the n highest under latest', () => {
    expect(selectVersions('m', present)).toEqual({ versions: ['10'], missing: [] });
    expect(selectVersions('m', present, { kind: 'latest', numVersions: 2 })).toEqual({ versions: ['2', '10'], missing: [] });
    expect(selectVersions('m', present, { kind: 'latest', numVersions: 5 })).toEqual({ versions: present, missing: [] });
  });

  it('serves every version under all', () => {
    expect(selectVersions('m', present, { kind: 'all' })).toEqual({ versions: present, missing: [] });
  });

  it('serves the listed versions that exist under specific, and reports the missing ones', () => {
    expect(selectVersions('m', present, { kind: 'specific', versions: [1, 10] })).toEqual({ versions: ['1', '10'], missing: [] });
    expect(selectVersions('m', present, { kind: 'specific', versions: [2, 3, 7] })).toEqual({ versions: ['2'], missing: ['3', '7'] });
  });

  it('refuses a policy that selects nothing, naming the policy and what is there', () => {
    const none = () => selectVersions('m', present, { kind: 'specific', versions: [4] });
    expect(none).toThrow(InvalidArgument);
    expect(none).toThrow("model 'm': version_policy specific { versions: [4] } selects none of the versions present (1, 2, 10)");
  });
});

describe('the policy in words and in JSON', () => {
  it("writes config.pbtxt's form and Triton's JSON form, latest 1 by default", () => {
    expect(describeVersionPolicy({ kind: 'latest', numVersions: 3 })).toBe('latest { num_versions: 3 }');
    expect(versionPolicyJson()).toEqual({ latest: { num_versions: 1 } });
    expect(versionPolicyJson({ kind: 'all' })).toEqual({ all: {} });
    expect(versionPolicyJson({ kind: 'specific', versions: [1, 3] })).toEqual({ specific: { versions: [1, 3] } });
  });
});
