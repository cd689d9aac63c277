/**
 * @module server/body
 * Reads a request body with a size limit, inflating gzip/deflate
 * (`Content-Encoding`) with the same limit on the inflated size.
 */
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import type { Context } from 'hono';
import { InvalidArgument, PayloadTooLarge, Unsupported } from '../core/errors.js';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export async function readBody(c: Context, limit: number): Promise<Uint8Array> {
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > limit) throw tooLarge(declared, limit);
  const raw = await readLimited(c.req.raw, limit);
  const encoding = (c.req.header('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new Unsupported(`Content-Encoding '${encoding}' is not supported (use gzip, deflate or identity)`);
  }
  try {
    const out = await (encoding === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: limit });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(undefined, limit);
    throw new InvalidArgument(`request body is not valid ${encoding} data: ${(err as Error).message}`);
  }
}

async function readLimited(req: Request, limit: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(undefined, limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const ch of chunks) {
    out.set(ch, off);
    off += ch.byteLength;
  }
  return out;
}

function tooLarge(size: number | undefined, limit: number): PayloadTooLarge {
  return new PayloadTooLarge(
    `request body${size !== undefined ? ` of ${size} bytes` : ''} exceeds the limit of ${limit} bytes (KINFER_MAX_BODY_BYTES)`,
  );
}
