/**
 * @module cli/function-hooks
 * Finds the lifecycle hooks of the function named by `KINFER_FUNCTION` (or
 * `--function`): a bundled function name (`functions/<name>/index.ts`) or a
 * path to a module whose default export is a `defineFunction(...)` result.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isFunctionDefinition } from '../functions/define.js';
import type { LifecycleHooks } from '../runtime/server/serve.js';
import { importModule } from '../runtime/core/import-module.js';

export async function loadFunctionHooks(ref: string): Promise<LifecycleHooks> {
  const isPath = ref.includes('/') || ref.endsWith('.js');
  if (!isPath && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ref)) {
    throw new Error(`KINFER_FUNCTION '${ref}' is neither a function name (functions/<name>) nor a module path`);
  }
  const url = isPath
    ? pathToFileURL(isAbsolute(ref) ? ref : resolve(ref)).href
    : new URL(`../functions/${ref}/index.js`, import.meta.url).href;
  let mod: { default?: unknown };
  try {
    mod = await importModule<{ default?: unknown }>(url);
  } catch (err) {
    throw new Error(`cannot load function '${ref}' from ${url}: ${(err as Error).message}`);
  }
  if (!isFunctionDefinition(mod.default)) {
    throw new Error(`function module ${url} must default-export defineFunction(...)`);
  }
  return mod.default.hooks;
}
