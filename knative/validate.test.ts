import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { repoRoot, defaultSpecsDir, specsAvailable } from './specs.js';
import { createValidator, structural, validateManifests, type Validator } from './validate.js';
import { defineFunction, isoDurationMs } from '../functions/define.js';
import { inferenceService } from './resources/inference-service.js';
import { knativeService } from './resources/service.js';
import { triggers } from './resources/trigger.js';

const specsDir = defaultSpecsDir();
const haveSpecs = specsAvailable(specsDir);
if (!haveSpecs) console.warn(`knative/validate.test.ts: CRD specs not found at ${specsDir} (../shared/specs): schema tests skipped`);

describe('structural()', () => {
  it('adds additionalProperties:false where the API server prunes, not under preserve-unknown-fields', () => {
    const s = structural({
      type: 'object',
      properties: {
        spec: { type: 'object', properties: { a: { type: 'string' }, free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { b: { type: 'string' } } } } },
        port: { 'x-kubernetes-int-or-string': true },
        items: { type: 'array', items: { type: 'object', properties: { c: { type: 'integer' } } } },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
      },
    }) as any;
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.spec.additionalProperties).toBe(false);
    expect(s.properties.spec.properties.free.additionalProperties).toBeUndefined();
    expect(s.properties.items.items.additionalProperties).toBe(false);
    expect(s.properties.labels.additionalProperties).toEqual({ type: 'string' });
    expect(s.properties.port.anyOf).toEqual([{ type: 'integer' }, { type: 'string' }]);
    expect(Object.keys(s.properties)).toEqual(expect.arrayContaining(['apiVersion', 'kind', 'metadata']));
  });
});

