/**
 * @module protocol/v2/binary
 * Framing of the binary tensor data extension (Triton's `extension_binary_data.md`,
 * also KServe's): the `Inference-Header-Content-Length` split between the JSON
 * header and the binary section, tensors as little-endian row-major bytes,
 * BOOL as one 0/1 byte, BYTES elements each prefixed with a 4-byte
 * little-endian length. Decoding views into the body without copying when the
 * offset is aligned.
 */
import { elementSize, viewAs, type Datatype, type NumericArray, type TensorData } from '../../core/datatypes.js';
import { Internal, invalidArgument, InvalidArgument } from '../../core/errors.js';
import type { SharedMemoryAccess, SharedMemoryRef } from '../../core/shared-memory.js';
import type { Tensor } from '../../core/tensor.js';

export const HEADER_LENGTH_HEADER = 'Inference-Header-Content-Length';

export interface SplitBody {
  /** The JSON header bytes; empty in raw-input mode. */
  json: Uint8Array;
  /** The binary section (everything after the header). */
  binary: Uint8Array;
  /** True when the header value was 0: the body is one input's raw bytes. */
  raw: boolean;
}

/**
 * Splits a request body by the raw `Inference-Header-Content-Length` value.
 * Without the header the whole body is JSON.
 */
export function splitBody(body: Uint8Array, headerValue: string | undefined): SplitBody {
  if (headerValue === undefined) return { json: body, binary: body.subarray(body.byteLength), raw: false };
  const text = headerValue.trim();
  if (!/^\d+$/.test(text)) {
    throw invalidArgument(`${HEADER_LENGTH_HEADER} header`, 'a non-negative integer', headerValue);
  }
  const length = Number(text);
  if (length > body.byteLength) {
    throw new InvalidArgument(
      `${HEADER_LENGTH_HEADER} header: ${length} is beyond the body length of ${body.byteLength} bytes`,
    );
  }
  return { json: body.subarray(0, length), binary: body.subarray(length), raw: length === 0 };
}

/**
 * Reads one tensor's payload from the binary section.
 * @param what names the tensor in messages, e.g. `input 'x' (inputs[1])`.
 */
export function readBinaryTensor(what: string, datatype: Datatype, count: number, bytes: Uint8Array): TensorData {
  if (datatype === 'BYTES') return readBytesElements(what, count, bytes);
  const size = elementSize(datatype)!;
  if (bytes.byteLength !== count * size) {
    throw new InvalidArgument(
      `${what}: binary_data_size ${bytes.byteLength} does not match shape (${count} elements × ${size} bytes = ${count * size})`,
    );
  }
  const data = viewAs(datatype, bytes);
  if (datatype === 'BOOL') checkBoolBytes(what, data as Uint8Array);
  return data;
}

function checkBoolBytes(what: string, data: Uint8Array): void {
  for (let i = 0; i < data.length; i++) {
    if (data[i]! > 1) throw new InvalidArgument(`${what}: BOOL byte ${i} is ${data[i]}, expected 0 or 1`);
  }
}

/** Parses `count` length-prefixed BYTES elements that exactly fill `bytes`; elements are views, not copies. */
export function readBytesElements(what: string, count: number, bytes: Uint8Array): Uint8Array[] {
  // Every element needs at least its 4-byte prefix: bounds the array before allocating it.
  if (count * 4 > bytes.byteLength) {
    throw new InvalidArgument(
      `${what}: ${bytes.byteLength} bytes cannot hold ${count} BYTES elements (4-byte length prefix each)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = new Array(count);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > bytes.byteLength) {
      throw new InvalidArgument(`${what}: BYTES element ${i} length prefix runs past the tensor's binary data`);
    }
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > bytes.byteLength) {
      throw new InvalidArgument(
        `${what}: BYTES element ${i} says ${length} bytes but only ${bytes.byteLength - offset} remain`,
      );
    }
    out[i] = bytes.subarray(offset, offset + length);
    offset += length;
  }
  if (offset !== bytes.byteLength) {
    throw new InvalidArgument(
      `${what}: ${bytes.byteLength - offset} bytes left over after ${count} BYTES elements (shape says ${count})`,
    );
  }
  return out;
}

/** The bytes of a tensor's payload as the binary section carries them. */
export function tensorBytes(t: Tensor): Uint8Array {
  if (t.datatype === 'BYTES') return writeBytesElements(t.data as Uint8Array[]);
  const data = t.data as NumericArray;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (t.datatype !== 'BOOL') return bytes;
  // Backends may hand back any non-zero byte for true; the wire says exactly 1.
  let clean = true;
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! > 1) clean = false;
  if (clean) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] ? 1 : 0;
  return out;
}

/** BYTES elements → 4-byte little-endian length + bytes, one after the other. */
export function writeBytesElements(elements: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const e of elements) total += 4 + e.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const e of elements) {
    view.setUint32(offset, e.byteLength, true);
    out.set(e, offset + 4);
    offset += 4 + e.byteLength;
  }
  return out;
}

/** Concatenates a JSON header and binary chunks into one body. */
export function concatBody(header: Uint8Array, chunks: readonly Uint8Array[]): Uint8Array {
  let total = header.byteLength;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  out.set(header, 0);
  let offset = header.byteLength;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/**
 * Writes an output asked for in shared memory into its region, laid out as in the binary
 * extension; returns the bytes written (what the response names instead of data).
 */
export function writeSharedMemoryOutput(t: Tensor, ref: SharedMemoryRef, regions: SharedMemoryAccess | undefined): number {
  const what = `output '${t.name}'`;
  if (!regions) throw new Internal(`${what}: asked for in shared memory, but the encoder was given no regions`);
  const bytes = tensorBytes(t);
  regions.write(ref, bytes, what);
  return bytes.byteLength;
}
