// S3 pull (kinfer) vs curl from moto_server, 200 MiB
import { S3Client, CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoto } from './dist/test/helpers/moto.js';
import { floats, run, runScript, median } from './dist/test/bench/lib.js';
const moto = await startMoto();
const mb = Number(process.env.MB ?? 200);
const env = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_ENDPOINT_URL: moto.endpoint, AWS_DEFAULT_REGION: 'us-east-1' };
const client = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
await client.send(new CreateBucketCommand({ Bucket: 'bench-models' }));
const buf = Buffer.alloc(mb << 20);
for (let i = 0; i < mb; i++) Buffer.from(floats(2 ** 18, i + 1).buffer).copy(buf, i << 20);
await client.send(new PutObjectCommand({ Bucket: 'bench-models', Key: 'm/model.bin', Body: buf }));
console.log('uploaded');
const dir = await mkdtemp(join(tmpdir(), 'exp-s3-'));
const pulls = [], curls = [];
for (let i = 0; i < Number(process.env.RUNS ?? 4); i++) {
  const dest = join(dir, `p${i}`);
  const p0 = await run(process.execPath, [...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/exp/s3prof'] : []), 'scratch-pullmem.mjs', 's3://bench-models/m/model.bin', dest + 'x'], { cpu: 1, timeoutMs: 120000, env: { ...process.env, KINFER_PULL_ENV: JSON.stringify(env) } }); console.log('mem', p0.stdout.trim(), p0.stderr.slice(-300));
  const p = await runScript('pull-child.js', ['s3://bench-models/m/model.bin', dest], { cpu: 1, timeoutMs: 120000, env: { ...process.env, ...env, KINFER_PULL_ENV: JSON.stringify(env) } });
  pulls.push(p.ms);
  await rm(dest, { recursive: true, force: true });
  const out = join(dir, `c${i}`);
  const c = await run('curl', ['-sS', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', 'test:test', '-o', out, '-w', '%{time_total} %{size_download} %{http_code}', `${moto.endpoint}/bench-models/m/model.bin`], { cpu: 1, timeoutMs: 120000 });
  const [secs, bytes] = c.stdout.trim().split(' ').map(Number);
  curls.push(secs * 1000);
  await rm(out, { force: true });
  console.log(`pull ${p.ms.toFixed(0)} ms (rss ${p.maxRssMB.toFixed(0)} MB, ${p.bytes} bytes), curl ${(secs * 1000).toFixed(0)} ms (${bytes} bytes)`);
}
console.log(`median pull ${median(pulls).toFixed(0)} ms, curl ${median(curls).toFixed(0)} ms, ratio ${(median(curls) / median(pulls)).toFixed(2)}x`);
await rm(dir, { recursive: true, force: true });
await moto.stop();
