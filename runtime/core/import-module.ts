/**
 * @module core/import-module
 * `import()` of a package or a file URL, from anywhere in kinfer. In the built
 * CLI the code runs as a vm.Script (cli/code-cache.cts), which has no
 * `import()` of its own in Node 20; the entry hands over its own, and this
 * uses it. Elsewhere (dist/, tests) it is the plain `import()`. Bare
 * specifiers resolve from the package either way: the entry sits in
 * dist/bundle/, this file in dist/runtime/core/.
 */
type Importer = (specifier: string) => Promise<unknown>;

export function importModule<T>(specifier: string): Promise<T> {
  const viaEntry = (globalThis as Record<symbol, unknown>)[Symbol.for('kinfer.import')] as Importer | undefined;
  return (viaEntry ? viaEntry(specifier) : import(specifier)) as Promise<T>;
}
