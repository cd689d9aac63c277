/**
 * @module cli/npy
 * Reads NumPy `.npy` files (format versions 1.0, 2.0, 3.0, as documented in
 * `numpy.lib.format`): magic `\x93NUMPY`, version bytes, a little-endian
 * header length, a Python-literal header dict with `descr`, `fortran_order`
 * and `shape`, then the C-order data. Numeric, bool, half, and fixed-width
 * byte (`S`) and unicode (`U`) string arrays map to v2 datatypes; object
 * arrays (pickles) and Fortran order are refused.
 *
 * @example
 * const { datatype, shape, data } = readNpy(await readFile('x.npy'));
 */
import { arrayTypeOf, type Datatype, type NumericArray } from '../runtime/core/datatypes.js';

export interface NpyArray {
  datatype: Datatype;
  shape: number[];
  /** The datatype's TypedArray (FP16 as half bits, BOOL as 0/1), or byte strings for BYTES. */
  data: NumericArray | Uint8Array[];
}

export class NpyError extends Error {
  override name = 'NpyError';
}

const NUMERIC: Record<string, Exclude<Datatype, 'BYTES'>> = {
  b1: 'BOOL',
  u1: 'UINT8',
  u2: 'UINT16',
  u4: 'UINT32',
  u8: 'UINT64',
  i1: 'INT8',
  i2: 'INT16',
  i4: 'INT32',
  i8: 'INT64',
  f2: 'FP16',
  f4: 'FP32',
  f8: 'FP64',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function readNpy(bytes: Uint8Array, what = '.npy file'): NpyArray {
  // A plain view: Buffer#slice would not copy, and pooled Buffers do not start at offset 0.
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new NpyError(`${what}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new NpyError(`${what}: truncated header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else throw new NpyError(`${what}: unsupported .npy format version ${major}.${bytes[7]}`);
  if (start + headerLen > bytes.byteLength) throw new NpyError(`${what}: header of ${headerLen} bytes runs past the end of the file`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError(`${what}: header is not a .npy dict with descr, fortran_order and shape: ${header.trim().slice(0, 120)}`);
  }
  if (fortran === 'True') throw new NpyError(`${what}: Fortran-order arrays are not supported; save with np.ascontiguousarray`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw new NpyError(`${what}: bad dimension '${s}' in shape (${shapeText})`);
      return n;
    });
  const count = shape.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(start + headerLen);

  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(descr);
  if (!m) throw new NpyError(`${what}: unsupported dtype '${descr}' (structured or object arrays cannot be sent)`);
  const [, order, kind, sizeText] = m;
  const size = Number(sizeText);
  if (kind === 'S' || kind === 'U') {
    const width = kind === 'U' ? size * 4 : size;
    need(what, body, count * width, descr, count);
    const out: Uint8Array[] = new Array(count);
    const enc = new TextEncoder();
    for (let i = 0; i < count; i++) {
      const cell = body.subarray(i * width, (i + 1) * width);
      if (kind === 'S') {
        let end = cell.length;
        while (end > 0 && cell[end - 1] === 0) end--; // NumPy pads S with NULs
        out[i] = cell.slice(0, end);
      } else {
        const cv = new DataView(cell.buffer, cell.byteOffset, cell.byteLength);
        let s = '';
        for (let j = 0; j < size; j++) {
          const cp = cv.getUint32(j * 4, order !== '>');
          if (cp === 0) break;
          s += String.fromCodePoint(cp);
        }
        out[i] = enc.encode(s);
      }
    }
    return { datatype: 'BYTES', shape, data: out };
  }
  const datatype = NUMERIC[`${kind}${size}`];
  if (!datatype) throw new NpyError(`${what}: unsupported dtype '${descr}' (no v2 datatype for it)`);
  need(what, body, count * size, descr, count);
  const raw = body.slice(0, count * size); // a copy: aligned, and ours to byte-swap
  if (order === '>' && size > 1) {
    for (let i = 0; i < raw.length; i += size) raw.subarray(i, i + size).reverse();
  }
  const data = new (arrayTypeOf(datatype))(raw.buffer, 0, count);
  if (datatype === 'BOOL') {
    for (let i = 0; i < data.length; i++) if ((data as Uint8Array)[i]! > 1) (data as Uint8Array)[i] = 1;
  }
  return { datatype, shape, data };
}

function need(what: string, body: Uint8Array, bytes: number, descr: string, count: number): void {
  if (body.byteLength < bytes) {
    throw new NpyError(`${what}: ${count} elements of '${descr}' need ${bytes} bytes of data, the file has ${body.byteLength}`);
  }
}

/** Writes a `.npy` (version 1.0) of a numeric array: for tests and for saving outputs. */
export function writeNpy(datatype: Exclude<Datatype, 'BYTES'>, shape: readonly number[], data: NumericArray): Uint8Array {
  const code = Object.entries(NUMERIC).find(([, d]) => d === datatype)![0];
  const descr = code === 'b1' || code === 'u1' || code === 'i1' ? `|${code}` : `<${code}`;
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  dict += ' '.repeat(pad % 64) + '\n';
  const head = new TextEncoder().encode(dict);
  const out = new Uint8Array(10 + head.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, head.length, true);
  out.set(head, 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + head.length);
  return out;
}
