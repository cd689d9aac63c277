/**
 * @module test/helpers/gcs-fixture
 * A local stand-in for the Cloud Storage JSON API calls kinfer makes, on
 * 127.0.0.1: `GET /storage/v1/b/<bucket>/o?prefix=&pageToken=&maxResults=`
 * (paged listing) and `GET /storage/v1/b/<bucket>/o/<object>?alt=media`
 * (with Range). It can require a bearer token, which its `POST /token`
 * (an STS-style token exchange, as an `external_account` key file's
 * `token_url` uses) hands out. Counts media downloads per object.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GcsObjectSpec {
  data: Buffer;
  contentType?: string;
}

export interface GcsFixture {
  url: string;
  /** bucket → object name → object. Replacing an object bumps its generation. */
  put(bucket: string, name: string, data: Buffer | string, contentType?: string): void;
  /** When set, every API call must carry `Authorization: Bearer <token>`. */
  requireToken?: string;
  /** Listing page size cap (default 1000), to exercise paging. */
  pageSize: number;
  /** Media downloads (body sent) of `bucket/name`. */
  downloads(bucket: string, name: string): number;
  requests: { method: string; path: string; headers: http.IncomingHttpHeaders; body?: string }[];
  close(): Promise<void>;
}

export async function startGcsFixture(): Promise<GcsFixture> {
  const buckets = new Map<string, Map<string, GcsObjectSpec & { generation: number }>>();
  const downloads = new Map<string, number>();
  let generation = 1000;

  const fixture: GcsFixture = {
    url: '',
    pageSize: 1000,
    requests: [],
    put(bucket, name, data, contentType) {
      if (!buckets.has(bucket)) buckets.set(bucket, new Map());
      buckets.get(bucket)!.set(name, { data: Buffer.from(data), contentType, generation: ++generation });
    },
    downloads: (bucket, name) => downloads.get(`${bucket}/${name}`) ?? 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: GcsFixture['requests'][number] = { method: req.method ?? 'GET', path: url.pathname + url.search, headers: req.headers };
    fixture.requests.push(rec);

    if (req.method === 'POST' && url.pathname === '/token') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        rec.body = body;
        json(res, 200, {
          access_token: fixture.requireToken ?? 'no-token-required',
          issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          token_type: 'Bearer',
          expires_in: 3600,
        });
      });
      return;
    }
    if (fixture.requireToken && req.headers.authorization !== `Bearer ${fixture.requireToken}`) {
      return json(res, 401, { error: { code: 401, message: 'Anonymous caller does not have storage.objects.list access' } });
    }
    const list = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
    const media = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname);
    if (list) {
      const bucket = buckets.get(decodeURIComponent(list[1]!));
      if (!bucket) return json(res, 404, { error: { code: 404, message: 'The specified bucket does not exist.' } });
      const prefix = url.searchParams.get('prefix') ?? '';
      const size = Math.min(fixture.pageSize, Number(url.searchParams.get('maxResults') ?? 1000));
      const names = [...bucket.keys()].filter((n) => n.startsWith(prefix)).sort();
      const from = Number(url.searchParams.get('pageToken') ?? 0);
      const page = names.slice(from, from + size);
      const items = page.map((name) => {
        const o = bucket.get(name)!;
        const md5 = createHash('md5').update(o.data).digest('base64');
        return {
          kind: 'storage#object',
          name,
          bucket: list[1],
          size: String(o.data.length),
          generation: String(o.generation),
          md5Hash: md5,
          etag: `C${o.generation}`,
          contentType: o.contentType ?? 'application/octet-stream',
        };
      });
      const next = from + size < names.length ? String(from + size) : undefined;
      return json(res, 200, { kind: 'storage#objects', items, ...(next ? { nextPageToken: next } : {}) });
    }
    if (media && url.searchParams.get('alt') === 'media') {
      const bucketName = decodeURIComponent(media[1]!);
      const name = decodeURIComponent(media[2]!);
      const o = buckets.get(bucketName)?.get(name);
      if (!o) return json(res, 404, { error: { code: 404, message: 'No such object' } });
      const gen = url.searchParams.get('generation');
      if (gen && gen !== String(o.generation)) return json(res, 404, { error: { code: 404, message: 'No such object generation' } });
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      const start = range ? Number(range[1]) : 0;
      const body = o.data.subarray(start);
      downloads.set(`${bucketName}/${name}`, (downloads.get(`${bucketName}/${name}`) ?? 0) + 1);
      const headers: http.OutgoingHttpHeaders = {
        'content-type': o.contentType ?? 'application/octet-stream',
        'content-length': String(body.length),
        'x-goog-generation': String(o.generation),
      };
      if (start > 0) headers['content-range'] = `bytes ${start}-${o.data.length - 1}/${o.data.length}`;
      res.writeHead(start > 0 ? 206 : 200, headers);
      return res.end(body);
    }
    json(res, 404, { error: { code: 404, message: `no route ${url.pathname}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fixture.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fixture;
}