describe.skipIf(!haveSpecs)('CRD schema validation (../shared/specs)', () => {
  let v: Validator;
  const committed = (p: string) => parse(readFileSync(join(repoRoot(), 'manifests', p), 'utf8')) as any;
  beforeAll(async () => {
    v = await createValidator(specsDir);
  });

  it('every committed manifest validates with unknown fields rejected', async () => {
    const r = await validateManifests(join(repoRoot(), 'manifests'), { specsDir });
    expect(r.errors).toEqual([]);
    expect(r.documents).toBeGreaterThanOrEqual(13);
  });

  it("a Trigger's delivery spec (retries, backoff, timeout, a dead-letter sink function or URI) validates", () => {
    const fn = defineFunction({
      name: 'events',
      model: { name: 'echo', storageUri: 'pvc://models/echo', platform: 'echo' },
      triggers: [
        { name: 'a', filters: { type: 't' }, delivery: { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S', deadLetterSink: { function: 'event-display' } } },
        { name: 'b', delivery: { timeout: 'PT30S', deadLetterSink: { uri: 'http://dead.example.com/letters' } } },
      ],
    });
    expect(() => defineFunction({ name: 'events', model: { name: 'echo', storageUri: 'pvc://m/e', platform: 'echo' }, triggers: [{ name: 'c', delivery: { timeout: 'PT0S' } }] })).toThrow(/delivery\.timeout: must be at least a millisecond/);
    expect(() => defineFunction({ name: 'events', model: { name: 'echo', storageUri: 'pvc://m/e', platform: 'echo' }, triggers: [{ name: 'c', delivery: { timeout: 'PT600H' } }] })).toThrow(/delivery\.timeout: must be at most 596 hours/);
    // A fraction of a millisecond is rounded: timers take whole milliseconds (PT1.001S was 1000.999…, which AbortSignal.timeout refuses).
    expect(isoDurationMs('PT1.001S')).toBe(1001);
    const docs = triggers(fn.spec);
    for (const d of docs) expect(v.validate(d)).toEqual([]);
    expect(docs[0]!.spec).toMatchObject({ delivery: { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S', deadLetterSink: { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'event-display' } } } });
    expect(docs[1]!.spec).toMatchObject({ delivery: { timeout: 'PT30S', deadLetterSink: { uri: 'http://dead.example.com/letters' } } });
    // A type the CRD refuses is caught: retry is an integer.
    expect(v.validate({ ...docs[0]!, spec: { ...(docs[0]!.spec as object), delivery: { retry: 'five' } } }).join('\n')).toMatch(/retry/);
  });

  it("a Trigger's SubscriptionsAPI filters (where → spec.filters), every dialect nested, validate", () => {
    const fn = defineFunction({
      name: 'events',
      model: { name: 'echo', storageUri: 'pvc://models/echo', platform: 'echo' },
      triggers: [
        {
          name: 'sql',
          where: [
            { exact: { type: 'io.kinfer.inference.request' } },
            { all: [{ prefix: { source: '/cameras/' } }, { suffix: { subject: '.jpg' } }] },
            { any: [{ not: { exact: { priority: 'low' } } }, { cesql: "EXISTS urgent AND BOOL(urgent)" }] },
            { cesql: "type LIKE 'io.kinfer.%' AND source NOT IN ('/test', '/replay')" },
          ],
        },
      ],
    });
    const [doc] = triggers(fn.spec);
    expect(v.validate(doc!)).toEqual([]);
    expect((doc!.spec as { filters: unknown[] }).filters).toHaveLength(4);
    // A type the CRD refuses is caught: cesql is a string.
    expect(v.validate({ ...doc!, spec: { ...(doc!.spec as object), filters: [{ cesql: 1 }] } }).join('\n')).toMatch(/cesql/);
  });

  it('a grpc-v2 function\'s Knative Service and InferenceService validate (h2c port, grpc probes)', () => {
    const fn = defineFunction({ name: 'grpc-echo', protocol: 'grpc-v2', model: { name: 'echo', storageUri: 'pvc://models/echo', platform: 'echo' } });
    expect(v.validate(knativeService(fn.spec))).toEqual([]);
    expect(v.validate(inferenceService(fn.spec))).toEqual([]);
  });

  it("payload logging validates as the Service's env and as the InferenceService's predictor.logger (not both: KServe's agent logs there)", () => {
    for (const model of [{ name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' as const }, { name: 'm', storageUri: 's3://models/m', platform: 'onnx' as const }]) {
      const fn = defineFunction({ name: 'logged', model, payloadLogging: { url: 'http://broker-ingress.knative-eventing.svc.cluster.local/ml/logs', mode: 'all', metadataHeaders: ['X-User'] } });
      const svc = knativeService(fn.spec) as any;
      const isvc = inferenceService(fn.spec) as any;
      expect(v.validate(svc)).toEqual([]);
      expect(v.validate(isvc)).toEqual([]);
      expect(svc.spec.template.spec.containers[0].env.filter((e: { name: string }) => e.name.startsWith('KINFER_PAYLOAD_LOG'))).toEqual([
        { name: 'KINFER_PAYLOAD_LOG_URL', value: 'http://broker-ingress.knative-eventing.svc.cluster.local/ml/logs' },
        { name: 'KINFER_PAYLOAD_LOG_MODE', value: 'all' },
        { name: 'KINFER_PAYLOAD_LOG_METADATA_HEADERS', value: 'X-User' },
      ]);
      expect(isvc.spec.predictor.logger).toEqual({ url: 'http://broker-ingress.knative-eventing.svc.cluster.local/ml/logs', mode: 'all', metadataHeaders: ['X-User'] });
      expect(isvc.spec.predictor.containers[0].env.some((e: { name: string }) => e.name.startsWith('KINFER_PAYLOAD_LOG'))).toBe(false);
    }
    expect(() => defineFunction({ name: 'logged', model: { name: 'm', storageUri: 'pvc://m/m', platform: 'onnx' }, payloadLogging: { url: 'ftp://x/y' } })).toThrow(/payloadLogging\.url: must be an http or https URL/);
    expect(() => defineFunction({ name: 'logged', model: { name: 'm', storageUri: 'pvc://m/m', platform: 'onnx' }, env: { KINFER_PAYLOAD_LOG_URL: 'http://x' } })).toThrow(/KINFER_PAYLOAD_LOG_URL is set by the generator/);
  });

  it('env from Secrets and ConfigMaps, envFrom and serviceAccountName validate in the Knative Service and the InferenceService', () => {
    const fn = defineFunction({
      name: 'private-model',
      model: { name: 'resnet', storageUri: 's3://models/resnet', platform: 'onnx' },
      serviceAccountName: 'models-reader',
      env: { AWS_ACCESS_KEY_ID: { secretKeyRef: { name: 's3-creds', key: 'access-key' } }, S3_ENDPOINT: { configMapKeyRef: { name: 'storage', key: 'endpoint', optional: true } } },
      envFrom: [{ secretRef: { name: 'extra-creds' } }, { configMapRef: { name: 'settings', optional: true } }],
    });
    expect(v.validate(knativeService(fn.spec))).toEqual([]);
    expect(v.validate(inferenceService(fn.spec))).toEqual([]);
  });

  it('rejects an unknown field in a Knative Service container, naming it', () => {
    const svc = committed('echo/service.yaml');
    svc.spec.template.spec.containers[0].imagee = 'x';
    expect(v.validate(svc)).toEqual(['/spec/template/spec/containers/0: unknown field "imagee"']);
  });

  it('rejects wrong types: containerConcurrency "four", a numeric annotation, minReplicas "one"', () => {
    const svc = committed('echo/service.yaml');
    svc.spec.template.spec.containerConcurrency = 'four';
    svc.spec.template.metadata.annotations['autoscaling.knative.dev/target'] = 4;
    const errs = v.validate(svc);
    expect(errs).toContain('/spec/template/spec/containerConcurrency: must be integer');
    expect(errs.some((e) => e.startsWith('/spec/template/metadata/annotations/autoscaling.knative.dev~1target'))).toBe(true);
    const isvc = committed('xmodel-resnet/kserve/inference-service.yaml');
    isvc.spec.predictor.minReplicas = 'one';
    isvc.spec.predictor.minReplica = 1;
    expect(v.validate(isvc)).toEqual(['/spec/predictor: unknown field "minReplica"', '/spec/predictor/minReplicas: must be integer']);
  });

  it('rejects a TrainedModel without memory, an unknown kind, and unknown metadata fields', () => {
    const tm = committed('ocr-det/kserve/trained-model.yaml');
    delete tm.spec.model.memory;
    expect(v.validate(tm)).toEqual(["/spec/model: must have required property 'memory'"]);
    expect(v.validate({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } })[0]).toMatch(/^no CRD schema for v1 ConfigMap/);
    const csr = committed('cluster-serving-runtime.yaml');
    csr.metadata.nmae = 'x';
    expect(v.validate(csr)).toEqual(['/metadata: unknown field "nmae"']);
  });

  it('int-or-string quantities accept "1" and 1 but not "one"', () => {
    const svc = committed('xmodel-resnet/service.yaml');
    const limits = svc.spec.template.spec.containers[0].resources.limits;
    limits.cpu = 4;
    expect(v.validate(svc)).toEqual([]);
    limits.cpu = 'one';
    expect(v.validate(svc).length).toBeGreaterThan(0);
  });
});
