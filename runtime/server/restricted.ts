/**
 * @module server/restricted
 * Triton's endpoint access limits (`--http-restricted-api`, `--grpc-restricted-protocol`): API
 * categories that answer only requests carrying a shared-secret header, so that, say, model
 * load and unload need an operator's key while inference stays open. A group is
 * `<category>[,<category>...]:<key>=<value>`; a category belongs to one group at most. HTTP
 * checks header `<key>` (403 without it), gRPC metadata `triton-grpc-protocol-<key>`
 * (UNAVAILABLE, as Triton).
 *
 * @example
 * const http = parseRestrictions(['model-repository,shared-memory:admin-key=s3cret'], '--http-restricted-api');
 * app.use(restrictHttp(http));
 * // gRPC: grpc-restricted.ts (apart, so a REST-only server does not load @grpc/grpc-js).
 */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { InvalidArgument } from '../core/errors.js';

/** Triton's categories, in its order. */
export const API_CATEGORIES = ['health', 'metadata', 'inference', 'shared-memory', 'model-config', 'model-repository', 'statistics', 'trace', 'logging'] as const;
export type ApiCategory = (typeof API_CATEGORIES)[number];

/** Category → the header (lower case) and the value it must carry. */
export type Restrictions = ReadonlyMap<ApiCategory, { header: string; value: Buffer }>;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Groups as the option takes them (each `<categories>:<key>=<value>`), checked: known
 * categories, each in one group, a header name that is an HTTP token, a non-empty value.
 * `option` names the flag or variable in errors.
 */
export function parseRestrictions(groups: readonly string[], option: string): Restrictions {
  const out = new Map<ApiCategory, { header: string; value: Buffer }>();
  for (const [i, group] of groups.entries()) {
    const colon = group.indexOf(':');
    const eq = group.indexOf('=', colon + 1);
    const names = colon > 0 ? group.slice(0, colon) : '';
    const key = colon > 0 && eq > colon ? group.slice(colon + 1, eq).trim() : '';
    const value = eq > colon ? group.slice(eq + 1) : '';
    // Errors name the group by position, never by its text: a malformed group may be part of a secret.
    if (!names || !key || !value) throw new InvalidArgument(`${option}: group ${i + 1} is not <category>[,<category>...]:<key>=<value>`);
    if (!TOKEN.test(key)) throw new InvalidArgument(`${option}: group ${i + 1}: the header name is not an HTTP token`);
    for (const raw of names.split(',')) {
      const name = raw.trim() as ApiCategory;
      if (!API_CATEGORIES.includes(name)) throw new InvalidArgument(`${option}: group ${i + 1}: a category is not one of ${API_CATEGORIES.join(', ')}`);
      if (out.has(name)) throw new InvalidArgument(`${option}: category '${name}' is in two groups; a category takes one key`);
      out.set(name, { header: key.toLowerCase(), value: Buffer.from(value) });
    }
  }
  return out;
}

/** Constant-time comparison of a presented value with the expected one. */
export function matches(presented: string | undefined, expected: Buffer): boolean {
  if (presented === undefined) return false;
  const got = Buffer.from(presented);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const MODEL = String.raw`/v2/models/[^/]+(?:/versions/[^/]+)?`;
/** REST routes by category (paths as the router sees them). `/metrics` is in none (Triton serves it on its own port). */
const HTTP_ROUTES: readonly [method: string | undefined, path: RegExp, category: ApiCategory][] = [
  ['GET', /^\/v2\/health\/(?:live|ready)$/, 'health'],
  ['GET', new RegExp(`^${MODEL}/ready$`), 'health'],
  ['GET', /^\/$/, 'health'], // KServe V1 liveness
  ['GET', /^\/v1\/models\/[^/]+$/, 'health'], // KServe V1 model readiness
  ['POST', new RegExp(`^${MODEL}/infer$`), 'inference'],
  ['POST', new RegExp(`^${MODEL}/generate(?:_stream)?$`), 'inference'], // Triton's generate extension
  ['POST', /^\/$/, 'inference'], // CloudEvents
  ['POST', /^\/v1\/models\/[^/]+(?:\/versions\/[^/]+)?$/, 'inference'], // KServe V1 :predict / :explain
  ['GET', new RegExp(`^${MODEL}/config$`), 'model-config'],
  ['GET', new RegExp(`^(?:/v2/models|${MODEL})/stats$`), 'statistics'],
  [undefined, /^\/v2\/(?:models\/[^/]+\/)?trace\/setting$/, 'trace'],
  [undefined, /^\/v2\/logging$/, 'logging'],
  [undefined, /^\/v2\/repository\//, 'model-repository'],
  [undefined, /^\/v2\/(?:system|cuda)sharedmemory\//, 'shared-memory'],
  ['GET', new RegExp(`^(?:/v2/?|/v2/models|${MODEL}|/v1/models)$`), 'metadata'],
  ['POST', /^\/v2\/hardware$/, 'metadata'],
];

/** The category of a REST request, or undefined for routes in none (and paths no route serves). */
export function httpCategory(method: string, path: string): ApiCategory | undefined {
  // Hono answers HEAD with the GET route: it must need what GET needs.
  const as = method === 'HEAD' ? 'GET' : method;
  for (const [m, re, category] of HTTP_ROUTES) if ((m === undefined || m === as) && re.test(path)) return category;
  return undefined;
}

/** The middleware: a request to a restricted category without its header's value is 403, before any other work. */
export function restrictHttp(r: Restrictions): MiddlewareHandler {
  return async (c, next) => {
    const category = httpCategory(c.req.method, c.req.path);
    const rule = category && r.get(category);
    if (rule && !matches(c.req.header(rule.header), rule.value)) {
      return c.json({ error: `This API is restricted, expecting header '${rule.header}'` }, 403);
    }
    await next();
  };
}
