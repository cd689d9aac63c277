/**
 * @module server/middleware/compress
 * Response compression (gzip, deflate) with node:zlib on the whole body, at
 * level 1 (`Z_BEST_SPEED`, nginx's default `gzip_comp_level`).
 *
 * Why not Hono's `compress()`: it pipes the body through a web
 * `CompressionStream`, which cost ~1.8 ms per 14.6 KB echo reply against
 * ~0.4 ms for `zlib.gzipSync`, and sends the reply chunked, without
 * Content-Length. Python's httpx (the KServe client) and `requests` send
 * `Accept-Encoding: gzip, deflate` by default, so that was the common path:
 * a 1x784 JSON echo at 16 connections fell to ~30% of its uncompressed
 * throughput (README, Benchmarks). Level 1 costs about what level 6 does on
 * small bodies and half of it on a 2.8 MB tensor, for 5–15% larger output.
 *
 * The middleware picks the encoding and sets `Vary: Accept-Encoding` before the
 * handler runs (straight onto the Node response, see `response-headers.ts`).
 * An infer reply is compressed where it is made (`okWithHeaders` in reply.ts, from the
 * bytes in hand, without reading a WHATWG Response back); any other response
 * is read back and compressed after the handler returns.
 *
 * Not compressed: bodies under 1 KiB, types outside `COMPRESSIBLE` (binary
 * tensor bodies are mostly float bytes gzip barely shrinks, at ~10% of the
 * server's CPU for a 1x3x224x224 echo), HEAD, 206, responses already encoded
 * or marked `Cache-Control: no-transform`, and health/readiness probes (a few
 * dozen bytes, polled hardest while a server starts).
 */
import { promisify } from 'node:util';
import { constants, deflate, deflateSync, gzip, gzipSync, type ZlibOptions } from 'node:zlib';
import type { Context, MiddlewareHandler } from 'hono';
import { parseAccept } from 'hono/utils/accept';
import { setResponseHeader } from './response-headers.js';

export type Encoding = 'gzip' | 'deflate';

/** JSON and text; CloudEvents structured mode is JSON. */
export const COMPRESSIBLE = /^(application\/(json|cloudevents\+json)|text\/)/i;
/** Smaller bodies grow or save less than the headers cost. */
export const MIN_COMPRESS_BYTES = 1024;
/** Bodies up to this size compress on the event loop: the thread-pool hop costs more than it frees. */
const SYNC_MAX_BYTES = 32 * 1024;

const PROBE = /\/(live|ready)$/;
const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;
const OPTIONS: ZlibOptions = { level: constants.Z_BEST_SPEED };
const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);

/**
 * The encoding to use for an `Accept-Encoding` header: the highest q among
 * gzip and deflate (gzip on a tie), `*` standing for either one not named;
 * none when both are absent or at q=0.
 */
export function selectEncoding(header: string | undefined): Encoding | undefined {
  if (!header) return undefined;
  const accepts = parseAccept(header);
  const wildcard = accepts.find((a) => a.type === '*')?.q;
  let best: Encoding | undefined;
  let bestQ = 0;
  for (const enc of ['gzip', 'deflate'] as const) {
    const q = accepts.find((a) => a.type.toLowerCase() === enc)?.q ?? wildcard ?? 0;
    if (q > bestQ) {
      best = enc;
      bestQ = q;
    }
  }
  return best;
}

/** `body` encoded; synchronous up to SYNC_MAX_BYTES (a string's length stands in for its byte length). */
export function encodeBody(body: Uint8Array | string, encoding: Encoding): Buffer | Promise<Buffer> {
  if ((typeof body === 'string' ? body.length : body.byteLength) <= SYNC_MAX_BYTES) return encoding === 'gzip' ? gzipSync(body, OPTIONS) : deflateSync(body, OPTIONS);
  return encoding === 'gzip' ? gzipAsync(body, OPTIONS) : deflateAsync(body, OPTIONS);
}

/**
 * For a handler that builds its reply from bytes in hand: the encoding to
 * compress a reply of `contentType` and `byteLength` with, or undefined to
 * send it as is. Either way the reply is decided here, so the middleware
 * leaves it alone; given an encoding, the caller compresses and sets
 * Content-Encoding.
 */
export function claimCompression(c: Context, contentType: string | undefined, byteLength: number): Encoding | undefined {
  const encoding = c.get('pendingCompression') as Encoding | undefined;
  if (encoding === undefined) return undefined;
  c.set('pendingCompression', undefined);
  return byteLength >= MIN_COMPRESS_BYTES && contentType !== undefined && COMPRESSIBLE.test(contentType) ? encoding : undefined;
}

export function compressResponses(): MiddlewareHandler {
  return async function compressResponses(c, next) {
    setResponseHeader(c, 'Vary', 'Accept-Encoding');
    const accept = c.req.header('accept-encoding');
    const encoding = accept === undefined || c.req.method === 'HEAD' || PROBE.test(c.req.path) ? undefined : selectEncoding(accept);
    if (encoding === undefined) {
      await next();
      return;
    }
    c.set('pendingCompression', encoding);
    await next();
    if (c.get('pendingCompression') === undefined) return; // decided by the handler (claimCompression)
    c.set('pendingCompression', undefined);
    const res = c.res;
    const length = res.headers.get('content-length');
    if (
      res.body === null ||
      res.status === 206 ||
      res.headers.has('content-encoding') ||
      res.headers.has('transfer-encoding') ||
      (length !== null && Number(length) < MIN_COMPRESS_BYTES) ||
      !COMPRESSIBLE.test(res.headers.get('content-type') ?? '') ||
      NO_TRANSFORM.test(res.headers.get('cache-control') ?? '')
    ) {
      return;
    }
    const body = new Uint8Array(await res.arrayBuffer());
    const headers = new Headers(res.headers);
    if (body.byteLength < MIN_COMPRESS_BYTES) {
      replaceResponse(c, new Response(body, { status: res.status, headers }));
      return;
    }
    const encoded = await encodeBody(body, encoding);
    headers.delete('content-length');
    headers.set('content-encoding', encoding);
    const etag = headers.get('etag');
    if (etag && !etag.startsWith('W/')) headers.set('etag', `W/${etag}`);
    replaceResponse(c, new Response(encoded as Uint8Array<ArrayBuffer>, { status: res.status, headers }));
  };
}

/**
 * Hono's `c.res = r` merges the old response's headers into `r` (the old
 * Content-Length included) and rewraps its body as a stream; clearing it
 * first keeps `r` as built.
 */
function replaceResponse(c: Context, res: Response): void {
  c.res = undefined;
  c.res = res;
}
