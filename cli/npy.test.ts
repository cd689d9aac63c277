/**
 * @module cli/npy.test
 * The `.npy` reader against files laid out as `numpy.lib.format` documents
 * them (written byte by byte here, since NumPy is not installed).
 */
import { describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from './npy.js';

/** A version-1.0 file with `header` (padded) and `data`. */
function npy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const lenBytes = major === 1 ? 2 : 4;
  const pre = 8 + lenBytes;
  const pad = (64 - ((pre + header.length + 1) % 64)) % 64;
  const text = new TextEncoder().encode(header + ' '.repeat(pad) + '\n');
  const out = new Uint8Array(pre + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, text.length, true);
  else dv.setUint32(8, text.length, true);
  out.set(text, pre);
  out.set(data, pre + text.length);
  return out;
}

describe('readNpy', () => {
  it('reads what writeNpy writes, for every numeric datatype', () => {
    const cases = [
      ['FP32', new Float32Array([1.5, -2, 3, 4, 5, 6])],
      ['FP64', new Float64Array([Math.PI, 0, 1, 2, 3, 4])],
      ['INT64', new BigInt64Array([-(2n ** 62n), 1n, 2n, 3n, 4n, 5n])],
      ['UINT8', new Uint8Array([0, 1, 2, 3, 4, 255])],
      ['INT16', new Int16Array([-1, 1, 2, 3, 4, 5])],
      ['FP16', new Uint16Array([0x3c00, 0, 0, 0, 0, 0x7c00])],
    ] as const;
    for (const [dt, data] of cases) {
      const a = readNpy(writeNpy(dt, [2, 3], data));
      expect(a).toEqual({ datatype: dt, shape: [2, 3], data });
    }
  });

  it('reads from a pooled Buffer (non-zero byteOffset), as readFile returns', () => {
    Buffer.alloc(3); // moves the pool's offset off 0
    const pooled = Buffer.from(writeNpy('INT64', [2], new BigInt64Array([-5n, 2n ** 40n])));
    expect(readNpy(pooled).data).toEqual(new BigInt64Array([-5n, 2n ** 40n]));
  });

  it('reads big-endian data, version 2.0 headers, scalars and bools', () => {
    const be = npy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", new Uint8Array([0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe]), 2);
    expect(readNpy(be)).toEqual({ datatype: 'INT32', shape: [2], data: new Int32Array([258, -2]) });
    const scalar = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", new Uint8Array(new Float64Array([7]).buffer));
    expect(readNpy(scalar)).toEqual({ datatype: 'FP64', shape: [], data: new Float64Array([7]) });
    const b = npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", new Uint8Array([1, 0, 1]));
    expect(readNpy(b)).toMatchObject({ datatype: 'BOOL', data: new Uint8Array([1, 0, 1]) });
  });

  it('reads fixed-width byte and unicode strings as BYTES', () => {
    const s = npy("{'descr': '|S3', 'fortran_order': False, 'shape': (2,), }", new Uint8Array([0x61, 0x62, 0x63, 0x78, 0, 0]));
    expect(readNpy(s).data).toEqual([new Uint8Array([0x61, 0x62, 0x63]), new Uint8Array([0x78])]);
    const u = new Uint8Array(16);
    new DataView(u.buffer).setUint32(0, 0xe9, true); // é
    new DataView(u.buffer).setUint32(8, 0x41, true); // A
    const uni = npy("{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }", u);
    expect(readNpy(uni).data).toEqual([new TextEncoder().encode('é'), new TextEncoder().encode('A')]);
  });

  it('refuses what it cannot send, saying why', () => {
    expect(() => readNpy(new Uint8Array(20))).toThrow(/not a .npy file/);
    expect(() => readNpy(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)))).toThrow(/unsupported dtype '\|O'/);
    expect(() => readNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", new Uint8Array(16)))).toThrow(/Fortran/);
    expect(() => readNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", new Uint8Array(8)))).toThrow(/need 16 bytes of data, the file has 8/);
    expect(() => readNpy(npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)))).toThrow(/no v2 datatype/);
  });
});
