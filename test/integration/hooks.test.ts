/**
 * Function lifecycle hooks (faas-js-runtime's init/shutdown/liveness/readiness)
 * on kinfer's own server, and their loading from KINFER_FUNCTION.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadFunctionHooks } from '../../cli/function-hooks.js';
import { defaultModelRepository } from '../../runtime/config.js';
import { startTestServer, tempDir } from '../helpers/server.js';

describe('lifecycle hooks', () => {
  it('runs init during startup (before ready), consults liveness/readiness, and calls shutdown after draining', async () => {
    const calls: string[] = [];
    let live = true;
    let ready = true;
    const server = await startTestServer({
      modelRepository: defaultModelRepository(),
      hooks: {
        init: async () => {
          calls.push('init');
        },
        liveness: () => live,
        readiness: async () => ready,
        shutdown: () => {
          calls.push('shutdown');
        },
      },
    });
    try {
      expect(calls).toEqual(['init']);
      expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
      ready = false;
      expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(503);
      live = false;
      expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(503);
    } finally {
      await server.close();
    }
    expect(calls).toEqual(['init', 'shutdown']);
  });

  it('a failing init fails startup', async () => {
    await expect(
      startTestServer({
        modelRepository: defaultModelRepository(),
        hooks: {
          init: () => {
            throw new Error('warm-up failed');
          },
        },
      }),
    ).rejects.toThrow('warm-up failed');
  });

  it('loads hooks from a module path and refuses a module that is not a function definition', async () => {
    const dir = await tempDir();
    try {
      const good = join(dir.dir, 'fn.mjs');
      await writeFile(good, "export default { kind: 'kinfer.function', spec: {}, hooks: { readiness: () => false } };\n");
      const hooks = await loadFunctionHooks(good);
      expect(await hooks.readiness!()).toBe(false);
      const bad = join(dir.dir, 'bad.mjs');
      await writeFile(bad, 'export default 42;\n');
      await expect(loadFunctionHooks(bad)).rejects.toThrow(/must default-export defineFunction/);
      await expect(loadFunctionHooks('Not A Name!')).rejects.toThrow(/neither a function name/);
    } finally {
      await dir.cleanup();
    }
  });
});
