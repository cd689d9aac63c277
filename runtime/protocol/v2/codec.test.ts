import { describe, expect, it } from 'vitest';
import { DATATYPES, elementSize, toHalf, type Datatype } from '../../core/datatypes.js';
import { KinferError } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';
import { decodeInferRequest } from './decode.js';
import { encodeInferResponse } from './encode.js';
import { binaryBody, framed, jsonBody, rng } from '../../../test/helpers/v2-bodies.js';

const enc = new TextEncoder();

/** One tensor of every datatype, with edge values; shapes vary in rank. */
function samples(): Tensor[] {
  const make = (datatype: Datatype, shape: number[], data: Tensor['data']): Tensor => ({ name: datatype.toLowerCase(), datatype, shape, data });
  const all: Record<Datatype, Tensor> = {
    BOOL: make('BOOL', [2, 2], new Uint8Array([1, 0, 0, 1])),
    UINT8: make('UINT8', [3], new Uint8Array([0, 128, 255])),
    UINT16: make('UINT16', [1, 3], new Uint16Array([0, 1, 65535])),
    UINT32: make('UINT32', [3], new Uint32Array([0, 1, 4294967295])),
    UINT64: make('UINT64', [3], new BigUint64Array([0n, 1n, 9007199254740991n])),
    INT8: make('INT8', [3], new Int8Array([-128, 0, 127])),
    INT16: make('INT16', [3], new Int16Array([-32768, 0, 32767])),
    INT32: make('INT32', [3, 1], new Int32Array([-2147483648, 0, 2147483647])),
    INT64: make('INT64', [3], new BigInt64Array([-9007199254740991n, 0n, 9007199254740991n])),
    FP16: make('FP16', [4], new Uint16Array([toHalf(0), toHalf(-1.5), toHalf(65504), toHalf(6.1e-5)])),
    FP32: make('FP32', [2, 2], new Float32Array([0.1, -3.4e38, 1e-40, NaN])),
    FP64: make('FP64', [3], new Float64Array([Math.PI, -Infinity, 5e-324])),
    BYTES: make('BYTES', [2], [enc.encode('hello ✓'), enc.encode('')]),
  };
  return DATATYPES.map((d) => all[d]);
}

const same = (t: Tensor) => (t.datatype === 'BYTES' ? (t.data as Uint8Array[]).map((b) => [...b]) : Array.from(t.data as ArrayLike<unknown>));

