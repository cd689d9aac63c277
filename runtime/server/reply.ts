/**
 * @module server/reply
 * The 200 reply of an infer route (v2 and CloudEvents): body, extra headers,
 * and compression when the client asked for it.
 */
import type { Context } from 'hono';
import type { KinferEnv } from './context.js';
import { claimCompression, encodeBody, type Encoding } from './middleware/compress.js';
import { setResponseHeader } from './middleware/response-headers.js';

/**
 * A 200 response of `body` with `headers`, as `c.body(body, 200, headers)`
 * sends it, but with every header except Content-Type set through
 * `setResponseHeader`: given two or more, Hono builds a WHATWG `Headers` for
 * the response and @hono/node-server converts it back (binary-extension echo:
 * 4.7% of the instructions per request; README, Benchmarks).
 *
 * Compresses the body here when the client asked for it (see `compress.ts`),
 * from the bytes in hand; asynchronously only for large bodies.
 */
export function okWithHeaders(c: Context<KinferEnv>, body: string | Uint8Array, headers: Record<string, string>): Response | Promise<Response> {
  let contentType: string | undefined;
  for (const name in headers) {
    if (name.toLowerCase() === 'content-type') contentType = headers[name];
    else setResponseHeader(c, name, headers[name]!);
  }
  // Payload logging keeps the body as answered, before compression (a copy: the reply owns its bytes).
  const capture = c.get('payloadCapture');
  if (capture?.logResponse) capture.response = { body: Buffer.from(body), contentType: contentType ?? 'text/plain; charset=UTF-8' };
  // A string's length for its byte length: JSON replies are ASCII but for names and BYTES data.
  const encoding = claimCompression(c, contentType, typeof body === 'string' ? body.length : body.byteLength);
  if (encoding === undefined) return reply(c, body, contentType);
  const encoded = encodeBody(body, encoding);
  return encoded instanceof Promise
    ? encoded.then((out) => compressedReply(c, out, encoding, contentType))
    : compressedReply(c, encoded, encoding, contentType);
}

function compressedReply(c: Context, body: Uint8Array, encoding: Encoding, contentType: string | undefined): Response {
  setResponseHeader(c, 'Content-Encoding', encoding);
  return reply(c, body, contentType);
}

function reply(c: Context, body: string | Uint8Array, contentType: string | undefined): Response {
  return contentType === undefined ? c.body(body as string, 200) : c.body(body as string, 200, { 'Content-Type': contentType });
}
