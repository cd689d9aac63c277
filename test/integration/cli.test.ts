/**
 * @module test/integration/cli
 * The built `kinfer` binary run as a user runs it (`node dist/bundle/main.cjs`),
 * against a real server on 127.0.0.1 and stand-in servers: stdout, stderr
 * and exit codes (0 ok, 1 server said no, 2 usage). Builds `dist/` first
 * when it is missing or older than the CLI and client sources.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { startFakeKubeApi, writeKubeconfig } from '../helpers/fake-kube-api.js';
import { freePort } from '../helpers/loopback.js';
import { hostRequest } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { writeNpy } from '../../cli/npy.js';
import { defaultModelRepository } from '../../runtime/config.js';
import { startServer, type RunningServer } from '../../runtime/server/serve.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'dist', 'bundle', 'main.cjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI, running: its output so far (filled as it comes), and its end (SIGKILL after `timeoutMs`). */
function startKinfer(args: string[], opts: { timeoutMs?: number } = {}): { child: ChildProcessByStdio<null, Readable, Readable>; out: Run; done: Promise<Run> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, KINFER_URL: '', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (c: Buffer) => (out.stdout += c));
  child.stderr.on('data', (c: Buffer) => (out.stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      out.code = code;
      resolve(out);
    });
  });
  return { child, out, done };
}

function kinfer(args: string[], opts: { timeoutMs?: number } = {}): Promise<Run> {
  return startKinfer(args, opts).done;
}

