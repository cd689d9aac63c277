import { describe, expect, it } from 'vitest';
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
});
