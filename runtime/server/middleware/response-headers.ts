/**
 * @module server/middleware/response-headers
 * Sets response headers without a WHATWG `Headers`: those that do not depend
 * on the handler (request id, `Vary`), and the extra headers of an infer
 * reply (`okWithHeaders`, reply.ts). Under @hono/node-server they go straight onto the Node
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
