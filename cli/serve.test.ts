/**
 * `kinfer serve`'s flag rules that decide before anything starts: Triton's model control modes.
 * (The modes' effect on a running server is tested in test/integration/server.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { modelControl, restrictions } from './serve.js';

describe('modelControl', () => {
  it("takes Triton's three modes in repository mode, and nothing without one", () => {
    expect(modelControl({}, 'repository')).toEqual({});
    expect(modelControl({ modelControlMode: 'none' }, 'repository')).toEqual({ mode: 'none' });
    expect(modelControl({ modelControlMode: 'poll', repositoryMonitoring: true }, 'repository')).toEqual({ mode: 'poll' });
    expect(modelControl({ modelControlMode: 'explicit', loadModel: ['a', 'b'] }, 'repository')).toEqual({ mode: 'explicit' });
  });

  it('refuses flags that contradict each other or the mode', () => {
    expect(() => modelControl({ loadModel: ['a'] }, 'repository')).toThrow('--load-model needs --model-control-mode explicit');
    expect(() => modelControl({ modelControlMode: 'none', loadModel: ['a'] }, 'repository')).toThrow('--load-model needs --model-control-mode explicit');
    expect(() => modelControl({ modelControlMode: 'explicit', repositoryMonitoring: true }, 'repository')).toThrow('--repository-monitoring is --model-control-mode poll, not explicit');
    expect(() => modelControl({ modelControlMode: 'explicit' }, 'multi-model')).toThrow('--model-control-mode is for repository mode; this is multi-model mode');
  });
});

describe('restrictions', () => {
  it("takes the repeated flag over the variable, splits the variable's groups at ';', and is undefined with neither", () => {
    const env = 'model-repository:admin-key=a;inference:infer-key=b';
    expect([...restrictions(undefined, env, '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API')!.keys()]).toEqual(['model-repository', 'inference']);
    expect([...restrictions(['logging:k=v'], env, '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API')!.keys()]).toEqual(['logging']);
    expect(restrictions(undefined, ' ; ', '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API')).toBeUndefined();
    expect(restrictions([], undefined, '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API')).toBeUndefined();
    expect(() => restrictions(undefined, 'models:k=v', '--http-restricted-api', 'KINFER_HTTP_RESTRICTED_API')).toThrow(/^KINFER_HTTP_RESTRICTED_API: group 1: a category is not one of/);
  });
});
