/**
 * @module test/helpers/http-fixture
 * A real HTTP server on 127.0.0.1 for storage tests: serves registered files
 * with ETag/Last-Modified, conditional GET (304), Range/If-Range (206); can
 * drop the connection mid-body, answer 5xx, stall, or require a header; counts
 * requests and body downloads per path. Also builds tar and zip archives byte
 * by byte (so tests can craft hostile entries no archiver would write), and a
 * counting proxy to put in front of another server (moto).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32, gzipSync } from 'node:zlib';

export interface FixtureFile {
  body: Buffer;
  contentType?: string;
  /** Default: a hash of the body. `null` sends no ETag. */
  etag?: string | null;
  /** Default: a fixed date. `null` sends none. */
  lastModified?: string | null;
  /** Default true: advertise and honour byte ranges. */
  ranges?: boolean;
  /** Send no Content-Length (chunked), so the client learns the size only by reading. */
  noLength?: boolean;
}

export interface Faults {
  /** Answer this many requests with `status5xx` (default 503) first. */
  fail5xx?: number;
  status5xx?: number;
  /** Drop the connection after this many body bytes, for the next `dropTimes` bodies. */
  dropAfter?: number;
  dropTimes?: number;
  /** Send headers and then nothing for this long (ms), for the next `stallTimes` requests. */
  stallMs?: number;
  stallTimes?: number;
  /** Send the body in chunks of this size with this delay (ms) between them. */
  chunkSize?: number;
  chunkDelayMs?: number;
  /** Require this header (lower-case name) with this exact value, else 401. */
  requireHeader?: [string, string];
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Body bytes actually sent. */
  bytes: number;
}

export interface HttpFixture {
  url: string;
  files: Map<string, FixtureFile>;
  faults: Map<string, Faults>;
  requests: RequestRecord[];
  /** Requests on `path` that sent a body (200 or 206). */
  bodies(path: string): number;
  close(): Promise<void>;
}

export async function startHttpFixture(): Promise<HttpFixture> {
  const files = new Map<string, FixtureFile>();
  const faults = new Map<string, Faults>();
  const requests: RequestRecord[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    const rec: RequestRecord = { method: req.method ?? 'GET', path: p, status: 0, headers: req.headers, bytes: 0 };
    requests.push(rec);
    const send = (status: number, headers: http.OutgoingHttpHeaders = {}, body?: Buffer) => {
      rec.status = status;
      res.writeHead(status, headers);
      if (body) rec.bytes += body.length;
      res.end(body);
    };
    const f = faults.get(p) ?? {};
    if (f.requireHeader && req.headers[f.requireHeader[0]] !== f.requireHeader[1]) return send(401, {}, Buffer.from('unauthorized'));
    if (f.fail5xx && f.fail5xx > 0) {
      f.fail5xx--;
      return send(f.status5xx ?? 503, {}, Buffer.from('try later'));
    }
    const file = files.get(p);
    if (!file) return send(404, {}, Buffer.from('not found'));
    const etag = file.etag === undefined ? `"${createHash('sha1').update(file.body).digest('hex')}"` : file.etag;
    const lastModified = file.lastModified === undefined ? 'Wed, 21 Oct 2015 07:28:00 GMT' : file.lastModified;
    const base: http.OutgoingHttpHeaders = {};
    if (etag) base.etag = etag;
    if (lastModified) base['last-modified'] = lastModified;
    if (file.contentType) base['content-type'] = file.contentType;
    if (file.ranges !== false) base['accept-ranges'] = 'bytes';
    if (etag && req.headers['if-none-match'] === etag) return send(304, base);
    if (!etag && lastModified && req.headers['if-modified-since'] === lastModified) return send(304, base);

    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    const ifRange = req.headers['if-range'];
    if (range && file.ranges !== false && (!ifRange || ifRange === etag || ifRange === lastModified)) start = Number(range[1]);
    const body = file.body.subarray(start);
    const status = start > 0 ? 206 : 200;
    const headers: http.OutgoingHttpHeaders = file.noLength ? { ...base } : { ...base, 'content-length': String(body.length) };
    if (status === 206) headers['content-range'] = `bytes ${start}-${file.body.length - 1}/${file.body.length}`;
    rec.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return res.end();

    if (f.stallMs && (f.stallTimes ?? 1) > 0) {
      f.stallTimes = (f.stallTimes ?? 1) - 1;
      res.flushHeaders();
      const t = setTimeout(() => res.destroy(), f.stallMs);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (f.dropAfter !== undefined && (f.dropTimes ?? 1) > 0) {
      f.dropTimes = (f.dropTimes ?? 1) - 1;
      const part = body.subarray(0, f.dropAfter);
      rec.bytes += part.length;
      res.write(part, () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (f.chunkSize) {
      let off = 0;
      const step = () => {
        if (res.destroyed) return;
        if (off >= body.length) return res.end();
        const c = body.subarray(off, off + f.chunkSize!);
        off += c.length;
        rec.bytes += c.length;
        res.write(c);
        setTimeout(step, f.chunkDelayMs ?? 0);
      };
      return step();
    }
    rec.bytes += body.length;
    res.end(body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    files,
    faults,
    requests,
    bodies: (p) => requests.filter((r) => r.path === p && (r.status === 200 || r.status === 206) && r.method === 'GET').length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface ArchiveEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link';
  body?: string | Buffer;
  /** Target of a symlink or hard link. */
  target?: string;
  mode?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A POSIX ustar archive, entries exactly as given (no sanitising). */
export function makeTar(entries: ArchiveEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.type === undefined || e.type === 'file' ? Buffer.from(e.body ?? '') : Buffer.alloc(0);
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(body.length, 12), 124, 'ascii');
    h.write(octal(1_700_000_000, 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write({ file: '0', dir: '5', symlink: '2', link: '1' }[e.type ?? 'file'], 156, 'ascii');
    if (e.target) h.write(e.target, 157, 100, 'utf8');
    h.write('ustar\0', 257, 'ascii');
    h.write('00', 263, 'ascii');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    blocks.push(h, body);
    const pad = (512 - (body.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function makeTarGz(entries: ArchiveEntry[]): Buffer {
  return gzipSync(makeTar(entries));
}

/** A zip (stored, no compression) with Unix modes, entries exactly as given. Symlinks carry their target as content. */
export function makeZip(entries: ArchiveEntry[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name, 'utf8');
    const data = e.type === 'symlink' ? Buffer.from(e.target ?? '') : e.type === 'dir' ? Buffer.alloc(0) : Buffer.from(e.body ?? '');
    const typeBits = e.type === 'symlink' ? 0o120000 : e.type === 'dir' ? 0o040000 : 0o100000;
    const mode = typeBits | (e.mode ?? (e.type === 'dir' ? 0o755 : 0o644));
    const crc = crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(0x0800, 6);
    lh.writeUInt16LE(0, 8);
    lh.writeUInt16LE(0, 10);
    lh.writeUInt16LE(0x21, 12);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(0, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE((3 << 8) | 20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(0, 10);
    cd.writeUInt16LE(0, 12);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE((mode << 16) >>> 0, 38);
    cd.writeUInt32LE(offset, 42);
    locals.push(lh, name, data);
    central.push(cd, name);
    offset += lh.length + name.length + data.length;
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cdBuf, end]);
}

export interface CountingProxy {
  url: string;
  requests: { method: string; path: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** A pass-through proxy on 127.0.0.1 that records each request before forwarding it to `target`. */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  const requests: CountingProxy['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers });
    const up = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