describe('round trip: encodeInferResponse → decodeInferRequest', () => {
  it('every datatype through JSON', () => {
    const outputs = samples();
    const text = encodeInferResponse({ modelName: 'm', outputs }, { all: false, byName: new Map() }).body as string;
    const wire = JSON.parse(text);
    const { request } = decodeInferRequest(jsonBody({ inputs: wire.outputs }), { modelName: 'm' });
    expect(request.inputs).toHaveLength(DATATYPES.length);
    request.inputs.forEach((t, i) => {
      const o = outputs[i]!;
      expect(t.datatype, o.name).toBe(o.datatype);
      expect(t.shape, o.name).toEqual(o.shape);
      expect(t.data.constructor, o.name).toBe(o.data.constructor);
      expect(same(t), o.name).toEqual(same(o));
    });
  });

  it('every datatype through the binary section, and 64-bit extremes', () => {
    const outputs = samples();
    outputs.push({ name: 'big', datatype: 'INT64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]) });
    outputs.push({ name: 'raw', datatype: 'BYTES', shape: [1], data: [new Uint8Array([0xff, 0, 0xc3])] });
    const res = encodeInferResponse({ modelName: 'm', id: 'r1', outputs }, { all: true, byName: new Map() });
    const body = res.body as Uint8Array;
    const n = Number(res.headers['Inference-Header-Content-Length']);
    const header = JSON.parse(new TextDecoder().decode(body.subarray(0, n)));
    expect(header.id).toBe('r1');
    // The response header, with outputs renamed inputs, is a valid request header.
    const { body: reqBody, headerLength } = binaryBody({ inputs: header.outputs }, [body.subarray(n)]);
    const { request } = decodeInferRequest(reqBody, { modelName: 'm', inferenceHeaderContentLength: headerLength });
    request.inputs.forEach((t, i) => {
      const o = outputs[i]!;
      expect(t.shape, o.name).toEqual(o.shape);
      expect(same(t), o.name).toEqual(same(o));
    });
  });

  it('64-bit integers beyond 2^53: exact digits out, decimal strings in', () => {
    const v = 2n ** 63n - 1n;
    const text = encodeInferResponse(
      { modelName: 'm', outputs: [{ name: 'y', datatype: 'INT64', shape: [1], data: new BigInt64Array([v]) }] },
      { all: false, byName: new Map() },
    ).body as string;
    expect(text).toContain(`"data":[${v}]`);
    const { request } = decodeInferRequest(jsonBody({ inputs: [{ name: 'y', datatype: 'INT64', shape: [1], data: [String(v)] }] }), { modelName: 'm' });
    expect((request.inputs[0]!.data as BigInt64Array)[0]).toBe(v);
  });
});

describe('fuzz: malformed bodies only ever raise KinferError', () => {
  const base = () => ({
    id: 'f',
    parameters: { binary_data_output: false, p: 1 },
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [2, 2], data: [[1, 2], [3, 4]] },
      { name: 'b', datatype: 'INT64', shape: [2], data: [1, '2'] },
      { name: 'c', datatype: 'BYTES', shape: [1], data: ['x'] },
      { name: 'd', datatype: 'UINT8', shape: [3], parameters: { binary_data_size: 3 } },
      { name: 'e', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 5 } },
    ],
    outputs: [{ name: 'y', parameters: { binary_data: true } }],
  });

  const baseTail = () => new Uint8Array([1, 2, 3, ...framed(['x'])]);

  const junk = (r: () => number): unknown => {
    const choices: unknown[] = [null, true, 'str', '', -1, 0, 1.5, 2 ** 64, 1e308, -0, [], {}, [[]], [1, [2, [3]]], { a: 1 }, 'FP32', 'BYTES', '-1', '9999999999999999999999'];
    return choices[Math.floor(r() * choices.length)];
  };

  /** Replaces, deletes or duplicates one randomly chosen node of the tree. */
  function mutate(root: any, r: () => number): void {
    const slots: [any, string | number][] = [];
    const walk = (node: any, depth: number) => {
      if (depth > 8 || node === null || typeof node !== 'object') return;
      for (const key of Object.keys(node)) {
        slots.push([node, Array.isArray(node) ? Number(key) : key]);
        walk(node[key], depth + 1);
      }
    };
    walk(root, 0);
    const [parent, key] = slots[Math.floor(r() * slots.length)]!;
    const op = r();
    // Small numbers where numbers were: shapes and binary_data_size that almost add up.
    if (typeof parent[key] === 'number' && op < 0.5) parent[key] = Math.floor(r() * 9);
    else if (op < 0.6) parent[key] = junk(r);
    else if (op < 0.8) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]));
    else parent[`${String(key)}_x`] = parent[key];
  }

  function expectOnlyKinferErrors(run: () => unknown, label: string): 'ok' | 'rejected' {
    try {
      run();
      return 'ok';
    } catch (err) {
      if (!(err instanceof KinferError)) throw new Error(`${label}: threw a non-KinferError: ${(err as Error)?.stack ?? String(err)}`);
      expect(err.message.length, label).toBeGreaterThan(0);
      return 'rejected';
    }
  }

  it('500 random byte bodies and 500 random JSON mutations', () => {
    const r = rng(20240601);
    const outcomes = { ok: 0, rejected: 0 };
    const spec = { name: 'in', datatype: 'FP32' as const, shape: [-1, 4] };
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(Math.floor(r() * 64));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(r() * 256);
      const headerChoices = [undefined, '0', String(Math.floor(r() * 80)), '-1', 'x', String(bytes.length)];
      const header = headerChoices[Math.floor(r() * headerChoices.length)]!;
      outcomes[expectOnlyKinferErrors(() => decodeInferRequest(bytes, { modelName: 'm', inferenceHeaderContentLength: header, rawInput: () => spec }), `bytes #${i}`)]++;
    }
    for (let i = 0; i < 500; i++) {
      const value = base();
      const rounds = 1 + Math.floor(r() * 3);
      for (let k = 0; k < rounds; k++) mutate(value, r);
      const tail = baseTail();
      // A third of the time the binary section is corrupted too: random bytes, random length.
      const corrupt = r() < 1 / 3 ? Uint8Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * 256)) : tail;
      const { body, headerLength } = binaryBody(value, [corrupt]);
      outcomes[expectOnlyKinferErrors(() => decodeInferRequest(body, { modelName: 'm', inferenceHeaderContentLength: headerLength }), `mutation #${i}`)]++;
    }
    console.log(`fuzz outcomes: ${JSON.stringify(outcomes)}`);
    // Both paths are exercised: some mutations still decode, most are rejected.
    expect(outcomes.ok).toBeGreaterThan(10);
    expect(outcomes.rejected).toBeGreaterThan(500);
  });

  it('500 binary sections with random datatypes, shapes and sizes that almost add up', () => {
    const r = rng(7);
    const outcomes = { ok: 0, rejected: 0 };
    const small = (n: number) => Math.floor(r() * n);
    const randomBytes = (n: number, max = 256) => Uint8Array.from({ length: n }, () => small(max));
    for (let i = 0; i < 500; i++) {
      const chunks: Uint8Array[] = [];
      const inputs = Array.from({ length: 1 + small(3) }, (_, k) => {
        const datatype = DATATYPES[small(DATATYPES.length)]!;
        const shape = Array.from({ length: small(3) }, () => small(4));
        const count = shape.reduce((a, b) => a * b, 1);
        let chunk: Uint8Array;
        if (r() < 0.6) {
          // A well-formed payload for this shape...
          if (datatype === 'BYTES') chunk = framed(Array.from({ length: count }, () => randomBytes(small(4))));
          else chunk = randomBytes(count * elementSize(datatype)!, datatype === 'BOOL' ? 2 : 256);
        } else chunk = randomBytes(small(13)); // ...or noise.
        chunks.push(chunk);
        const size = r() < 0.85 ? chunk.byteLength : small(13);
        return { name: `i${k}`, datatype, shape, parameters: { binary_data_size: size } };
      });
      if (r() < 0.1) chunks.push(randomBytes(1 + small(4)));
      const { body, headerLength } = binaryBody({ inputs }, chunks);
      outcomes[expectOnlyKinferErrors(() => decodeInferRequest(body, { modelName: 'm', inferenceHeaderContentLength: headerLength }), `binary #${i}`)]++;
    }
    console.log(`binary fuzz outcomes: ${JSON.stringify(outcomes)}`);
    expect(outcomes.ok).toBeGreaterThan(25);
    expect(outcomes.rejected).toBeGreaterThan(100);
  });

  it('the unmutated base request decodes', () => {
    const { body, headerLength } = binaryBody(base(), [baseTail()]);
    const { request, binaryOutputs } = decodeInferRequest(body, { modelName: 'm', inferenceHeaderContentLength: headerLength });
    expect(request.inputs.map((t) => t.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(binaryOutputs.byName.get('y')).toBe(true);
  });
});
