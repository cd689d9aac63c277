/**
 * The built CLI's entry (cli/code-cache.cts → dist/bundle/main.cjs) and the
 * code cache the build trains. First its functions, required from the built
 * entry in fresh processes, on a small module in a temp folder; then the real
 * bundle, spawned.
 * Needs `dist/` (built by test/global-setup.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../runtime/config.js';
import { mlpReference, writeMlpModel } from '../helpers/onnx-models.js';
import { postJson, tempDir } from '../helpers/server.js';

const ENTRY = join(packageRoot(), 'dist', 'bundle', 'main.cjs');

type Status = 'used' | 'absent' | 'stale' | 'rejected';

/** A CommonJS module that reports what it ran with, through a global the runner prints. */
const moduleSource = (tag: string) =>
  `globalThis.__ran = { tag: ${JSON.stringify(tag)}, dir: __dirname, sep: require('node:path').sep, self: module.filename };\n` +
  // Enough functions that the cache is more than a header.
  Array.from({ length: 50 }, (_, i) => `exports.f${i} = function f${i}(x) { return x * ${i} + ${JSON.stringify(tag)}.length; };`).join('\n');

/**
 * Compiles and runs `file` with `cacheFile` in a fresh node (V8 keeps compiled
 * scripts per process, and would answer a second compile of the same source
 * from memory, never reading the cache); with `write`, writes the cache after.
 */
function runFresh(file: string, cacheFile: string, write = false): { status: Status; ran: { tag: string; dir: string; sep: string; self: string } } {
  const script = `
    const { compileBundle, runBundle } = require(${JSON.stringify(ENTRY)});
    const b = compileBundle(process.argv[1], process.argv[2]);
    runBundle(b, process.argv[1]);
    if (process.argv[3] === 'write') b.writeCache();
    console.log(JSON.stringify({ status: b.status, ran: globalThis.__ran }));`;
  const out = execFileSync(process.execPath, ['-e', script, file, cacheFile, write ? 'write' : ''], { encoding: 'utf8', timeout: 20_000 });
  return JSON.parse(out) as never;
}

describe('compileBundle and runBundle (required from dist/bundle/main.cjs, each run in a fresh node)', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let file: string;
  let cache: string;
  beforeEach(async () => {
    work = await tempDir('kinfer-code-cache-');
    file = join(work.dir, 'kinfer.cjs');
    cache = join(work.dir, 'kinfer.cache');
  });
  afterEach(async () => work.cleanup());

  it('without a cache compiles the source; after writeCache the next run uses it; the module gets its own require, __dirname and filename', () => {
    // Not ASCII, unlike what the build writes: read as UTF-8, not latin1.
    writeFileSync(file, moduleSource('ünï'));
    const first = runFresh(file, cache, true);
    expect(first.status).toBe('absent');
    expect(existsSync(cache)).toBe(true);
    const second = runFresh(file, cache);
    expect(second.status).toBe('used');
    expect(second.ran).toEqual({ tag: 'ünï', dir: work.dir, sep: '/', self: file });
  });

  it('a cache made from another source of the same length is stale and not used: the new source runs', () => {
    writeFileSync(file, moduleSource('old'));
    runFresh(file, cache, true);
    writeFileSync(file, moduleSource('new'));
    const r = runFresh(file, cache);
    expect(r.status).toBe('stale');
    expect(r.ran.tag).toBe('new');
  });

  it('a cache V8 cannot read is rejected, and the source still runs', () => {
    writeFileSync(file, moduleSource('two'));
    runFresh(file, cache, true);
    const bytes = readFileSync(cache);
    // Past the 20-byte source hash: V8's own header (magic number, version and flag hashes).
    for (let i = 20; i < 40; i++) bytes[i] = bytes[i]! ^ 0xff;
    writeFileSync(cache, bytes);
    const r = runFresh(file, cache);
    expect(r.status).toBe('rejected');
    expect(r.ran.tag).toBe('two');
  });
});

/**
 * Runs the built kinfer with `nodeFlags` over `repo` until ready, sends
 * `check` its URL, then stops it with SIGTERM; its log and exit code.
 */
async function serveBuilt(
  repo: string,
  check: (url: string) => Promise<void>,
  nodeFlags: string[] = [],
  extra: string[] = [],
): Promise<{ output: string; code: number | null }> {
  const child = spawn(process.execPath, [...nodeFlags, ENTRY, 'serve', '--model-repository', repo, '--host', '127.0.0.1', '--port', '0', ...extra], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      output += b.toString();
      if (output.includes('"event":"ready"')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exit.then((code) => reject(new Error(`kinfer exited ${code} before ready: ${output}`)));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    await ready;
    await check(/"event":"listening","url":"([^"]+)"/.exec(output)![1]!);
    child.kill('SIGTERM');
    return { output, code: await exit };
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
}

/** The package's echo model answers an INT32 request with itself. */
async function echoes(url: string): Promise<void> {
  const res = await postJson(`${url}/v2/models/echo/infer`, { inputs: [{ name: 'x', datatype: 'INT32', shape: [2], data: [4, 2] }] });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([4, 2]);
}

const serveEcho = (nodeFlags: string[] = [], extra: string[] = []) => serveBuilt(join(packageRoot(), 'models'), echoes, nodeFlags, extra);

describe('the built kinfer and the code cache the build trained (spawned)', () => {
  it('serve compiles from the cache and says so', async () => {
    const { output, code } = await serveEcho();
    expect(output).toContain('"event":"code_cache","status":"used"');
    expect(code).toBe(0);
  });

  it('runs an ONNX session on the event loop with the inlined onnxruntime-node (its native binding from node_modules): exact results', async () => {
    const work = await tempDir('kinfer-code-cache-onnx-');
    try {
      await mkdir(join(work.dir, 'mlp', '1'), { recursive: true });
      const mlp = await writeMlpModel(join(work.dir, 'mlp', '1'));
      await writeFile(
        join(work.dir, 'mlp', 'config.pbtxt'),
        'platform: "onnxruntime_onnx"\nmax_batch_size: 8\nparameters { key: "session_thread" value: { string_value: "event_loop" } }\n',
      );
      const x = Float32Array.from([1, -2, 0.5, 4, 0, 3, -1, 2]);
      const { output, code } = await serveBuilt(work.dir, async (url) => {
        const res = await postJson(`${url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: Array.from(x) }] });
        expect(res.status).toBe(200);
        const want = mlpReference(mlp, x);
        ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      });
      expect(output).toContain('"event":"code_cache","status":"used"');
      expect(code).toBe(0);
    } finally {
      await work.cleanup();
    }
  });

  it('with V8 flags other than the build\'s, V8 rejects the cache: serve warns and still serves', async () => {
    const { output, code } = await serveEcho(['--max-old-space-size=300']);
    expect(output).toMatch(/"level":"warn".*"event":"code_cache","status":"rejected"/);
    expect(code).toBe(0);
  });

  it('a function\'s hooks module is imported through the entry: no experimental warning', async () => {
    const { output, code } = await serveEcho([], ['--function', 'echo']);
    expect(output).toContain('"event":"code_cache","status":"used"');
    expect(output).not.toMatch(/ExperimentalWarning/);
    expect(code).toBe(0);
  });
});
