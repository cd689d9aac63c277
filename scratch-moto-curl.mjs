import { S3Client, CreateBucketCommand, PutObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { startMoto } from './dist/test/helpers/moto.js';
import { floats, run } from './dist/test/bench/lib.js';
const moto = await startMoto();
const client = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
await client.send(new CreateBucketCommand({ Bucket: 'bench-models' }));
const buf = Buffer.alloc(200 << 20);
for (let i = 0; i < 200; i++) Buffer.from(floats(2 ** 18, i + 1).buffer).copy(buf, i << 20);
await client.send(new PutObjectCommand({ Bucket: 'bench-models', Key: 'm/model.bin', Body: buf }));
const head = await client.send(new HeadObjectCommand({ Bucket: 'bench-models', Key: 'm/model.bin' }));
console.log('etag', head.ETag);
const variants = { list: ['--get', '--data-urlencode', 'list-type=2', '--data-urlencode', 'prefix=m/model.bin'],  plain: [], ifmatch: ['-H', `If-Match: ${head.ETag}`], checksum: ['-H', 'x-amz-checksum-mode: ENABLED'], both: ['-H', `If-Match: ${head.ETag}`, '-H', 'x-amz-checksum-mode: ENABLED'] };
for (let r = 0; r < 2; r++) for (const [k, extra] of Object.entries(variants)) {
  const c = await run('curl', ['-sS', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', 'test:test', ...extra, '-o', '/dev/null', '-w', '%{time_starttransfer} %{time_total} %{size_download} %{http_code}', k === 'list' ? `${moto.endpoint}/bench-models` : `${moto.endpoint}/bench-models/m/model.bin`], { cpu: 1, timeoutMs: 120000 });
  console.log(k.padEnd(9), c.stdout);
}
await moto.stop();
