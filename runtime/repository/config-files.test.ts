/**
 * @module repository/config-files.test
 * Config dialects (Triton pbtxt, Xilinx TOML/pbtxt, JSON), precedence, and errors.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgument, Unsupported } from '../core/errors.js';
import { datatypeFromConfig, MAX_UNKNOWN_LISTED, MAX_UNKNOWN_NAME, parseModelConfig, parseTextProto, readModelConfig } from './config-files.js';

// A Triton-style config as found in the wild: comments, nested messages,
// both list styles, repeated scalars, enum values and unknown fields.
const TRITON_PBTXT = `
# ResNet-50 served by the ONNX Runtime backend
name: "resnet50"   # must match the folder
backend: "onnxruntime"
max_batch_size : 8
input [
  {
    name: "data"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
  }
]
output {
  name: "prob"
  data_type: TYPE_FP32
  dims: [ 1000 ]
  label_filename: "labels.txt"
}
output { name: "ids", data_type: TYPE_STRING, dims: 1 dims: -1 }
instance_group [ { count: 2, kind: KIND_CPU }, { kind: KIND_CPU } ]
dynamic_batching {
  preferred_batch_size: 4
  preferred_batch_size: [ 8 ]
  max_queue_delay_microseconds: 100
  default_queue_policy { max_queue_size: 32 timeout_action: REJECT }
}
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
parameters [ { key: "note" value { string_value: 'it''s "quoted" \\t' } } ]
optimization { graph { level: 1 } execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
model_warmup [ ]
`;

describe('parseModelConfig: Triton pbtxt', () => {
  it('reads every field the server uses', () => {
    const c = parseModelConfig(TRITON_PBTXT, 'config.pbtxt', 'resnet50');
    expect(c.name).toBe('resnet50');
    expect(c.platform).toBe('onnxruntime_onnx');
    expect(c.maxBatchSize).toBe(8);
    expect(c.inputs).toEqual([{ name: 'data', datatype: 'FP32', shape: [3, 224, 224] }]);
    expect(c.outputs).toEqual([
      { name: 'prob', datatype: 'FP32', shape: [1000] },
      { name: 'ids', datatype: 'BYTES', shape: [1, -1] },
    ]);
    expect(c.instanceCount).toBe(3); // 2 + Triton's default 1
    expect(c.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 100, preferredBatchSize: [4, 8], maxQueueSize: 32 });
    expect(c.parameters).toEqual({ intra_op_thread_count: '2', note: 'its "quoted" \t' });
  });

  it('lists fields neither kinfer nor Triton knows, with the field each was probably meant to be', () => {
    const c = parseModelConfig(
      `platform: "onnxruntime_onnx"\nmax_batch_sizes: 4\nfancy_feature: 1\ndynamic_batching { max_queue_delay_microsecond: 100 preserve_ordering: true }\ninstance_group [ { cout: 2 kind: KIND_CPU }, { cout: 1 } ]\nversion_policy { latest { num_versions: 1 } }`,
      'config.pbtxt',
      'm',
    );
    expect(c.unknownFields).toEqual([
      'max_batch_sizes (did you mean max_batch_size?)',
      'fancy_feature',
      'dynamic_batching.max_queue_delay_microsecond (did you mean max_queue_delay_microseconds?)',
      'instance_group[].cout (did you mean count?)',
    ]);
    expect(c.maxBatchSize).toBe(0); // the misspelt field really was ignored
    // Every config of this suite that uses only real fields has none, in each dialect and key case.
    expect(parseModelConfig(TRITON_PBTXT, 'config.pbtxt', 'resnet50').unknownFields).toBeUndefined();
    expect(parseModelConfig('{"maxBatchSize": 2, "dynamicBatching": {"maxQueueDelayMicroseconds": 5}, "instanceGroup": [{"count": 1, "kind": "KIND_CPU"}]}', 'config.json', 'm').unknownFields).toBeUndefined();
    // A camelCase key is named as written.
    expect(parseModelConfig('{"maxBatchSizes": 2}', 'config.json', 'm').unknownFields).toEqual(['maxBatchSizes (did you mean max_batch_size?)']);
  });

  it('bounds the unknown-field list: names cut to 128 characters, no suggestion for long names, the first 100 listed and the rest counted', () => {
    // A 300,000-character key: no edit distance against every known name (about 20 s before), and cut in the list and so in the log line.
    const long = 'x'.repeat(300_000);
    expect(parseModelConfig(JSON.stringify({ maxBatchSize: 1, [long]: 1 }), 'config.json', 'm').unknownFields).toEqual([`${'x'.repeat(MAX_UNKNOWN_NAME)}…`]);
    // The path counts in the 128 characters; names the same once cut are listed once; a long name is listed as written (no
    // known name is within a quarter of its length, so none is worked out).
    const near = `max_batch_size${'s'.repeat(60)}`;
    const c = parseModelConfig(`instance_group { count: 1 ${long}a: 1 ${long}b: 2 }\n${near}: 1`, 'config.pbtxt', 'm');
    expect(c.unknownFields).toEqual([near, `instance_group[].${'x'.repeat(MAX_UNKNOWN_NAME - 'instance_group[].'.length)}…`]);
    // 20,000 instance groups, each with its own unknown field (quadratic duplicate checks before: about 15 s).
    const n = 20_000;
    const groups = Array.from({ length: n }, (_, i) => `instance_group { count: 1 bogus_${i}: 1 }`).join('\n');
    const many = parseModelConfig(groups, 'config.pbtxt', 'm');
    expect(many.instanceCount).toBe(n);
    expect(many.unknownFields).toHaveLength(MAX_UNKNOWN_LISTED + 1);
    expect(many.unknownFields!.slice(0, 2)).toEqual(['instance_group[].bogus_0', 'instance_group[].bogus_1']);
    expect(many.unknownFields!.slice(-2)).toEqual([`instance_group[].bogus_${MAX_UNKNOWN_LISTED - 1}`, `and ${n - MAX_UNKNOWN_LISTED} more`]);
    // The same unknown field in each of them is listed once, with its suggestion.
    const same = parseModelConfig('instance_group { cout: 1 }\n'.repeat(n), 'config.pbtxt', 'm');
    expect(same.unknownFields).toEqual(['instance_group[].cout (did you mean count?)']);
    // Exactly 100 are listed without a count.
    const hundred = JSON.stringify(Object.fromEntries(Array.from({ length: MAX_UNKNOWN_LISTED }, (_, i) => [`bogus_${i}`, 1])));
    expect(parseModelConfig(hundred, 'config.json', 'm').unknownFields).toHaveLength(MAX_UNKNOWN_LISTED);
  });

  it("reads Triton's reshape, optional and default_model_filename, and notices misspelt fields of input and output entries", () => {
    const c = parseModelConfig(
      `max_batch_size: 8\ndefault_model_filename: "resnet.onnx"\ninput [ { name: "in" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } }, { name: "mask" data_type: TYPE_BOOL dims: [ -1, 4 ] reshape { shape: [ -1, 2, 2 ] } optional: true } ]\noutput [ { name: "out" data_type: TYPE_FP32 dims: [ 1 ] reshape: { } } ]`,
      'config.pbtxt',
      'm',
    );
    expect(c.inputs.map((s) => s.shape)).toEqual([[1], [-1, 4]]); // clients keep sending dims
    expect(c.reshape).toEqual({ inputs: { in: [], mask: [-1, 2, 2] }, outputs: { out: [] } });
    expect(c.optionalInputs).toEqual(['mask']);
    expect(c.defaultModelFilename).toBe('resnet.onnx');
    expect(c.unknownFields).toBeUndefined();
    // The JSON form (protobuf's JSON mapping) says the same.
    const j = parseModelConfig('{"maxBatchSize": 8, "defaultModelFilename": "resnet.onnx", "input": [{"name": "in", "dataType": "TYPE_FP32", "dims": ["1"], "reshape": {"shape": []}, "optional": true}]}', 'config.json', 'm');
    expect(j.reshape).toEqual({ inputs: { in: [] }, outputs: {} });
    expect(j.optionalInputs).toEqual(['in']);
    expect(j.defaultModelFilename).toBe('resnet.onnx');
    // Without them, nothing is set.
    const plain = parseModelConfig('input [ { name: "in" data_type: TYPE_FP32 dims: [ 1 ] format: FORMAT_NONE optional: false } ]', 'config.pbtxt', 'm');
    expect(plain.reshape).toBeUndefined();
    expect(plain.optionalInputs).toBeUndefined();
    expect(plain.unknownFields).toBeUndefined(); // format: Triton's, ignored
    // A misspelt field inside an entry was silently ignored before; now it is named like the others.
    const typo = parseModelConfig('input [ { name: "in" data_type: TYPE_FP32 dims: [ 1 ] reshap: { shape: [ ] } } ]\noutput [ { name: "out" data_type: TYPE_FP32 dims: [ 1 ] lable_filename: "l.txt" reshape { shap: [ ] } } ]', 'config.pbtxt', 'm');
    expect(typo.unknownFields).toEqual(['input[].reshap (did you mean reshape?)', 'output[].lable_filename (did you mean label_filename?)', 'output[].reshape.shap (did you mean shape?)']);
    expect(typo.reshape).toEqual({ inputs: {}, outputs: { out: [] } }); // `shap` ignored: reshape {} is a scalar
  });

  it('refuses a reshape that cannot hold what dims holds, a non-bool optional and a default_model_filename with a path', () => {
    const cfg = (entry: string) => `input [ { name: "in" data_type: TYPE_FP32 ${entry} } ]`;
    expect(() => parseModelConfig(cfg('dims: [ 4 ] reshape { shape: [ 2, 3 ] }'), 'config.pbtxt', 'm')).toThrow(/line 1: input 'in'\.reshape: dims \[4\] and reshape \[2,3\] hold different element counts/);
    expect(() => parseModelConfig(cfg('dims: [ -1 ] reshape { shape: [ 2, 2 ] }'), 'config.pbtxt', 'm')).toThrow(/different numbers of variable dims/);
    // Triton's rule: the fixed dims between variable ones must match run by run, not only in total.
    expect(() => parseModelConfig(cfg('dims: [ 2, -1 ] reshape { shape: [ -1, 2 ] }'), 'config.pbtxt', 'm')).toThrow(/hold different element counts/);
    expect(() => parseModelConfig(cfg('dims: [ 2, -1, 6 ] reshape { shape: [ 2, -1, 3, 2 ] }'), 'config.pbtxt', 'm')).not.toThrow();
    expect(() => parseModelConfig(cfg('dims: [ 1 ] reshape { shape: [ -2 ] }'), 'config.pbtxt', 'm')).toThrow(/reshape\.shape\[0\]: expected an integer ≥ -1/);
    expect(() => parseModelConfig(cfg('dims: [ 1 ] optional: 1'), 'config.pbtxt', 'm')).toThrow(/input 'in'\.optional: expected true or false/);
    for (const bad of ['"../model.onnx"', '"sub/model.onnx"', '""']) {
      expect(() => parseModelConfig(`default_model_filename: ${bad}`, 'config.pbtxt', 'm')).toThrow(/default_model_filename: expected a file name in the version folder/);
    }
    for (const bad of [cfg('dims: [ 4 ] reshape { shape: [ 2, 3 ] }'), 'default_model_filename: "a/b"']) {
      expect(() => parseModelConfig(bad, 'config.pbtxt', 'm')).toThrow(InvalidArgument);
    }
  });

  it("reads Triton's priority levels and queue policies, and refuses levels out of range", () => {
    const c = parseModelConfig(
      `max_batch_size: 8\ndynamic_batching {\n  priority_levels: 3\n  default_priority_level: 2\n  default_queue_policy { max_queue_size: 16 timeout_action: DELAY default_timeout_microseconds: 5000 }\n  priority_queue_policy { key: 1 value { max_queue_size: 4 allow_timeout_override: true } }\n  priority_queue_policy [ { key: 3, value: { default_timeout_microseconds: 100 } } ]\n}`,
      'config.pbtxt',
      'm',
    );
    expect(c.dynamicBatching).toEqual({
      maxQueueDelayMicroseconds: 0,
      preferredBatchSize: [],
      maxQueueSize: 16,
      queueTimeout: { action: 'delay', defaultMicroseconds: 5000, allowOverride: false },
      priority: {
        levels: 3,
        defaultLevel: 2,
        policies: {
          1: { maxQueueSize: 4, action: 'reject', defaultMicroseconds: 0, allowOverride: true },
          3: { maxQueueSize: 0, action: 'reject', defaultMicroseconds: 100, allowOverride: false },
        },
      },
    });
    expect(c.unknownFields).toBeUndefined();
    // protobuf's JSON mapping: a plain map keyed by level, the enum by name or number.
    const j = parseModelConfig('{"dynamicBatching": {"priorityLevels": "2", "defaultPriorityLevel": 1, "priorityQueuePolicy": {"2": {"timeoutAction": 1, "defaultTimeoutMicroseconds": "700"}}}}', 'config.json', 'm');
    expect(j.dynamicBatching!.priority!.policies[2]).toEqual({ maxQueueSize: 0, action: 'delay', defaultMicroseconds: 700, allowOverride: false });
    // A policy that only bounds the queue sets no timeout rules (the parse before priorities said the same).
    expect(parseModelConfig('dynamic_batching { default_queue_policy { max_queue_size: 32 timeout_action: REJECT } }', 'config.pbtxt', 'm').dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 0, preferredBatchSize: [], maxQueueSize: 32 });
    const typo = parseModelConfig('dynamic_batching { default_queue_policy { max_queue_sise: 3 } }', 'config.pbtxt', 'm');
    expect(typo.unknownFields).toEqual(['dynamic_batching.default_queue_policy.max_queue_sise (did you mean max_queue_size?)']);

    const bad = (db: string) => () => parseModelConfig(`dynamic_batching { ${db} }`, 'config.pbtxt', 'm');
    expect(bad('priority_levels: 2')).toThrow(/dynamic_batching\.default_priority_level: expected a level from 1 to priority_levels \(2\), got 0/);
    expect(bad('priority_levels: 2 default_priority_level: 3')).toThrow(/expected a level from 1 to priority_levels \(2\), got 3/);
    expect(bad('default_priority_level: 1')).toThrow(/default_priority_level and priority_queue_policy need priority_levels > 0/);
    expect(bad('priority_levels: 2 default_priority_level: 1 priority_queue_policy { key: 3 value { } }')).toThrow(/priority_queue_policy '3': expected a level from 1 to priority_levels \(2\)/);
    expect(bad('default_queue_policy { timeout_action: LATER }')).toThrow(/default_queue_policy\.timeout_action: expected REJECT or DELAY, got "LATER"/);
  });

  it('reads the original Xilinx server pbtxt form (inputs/datatype/shape)', () => {
    const c = parseModelConfig(
      `name: "mnist"\nplatform: "onnx_onnxv1"\ninputs [ { name: "images_in" datatype: "FP32" shape: [28,28,1] } ]\noutputs [ { name: "flatten/Reshape" datatype: "STRING" shape: [10] } ]`,
      'config.pbtxt',
      'mnist',
    );
    expect(c.platform).toBe('onnx_onnxv1');
    expect(c.inputs).toEqual([{ name: 'images_in', datatype: 'FP32', shape: [28, 28, 1] }]);
    expect(c.outputs[0]!.datatype).toBe('BYTES');
    expect(c.maxBatchSize).toBe(0);
    expect(c.instanceCount).toBe(1);
    expect(c.unknownFields).toBeUndefined();
  });

  it('reads response_cache { enable } in the text and JSON forms, and refuses a value that is not a bool', () => {
    expect(parseModelConfig('response_cache { enable: true }', 'config.pbtxt', 'm').responseCache).toBe(true);
    expect(parseModelConfig('{"responseCache": {"enable": true}}', 'config.json', 'm').responseCache).toBe(true);
    expect(parseModelConfig('response_cache { enable: false }', 'config.pbtxt', 'm').responseCache).toBeUndefined();
    expect(parseModelConfig('max_batch_size: 1', 'config.pbtxt', 'm').responseCache).toBeUndefined();
    expect(() => parseModelConfig('response_cache { enable: "yes" }', 'config.pbtxt', 'm')).toThrow(/response_cache\.enable: expected true or false, got "yes"/);
    // A misspelt field leaves the cache off, and is named at load.
    const typo = parseModelConfig('response_cache { enabled: true }', 'config.pbtxt', 'm');
    expect(typo.responseCache).toBeUndefined();
    expect(typo.unknownFields).toEqual(['response_cache.enabled (did you mean enable?)']);
  });

  it('reads version_policy in its three forms, as text, JSON and TOML', () => {
    const pb = (t: string) => parseModelConfig(t, 'config.pbtxt', 'm').versionPolicy;
    expect(pb('max_batch_size: 1')).toBeUndefined();
    expect(pb('version_policy { latest { num_versions: 2 } }')).toEqual({ kind: 'latest', numVersions: 2 });
    expect(pb('version_policy: { all: { } }')).toEqual({ kind: 'all' });
    expect(pb('version_policy { specific { versions: [3, 1, 3] } }')).toEqual({ kind: 'specific', versions: [1, 3] });
    expect(pb('version_policy { specific { versions: 4 versions: 2 } }')).toEqual({ kind: 'specific', versions: [2, 4] });
    expect(parseModelConfig('{"versionPolicy": {"specific": {"versions": ["1", "5"]}}}', 'config.json', 'm').versionPolicy).toEqual({ kind: 'specific', versions: [1, 5] });
    expect(parseModelConfig('[version_policy.latest]\nnum_versions = 3', 'config.toml', 'm').versionPolicy).toEqual({ kind: 'latest', numVersions: 3 });
  });

  it('refuses a version_policy that names no policy, two, or no versions, and names misspelt fields', () => {
    const pb = (t: string) => () => parseModelConfig(t, 'config.pbtxt', 'm');
    expect(pb('version_policy { }')).toThrow(/version_policy: expected one of latest \{ num_versions: N \}, all \{ \}, specific/);
    expect(pb('version_policy { all { } latest { num_versions: 1 } }')).toThrow(/version_policy: expected one of latest, all, specific; got latest and all/);
    expect(pb('version_policy { latest { num_versions: 0 } }')).toThrow(/version_policy\.latest\.num_versions: expected an integer ≥ 1, got 0/);
    expect(pb('version_policy { latest { } }')).toThrow(/version_policy\.latest\.num_versions: expected an integer ≥ 1, got nothing/);
    expect(pb('version_policy { specific { versions: [] } }')).toThrow(/version_policy\.specific\.versions: expected at least one version number/);
    expect(pb('version_policy { specific { versions: [0] } }')).toThrow(/version_policy\.specific\.versions\[0\]: expected an integer ≥ 1/);
    const typo = parseModelConfig('version_policy { specific { versions: [1] versoins: [2] } lates { } }', 'config.pbtxt', 'm');
    expect(typo.unknownFields).toEqual(['version_policy.lates (did you mean latest?)', 'version_policy.specific.versoins (did you mean versions?)']);
    expect(typo.versionPolicy).toEqual({ kind: 'specific', versions: [1] });
  });

  it("reads ensemble_scheduling steps in the text form (map entries) and JSON (maps), -1 as the highest version", () => {
    const text = `platform: "ensemble"
ensemble_scheduling {
  step [
    { model_name: "pre" model_version: -1 input_map { key: "RAW" value: "IMAGE" } output_map { key: "OUT" value: "pre_out" } },
    { model_name: "cls" model_version: 2 input_map { key: "x" value: "pre_out" } input_map { key: "k" value: "IMAGE" } output_map { key: "y" value: "LABELS" } }
  ]
}`;
    expect(parseModelConfig(text, 'config.pbtxt', 'e').ensemble).toEqual([
      { modelName: 'pre', modelVersion: '', inputMap: { RAW: 'IMAGE' }, outputMap: { OUT: 'pre_out' } },
      { modelName: 'cls', modelVersion: '2', inputMap: { x: 'pre_out', k: 'IMAGE' }, outputMap: { y: 'LABELS' } },
    ]);
    const json = '{"platform": "ensemble", "ensembleScheduling": {"step": [{"modelName": "pre", "inputMap": {"RAW": "IMAGE"}, "outputMap": {"OUT": "X"}}]}}';
    expect(parseModelConfig(json, 'config.json', 'e').ensemble).toEqual([{ modelName: 'pre', modelVersion: '', inputMap: { RAW: 'IMAGE' }, outputMap: { OUT: 'X' } }]);
    const pb = (t: string) => () => parseModelConfig(t, 'config.pbtxt', 'e');
    expect(pb('ensemble_scheduling { step [ { input_map { key: "a" value: "b" } } ] }')).toThrow(/ensemble_scheduling\.step\[0\]\.model_name: expected the composing model's name/);
    expect(pb('ensemble_scheduling { step [ { model_name: "m" model_version: 0 } ] }')).toThrow(/model_version: expected -1 \(the highest serving\) or a version number ≥ 1, got 0/);
    expect(pb('ensemble_scheduling { step [ { model_name: "m" output_map { key: "a" value: "" } } ] }')).toThrow(/output_map 'a': expected an ensemble tensor name/);
    expect(parseModelConfig('ensemble_scheduling { step [ { model_name: "m" inputs_map { key: "a" value: "b" } } ] }', 'config.pbtxt', 'e').unknownFields).toEqual([
      'ensemble_scheduling.step[].inputs_map (did you mean input_map?)',
    ]);
  });

  it("reads Triton's sequence_batching: strategies, controls and implicit state, in the text form and JSON", () => {
    const text = `max_batch_size: 8
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  oldest { max_candidate_sequences: 4 preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100 }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] },
    { name: "READY" control [ { kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "IN_STATE" output_name: "OUT_STATE" data_type: TYPE_FP32 dims: [ -1 ]
            initial_state: { data_type: TYPE_FP32 dims: [ 3 ] data_file: "zeros.bin" name: "init" } } ]
}`;
    expect(parseModelConfig(text, 'config.pbtxt', 's').sequenceBatching).toEqual({
      strategy: 'oldest',
      maxSequenceIdleMicroseconds: 5_000_000,
      maxCandidateSequences: 4,
      maxQueueDelayMicroseconds: 100,
      minimumSlotUtilization: 0,
      preferredBatchSize: [2, 4],
      controls: [
        { input: 'START', kind: 'start', datatype: 'FP32', values: [0, 1] },
        { input: 'READY', kind: 'ready', datatype: 'BOOL', values: [0, 1] },
        { input: 'END', kind: 'end', datatype: 'INT32', values: [0, 1] },
        { input: 'CORRID', kind: 'corrid', datatype: 'UINT64' },
      ],
      states: [{ input: 'IN_STATE', output: 'OUT_STATE', datatype: 'FP32', dims: [3], initial: { kind: 'file', file: 'zeros.bin' } }],
    });
    const json = '{"sequenceBatching": {"direct": {"maxQueueDelayMicroseconds": 50, "minimumSlotUtilization": 0.5}, "controlInput": [{"name": "S", "control": [{"kind": "CONTROL_SEQUENCE_START", "int32FalseTrue": [0, 1]}]}], "state": [{"inputName": "a", "outputName": "b", "dataType": "TYPE_INT64", "dims": [2]}]}}';
    const direct = parseModelConfig(json, 'config.json', 's').sequenceBatching!;
    expect(direct).toMatchObject({ strategy: 'direct', maxSequenceIdleMicroseconds: 1_000_000, maxQueueDelayMicroseconds: 50, minimumSlotUtilization: 0.5 });
    expect(direct.states).toEqual([{ input: 'a', output: 'b', datatype: 'INT64', dims: [2], initial: { kind: 'zero' } }]);
    // Triton's default strategy is direct.
    expect(parseModelConfig('sequence_batching { }', 'config.pbtxt', 's').sequenceBatching?.strategy).toBe('direct');
  });

  it('refuses sequence_batching it cannot honour, naming the field', () => {
    const pb = (t: string) => () => parseModelConfig(t, 'config.pbtxt', 's');
    expect(pb('sequence_batching { direct { } oldest { max_candidate_sequences: 2 } }')).toThrow(/sequence_batching: expected one strategy, direct or oldest, got both/);
    expect(pb('sequence_batching { oldest { } }')).toThrow(/sequence_batching\.oldest\.max_candidate_sequences: expected an integer ≥ 1, got nothing/);
    expect(pb('sequence_batching { direct { minimum_slot_utilization: 2 } }')).toThrow(/minimum_slot_utilization: expected a number from 0 to 1/);
    expect(pb('sequence_batching { control_input [ { name: "S" control [ { kind: CONTROL_SEQUENCE_GO int32_false_true: [0, 1] } ] } ] }')).toThrow(/control_input 'S'\.control\.kind: expected one of CONTROL_SEQUENCE_START, .*got "CONTROL_SEQUENCE_GO"/);
    expect(pb('sequence_batching { control_input [ { name: "S" control [ { kind: CONTROL_SEQUENCE_START } ] } ] }')).toThrow(/expected exactly one of fp32_false_true, int32_false_true, bool_false_true, got none/);
    expect(pb('sequence_batching { control_input [ { name: "S" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [1] } ] } ] }')).toThrow(/int32_false_true: expected two values \[false, true\], got 1/);
    expect(pb('sequence_batching { control_input [ { name: "C" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32 } ] } ] }')).toThrow(/data_type: expected TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING, got "TYPE_FP32"/);
    expect(pb('sequence_batching { control_input [ { name: "A" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] } ] }, { name: "B" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] } ] } ] }')).toThrow(/two inputs take the START control/);
    expect(pb('sequence_batching { control_input [ { name: "A" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }, { kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] } ] } ] }')).toThrow(/expected exactly one control, got 2/);
    expect(pb('sequence_batching { state [ { input_name: "a" output_name: "b" data_type: TYPE_FP32 dims: [ -1 ] } ] }')).toThrow(/state 'a'\.dims: \[-1\] has a variable dim: give initial_state with its fixed dims/);
    expect(pb('sequence_batching { state [ { input_name: "a" output_name: "b" data_type: TYPE_FP32 dims: [ 1 ] initial_state { data_file: "../x" } } ] }')).toThrow(/must name a file inside <model>\/initial_state\//);
    expect(pb('sequence_batching { state [ { input_name: "a" output_name: "b" data_type: TYPE_FP32 dims: [ 1 ] initial_state { } } ] }')).toThrow(/expected exactly one of zero_data: true, data_file/);
    expect(pb('dynamic_batching { } sequence_batching { }')).toThrow(/a model takes dynamic_batching or sequence_batching, not both/);
    expect(pb('response_cache { enable: true } sequence_batching { }')).toThrow(/a sequence model cannot use the response cache/);
    expect(pb('platform: "ensemble" ensemble_scheduling { step [ { model_name: "m" } ] } sequence_batching { }')).toThrow(/an ensemble cannot have sequence_batching/);
    expect(pb('sequence_batching { iterative_sequence: true }')).toThrow(Unsupported);
    expect(parseModelConfig('sequence_batching { max_sequence_idle_microsecond: 5 oldest { max_candidate_sequences: 1 preserve_ordering: true } }', 'config.pbtxt', 's').unknownFields).toEqual([
      'sequence_batching.max_sequence_idle_microsecond (did you mean max_sequence_idle_microseconds?)',
    ]);
  });

  it('reports syntax errors with the file and line', () => {
    const bad = 'name: "x"\ninput [\n  { name: "a" data_type: TYPE_FP32 dims: [1 2] }\n]';
    expect(() => parseModelConfig(bad, 'config.pbtxt', 'x')).toThrow(/^config\.pbtxt line 3: expected ',' or ']'/);
    expect(() => parseModelConfig('name "x"', 'config.pbtxt', 'x')).toThrow(/line 1: expected ':' or '\{' after field 'name'/);
    expect(() => parseModelConfig('a {\n b: 1\n', 'config.pbtxt', 'x')).toThrow(/missing '}' for the message opened on line 1/);
    expect(() => parseModelConfig('name: "x\n"', 'config.pbtxt', 'x')).toThrow(/line 1: unterminated string/);
    expect(() => parseModelConfig('\n\nname: @', 'config.pbtxt', 'x')).toThrow(/line 3: unexpected character '@'/);
  });

  it('reports semantic errors with the enclosing message line', () => {
    const bad = 'name: "x"\n\ninput {\n name: "a"\n data_type: TYPE_FP99\n dims: [1]\n}';
    const err = catchError(() => parseModelConfig(bad, 'config.pbtxt', 'x'));
    expect(err).toBeInstanceOf(InvalidArgument);
    expect(err.message).toMatch(/^config\.pbtxt line 3: input 'a': unsupported data_type TYPE_FP99/);
    expect(() => parseModelConfig('max_batch_size: -1', 'config.pbtxt', 'x')).toThrow(/max_batch_size: expected an integer ≥ 0, got -1/);
    expect(() => parseModelConfig('input { name: "a" data_type: TYPE_FP32 }', 'config.pbtxt', 'x')).toThrow(/input 'a': missing dims/);
    expect(() => parseModelConfig('input { data_type: TYPE_FP32 dims: 1 }', 'config.pbtxt', 'x')).toThrow(/input\[0\]: missing name/);
    expect(() => parseModelConfig('input { name: "a" data_type: TYPE_BF16 dims: 1 }', 'config.pbtxt', 'x')).toThrow(Unsupported);
    expect(() =>
      parseModelConfig('input { name: "a" data_type: TYPE_FP32 dims: 1 } input { name: "a" data_type: TYPE_FP32 dims: 1 }', 'config.pbtxt', 'x'),
    ).toThrow(/input 'a': declared twice/);
  });
});

describe('parseTextProto', () => {
  it('keeps a field seen once scalar and makes repeats and lists arrays', () => {
    const t = parseTextProto('a: 1 b: 2 b: 3 c: [4] d <e: "x" "y"> f: -0x10 g: 1.5e2 h: true; i: KIND_GPU,');
    expect(t).toEqual({ a: 1, b: [2, 3], c: [4], d: { e: 'xy' }, f: -16, g: 150, h: true, i: 'KIND_GPU' });
  });

  it('appends repeats in place: 50,000 repeats of a field are one list of 50,000, in order', () => {
    // Each repeat used to copy the list so far (quadratic: about a minute for this input).
    const n = 50_000;
    const t = parseTextProto(Array.from({ length: n }, (_, i) => `a: ${i}`).join('\n'));
    const a = t.a as number[];
    expect(a).toHaveLength(n);
    expect(a[0]).toBe(0);
    expect(a[n - 1]).toBe(n - 1);
    expect(a.every((x, i) => x === i)).toBe(true);
    // Scalars, lists and repeats still mix in order.
    expect(parseTextProto('b: 1 b: [2, 3] b: 4 c: [] c: 5 d: [6] d: [7]')).toEqual({ b: [1, 2, 3, 4], c: [5], d: [6, 7] });
    const groups = parseModelConfig('instance_group { count: 2 }\n'.repeat(n), 'config.pbtxt', 'm');
    expect(groups.instanceCount).toBe(2 * n);
  });

  it('bounds nesting', () => {
    expect(() => parseTextProto('a { '.repeat(100) + '}'.repeat(100))).toThrow(/nested more than 64 deep/);
    expect(parseTextProto('a { '.repeat(3) + '}'.repeat(3))).toEqual({ a: { a: { a: {} } } });
  });

  it('decodes escapes', () => {
    expect(parseTextProto(String.raw`s: "a\nb\"c\101\x42"`)).toEqual({ s: 'a\nb"cAB' });
  });

  it('reads octal and hex escapes as bytes of UTF-8, as protobuf does, and \\u and \\U escapes as code points', () => {
    // Python's text_format writes non-ASCII text as octal byte escapes: "é" is "\303\251", not "Ã©".
    expect(parseTextProto(String.raw`s: "caf\303\251" t: "\xc3\xa9" u: 'Gr\303\274\303\237e'`)).toEqual({ s: 'café', t: 'é', u: 'Grüße' });
    // Escaped bytes mix with literal text, outside the BMP too, and one sequence may span adjacent strings.
    expect(parseTextProto(String.raw`s: "é\303\251😀\360\237\230\200x" t: "\303" "\251" u: "\357\273\277bom"`)).toEqual({ s: 'éé😀😀x', t: 'é', u: '\ufeffbom' });
    expect(parseTextProto(String.raw`s: "\u00e9\U0001F600\ud83d\ude00\x7"`)).toEqual({ s: 'é😀😀\x07' });
    expect(parseModelConfig(String.raw`parameters { key: "label" value { string_value: "\346\227\245\346\234\254" } }`, 'config.pbtxt', 'm').parameters).toEqual({ label: '日本' });
    // Bytes that are not UTF-8, and escapes out of range, are refused with the field (or escape) and the line.
    expect(() => parseTextProto('a: 1\ns: "\\303"')).toThrow(/^config\.pbtxt line 2: field 's': the string is not UTF-8/);
    expect(() => parseTextProto('s: [ "ok",\n"\\377" ]')).toThrow(/^config\.pbtxt line 2: field 's': the string is not UTF-8/);
    expect(() => parseTextProto(String.raw`s: "\400"`)).toThrow(/octal escape '\\400' is more than a byte/);
    expect(() => parseTextProto(String.raw`s: "\ud800x"`)).toThrow(/'\\ud800' is half of a surrogate pair/);
    expect(() => parseTextProto(String.raw`s: "\U00110000"`)).toThrow(/beyond Unicode/);
    expect(() => parseTextProto(String.raw`s: "\u12"`)).toThrow(/expected 4 hex digits after '\\u'/);
    expect(() => parseTextProto(String.raw`s: "\x"`)).toThrow(/expected hex digits after '\\x'/);
  });
});

describe('parseModelConfig: TOML and JSON', () => {
  it('reads the original Xilinx server TOML form', () => {
    const c = parseModelConfig(
      `name = "mnist"\nplatform = "onnx_onnxv1"\nmax_batch_size = 4\n\n[[inputs]]\nname = "images_in"\ndatatype = "FP32"\nshape = [28, 28, 1]\n\n[[outputs]]\nname = "out"\ndatatype = "INT64"\nshape = [10]\n\n[parameters]\nthreads = 2\nmode = "fast"\n\n[dynamic_batching]\nmax_queue_delay_microseconds = 500\npreferred_batch_size = [2, 4]\n`,
      'config.toml',
      'mnist',
    );
    expect(c.platform).toBe('onnx_onnxv1');
    expect(c.maxBatchSize).toBe(4);
    expect(c.inputs).toEqual([{ name: 'images_in', datatype: 'FP32', shape: [28, 28, 1] }]);
    expect(c.outputs).toEqual([{ name: 'out', datatype: 'INT64', shape: [10] }]);
    expect(c.parameters).toEqual({ threads: '2', mode: 'fast' });
    expect(c.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 500, preferredBatchSize: [2, 4], maxQueueSize: 0 });
    expect(c.unknownFields).toBeUndefined();
  });

  it('reports TOML syntax errors with the line', () => {
    expect(() => parseModelConfig('name = "x"\nplatform = = 1\n', 'config.toml', 'x')).toThrow(/^config\.toml line 2: /);
  });

  it('reads Triton JSON in camelCase with int64 dims as strings', () => {
    const c = parseModelConfig(
      JSON.stringify({
        name: 'm',
        platform: 'onnxruntime_onnx',
        maxBatchSize: 2,
        input: [{ name: 'x', dataType: 'TYPE_INT8', dims: ['4', '-1'] }],
        output: [{ name: 'y', dataType: 'TYPE_UINT16', dims: [1] }],
        instanceGroup: [{ count: 3, kind: 'KIND_CPU' }],
        dynamicBatching: { maxQueueDelayMicroseconds: '250', defaultQueuePolicy: { maxQueueSize: 5 } },
        parameters: { k: { stringValue: 'v' } },
      }),
      'config.json',
      'm',
    );
    expect(c.maxBatchSize).toBe(2);
    expect(c.inputs).toEqual([{ name: 'x', datatype: 'INT8', shape: [4, -1] }]);
    expect(c.outputs).toEqual([{ name: 'y', datatype: 'UINT16', shape: [1] }]);
    expect(c.instanceCount).toBe(3);
    expect(c.dynamicBatching).toEqual({ maxQueueDelayMicroseconds: 250, preferredBatchSize: [], maxQueueSize: 5 });
    expect(c.parameters).toEqual({ k: 'v' });
  });

  it('reads Triton JSON in snake_case', () => {
    const c = parseModelConfig(
      '{"max_batch_size": 1, "input": [{"name": "x", "data_type": "TYPE_BOOL", "dims": [2]}], "parameters": {"threads": {"string_value": "1"}}}',
      'config.json',
      'm',
    );
    expect(c.inputs).toEqual([{ name: 'x', datatype: 'BOOL', shape: [2] }]);
    expect(c.parameters).toEqual({ threads: '1' });
  });

  it('reports JSON syntax errors with the line', () => {
    expect(() => parseModelConfig('{\n"name": "x",\n"platform": }', 'config.json', 'x')).toThrow(/^config\.json line 3: /);
    expect(() => parseModelConfig('{"a": [1,\n2,\n,3]}', 'config.json', 'x')).toThrow(/^config\.json line 3: /);
    expect(() => parseModelConfig('{"a": "b\n"}', 'config.json', 'x')).toThrow(/^config\.json line 1: /);
    expect(() => parseModelConfig('[1]', 'config.json', 'x')).toThrow(/expected a JSON object/);
  });
});

describe('datatypeFromConfig', () => {
  it('maps Triton, v2 and Xilinx names', () => {
    expect(datatypeFromConfig('TYPE_FP32')).toBe('FP32');
    expect(datatypeFromConfig('TYPE_STRING')).toBe('BYTES');
    expect(datatypeFromConfig('STRING')).toBe('BYTES');
    expect(datatypeFromConfig('uint64')).toBe('UINT64');
    expect(datatypeFromConfig('TYPE_FP8')).toBeUndefined();
  });
});

describe('readModelConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kinfer-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns undefined without a config file', async () => {
    expect(await readModelConfig(dir, 'm')).toBeUndefined();
  });

  it('prefers config.toml over config.pbtxt over config.json', async () => {
    await writeFile(join(dir, 'config.json'), '{"platform": "from_json"}');
    expect((await readModelConfig(dir, 'm'))?.platform).toBe('from_json');
    await writeFile(join(dir, 'config.pbtxt'), 'platform: "from_pbtxt"');
    expect((await readModelConfig(dir, 'm'))?.platform).toBe('from_pbtxt');
    await writeFile(join(dir, 'config.toml'), 'platform = "from_toml"');
    expect((await readModelConfig(dir, 'm'))?.platform).toBe('from_toml');
  });

  it('serves the folder name, whatever the file says', async () => {
    await writeFile(join(dir, 'config.pbtxt'), 'name: "other"');
    expect((await readModelConfig(dir, 'm'))?.name).toBe('m');
  });

  it('names the file in errors', async () => {
    await writeFile(join(dir, 'config.pbtxt'), 'max_batch_size: "eight"');
    await expect(readModelConfig(dir, 'm')).rejects.toThrow(/^config\.pbtxt line 1: max_batch_size: expected an integer/);
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}