async function rawServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let tmp: string;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  // dist/ is built once by test/global-setup.ts.
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build`);
  tmp = await mkdtemp(path.join(tmpdir(), 'kinfer-cli-'));
  await mkdir(path.join(tmp, 'repo', 'echo'), { recursive: true });
  await writeFile(path.join(tmp, 'repo', 'echo', 'config.pbtxt'), 'name: "echo"\nplatform: "echo"\n');
  server = await startServer({ mode: 'repository', modelRepository: path.join(tmp, 'repo'), port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });
  await server.startup;
  url = server.url;
}, 200_000);

afterAll(async () => {
  await server?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('kinfer against a running server', () => {
  it('health: exit 0 and ready; --json is machine-readable; a model check', async () => {
    const h = await kinfer(['health', '--url', url]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('live yes, ready yes');
    const j = await kinfer(['health', '--url', url, '--model', 'echo', '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({ url, live: true, ready: true, model: { name: 'echo', ready: true } });
    const missing = await kinfer(['health', '--url', url, '--model', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('model nope: ready no');
  });

  it('models, models --all and metadata', async () => {
    const m = await kinfer(['models', '--url', url, '--json']);
    expect(JSON.parse(m.stdout)).toEqual({ models: ['echo'] });
    const all = await kinfer(['models', '--all', '--url', url]);
    expect(all.stdout).toMatch(/^echo\t.*READY/m);
    const meta = await kinfer(['metadata', 'echo', '--url', url, '--json']);
    expect(meta.code).toBe(0);
    expect(JSON.parse(meta.stdout)).toMatchObject({ name: 'echo', platform: 'echo' });
    const srv = await kinfer(['metadata', '--url', url]);
    expect(srv.stdout).toMatch(/extensions: .*binary_tensor_data/);
    const unknown = await kinfer(['metadata', 'nope', '--url', url]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/kinfer metadata: 404: .*nope/);
  });

  it('infer with a JSON literal, a .npy file and a .json file, JSON and binary', async () => {
    const lit = await kinfer(['infer', 'echo', '--url', url, '--input', 'x:FP32:2,2=[[1,2],[3,4.5]]', '--json']);
    expect(lit.code).toBe(0);
    expect(JSON.parse(lit.stdout).outputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4.5] }]);

    const npyFile = path.join(tmp, 'a.npy');
    await writeFile(npyFile, writeNpy('INT64', [3], new BigInt64Array([1n, -(2n ** 60n), 3n])));
    const jsonFile = path.join(tmp, 'b.json');
    await writeFile(jsonFile, JSON.stringify({ datatype: 'BYTES', data: ['héllo', 'w'] }));
    const files = await kinfer(['infer', 'echo', '--url', url, '--binary', '-i', `a=@${npyFile}`, '-i', `b=@${jsonFile}`, '--id', 'r7', '--json']);
    expect(files.code).toBe(0);
    const res = JSON.parse(files.stdout);
    expect(res.id).toBe('r7');
    expect(res.outputs).toEqual([
      { name: 'a', datatype: 'INT64', shape: [3], data: [1, String(-(2n ** 60n)), 3] },
      { name: 'b', datatype: 'BYTES', shape: [2], data: ['héllo', 'w'] },
    ]);

    // 64-bit integers beyond 2^53 arrive exact (a literal is not read as a Number first).
    const big = await kinfer(['infer', 'echo', '--url', url, '-i', 'i:INT64=[9007199254740993,-9223372036854775808]', '-i', 'u:UINT64=[18446744073709551615]', '--json']);
    expect(big.code).toBe(0);
    expect(JSON.parse(big.stdout).outputs).toEqual([
      { name: 'i', datatype: 'INT64', shape: [2], data: ['9007199254740993', '-9223372036854775808'] },
      { name: 'u', datatype: 'UINT64', shape: [1], data: ['18446744073709551615'] },
    ]);

    const human = await kinfer(['infer', 'echo', '--url', url, '-i', 's:BYTES=hello', '-i', 'n:INT8=[1,2,3]', '--max-values', '2']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('s  BYTES  [1]\n  ["hello"]');
    expect(human.stdout).toContain('n  INT8  [3]\n  [1, 2, ... (1 more)]');
  });

  it('infer --top-k ranks the last dimension, with labels', async () => {
    const labels = path.join(tmp, 'labels.txt');
    await writeFile(labels, 'cat\ndog\nbird\nfish\n');
    const r = await kinfer(['infer', 'echo', '--url', url, '-i', 'p:FP32:1,4=[0.1,0.6,0.05,0.25]', '--top-k', '2', '--labels', labels]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/p {2}FP32 {2}\[1,4\]\n +1 {2}0\.6 {2}dog\n +3 {2}0\.25 {2}fish\n/);
    const j = await kinfer(['infer', 'echo', '--url', url, '-i', 'p:FP16:2,3=[[1,3,2],[9,8,7]]', '-k', '1', '--json']);
    expect(JSON.parse(j.stdout).outputs[0].top_k).toEqual([[{ index: 1, score: 3 }], [{ index: 0, score: 9 }]]);
  });

  it('tune measures rising concurrency and prints the knee as the Knative target', async () => {
    const run = await kinfer(['tune', 'echo', '--url', url, '-i', 'x:FP32:1,4=[[1,2,3,4]]', '--seconds', '0.3', '--max-concurrency', '4', '--json'], { timeoutMs: 30_000 });
    expect(run.code, run.stderr).toBe(0);
    const res = JSON.parse(run.stdout) as { steps: { concurrency: number; requests: number; errors: number; throughput: number }[]; knee: number; target: number };
    expect(res.steps.map((s) => s.concurrency)).toEqual([1, 2, 4]);
    for (const s of res.steps) {
      expect(s.errors).toBe(0);
      expect(s.requests).toBeGreaterThan(0);
      expect(s.throughput).toBeGreaterThan(0);
    }
    expect([1, 2, 4]).toContain(res.knee);
    expect(res.target).toBe(res.knee);
    const human = await kinfer(['tune', 'echo', '--url', url, '-i', 'x:FP32:1,4=[[1,2,3,4]]', '--seconds', '0.2', '--max-concurrency', '1']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^concurrency\treq\/s\tp50 ms\tp99 ms\terrors\n1\t\d/);
    expect(human.stdout).toMatch(/function definition: scaling: \{ metric: 'concurrency', target: 1 \}/);
    const noInputs = await kinfer(['tune', 'echo', '--url', url]);
    expect(noInputs.code).toBe(2);
    expect(noInputs.stderr).toMatch(/model 'echo' declares no inputs \(it takes any\): give them with -i/);
  });

  it('a server-side refusal exits 1 with the server message', async () => {
    const r = await kinfer(['infer', 'echo', '--url', url, '-i', 'x:INT32=[1]', '-o', 'y', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("kinfer infer: 400: model 'echo': unknown output 'y'");
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 400 });
  });

  it('stats: one row per model with what the server counted; --json gives model_stats; an unknown model exits 1', async () => {
    const want = server.dataplane.modelStatistics('echo')[0]!;
    expect(want.inference_stats.success.count + want.inference_stats.fail.count).toBeGreaterThan(0); // the infer tests above ran
    const t = await kinfer(['stats', '--url', url]);
    expect(t.code).toBe(0);
    const [head, row] = t.stdout.trim().split('\n');
    expect(head!.split('\t').slice(0, 4)).toEqual(['model', 'version', 'ok', 'failed']);
    expect(row!.split('\t').slice(0, 6)).toEqual(['echo', '1', String(want.inference_stats.success.count), String(want.inference_stats.fail.count), String(want.inference_count), String(want.execution_count)]);
    const j = await kinfer(['stats', 'echo', '--url', url, '--json']);
    expect(JSON.parse(j.stdout).model_stats[0]).toMatchObject({ name: 'echo', version: '1', execution_count: want.execution_count });
    const unknown = await kinfer(['stats', 'nope', '--url', url]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/kinfer stats: 404: .*nope/);
  });

  it('unload, load with parameters, and a failed load', async () => {
    expect((await kinfer(['unload', 'echo', '--url', url])).stdout).toContain('unloaded echo');
    expect(JSON.parse((await kinfer(['models', '--url', url, '--json'])).stdout)).toEqual({ models: [] });
    const load = await kinfer(['load', 'echo', '--url', url, '--param', 'threads=2']);
    expect(load.code).toBe(0);
    expect(load.stdout).toContain('loaded echo');
    expect(JSON.parse((await kinfer(['models', '--url', url, '--json'])).stdout)).toEqual({ models: ['echo'] });
    const bad = await kinfer(['load', 'nope', '--url', url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/kinfer load: 404: .*nope/);
    // The model's files sent with the load (Triton's file: parameters): a model the repository does not hold.
    await writeFile(path.join(tmp, 'pushed.json'), JSON.stringify({ platform: 'echo' }));
    await writeFile(path.join(tmp, 'notes.txt'), 'version five');
    const pushed = await kinfer(['load', 'pushed', '--url', url, '--config', path.join(tmp, 'pushed.json'), '--file', `5/notes.txt=${path.join(tmp, 'notes.txt')}`]);
    expect([pushed.code, pushed.stdout.trim()]).toEqual([0, 'loaded pushed']);
    expect(JSON.parse((await kinfer(['metadata', 'pushed', '--url', url, '--json'])).stdout)).toMatchObject({ name: 'pushed', versions: ['5'] });
    expect((await kinfer(['unload', 'pushed', '--url', url])).code).toBe(0);
    const noConfig = await kinfer(['load', 'pushed', '--url', url, '--file', `5/notes.txt=${path.join(tmp, 'notes.txt')}`]);
    expect([noConfig.code, noConfig.stderr]).toEqual([2, expect.stringMatching(/--file needs --config/)]);
  });
});

describe('usage errors, connection errors, --host, --help', () => {
  it('usage errors exit 2 and say what is wrong', async () => {
    const half = path.join(tmp, 'half.npy');
    await writeFile(half, writeNpy('FP16', [3], Uint16Array.of(0x3c00, 0x3c00, 0x3c00)));
    const words = path.join(tmp, 'words.npy');
    await writeFile(words, writeNpy('UINT16', [2], Uint16Array.of(1, 2)));
    const cases: [string[], RegExp][] = [
      [['infer', 'echo', '-i', `x:FP32=@${half}`], /input 'x': .*half\.npy holds FP16, not FP32; drop the datatype or convert the file/],
      [['infer', 'echo', '-i', `x:FP16=@${words}`], /input 'x': .*words\.npy holds UINT16, not FP16/],
      [['infer'], /missing required argument 'model'/],
      [['infer', 'echo', '--url', 'http://127.0.0.1:1'], /at least one --input/],
      [['infer', 'echo', '-i', 'x:FP32:2=[1,2,3]'], /input 'x': shape \[2\] needs 2 elements, data has 3/],
      [['infer', 'echo', '-i', 'x=[1,2]'], /give a datatype/],
      [['infer', 'echo', '-i', 'x=@/nonexistent.npy'], /cannot read \/nonexistent.npy: ENOENT/],
      [['health', '--timeout', 'soon'], /'--timeout <ms>' argument 'soon' is invalid/],
      [['load', 'echo', '--param', 'novalue'], /--param 'novalue': expected key=value/],
      [['health', '--url', 'ftp://x'], /only http:\/\/ and https:\/\//],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['dev', 'nope', '--port', '70000'], /kinfer: invalid port '70000'/],
      [['tune', 'echo', '--url', 'http://127.0.0.1:1', '--seconds', '0'], /'--seconds <s>' argument '0' is invalid\. expected seconds above 0 and at most 600, got '0'/],
      [['serve', '--model-repository', '/nonexistent-repo', '--port', '70000'], /kinfer: invalid port '70000'/],
      [['metadata', '..', '--url', 'http://127.0.0.1:1'], /kinfer metadata: model name "\.\." cannot be sent/],
      [['infer', '.', '--url', 'http://127.0.0.1:1', '-i', 'x:INT32=[1]'], /kinfer infer: model name "\." cannot be sent/],
      // Delays a timer cannot wait (setTimeout fires one over 2^31 - 1 ms after 1 ms).
      [['models', '--url', 'http://127.0.0.1:1', '--timeout', '3000000000'], /'--timeout <ms>' argument '3000000000' is invalid\. expected at most 2147483647 milliseconds/],
      [['health', '--url', 'http://127.0.0.1:1', '--wait', '2147483648'], /expected at most 2147483647 milliseconds/],
      [['pull', '/nonexistent-model', path.join(tmp, 'never'), '--progress-interval', '3000000000'], /expected at most 2147483647 milliseconds/],
      [['dev', 'nope', '--idle-seconds', '3000000'], /'--idle-seconds <n>' argument '3000000' is invalid\. expected at most 2147483 seconds/],
      [['dev', 'nope', '--backoff-delay-ms', '3000000000'], /expected at most 2147483647 milliseconds/],
      [['deploy', 'echo', '--dry-run', '--wait-timeout', '2147484'], /expected at most 2147483 seconds/],
      [['serve', '--model-repository', '/nonexistent-repo', '--repository-poll-secs', '3000000'], /expected at most 2147483 seconds/],
    ];
    const runs = await Promise.all(cases.map(([args]) => kinfer(args)));
    runs.forEach((r, i) => {
      expect({ args: cases[i]![0], code: r.code }).toEqual({ args: cases[i]![0], code: 2 });
      expect(r.stderr).toMatch(cases[i]![1]);
    });
  });

  it('with --json, option and argument errors Commander finds are an {"error"} object on stdout too', async () => {
    const cases: [string[], RegExp][] = [
      [['models', '--json', '--timeout', 'soon'], /^option '--timeout <ms>' argument 'soon' is invalid/],
      [['metadata', '--json', '--frobnicate'], /^unknown option '--frobnicate'/],
      [['infer', '--json'], /^missing required argument 'model'/],
      [['list', '--json', '--timeout', '0'], /^option '--timeout <seconds>' argument '0' is invalid/],
    ];
    const runs = await Promise.all(cases.map(([args]) => kinfer(args)));
    runs.forEach((r, i) => {
      expect({ args: cases[i]![0], code: r.code }).toEqual({ args: cases[i]![0], code: 2 });
      expect(Object.keys(JSON.parse(r.stdout))).toEqual(['error']);
      expect(JSON.parse(r.stdout).error).toMatch(cases[i]![1]);
    });
    const plain = await kinfer(['models', '--timeout', 'soon']);
    expect({ code: plain.code, stdout: plain.stdout }).toEqual({ code: 2, stdout: '' });
  });

  it('a refused connection exits 1 naming the URL', async () => {
    const closed = await rawServer(() => undefined);
    await closed.close();
    const r = await kinfer(['models', '--url', closed.url, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach ${closed.url}/v2/models`);
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(JSON.parse(r.stdout).error).toContain('ECONNREFUSED');
  });

  it('--host sets the Host header the server sees', async () => {
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"models":["m"]}');
    });
    try {
      const r = await kinfer(['models', '--url', raw.url, '--host', 'echo.default.example.com']);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe('m');
      expect(raw.seen[0]!.host).toBe('echo.default.example.com');
    } finally {
      await raw.close();
    }
  });

  it('--help works on every verb', async () => {
    const verbs = ['serve', 'infer', 'health', 'models', 'metadata', 'stats', 'load', 'unload', 'devices', 'pull', 'manifests', 'validate', 'deploy', 'status', 'list', 'logs', 'dev'];
    const runs = await Promise.all(verbs.map((v) => kinfer([v, '--help'])));
    runs.forEach((r, i) => {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: kinfer ${verbs[i]}`);
    });
  });
});

describe('local verbs', () => {
  it('devices lists what the addon enumerates (none here: no FPGA on this machine)', async () => {
    const r = await kinfer(['devices', '--json']);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(Array.isArray(e.devices)).toBe(true);
    const human = await kinfer(['devices']);
    if (e.devices.length === 0) expect(human.stdout).toMatch(/no Xilinx\/AMD FPGA found/);
    const req = await kinfer(['devices', '--require', String(e.devices.length + 1)]);
    expect(req.code).toBe(1);
  });

  it('pull copies a local folder, and prints plain progress lines when not on a TTY', async () => {
    const src = path.join(tmp, 'src-model');
    await mkdir(path.join(src, '1'), { recursive: true });
    await writeFile(path.join(src, '1', 'model.onnx'), 'weights');
    const dest = path.join(tmp, 'pulled');
    const r = await kinfer(['pull', src, dest, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ dir: dest, cached: false });
    expect(await readFile(path.join(dest, '1', 'model.onnx'), 'utf8')).toBe('weights');

    // A slow HTTP download: 8 chunks of 16 KiB, 60 ms apart.
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(8 * 16384) });
      let sent = 0;
      const tick = setInterval(() => {
        res.write(Buffer.alloc(16384, 1));
        if (++sent === 8) {
          clearInterval(tick);
          res.end();
        }
      }, 60);
    });
    try {
      const d2 = path.join(tmp, 'pulled-http');
      const p = await kinfer(['pull', `${raw.url}/model.onnx`, d2, '--progress-interval', '100']);
      expect(p.code).toBe(0);
      expect(p.stdout).toContain('131.1 KB downloaded');
      expect(p.stderr).toMatch(/^pull: [\d.]+ KB of 131\.1 KB \(\d+%\), [\d.]+ (B|KB|MB)\/s$/m);
      expect(p.stderr).not.toContain('\r');
      expect((await readFile(path.join(d2, 'model.onnx'))).byteLength).toBe(8 * 16384);
    } finally {
      await raw.close();
    }
  });

  it('Ctrl-C during a pull cancels it: its staging folders are removed and it exits 130', async () => {
    // Sends the first 64 KiB of a 10 MiB file, then nothing more: the pull is under way until cancelled.
    const slow = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(10 * 1024 * 1024) });
      res.write(Buffer.alloc(64 * 1024));
    });
    const parent = await mkdtemp(path.join(tmpdir(), 'kinfer-pull-int-'));
    try {
      const dest = path.join(parent, 'dst');
      const run = startKinfer(['pull', `${slow.url}/model.onnx`, dest, '--no-progress'], { timeoutMs: 30_000 });
      const leftovers = async () => (await readdir(parent)).filter((n) => n.startsWith('.dst.pull-'));
      await until(() => slow.seen.length > 0, 20_000, 10); // the download has started, so the staging folder exists
      expect((await leftovers()).length).toBeGreaterThan(0);
      run.child.kill('SIGINT');
      const { code, stderr } = await run.done;
      expect(code).toBe(130);
      expect(stderr).toContain('pull cancelled');
      expect(await leftovers()).toEqual([]);
      expect(existsSync(dest)).toBe(false);
    } finally {
      await slow.close();
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('pull of an unsupported scheme exits 1 with the reason', async () => {
    const r = await kinfer(['pull', 'ftp://host/model', path.join(tmp, 'x')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unsupported scheme "ftp:\/\/"/);
  });

  it('deploy --dry-run prints the objects it would apply, without a cluster', async () => {
    const r = await kinfer(['deploy', 'echo', '--dry-run', '--json', '--namespace', 'models']);
    expect(r.code).toBe(0);
    const applied = JSON.parse(r.stdout) as { kind: string; name: string }[];
    expect(applied.map((a) => a.kind)).toContain('Service');
    expect(r.stderr).toContain('# dry run: PATCH');
  });
});

/** An RGBA PNG whose pixel i is [(i*7)%256, (i*13+5)%256, (i*29+11)%256, 255-i%256]. */
function testPng(width: number, height: number): { file: Buffer; rgb: number[][] } {
  const img = new PNG({ width, height });
  const rgb: number[][] = [];
  for (let i = 0; i < width * height; i++) {
    const p = [(i * 7) % 256, (i * 13 + 5) % 256, (i * 29 + 11) % 256];
    rgb.push(p);
    img.data.set([...p, 255 - (i % 256)], i * 4);
  }
  return { file: PNG.sync.write(img), rgb };
}

describe('infer --image', () => {
  let models: RunningServer;

  beforeAll(async () => {
    models = await startServer({ mode: 'repository', modelRepository: defaultModelRepository(), port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });
    await models.startup;
  }, 120_000);

  afterAll(async () => {
    await models?.close();
  });

  it('ocr-det reads a 64x64 PNG as NCHW FP32 and answers a [1,1,64,64] probability map', async () => {
    const file = path.join(tmp, 'page.png');
    await writeFile(file, testPng(64, 64).file);
    const r = await kinfer(['infer', 'ocr-det', '--url', models.url, '--image', file, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout).outputs;
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ name: 'sigmoid_0.tmp_0', datatype: 'FP32', shape: [1, 1, 64, 64] });
    expect(out[0].data).toHaveLength(64 * 64);
    expect(out[0].data.every((v: number) => v >= 0 && v <= 1)).toBe(true);
    // Human output names the input built from the metadata; --size and --multiple-of resize.
    const human = await kinfer(['infer', 'ocr-det', '--url', models.url, '--image', file, '--size', '96x32', '--max-values', '2']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`image ${file} (64x64) -> x  FP32  [1,3,32,96]`);
    expect(human.stdout).toContain('sigmoid_0.tmp_0  FP32  [1,1,32,96]');
    const odd = path.join(tmp, 'odd.png');
    await writeFile(odd, testPng(70, 50).file);
    const rounded = await kinfer(['infer', 'ocr-det', '--url', models.url, '--image', odd, '--multiple-of', '32', '--max-values', '1']);
    expect(rounded.code).toBe(0);
    expect(rounded.stdout).toContain(`image ${odd} (70x50) -> x  FP32  [1,3,64,64]`);
  });

  it('echo --input-name img round-trips the pixels: NCHW pixel/255, NHWC raw with -s NONE, resized with --size', async () => {
    const { file, rgb } = testPng(5, 4);
    const x = path.join(tmp, 'x.png');
    await writeFile(x, file);
    const r = await kinfer(['infer', 'echo', '--url', url, '--image', x, '--input-name', 'img', '--json']);
    expect(r.code).toBe(0);
    const [t] = JSON.parse(r.stdout).outputs;
    expect(t).toMatchObject({ name: 'img', datatype: 'FP32', shape: [1, 3, 4, 5] });
    const planes = [0, 1, 2].flatMap((c) => rgb.map((p) => Math.fround(p[c]! / 255)));
    expect(t.data).toEqual(planes);

    const nhwc = await kinfer(['infer', 'echo', '--url', url, '--image', x, '--input-name', 'img', '--layout', 'nhwc', '-s', 'NONE', '--bgr', '--json']);
    expect(nhwc.code).toBe(0);
    const [u] = JSON.parse(nhwc.stdout).outputs;
    expect(u.shape).toEqual([1, 4, 5, 3]);
    expect(u.data).toEqual(rgb.flatMap((p) => [p[2], p[1], p[0]]));

    const sized = await kinfer(['infer', 'echo', '--url', url, '--image', x, '--input-name', 'img', '--size', '10x8', '-i', 'k:INT32=[7]', '--json']);
    expect(sized.code).toBe(0);
    const outs = JSON.parse(sized.stdout).outputs as { name: string; shape: number[] }[];
    expect(outs.map((o) => [o.name, o.shape])).toEqual([
      ['k', [1]],
      ['img', [1, 3, 8, 10]],
    ]);
  });

  it('unreadable or unsupported files exit 2 naming the file and formats; a model without an image input exits 1', async () => {
    const txt = path.join(tmp, 'notes.jpg');
    await writeFile(txt, 'not an image');
    const png = path.join(tmp, 'ok.png');
    await writeFile(png, testPng(4, 4).file);
    const usage: [string[], RegExp][] = [
      [['--image', '/nonexistent.png'], /--image: cannot read \/nonexistent\.png: ENOENT \(supported formats: JPEG .*PNG/],
      [['--image', txt], new RegExp(`${txt.replace(/[.]/g, '\\.')}: not a supported image \\(supported formats: JPEG`)],
      [['--image', png, '--size', 'big'], /'--size <WxH>' argument 'big' is invalid/],
      [['--image', png, '--mean', '1,2'], /--mean: expected one or three numbers/],
      [['-i', 'x:INT32=[1]', '--mean', '0.5'], /--mean only applies with --image/],
      // Refused before the resize allocates 20000x20000 pixels (9 GB in FP32).
      [['--image', png, '--input-name', 'img', '--multiple-of', '20000'], /--multiple-of 20000: the image would be resized to 20000x20000, more than 100 megapixels/],
      [['--image', png, '--input-name', 'img', '--size', '65536x65536'], /--size 65536x65536: the image would be resized to 65536x65536, more than 100 megapixels/],
    ];
    const runs = await Promise.all(usage.map(([args]) => kinfer(['infer', 'echo', '--url', url, ...args])));
    runs.forEach((r, i) => {
      expect({ args: usage[i]![0], code: r.code }).toEqual({ args: usage[i]![0], code: 2 });
      expect(r.stderr).toMatch(usage[i]![1]);
    });
    const noInputs = await kinfer(['infer', 'echo', '--url', url, '--image', png]);
    expect(noInputs.code).toBe(1);
    expect(noInputs.stderr).toContain("kinfer infer: model 'echo' declares no inputs in its metadata: name the image input with --input-name");
    const wrongName = await kinfer(['infer', 'ocr-det', '--url', models.url, '--image', png, '--input-name', 'image', '--json']);
    expect(wrongName.code).toBe(1);
    expect(JSON.parse(wrongName.stdout).error).toBe("model 'ocr-det' has no input 'image' (inputs: x)");
  });
});

describe('dev (functions served locally behind Host routing)', () => {
  it('serves a function from zero on its first request, routes by Host, and stops everything on Ctrl-C (exit 0)', async () => {
    const port = await freePort();
    // echo's storageUri is the image's file:///opt/kinfer/models/echo: dev reads functions/echo/model instead.
    const dev = startKinfer(['dev', 'echo', '--port', String(port)], { timeoutMs: 30_000 });
    await until(() => dev.out.stderr.includes('listening on'), 20_000, 10);
    expect((await hostRequest(`http://127.0.0.1:${port}`, 'echo.localhost', '/v2/models/echo/ready')).status).toBe(200);
    expect(dev.out.stderr).toMatch(/kinfer dev: echo: starting \(scale from zero\)\nkinfer dev: echo: ready in \d+ ms\n/);
    // echo's Trigger: its Broker on the same port; the reply matches no Trigger.
    expect(dev.out.stderr).toContain(`kinfer dev: broker default: send CloudEvents to http://127.0.0.1:${port}/default/default (its Triggers: echo-requests)`);
    const event = await fetch(`http://127.0.0.1:${port}/default/default`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'cli-1', 'ce-source': '/cli', 'ce-type': 'io.kinfer.inference.request', 'ce-subject': 'echo' },
      body: '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}',
    });
    expect(event.status).toBe(202);
    await until(() => /kinfer dev: broker default: io\.kinfer\.inference\.response \S+ matched no trigger/.test(dev.out.stderr), 10_000, 10);
    expect(dev.out.stderr).toMatch(/kinfer dev: echo-requests: io\.kinfer\.inference\.request cli-1 delivered; reply io\.kinfer\.inference\.response \S+ published/);
    dev.child.kill('SIGINT');
    const { code, stderr } = await dev.done;
    expect(code).toBe(0);
    expect(stderr).toContain('kinfer dev: echo: stopping');
    const usage = await kinfer(['dev', 'nope']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/no function nope; functions: echo, multi-model, ocr-det, xmodel-resnet/);
  });
});

