import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../runtime/core/errors.js';
import { defineFunction, isoDurationMs, MAX_WHERE_DEPTH, quantityValue, scalingTarget, type WhereFilter } from './define.js';
import echo from './echo/index.js';
import multiModel from './multi-model/index.js';
import ocrDet from './ocr-det/index.js';
import { join } from 'node:path';
import { modelConfigJson, serverEnv } from '../knative/resources/common.js';
import { defaultModelRepository } from '../runtime/config.js';
import { parseModelConfig, readModelConfig } from '../runtime/repository/config-files.js';
import type { ModelConfig } from '../runtime/repository/model-config.js';
import xmodelResnet from './xmodel-resnet/index.js';

const base = { name: 'f', model: { name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' as const } };

describe('defineFunction', () => {
  it('takes requests up to their limits in any units, and reads quantities as Kubernetes does', () => {
    const f = defineFunction({ ...base, resources: { requests: { cpu: '500m', memory: '1000Mi' }, limits: { cpu: '0.5', memory: '1Gi' } } });
    expect(f.spec.resources.requests).toEqual({ cpu: '500m', memory: '1000Mi' });
    expect([quantityValue('500m'), quantityValue('1Gi'), quantityValue('+2k'), quantityValue('1e3'), quantityValue('.5'), quantityValue('3')]).toEqual([0.5, 2 ** 30, 2000, 1000, 0.5, 3]);
    expect([quantityValue('2E'), quantityValue('2Ei'), quantityValue('2e-3')]).toEqual([2e18, 2 * 2 ** 60, 0.002]);
    expect(() => defineFunction({ ...base, resources: { requests: { memory: '2Ei' }, limits: { memory: '1Gi' } } })).toThrow('must not exceed limits.memory (1Gi)');
  });

  it('fills defaults: concurrency metric, scale 0..10, initial 1, no hard limit, 300 s timeout', () => {
    const f = defineFunction(base);
    expect(f.spec.scaling).toEqual({ metric: 'concurrency', containerConcurrency: 0, minScale: 0, maxScale: 10, initialScale: 1, scaleDownDelay: '0s', timeoutSeconds: 300, startupSeconds: 600 });
    expect(f.spec.backend).toEqual({ instances: 1, options: {} });
    expect(f.spec.resources).toEqual({ requests: {}, limits: {}, accelerators: {} });
    expect(f.spec.model?.memory).toBe('1Gi');
    expect(scalingTarget(f.spec)).toBe(1);
  });

  it('takes scale-down delays Knative accepts: up to 1h in whole seconds, in any unit mix', () => {
    for (const d of ['0s', '2000ms', '1m30s', '59m60s', '1h'])
      expect(defineFunction({ ...base, scaling: { scaleDownDelay: d } }).spec.scaling.scaleDownDelay, d).toBe(d);
  });

  it('derives the target from batch size × instances, or takes it as given', () => {
    expect(scalingTarget(defineFunction({ ...base, batching: { maxBatchSize: 8 }, backend: { instances: 2 } }).spec)).toBe(16);
    expect(scalingTarget(defineFunction({ ...base, scaling: { target: 3 } }).spec)).toBe(3);
    expect(scalingTarget(defineFunction({ ...base, scaling: { metric: 'rps' } }).spec)).toBe(100);
  });

  it.each([
    [{ ...base, model: { ...base.model, storageUri: undefined } }, 'model.storageUri: required unless multiModel is true'],
    [{ name: 'f' }, 'model: required unless multiModel is true'],
    [{ ...base, multiModel: true }, 'a multi-model function starts empty'],
    [{ ...base, name: 'Bad_Name' }, 'name: must be a DNS-1035 label'],
    [{ ...base, env: { PORT: '1' } }, 'env.PORT: PORT is set by the generator or by Knative'],
    [{ ...base, scaling: { minScale: 5, maxScale: 2 } }, 'minScale must not exceed maxScale'],
    [{ ...base, scaling: { scaleDownDelay: '5 minutes' } }, 'scaling.scaleDownDelay: must be a duration'],
    [{ ...base, scaling: { scaleDownDelay: '1h1s' } }, 'scaling.scaleDownDelay: must be at most 1h'],
    [{ ...base, scaling: { scaleDownDelay: '1500ms' } }, 'scaling.scaleDownDelay: must be whole seconds'],
    [{ ...base, scaling: { metric: 'cpu' } }, 'scaling.metric'],
    [{ ...base, resources: { accelerators: { fpga: 1 } } }, 'must be <domain>/<name>'],
    [{ ...base, resources: { limits: { memory: 'lots' } } }, 'resources.limits.memory: must be a Kubernetes quantity'],
    [{ ...base, resources: { requests: { memory: '-1Gi' } } }, 'resources.requests.memory: must be a Kubernetes quantity of at least 0'],
    [{ ...base, resources: { requests: { memory: '4Gi' }, limits: { memory: '1Gi' } } }, 'resources.requests.memory: must not exceed limits.memory (1Gi)'],
    [{ ...base, resources: { requests: { cpu: '1500m' }, limits: { cpu: '1' } } }, 'resources.requests.cpu: must not exceed limits.cpu (1)'],
    [{ ...base, model: { ...base.model, memory: '-5' } }, 'model.memory: must be a Kubernetes quantity of at least 0'],
    [{ ...base, batching: { maxBatchSize: 2, preferredBatchSizes: [4] } }, 'preferredBatchSizes must not exceed maxBatchSize'],
    [{ ...base, triggers: [{ name: 'a' }, { name: 'a' }] }, 'duplicate trigger name a'],
    [{ ...base, triggers: [{ name: 'a', delivery: { backoffDelay: '1s' } }] }, 'must be an ISO 8601 duration such as PT0.2S, PT1S or PT1M'],
    [{ ...base, triggers: [{ name: 'a', delivery: { backoffDelay: 'PT' } }] }, 'must be an ISO 8601 duration'],
    [{ ...base, triggers: [{ name: 'a', delivery: { retry: -1 } }] }, 'triggers.0.delivery.retry'],
    [{ ...base, triggers: [{ name: 'a', delivery: { deadLetterSink: { function: 'Bad_Name' } } }] }, 'triggers.0.delivery.deadLetterSink'],
    [{ ...base, triggers: [{ name: 'a', delivery: { deadLetterSink: { uri: 'not a url' } } }] }, 'triggers.0.delivery.deadLetterSink'],
    [{ ...base, triggers: [{ name: 'a', where: [{ exact: { type: 't' }, prefix: { source: '/s' } }] }] }, 'triggers.0.where.0: one dialect per filter, not exact and prefix'],
    [{ ...base, triggers: [{ name: 'a', where: [{ exact: { type: 't', source: '/s' } }] }] }, 'triggers.0.where.0.exact: one attribute per exact filter, not 2'],
    [{ ...base, triggers: [{ name: 'a', where: [{ suffix: { Type: 't' } }] }] }, 'triggers.0.where.0.suffix.Type: must be a CloudEvents attribute name'],
    [{ ...base, triggers: [{ name: 'a', where: [{ prefix: { type: '' } }] }] }, 'triggers.0.where.0.prefix.type: must be a non-empty string'],
    [{ ...base, triggers: [{ name: 'a', where: [{ regex: { type: 't.*' } }] }] }, 'triggers.0.where.0: unknown dialect regex'],
    [{ ...base, triggers: [{ name: 'a', where: [{ all: [] }] }] }, 'triggers.0.where.0.all: expected a non-empty list of filters'],
    [{ ...base, triggers: [{ name: 'a', where: [] }] }, 'triggers.0.where: give at least one filter'],
    [{ ...base, triggers: [{ name: 'a', where: [{ not: { any: [{ exact: { type: 't' } }, { cesql: "type = 'a' AND" }] } }] }] }, 'triggers.0.where.0.not.any.1.cesql: CESQL "type = \'a\' AND": at position 15 (the end): expected a value'],
    [{ ...base, triggers: [{ name: 'a', where: [{ cesql: 'subject' }] }] }, 'triggers.0.where.0.cesql: CESQL "subject": evaluates to a String, not a Boolean'],
    [{ ...base, triggers: [{ name: 'a', filters: { type: 't' }, where: [{ exact: { source: '/s' } }] }] }, 'triggers.0.where: give filters or where, not both'],
    [{ ...base, replicas: 3 }, 'Unrecognized key'],
  ])('rejects %j with InvalidArgument naming the field', (input, message) => {
    let err: unknown;
    try {
      defineFunction(input as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgument);
    expect((err as Error).message).toContain(message);
  });

  it("keeps a trigger's where as written, and bounds its nesting", () => {
    const where = [{ prefix: { type: 'io.kinfer.' } }, { not: { any: [{ suffix: { source: '/test' } }, { cesql: "subject IN ('a', 'b')" }] } }];
    expect(defineFunction({ ...base, triggers: [{ name: 'a', where }] }).spec.triggers[0]!.where).toEqual(where);
    let deep: WhereFilter = { exact: { type: 't' } };
    for (let i = 0; i < MAX_WHERE_DEPTH; i++) deep = { not: deep };
    expect(() => defineFunction({ ...base, triggers: [{ name: 'a', where: [deep] }] })).not.toThrow();
    expect(() => defineFunction({ ...base, triggers: [{ name: 'a', where: [{ not: deep }] }] })).toThrow(/nested deeper than 16/);
  });

  it("reads a delivery's backoffDelay as Knative does (ISO 8601)", () => {
    expect(['PT0.2S', 'PT1S', 'PT1M30S', 'PT1H', 'PT2M'].map(isoDurationMs)).toEqual([200, 1000, 90_000, 3_600_000, 120_000]);
    expect(() => isoDurationMs('1s')).toThrow(InvalidArgument);
  });

  it('the ocr-det function batches its model as models/ocr-det/config.pbtxt does (what `npm start` serves)', async () => {
    const fromFunction = parseModelConfig(modelConfigJson(ocrDet.spec)!, 'config.json', 'ocr-det');
    const fromRepository = await readModelConfig(join(defaultModelRepository(), 'ocr-det'), 'ocr-det');
    const batching = (c: ModelConfig | undefined) => ({ max: c?.maxBatchSize, dynamic: c?.dynamicBatching, policy: c?.parameters.batch_policy });
    expect(batching(fromFunction)).toEqual(batching(fromRepository));
    expect(batching(fromRepository)).toMatchObject({ max: 8, policy: 'adaptive' });
  });

  it('responseCache sizes the server\'s cache and enables it in the model\'s config, which the server reads back', () => {
    const fn = defineFunction({ name: 'cached', model: { name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' }, responseCache: { bytes: 64 * 1024 * 1024 } });
    const env = Object.fromEntries(serverEnv(fn.spec).map((e) => [e.name, 'value' in e ? e.value : undefined]));
    expect(env.KINFER_RESPONSE_CACHE_BYTES).toBe(String(64 * 1024 * 1024));
    expect(parseModelConfig(env.KINFER_MODEL_CONFIG!, 'config.json', 'm').responseCache).toBe(true);
    expect(serverEnv(ocrDet.spec).some((e) => e.name === 'KINFER_RESPONSE_CACHE_BYTES')).toBe(false);
    expect(() => defineFunction({ name: 'c', model: { name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' }, responseCache: { bytes: 10 } })).toThrow(/responseCache\.bytes/);
    expect(() => defineFunction({ name: 'c', model: { name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' }, env: { KINFER_RESPONSE_CACHE_BYTES: '1' } })).toThrow(/set by the generator/);
  });

  it('sequenceBatching makes a stateful function: one replica, its config written as is and read back by the server', () => {
    const sequenceBatching = {
      oldest: { max_candidate_sequences: 4, max_queue_delay_microseconds: 500 },
      control_input: [{ name: 'START', control: [{ kind: 'CONTROL_SEQUENCE_START', int32_false_true: [0, 1] }] }],
      state: [{ input_name: 'S_IN', output_name: 'S_OUT', data_type: 'TYPE_FP32', dims: [2] }],
    };
    const fn = defineFunction({ ...base, sequenceBatching, batching: { maxBatchSize: 8 }, scaling: { maxScale: 1 } });
    const parsed = parseModelConfig(modelConfigJson(fn.spec)!, 'config.json', 'm');
    expect(parsed.maxBatchSize).toBe(8);
    expect(parsed.dynamicBatching).toBeUndefined();
    expect(parsed.sequenceBatching).toMatchObject({ strategy: 'oldest', maxCandidateSequences: 4, maxQueueDelayMicroseconds: 500 });
    expect(parsed.sequenceBatching!.states).toEqual([{ input: 'S_IN', output: 'S_OUT', datatype: 'FP32', dims: [2], initial: { kind: 'zero' } }]);
    const refused = (over: object) => () => defineFunction({ ...base, sequenceBatching, scaling: { maxScale: 1 }, ...over });
    expect(refused({ scaling: {} })).toThrow(/scaling\.maxScale: a stateful function \(sequenceBatching\) needs maxScale: 1: Knative routes requests without session affinity/);
    expect(refused({ scaling: { maxScale: 0 } })).toThrow(/needs maxScale: 1/);
    expect(refused({ batching: { maxBatchSize: 8, maxQueueDelayMicroseconds: 100 } })).toThrow(/batching: a stateful function batches across sequences under sequenceBatching's strategy/);
    expect(refused({ sequenceBatching: { oldest: {} } })).toThrow(/sequenceBatching: .*sequence_batching\.oldest\.max_candidate_sequences: expected an integer ≥ 1, got nothing/);
    expect(refused({ sequenceBatching: { max_sequence_idle_microsecond: 5 } })).toThrow(/sequenceBatching: unknown fields: sequence_batching\.max_sequence_idle_microsecond \(did you mean max_sequence_idle_microseconds\?\)/);
    expect(refused({ responseCache: { bytes: 1 << 20 } })).toThrow(/a sequence model cannot use the response cache/);
    expect(() => defineFunction({ name: 'mm', multiModel: true, sequenceBatching, scaling: { maxScale: 1 } })).toThrow(/a multi-model function's models bring their own config/);
  });

  it('protocol grpc-v2 refuses triggers (CloudEvents arrive over HTTP) and reserves GRPC_PORT and KINFER_REST_PORT', () => {
    const model = { name: 'm', storageUri: 'pvc://models/m', platform: 'onnx' as const };
    expect(defineFunction({ name: 'g', model, protocol: 'grpc-v2' }).spec.protocol).toBe('grpc-v2');
    expect(defineFunction({ name: 'g', model }).spec.protocol).toBe('v2');
    expect(() => defineFunction({ name: 'g', model, protocol: 'grpc-v2', triggers: [{ name: 't' }] })).toThrow(/triggers: a grpc-v2 function serves gRPC/);
    expect(() => defineFunction({ name: 'g', model, env: { GRPC_PORT: '1' } })).toThrow(/set by the generator/);
    expect(() => defineFunction({ name: 'g', model, protocol: 'grpc-v2', env: { KINFER_GRPC_TLS_CERT: '/tls/c.pem' } })).toThrow(/env\.KINFER_GRPC_TLS_CERT: Knative speaks h2c \(cleartext\) to a grpc-v2 function/);
    expect(() => defineFunction({ name: 'g', model, env: { KINFER_GRPC_TLS_KEY: '/tls/k.pem' } })).toThrow(/env\.KINFER_GRPC_TLS_KEY: a v2 function serves no gRPC port/);
  });

  it('the shipped functions are what the issue asks for', () => {
    expect(echo.spec.model?.platform).toBe('echo');
    expect(ocrDet.spec.model).toMatchObject({ name: 'ocr-det', platform: 'onnx' });
    expect(xmodelResnet.spec.model?.name.startsWith('xmodel-')).toBe(true);
    expect(xmodelResnet.spec.resources.accelerators).toEqual({ 'xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_3_1-0': 1 });
    expect(multiModel.spec.multiModel).toBe(true);
    expect(multiModel.spec.model).toBeUndefined();
  });
});
