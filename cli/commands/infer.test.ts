import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { toTensor } from '../../client/tensors.js';
import { parseInputSpec } from './infer.js';

describe('parseInputSpec', () => {
  it('reads name, datatype and shape', async () => {
    expect(await parseInputSpec('x:FP32:1,3=[[1,2,3]]')).toMatchObject({ name: 'x', datatype: 'FP32', shape: [1, 3], data: [[1, 2, 3]] });
    expect(await parseInputSpec('x:int64=[4,5]')).toMatchObject({ name: 'x', datatype: 'INT64', data: [4, 5] });
    expect(await parseInputSpec('x::2=["a","b"]')).toMatchObject({ name: 'x', shape: [2] });
    expect(await parseInputSpec('text=hello')).toMatchObject({ name: 'text', data: ['hello'] });
  });

  it('keeps colons in the name (tf2onnx input_1:0), with or without a datatype and shape after it', async () => {
    expect(await parseInputSpec('input_1:0:FP32=[1,2]')).toMatchObject({ name: 'input_1:0', datatype: 'FP32', data: [1, 2] });
    expect(await parseInputSpec('input_1:0:FP32:1,2=[[1,2]]')).toMatchObject({ name: 'input_1:0', datatype: 'FP32', shape: [1, 2] });
    expect(await parseInputSpec('serving_default_x:0=hello')).toMatchObject({ name: 'serving_default_x:0', data: ['hello'] });
    expect(await parseInputSpec('scope:image:BYTES=a')).toMatchObject({ name: 'scope:image', datatype: 'BYTES' });
    expect(await parseInputSpec('enc:input:0=a')).toMatchObject({ name: 'enc:input:0', data: ['a'] });
  });

  it('refuses a misspelt datatype and a bad shape, naming them', async () => {
    await expect(parseInputSpec('x:FP3=[1]')).rejects.toThrow(/unknown datatype 'FP3'.*a name with colons takes one after it/);
    await expect(parseInputSpec('scope:image=[1]')).rejects.toThrow(/unknown datatype 'image'/);
    await expect(parseInputSpec('x:FP3:1,3=[[1,2,3]]')).rejects.toThrow(/unknown datatype 'FP3'/);
    await expect(parseInputSpec('x:1,3=[[1,2,3]]')).rejects.toThrow(/shape '1,3' needs a datatype before it/);
    await expect(parseInputSpec('x:FP32:abc=[1]')).rejects.toThrow(/shape 'abc' must be comma-separated non-negative integers/);
    await expect(parseInputSpec('=1')).rejects.toThrow(/expected name\[:DATATYPE\[:shape\]\]=<value>/);
    await expect(parseInputSpec(':FP32=1')).rejects.toThrow(/expected name\[:DATATYPE\[:shape\]\]=<value>/);
  });

  it('keeps 64-bit integers beyond 2^53 exact, in literals and .json files', async () => {
    const data = async (spec: string) => toTensor(await parseInputSpec(spec)).data;
    expect(await data('x:INT64=[9007199254740993]')).toEqual(BigInt64Array.of(9007199254740993n));
    expect(await data('x:INT64=9007199254740993')).toEqual(BigInt64Array.of(9007199254740993n));
    expect(await data('x:INT64=[-9223372036854775808, 1]')).toEqual(BigInt64Array.of(-(2n ** 63n), 1n));
    expect(await data('x:UINT64=[18446744073709551615]')).toEqual(BigUint64Array.of(2n ** 64n - 1n));
    expect(await data('x:FP64=[12345678901234567]')).toEqual(Float64Array.of(12345678901234567));
    await expect(parseInputSpec('x:INT64=[18446744073709551615]')).rejects.toThrow(/expected an integer in \[-9223372036854775808, 9223372036854775807\]/);
    const dir = await mkdtemp(path.join(tmpdir(), 'kinfer-infer-spec-'));
    try {
      await writeFile(path.join(dir, 'bare.json'), '[9007199254740993, 18446744073709551615]');
      await writeFile(path.join(dir, 'obj.json'), '{"datatype": "INT64", "shape": [2], "data": [9007199254740993, -9223372036854775807]}');
      expect(await data(`x:UINT64=@${path.join(dir, 'bare.json')}`)).toEqual(BigUint64Array.of(9007199254740993n, 2n ** 64n - 1n));
      expect(await data(`x=@${path.join(dir, 'obj.json')}`)).toEqual(BigInt64Array.of(9007199254740993n, -(2n ** 63n) + 1n));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
