/**
 * @module storage/file
 * `file://<path>` and plain paths (absolute, or relative to the working
 * directory). A folder is used where it is: nothing is copied (the caller gets
 * the source folder back). A single file is copied into the model folder, or
 * unpacked there when it is an archive; `pull.ts` does that through its
 * temp-folder-and-rename path like any download.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgument, NotFound, Unavailable } from '../core/errors.js';

export type LocalArtifact = { kind: 'dir'; path: string } | { kind: 'file'; path: string; size: number };

/** The filesystem path a `file://` URI or plain path names. */
export function filePath(uri: string): string {
  let p = uri;
  if (/^file:/i.test(uri)) {
    const m = /^file:\/\/(.*)$/i.exec(uri);
    if (!m) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: expected file://<path>`);
    p = m[1]!;
    // file://localhost/x is the same as file:///x.
    if (p.startsWith('localhost/')) p = p.slice('localhost'.length);
    try {
      p = decodeURIComponent(p);
    } catch {
      throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: invalid percent-encoding`);
    }
  }
  if (!p) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: empty path`);
  if (p.includes('\0')) throw new InvalidArgument(`storage URI ${JSON.stringify(uri)}: path contains a NUL byte`);
  return path.resolve(p);
}

/** What is at `p`: a folder or a regular file; NotFound otherwise. */
export async function localArtifact(p: string, what: string): Promise<LocalArtifact> {
  let st;
  try {
    st = await stat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFound(`${what}: no such file or folder ${p}`);
    throw new Unavailable(`${what}: cannot read ${p} (${code ?? 'error'})`);
  }
  if (st.isDirectory()) return { kind: 'dir', path: p };
  if (st.isFile()) return { kind: 'file', path: p, size: st.size };
  throw new InvalidArgument(`${what}: ${p} is neither a file nor a folder`);
}
