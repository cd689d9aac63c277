/**
 * The built `kinfer serve` as Kubernetes runs it: function mode pulls over
 * HTTP from a local fixture, stays unready until loaded, serves; a pull that
 * fails for good exits 1 with the reason; SIGTERM lets an in-flight request
 * finish, then exits 0; idle keep-alive connections stay open as long as
 * configured. Needs `dist/` (built by test/global-setup.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../helpers/loopback.js';
import * as grpc from '@grpc/grpc-js';
import { healthPackageDefinition } from '../../runtime/server/grpc-health.js';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../runtime/config.js';
import { startHttpFixture, makeTarGz, type HttpFixture } from '../helpers/http-fixture.js';
import { mlpReference, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, tempDir } from '../helpers/server.js';

const BIN = join(packageRoot(), 'dist', 'bundle', 'main.cjs');

interface Proc {
  child: ChildProcess;
  url: Promise<string>;
  exit: Promise<{ code: number | null; output: string }>;
  output(): string;
}

/** Spawns `kinfer serve` on a free port (or the env's, with `portFlag` false); `url` resolves from its "listening" log line. */
function serve(env: Record<string, string>, portFlag = true, args: string[] = []): Proc {
  const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', ...(portFlag ? ['--port', '0'] : []), ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let resolveUrl: (u: string) => void;
  const url = new Promise<string>((resolve) => (resolveUrl = resolve));
  const onData = (b: Buffer) => {
    output += b.toString();
    const m = /"event":"listening","url":"([^"]+)"/.exec(output);
    if (m) resolveUrl(m[1]!);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, output })),
  );
  return { child, url, exit, output: () => output };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('kinfer serve as a Knative function (spawned process)', () => {
  let http: HttpFixture;
  let work: { dir: string; cleanup: () => Promise<void> };
  let mlp: MlpModel;
  const procs: Proc[] = [];

  beforeAll(async () => {
    work = await tempDir();
    await mkdir(join(work.dir, 'src'), { recursive: true });
    mlp = await writeMlpModel(join(work.dir, 'src'));
    http = await startHttpFixture();
    const onnx = await readFile(mlp.path);
    http.files.set('/models/mlp.tar.gz', {
      body: makeTarGz([
        { name: '1/', type: 'dir' },
        { name: '1/model.onnx', body: onnx },
        { name: 'config.pbtxt', body: 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n' },
      ]),
    });
  });
  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await http.close();
    await work.cleanup();
  });

  it('pulls an archive over HTTP, is unready until loaded, then serves exact results', async () => {
    // Slow the download so readiness can be seen false while pulling.
    http.faults.set('/models/mlp.tar.gz', { chunkSize: 1024, chunkDelayMs: 10 });
    const p = serve({
      MODEL_NAME: 'mlp',
      STORAGE_URI: `${http.url}/models/mlp.tar.gz`,
      MODEL_REPOSITORY: join(work.dir, 'repo'),
    });
    procs.push(p);
    const url = await p.url;
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(503);
    await until('ready', async () => ((await fetch(`${url}/v2/health/ready`)).status === 200 ? true : undefined));
    const x = Float32Array.from([1, -2, 0.5, 4]);
    const res = await postJson(`${url}/v2/models/mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Array.from(x) }] });
    expect(res.status).toBe(200);
    const want = mlpReference(mlp, x);
    ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    p.child.kill('SIGTERM');
    const { code, output } = await p.exit;
    expect(code).toBe(0);
    // The bundle ran from the build's code cache, and imported tar (the archive) through the entry's import(), not the vm's experimental one.
    expect(output).toContain('"event":"code_cache","status":"used"');
    expect(output).not.toMatch(/ExperimentalWarning/);
  });

  it('exits 1 naming the reason when the artifact cannot be pulled', async () => {
    const p = serve({
      MODEL_NAME: 'gone',
      STORAGE_URI: `${http.url}/models/missing.onnx`,
      MODEL_REPOSITORY: join(work.dir, 'repo2'),
      KINFER_PULL_RETRIES: '0',
    });
    procs.push(p);
    const { code, output } = await p.exit;
    expect(code).toBe(1);
    expect(output).toMatch(/startup failed: .*(404|not found)/i);
  });

  it('exits 1 naming the reason when the model repository cannot be read (repository mode, as Triton)', async () => {
    const p = serve({ MODEL_REPOSITORY: join(work.dir, 'no-such-repository') });
    procs.push(p);
    const { code, output } = await p.exit;
    expect(code).toBe(1);
    expect(output).toMatch(/startup failed: .*no-such-repository/);
  });

  it('on SIGTERM finishes the in-flight request, then exits 0', async () => {
    const repo = join(work.dir, 'slowrepo');
    await mkdir(join(repo, 'ocr', '1'), { recursive: true });
    await writeFile(join(repo, 'ocr', 'config.pbtxt'), 'platform: "onnxruntime_onnx"\n');
    const { symlink } = await import('node:fs/promises');
    await symlink(join(packageRoot(), 'models', 'ocr-det', '1', 'model.onnx'), join(repo, 'ocr', '1', 'model.onnx'));
    const p = serve({ MODEL_REPOSITORY: repo });
    procs.push(p);
    const url = await p.url;
    await until('ready', async () => ((await fetch(`${url}/v2/health/ready`)).status === 200 ? true : undefined));
    const size = 640;
    const x = new Float32Array(3 * size * size).fill(0.25);
    const header = Buffer.from(
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, size, size], parameters: { binary_data_size: x.byteLength } }] }),
    );
    const inflight = fetch(`${url}/v2/models/ocr/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) },
      body: Buffer.concat([header, Buffer.from(x.buffer)]),
    });
    await until('request pending', async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return /kinfer_pending_requests\{[^}]*model="ocr"[^}]*\} [1-9]/.test(text) ? true : undefined;
    });
    p.child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { shape: number[] }[] };
    expect(body.outputs[0]!.shape).toEqual([1, 1, size, size]);
    const { code, output } = await p.exit;
    expect(code).toBe(0);
    expect(output).toMatch(/"event":"shutdown"/);
    expect(output).toMatch(/"event":"stopped"/);
  });

  it('keeps idle keep-alive connections open for KINFER_KEEP_ALIVE_TIMEOUT_MS (default 120 s, past the queue-proxy 90 s)', async () => {
    const { Agent, get } = await import('node:http');
    const empty = join(work.dir, 'empty');
    await mkdir(empty, { recursive: true });
    // One keep-alive connection per server; `reusedSocket` says whether the second request found it open.
    const twoRequests = async (url: string, idleMs: number) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const once = () =>
        new Promise<{ keepAlive?: string; reused: boolean }>((resolve, reject) => {
          const req = get(`${url}/v2/health/live`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ keepAlive: res.headers['keep-alive'] as string | undefined, reused: req.reusedSocket }));
          });
          req.on('error', reject);
        });
      try {
        const first = await once();
        await new Promise((r) => setTimeout(r, idleMs));
        return { first, second: await once() };
      } finally {
        agent.destroy();
      }
    };
    const dflt = serve({ MODEL_REPOSITORY: empty });
    const short = serve({ MODEL_REPOSITORY: empty, KINFER_KEEP_ALIVE_TIMEOUT_MS: '1000' });
    procs.push(dflt, short);
    const [a, b] = await Promise.all([twoRequests(await dflt.url, 1600), twoRequests(await short.url, 1600)]);
    expect(a.first.keepAlive).toBe('timeout=120');
    expect(a.second.reused).toBe(true); // idle 1.6 s, longer than Node's old default would allow at 1 s
    expect(b.first.keepAlive).toBe('timeout=1');
    expect(b.second.reused).toBe(false); // the server closed it after 1 s idle
    dflt.child.kill('SIGTERM');
    short.child.kill('SIGTERM');
    expect((await dflt.exit).code).toBe(0);
    expect((await short.exit).code).toBe(0);
  });

  it('grpc-v2 function env: gRPC takes PORT (Knative\'s h2c port), REST moves to KINFER_REST_PORT, the gRPC health check says SERVING', async () => {
    const [grpcPort, restPort] = [await freePort(), await freePort()];
    const repo = join(work.dir, 'grpc-repo');
    await mkdir(join(repo, 'echo'), { recursive: true });
    await writeFile(join(repo, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    const p = serve({ MODEL_REPOSITORY: repo, PORT: String(grpcPort), GRPC_PORT: String(grpcPort), KINFER_REST_PORT: String(restPort) }, false);
    procs.push(p);
    expect(await p.url).toBe(`http://127.0.0.1:${restPort}`);
    await until('REST ready', async () => ((await fetch(`http://127.0.0.1:${restPort}/v2/health/ready`)).ok ? true : undefined));
    expect(await healthStatus(grpcPort, grpc.credentials.createInsecure(), 'readiness')).toBe('SERVING');
    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);

    // The same port for both is refused at start, naming the fix.
    const clash = serve({ MODEL_REPOSITORY: repo, PORT: String(grpcPort), GRPC_PORT: String(grpcPort) }, false);
    procs.push(clash);
    const { code, output } = await clash.exit;
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`REST and gRPC are both on port ${grpcPort}.*KINFER_REST_PORT`));
  });

  it("takes Triton's --model-control-mode explicit with --load-model, and exits 1 on flags that contradict it", async () => {
    const repo = join(work.dir, 'control-repo');
    for (const m of ['a', 'b']) {
      await mkdir(join(repo, m), { recursive: true });
      await writeFile(join(repo, m, 'config.pbtxt'), 'platform: "echo"\n');
    }
    const p = serve({ MODEL_REPOSITORY: repo }, true, ['--model-control-mode', 'explicit', '--load-model', 'b']);
    procs.push(p);
    const url = await p.url;
    await until('ready', async () => ((await fetch(`${url}/v2/health/ready`)).ok ? true : undefined));
    expect(((await (await fetch(`${url}/v2/models`)).json()) as { models: string[] }).models).toEqual(['b']);
    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);
    const bad = serve({ MODEL_REPOSITORY: repo }, true, ['--load-model', 'b']);
    procs.push(bad);
    const { code, output } = await bad.exit;
    expect(code).toBe(1);
    expect(output).toMatch(/--load-model needs --model-control-mode explicit/);
    const wrong = serve({ MODEL_REPOSITORY: repo }, true, ['--model-control-mode', 'sometimes']);
    procs.push(wrong);
    const refused = await wrong.exit;
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/invalid --model-control-mode 'sometimes': expected none, poll or explicit/);
  });

  it('serves gRPC over TLS from KINFER_GRPC_TLS_CERT and _KEY, and exits 1 on a certificate without its key', async () => {
    const grpcPort = await freePort();
    const tls = join(packageRoot(), 'test', 'helpers', 'tls');
    const repo = join(work.dir, 'tls-repo');
    await mkdir(repo, { recursive: true });
    const p = serve({ MODEL_REPOSITORY: repo, GRPC_PORT: String(grpcPort), KINFER_GRPC_TLS_CERT: join(tls, 'cert.pem'), KINFER_GRPC_TLS_KEY: join(tls, 'key.pem') });
    procs.push(p);
    const url = await p.url;
    await until('ready', async () => ((await fetch(`${url}/v2/health/ready`)).ok ? true : undefined));
    expect(await healthStatus(grpcPort, grpc.credentials.createSsl(await readFile(join(tls, 'cert.pem'))), '')).toBe('SERVING');
    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);

    const half = serve({ MODEL_REPOSITORY: repo, GRPC_PORT: String(grpcPort), KINFER_GRPC_TLS_CERT: join(tls, 'cert.pem') });
    procs.push(half);
    const { code, output } = await half.exit;
    expect(code).toBe(1);
    expect(output).toMatch(/gRPC TLS needs both a certificate and its key/);
  });
});

/** grpc.health.v1 Check of `service` on 127.0.0.1:port. */
async function healthStatus(port: number, credentials: grpc.ChannelCredentials, service: string): Promise<string> {
  const pkg = grpc.loadPackageDefinition(healthPackageDefinition()) as any;
  const client = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, credentials);
  try {
    return await new Promise<string>((resolve, reject) =>
      client.Check({ service }, { deadline: Date.now() + 10_000 }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
    );
  } finally {
    client.close();
  }
}

