/**
 * Function mode end to end for every storage scheme: MODEL_NAME + STORAGE_URI
 * → pull → load → ready → infer with exact numbers, against real servers on
 * 127.0.0.1 (HTTP fixture, moto_server for S3, the GCS JSON-API fixture).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { storagePuller } from '../../runtime/storage/puller.js';
import { startGcsFixture, type GcsFixture } from '../helpers/gcs-fixture.js';
import { makeTarGz, startHttpFixture, type HttpFixture } from '../helpers/http-fixture.js';
import { motoAvailable, startMoto, type Moto } from '../helpers/moto.js';
import { mlpReference, writeMlpModel, type MlpModel } from '../helpers/onnx-models.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';

let work: { dir: string; cleanup: () => Promise<void> };
let mlp: MlpModel;
let onnx: Buffer;
const CONFIG = 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n';

beforeAll(async () => {
  work = await tempDir();
  await mkdir(join(work.dir, 'src', 'mlp', '1'), { recursive: true });
  mlp = await writeMlpModel(join(work.dir, 'src', 'mlp', '1'));
  onnx = await readFile(mlp.path);
});
afterAll(() => work.cleanup());

/** Starts function mode for `uri`, waits for ready, checks an exact infer, stops. */
async function serveAndInfer(name: string, uri: string, env: NodeJS.ProcessEnv): Promise<void> {
  const logger = pino({ level: 'silent' });
  let server: RunningServer | undefined;
  try {
    server = await startTestServer({
      mode: 'function',
      modelName: name,
      storageUri: uri,
      modelRepository: join(work.dir, `repo-${name}`),
      pull: storagePuller({ logger, env }),
    });
    expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
    const x = Float32Array.from([0.5, 1.5, -2, 3]);
    const res = await postJson(`${server.url}/v2/models/${name}/infer`, {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Array.from(x) }],
    });
    expect(res.status).toBe(200);
    const want = mlpReference(mlp, x);
    ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  } finally {
    await server?.close();
  }
}

describe('function mode per storage scheme', () => {
  it('file:// and a plain path', async () => {
    await serveAndInfer('mlp-file', `file://${join(work.dir, 'src', 'mlp')}`, {});
    await serveAndInfer('mlp-path', join(work.dir, 'src', 'mlp'), {});
  });

  it('pvc://<claim>/<path> under KINFER_PVC_ROOT', async () => {
    await serveAndInfer('mlp-pvc', 'pvc://models-claim/mlp', { KINFER_PVC_ROOT: join(work.dir, 'src') });
  });

  describe('http://', () => {
    let http: HttpFixture;
    beforeAll(async () => {
      http = await startHttpFixture();
      http.files.set('/mlp.onnx', { body: onnx });
      http.files.set('/mlp.tgz', { body: makeTarGz([{ name: 'config.pbtxt', body: CONFIG }, { name: '1/', type: 'dir' }, { name: '1/model.onnx', body: onnx }]) });
    });
    afterAll(() => http.close());
    it('a single model file, and a .tgz archive', async () => {
      await serveAndInfer('mlp-http', `${http.url}/mlp.onnx`, {});
      await serveAndInfer('mlp-tgz', `${http.url}/mlp.tgz`, {});
    });
  });

  describe.skipIf(!motoAvailable())('s3:// (moto_server)', () => {
    let moto: Moto;
    beforeAll(async () => {
      moto = await startMoto();
      const admin = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'a' } });
      await admin.send(new CreateBucketCommand({ Bucket: 'models' }));
      await admin.send(new PutObjectCommand({ Bucket: 'models', Key: 'mlp/config.pbtxt', Body: CONFIG }));
      await admin.send(new PutObjectCommand({ Bucket: 'models', Key: 'mlp/1/model.onnx', Body: onnx }));
      admin.destroy();
    }, 60_000);
    afterAll(() => moto?.stop());
    it('a prefix with a version folder and a config', async () => {
      await serveAndInfer('mlp-s3', 's3://models/mlp', {
        AWS_ACCESS_KEY_ID: 'AKIAKINFERTEST00001',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_DEFAULT_REGION: 'us-east-1',
      });
    });
  });

  describe('gs:// (JSON API fixture)', () => {
    let gcs: GcsFixture;
    beforeAll(async () => {
      gcs = await startGcsFixture();
      gcs.put('models', 'mlp/config.pbtxt', CONFIG);
      gcs.put('models', 'mlp/1/model.onnx', onnx);
    });
    afterAll(() => gcs.close());
    it('a prefix, anonymous, through STORAGE_EMULATOR_HOST', async () => {
      await serveAndInfer('mlp-gs', 'gs://models/mlp', { STORAGE_EMULATOR_HOST: gcs.url });
    });
  });
});
