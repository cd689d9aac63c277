/**
 * @module test/bench/file-server
 * The storage scenario's origin: serves one file over HTTP and HTTPS (the
 * test-only certificate) from its own process, pinned by the harness to the
 * load generator's core, so that the clients measured on the other core
 * (kinfer's pull and curl) are what limits the transfer, not the server.
 *
 * Served in the harness process (createReadStream, a fresh 1 MiB Buffer per
 * read), the same origin topped out at ~300 MB/s on this VM and both clients
 * were waiting on it: the harness's heap made every GC that the stream's
 * external memory triggered expensive. Here the file is read into memory once
 * and written as views of that one buffer: no reads, no allocations per request.
 *
 * Run as a script (`file-server.js <file>`), it prints `{"http": port, "https": port}`.
 * GET and HEAD, `Range: bytes=N-` (what pull() may send to resume), ETag.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { TEST_CA, TEST_KEY } from '../helpers/raw-http-server.js';

/** Bytes per write: what createReadStream's highWaterMark was. */
const CHUNK = 1 << 20;

export function fileHandler(data: Uint8Array): (req: IncomingMessage, res: ServerResponse) => void {
  const size = data.byteLength;
  return (req, res) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start > size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(range ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(size - start),
      'accept-ranges': 'bytes',
      etag: `"${size}"`,
      ...(range ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    let off = start;
    const pump = () => {
      while (off < size && !res.destroyed) {
        const end = Math.min(off + CHUNK, size);
        const more = res.write(data.subarray(off, end));
        off = end;
        if (!more) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: file-server.js <file>');
  const handler = fileHandler(readFileSync(file));
  const servers = [createServer(handler), createHttpsServer({ key: TEST_KEY, cert: TEST_CA }, handler)];
  for (const s of servers) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const [http, https] = servers.map((s) => (s.address() as AddressInfo).port);
  process.stdout.write(`${JSON.stringify({ http, https })}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`file-server: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