describe('deploy --wait (against the API server test double)', () => {
  it('prints each object ready with its URL; Ready False exits 1 naming the reason; --dry-run is refused with it; --canary splits and status shows the split', async () => {
    const api = await startFakeKubeApi();
    try {
      const kube = ['-n', 'ml', '--kubeconfig', api.kubeconfigPath];
      expect((await kinfer(['deploy', 'echo', ...kube])).code).toBe(0);
      // What Knative's controllers would report for generation 1.
      const svc = '/apis/serving.knative.dev/v1/namespaces/ml/services/echo';
      const trigger = '/apis/eventing.knative.dev/v1/namespaces/ml/triggers/echo-requests';
      api.setStatus(svc, { observedGeneration: 1, url: 'http://echo.ml.example.com', conditions: [{ type: 'Ready', status: 'True' }] });
      api.setStatus(trigger, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True' }] });
      const ok = await kinfer(['deploy', 'echo', '--wait', ...kube]);
      expect({ code: ok.code, stdout: ok.stdout }).toEqual({ code: 0, stdout: 'applied Service ml/echo: ready at http://echo.ml.example.com\napplied Trigger ml/echo-requests: ready\n' });
      expect(ok.stderr).toContain('kinfer deploy: Service ml/echo: Ready=True\n');

      api.setStatus(trigger, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason: 'BrokerDoesNotExist', message: 'Broker "default" does not exist' }] });
      const failed = await kinfer(['deploy', 'echo', '--wait', '--wait-timeout', '30', ...kube]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('Trigger ml/echo-requests is not ready: BrokerDoesNotExist: Broker "default" does not exist');
      const usage = await kinfer(['deploy', 'echo', '--wait', '--dry-run', ...kube]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/--wait waits for what was applied; a --dry-run applies nothing/);

      // A canary: the split applied names the serving revision, and `kinfer status` shows it as routed.
      api.setStatus(svc, { observedGeneration: 1, url: 'http://echo.ml.example.com', latestReadyRevisionName: 'echo-00001', conditions: [{ type: 'Ready', status: 'True' }] });
      expect((await kinfer(['deploy', 'echo', '--canary', '20', ...kube])).code).toBe(0);
      expect((api.get(svc) as { spec: { traffic: unknown } }).spec.traffic).toEqual([
        { revisionName: 'echo-00001', percent: 80, tag: 'current' },
        { latestRevision: true, percent: 20, tag: 'candidate' },
      ]);
      api.setStatus(svc, {
        observedGeneration: 2,
        url: 'http://echo.ml.example.com',
        latestReadyRevisionName: 'echo-00002',
        conditions: [{ type: 'Ready', status: 'True' }],
        traffic: [
          { revisionName: 'echo-00001', percent: 80, tag: 'current', url: 'http://current-echo.ml.example.com' },
          { revisionName: 'echo-00002', percent: 20, tag: 'candidate', url: 'http://candidate-echo.ml.example.com', latestRevision: true },
        ],
      });
      const st = await kinfer(['status', 'echo', ...kube]);
      expect(st.code).toBe(0);
      expect(st.stdout).toContain('  traffic 80% → echo-00001 (tag current: http://current-echo.ml.example.com)\n  traffic 20% → echo-00002 (tag candidate: http://candidate-echo.ml.example.com)\n');
      expect((await kinfer(['deploy', 'echo', '--canary', '120', ...kube])).code).toBe(2);
    } finally {
      await api.close();
    }
  });
});

