/**
 * @module repository/tensor-file
 * A tensor's values from a file in a model folder (warm-up samples' `input_data_file`, a
 * sequence state's `initial_state.data_file`): row-major bytes as the binary extension sends
 * them (BYTES: a 4-byte little-endian length, then the bytes, per element).
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import type { Datatype, TensorData } from '../core/datatypes.js';
import { InvalidArgument } from '../core/errors.js';
import { readBinaryTensor } from '../protocol/v2/binary.js';

/**
 * `count` elements of `datatype` from `<modelDir>/<folder>/<file>`. InvalidArgument, naming
 * `what` and the file, when it lies outside the folder, cannot be read or holds another count.
 */
export async function readTensorFile(what: string, datatype: Datatype, count: number, modelDir: string, folder: string, file: string, field: string): Promise<TensorData> {
  const path = normalize(join(modelDir, folder, file));
  if (isAbsolute(file) || !path.startsWith(join(modelDir, folder) + '/')) {
    throw new InvalidArgument(`${what}: ${field} must name a file inside ${folder}/, got ${JSON.stringify(file)}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new InvalidArgument(`${what}: cannot read ${folder}/${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return readBinaryTensor(`${what} (${folder}/${file})`, datatype, count, bytes);
}
