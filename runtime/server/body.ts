/**
 * @module server/body
 * Reads a request body with a size limit, inflating gzip/deflate
 * (`Content-Encoding`) with the same limit on the inflated size.
 */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import type { Context } from 'hono';
import type * as z from 'zod';
import { Cancelled, InvalidArgument, PayloadTooLarge, Unsupported } from '../core/errors.js';
import type { KinferEnv } from './context.js';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/**
 * `alignAt`: a byte offset in the body (the binary extension's JSON header
 * length) that should land 8-byte aligned in memory, so the tensors behind it
 * can be viewed without an aligned copy.
 */
export async function readBody(c: Context, limit: number, alignAt?: number, setting: string | undefined = 'KINFER_MAX_BODY_BYTES'): Promise<Uint8Array> {
  const body = await readDecoded(c, limit, alignAt, setting);
  const capture = (c as Context<KinferEnv>).get('payloadCapture');
  if (capture?.logRequest) capture.request = { body, contentType: c.req.header('content-type') ?? '' };
  return body;
}

async function readDecoded(c: Context, limit: number, alignAt: number | undefined, setting: string | undefined): Promise<Uint8Array> {
  const tooLarge = (size?: number) =>
    new PayloadTooLarge(`request body${size !== undefined ? ` of ${size} bytes` : ''} exceeds the limit of ${limit} bytes (${setting ?? "this route's fixed limit"})`);
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > limit) throw tooLarge(declared);
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const raw =
    incoming && typeof incoming.on === 'function' && !incoming.readableDidRead && !incoming.destroyed
      ? await readIncoming(incoming, limit, tooLarge, alignAt)
      : await readLimited(c.req.raw, limit, tooLarge);
  const encoding = (c.req.header('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new Unsupported(`Content-Encoding '${encoding}' is not supported (use gzip, deflate or identity)`);
  }
  try {
    const out = await (encoding === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: limit });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge();
    throw new InvalidArgument(`request body is not valid ${encoding} data: ${(err as Error).message}`);
  }
}

/**
 * Under @hono/node-server, reads the Node request stream directly. This skips
 * the WHATWG Request + ReadableStream that `c.req.raw.body` builds around it
 * (1x3x224x224 binary echo: 91 -> 154 req/s; README, Benchmarks). Past the limit
 * the rest is discarded, so the 413 can still be sent on the same connection.
 */
function readIncoming(incoming: IncomingMessage, limit: number, tooLarge: () => PayloadTooLarge, alignAt?: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (err: Error | undefined, body?: Uint8Array) => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > limit) {
        chunks.length = 0;
        finish(tooLarge());
        incoming.resume();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined, joinAligned(chunks, total, alignAt));
    const onError = (err: Error) => finish(new Cancelled(`request body not received: ${err.message}`));
    const onClose = () => {
      if (!incoming.readableEnded) finish(new Cancelled('the client closed the connection before the request body was complete'));
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
}

/** The chunks as one buffer; when `alignAt` is given, placed so that byte `alignAt` is 8-byte aligned. */
export function joinAligned(chunks: Buffer[], total: number, alignAt: number | undefined): Uint8Array {
  const first = chunks[0];
  if (alignAt === undefined || !Number.isSafeInteger(alignAt) || alignAt < 0 || alignAt > total) {
    return chunks.length === 1 ? first! : Buffer.concat(chunks, total);
  }
  if (chunks.length === 1 && (first!.byteOffset + alignAt) % 8 === 0) return first!;
  const pad = (8 - (alignAt % 8)) % 8;
  const out = new Uint8Array(new ArrayBuffer(total + pad), pad, total);
  let off = 0;
  for (const ch of chunks) {
    out.set(ch, off);
    off += ch.byteLength;
  }
  return out;
}

async function readLimited(req: Request, limit: number, tooLarge: () => PayloadTooLarge): Promise<Uint8Array> {
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
      throw tooLarge();
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

/**
 * A JSON body (empty means `{}`) checked against `schema`; InvalidArgument naming the field otherwise.
 * Small ones by default (1 MiB, a fixed limit); `limit` and the setting that sizes it for others.
 */
export async function readJsonBody<T extends z.ZodType>(c: Context, schema: T, what: string, limit?: { bytes: number; setting: string }): Promise<z.infer<T>> {
  const bytes = await readBody(c, limit?.bytes ?? 1024 * 1024, undefined, limit ? limit.setting : undefined);
  const text = new TextDecoder().decode(bytes).trim();
  let value: unknown = {};
  if (text !== '') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidArgument(`${what} body is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgument(`${what} body: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
