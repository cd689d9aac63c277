/**
 * @module cli/code-cache
 * Entry of the built CLI, `dist/bundle/main.cjs` (scripts/bundle.mjs). It
 * compiles the one-file bundle beside it, `kinfer.cjs`, with V8's code cache
 * `kinfer.cache`, then runs it as Node runs a CommonJS module.
 *
 * Why by hand: Node 20 has no compile cache (`module.enableCompileCache` came in
 * Node 22), and compiling the server's JavaScript was ~45 ms of a ~430 ms cold
 * start on one core. The build writes the cache from a run of the server that
 * served a few requests, so it also holds the functions the first request needs.
 *
 * V8 checks a cache against its own version and flags, but against the source
 * only by length. So the cache file starts with the SHA-1 of the source it was
 * made from, and a cache of another source is never used. A missing, stale or
 * rejected cache costs the compile it would have saved, nothing else. The
 * outcome is left in `globalThis[Symbol.for('kinfer.codeCache')]` for the serve
 * log.
 *
 * A vm.Script has no `import()` of its own in Node 20 without
 * `--experimental-vm-modules`. This module's own `import()` is handed to the
 * bundle as `globalThis[Symbol.for('kinfer.import')]`, which
 * `runtime/core/import-module.ts` uses.
 */
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import Module = require('node:module');
import { dirname, join } from 'node:path';
import vm = require('node:vm');

/** What became of the code cache: `used`; `absent`; `stale` (made from another source); `rejected` by V8 (other Node version or V8 flags). */
export type CodeCacheStatus = 'used' | 'absent' | 'stale' | 'rejected';

const HASH_BYTES = 20;

export interface CompiledBundle {
  script: vm.Script;
  status: CodeCacheStatus;
  /** Writes the cache of everything compiled so far (atomically: temp file, then rename). */
  writeCache(): void;
}

/** Compiles `file` (CommonJS source) in the module wrapper, with the cache at `cacheFile` when it fits. */
export function compileBundle(file: string, cacheFile: string): CompiledBundle {
  const bytes = readFileSync(file);
  const hash = createHash('sha1').update(bytes).digest();
  // The build writes ASCII only; as latin1 it is decoded at copy speed, and V8 keeps it one byte per character.
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  let cached: Buffer | undefined;
  try {
    cached = readFileSync(cacheFile);
  } catch {
    /* absent */
  }
  const fits = cached !== undefined && cached.length > HASH_BYTES && hash.equals(cached.subarray(0, HASH_BYTES));
  const script = new vm.Script(Module.wrap(source), {
    filename: file,
    cachedData: fits ? cached!.subarray(HASH_BYTES) : undefined,
    // Only an import() the bundle makes itself lands here (it should use kinfer.import): it works, with an experimental warning.
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const status: CodeCacheStatus = cached === undefined ? 'absent' : !fits ? 'stale' : script.cachedDataRejected ? 'rejected' : 'used';
  return {
    script,
    status,
    writeCache() {
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      writeFileSync(tmp, Buffer.concat([hash, script.createCachedData()]));
      renameSync(tmp, cacheFile);
    },
  };
}

/** Runs a compiled bundle as the CommonJS module `file` (its own require, module, __filename, __dirname). */
export function runBundle(bundle: CompiledBundle, file: string): void {
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(file));
  const wrapper = bundle.script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(mod.exports, mod.exports, Module.createRequire(file), mod, file, dirname(file));
}

if (require.main === module) {
  const file = join(__dirname, 'kinfer.cjs');
  const bundle = compileBundle(file, join(__dirname, 'kinfer.cache'));
  const g = globalThis as Record<symbol, unknown>;
  g[Symbol.for('kinfer.codeCache')] = bundle.status;
  g[Symbol.for('kinfer.import')] = (specifier: string) => import(specifier);
  // The build's training run (scripts/bundle.mjs) sets this; the cache then holds what that run compiled.
  if (process.env.KINFER_WRITE_CODE_CACHE === '1') process.once('exit', () => bundle.writeCache());
  runBundle(bundle, file);
}
