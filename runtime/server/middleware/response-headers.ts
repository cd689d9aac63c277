/**
 * @module server/middleware/response-headers
 * Sets response headers without a WHATWG `Headers`: those that do not depend
 * on the handler (request id, `Vary`), and the extra headers of an infer
 * reply (`okWithHeaders`). Under @hono/node-server they go straight onto the Node
 * `ServerResponse`, which merges it into `writeHead`: `c.header()` before the
 * handler would make Hono build a WHATWG `Headers` for every response and
 * node-server convert it back, which cost a measurable share of a small
 * request (README, Benchmarks). Elsewhere (`app.request()` in tests) it falls back
 * to `c.header()`.
 */
import type { ServerResponse } from 'node:http';
import type { Context } from 'hono';

export function setResponseHeader(c: Context, name: string, value: string): void {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (outgoing && typeof outgoing.setHeader === 'function' && !outgoing.headersSent) outgoing.setHeader(name, value);
  else c.header(name, value);
}

/**
 * A 200 response of `body` with `headers`, as `c.body(body, 200, headers)`
 * sends it, but with every header except Content-Type set through
 * `setResponseHeader`: given two or more, Hono builds a WHATWG `Headers` for
 * the response and @hono/node-server converts it back (binary-extension echo:
 * 4.7% of the instructions per request; README, Benchmarks).
 */
export function okWithHeaders(c: Context, body: string | Uint8Array, headers: Record<string, string>): Response {
  let contentType: string | undefined;
  for (const name in headers) {
    if (name.toLowerCase() === 'content-type') contentType = headers[name];
    else setResponseHeader(c, name, headers[name]!);
  }
  return contentType === undefined ? c.body(body as string, 200) : c.body(body as string, 200, { 'Content-Type': contentType });
}