describe('cluster verbs against an API server that never answers', () => {
  it('status, list, deploy and logs fail (exit 1) after --timeout seconds, naming the server', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket); // accepted, never answered
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const server = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const kubeconfig = path.join(tmp, 'silent-kubeconfig');
    await writeKubeconfig(kubeconfig, server, 'ml');
    try {
      const kube = ['--kubeconfig', kubeconfig, '--timeout', '1'];
      const runs = await Promise.all([
        kinfer(['status', 'echo', ...kube], { timeoutMs: 15_000 }),
        kinfer(['list', '--json', ...kube], { timeoutMs: 15_000 }),
        kinfer(['deploy', 'echo', ...kube], { timeoutMs: 15_000 }),
        kinfer(['logs', 'echo', ...kube], { timeoutMs: 15_000 }),
      ]);
      for (const r of runs) {
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`Kubernetes API server ${server}: no answer within 1 s`);
      }
      expect(runs[0]!.stderr).toContain('(Knative Service ml/echo)');
      expect(JSON.parse(runs[1]!.stdout).error).toContain(`Kubernetes API server ${server}: no answer within 1 s (Knative Services in ml)`);
      const usage = await kinfer(['status', 'echo', '--kubeconfig', kubeconfig, '--timeout', '0']);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/'--timeout <seconds>' argument '0' is invalid/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('logs --follow (against the API server test double)', () => {
  it('streams each pod\'s lines with its name until Ctrl-C, then exits 0; pods coming and going go to stderr; --json is refused with it', async () => {
    const api = await startFakeKubeApi();
    try {
      api.put('/apis/serving.knative.dev/v1/namespaces/ml/services/echo', { kind: 'Service', metadata: { name: 'echo' }, status: { latestReadyRevisionName: 'echo-00001' } });
      api.put('/api/v1/namespaces/ml/pods/echo-00001-a', {
        kind: 'Pod',
        metadata: { name: 'echo-00001-a', labels: { 'serving.knative.dev/service': 'echo', 'serving.knative.dev/revision': 'echo-00001' } },
        status: { containerStatuses: [{ name: 'user-container', restartCount: 0, state: { running: {} } }] },
      });
      api.setPodLog('ml', 'echo-00001-a', 'user-container', 'first\n');
      const follow = startKinfer(['logs', 'echo', '-f', '-n', 'ml', '--kubeconfig', api.kubeconfigPath]);
      await until(() => api.followers('ml', 'echo-00001-a', 'user-container') > 0, 20_000, 10);
      api.appendPodLog('ml', 'echo-00001-a', 'user-container', 'second\n');
      await until(() => follow.out.stdout.includes('second'), 20_000, 10);
      follow.child.kill('SIGINT');
      const { code, stdout, stderr } = await follow.done;
      expect(code).toBe(0);
      expect(stdout).toBe('[echo-00001-a] first\n[echo-00001-a] second\n'); // only the log lines
      expect(stderr).toBe('kinfer logs: + echo-00001-a (echo-00001)\n');
      const json = await kinfer(['logs', 'echo', '-f', '--json', '-n', 'ml', '--kubeconfig', api.kubeconfigPath]);
      expect(json.code).toBe(2);
      expect(json.stderr).toMatch(/--follow prints lines as they come; it does not take --json/);
    } finally {
      await api.close();
    }
  });
});
