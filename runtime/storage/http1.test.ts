/**
 * @module storage/http1.test
 * The raw-socket HTTP/1.1 reader: the chunked decoder and head parser as units
 * (every split point, every malformation it must refuse), then `http1Get`
 * against raw `net` servers on 127.0.0.1 that frame responses by hand.
 */
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rawServer, TEST_CA, type RawServer } from '../../test/helpers/raw-http-server.js';
import { ChunkedDecoder, http1Get, parseHead, requestHead, type Http1Response } from './http1.js';
import type { BodySink } from './transfer.js';

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 9)) & 0xff;
  return b;
}

/** `body` chunked into pieces of the given sizes, with an extension and a trailer. */
function chunked(body: Buffer, sizes: number[]): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < body.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, body.length - off);
    parts.push(Buffer.from(`${n.toString(16)}${i === 1 ? ';name=value' : ''}\r\n`), body.subarray(off, off + n), Buffer.from('\r\n'));
    off += n;
  }
  parts.push(Buffer.from('0\r\nX-Checksum: abc\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Feeds `wire` to a decoder in pieces cut at `cuts`, each piece copied into a scratch buffer as a socket read would be. */
function decodeInPieces(wire: Buffer, cuts: number[]): { out: Buffer; done: boolean } {
  const d = new ChunkedDecoder('test');
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, wire.length]) {
    const piece = Buffer.from(wire.subarray(prev, cut));
    const n = d.decode(piece, piece.length);
    out.push(Buffer.from(piece.subarray(0, n)));
    prev = cut;
  }
  return { out: Buffer.concat(out), done: d.done };
}

describe('ChunkedDecoder', () => {
  it('decodes in place at every single split point of the wire bytes', () => {
    const body = pattern(300);
    const wire = chunked(body, [7, 100, 1, 64]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = decodeInPieces(wire, [cut]);
      expect(r.done, `split at ${cut}`).toBe(true);
      expect(Buffer.compare(r.out, body), `split at ${cut}`).toBe(0);
    }
  });

  it('decodes byte by byte, and reports not done until the final CRLF', () => {
    const body = pattern(50);
    const wire = chunked(body, [3, 20]);
    const r = decodeInPieces(wire, Array.from({ length: wire.length - 1 }, (_, i) => i + 1));
    expect(Buffer.compare(r.out, body)).toBe(0);
    expect(r.done).toBe(true);
    expect(decodeInPieces(wire.subarray(0, wire.length - 1), []).done).toBe(false);
  });

  it('refuses what a lenient parser would read as the end of the body', () => {
    const cases: [string, RegExp][] = [
      ['zz\r\nabc\r\n0\r\n\r\n', /chunk size is not hexadecimal/],
      ['\r\n', /chunk size is not hexadecimal/],
      ['3\r\nabcX\r\n', /not followed by CRLF/],
      ['3\nabc', /not ended by CRLF/],
      ['1000000000000000\r\n', /chunk size too large/],
      ['0\r\n\r\nextra', /bytes after the last chunk/],
      ['0\r\nTrailer: x\rY', /trailer not ended by CRLF/],
    ];
    for (const [wire, err] of cases) {
      const b = Buffer.from(wire, 'latin1');
      expect(() => new ChunkedDecoder('h:1').decode(b, b.length), JSON.stringify(wire)).toThrow(err);
    }
  });
});

describe('parseHead', () => {
  it('reads status, lower-cased headers (repeats joined) and the body framing', () => {
    const h = parseHead('HTTP/1.1 200 OK\r\nContent-Length: 12\r\nETag: "v1"\r\nVary: a\r\nvary: b\r\nSet-Cookie: x=1\r\nSet-Cookie: y=2', 'h');
    expect(h).toMatchObject({ status: 200, length: 12, chunked: false });
    expect(h.headers).toMatchObject({ etag: '"v1"', vary: 'a, b', 'set-cookie': ['x=1', 'y=2'] });
    expect(parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5', 'h')).toMatchObject({ chunked: true, length: undefined });
    expect(parseHead('HTTP/1.0 200', 'h')).toMatchObject({ status: 200, length: undefined, chunked: false });
    expect(parseHead('HTTP/1.1 304 Not Modified\r\nContent-Length: 99', 'h')).toMatchObject({ length: 0 });
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 7, 7', 'h').length).toBe(7);
  });

  it('refuses malformed heads with a message naming the host', () => {
    const bad: [string, RegExp][] = [
      ['HTTP/2 200 OK', /bad status line/],
      ['ICY 200 OK', /bad status line/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 12x', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked', /unsupported Transfer-Encoding/],
      ['HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded', /bad header line/],
      ['HTTP/1.1 200 OK\r\nno colon here', /bad header line/],
    ];
    for (const [text, err] of bad) {
      expect(() => parseHead(text, 'models.example:8080'), text).toThrow(err);
      expect(() => parseHead(text, 'models.example:8080')).toThrow(/from models\.example:8080/);
    }
  });
});

describe('requestHead', () => {
  it('sends Host and Connection: close first, then the caller headers; refuses CR/LF injection', () => {
    const head = requestHead(new URL('http://[::1]:8080/a%20b/m.bin?x=1'), { Authorization: 'Bearer t', host: 'evil', Connection: 'keep-alive' });
    expect(head).toBe('GET /a%20b/m.bin?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\nAuthorization: Bearer t\r\n\r\n');
    expect(() => requestHead(new URL('http://h/m'), { 'X-A': 'v\r\nX-Injected: 1' })).toThrow(/X-A: the value contains CR, LF or NUL/);
    expect(() => requestHead(new URL('http://h/m'), { 'X A': 'v' })).toThrow(/not a valid HTTP token/);
  });
});

const servers: RawServer[] = [];
afterEach(async () => {
  // Every connection the reader opened must be closed by now.
  for (const s of servers.splice(0)) await s.close();
});

/** A raw server (test/helpers/raw-http-server.ts); resolves to the URL of /m.bin on it. */
async function serve(reply: (sock: Socket, head: string) => void, opts: { tls?: boolean; host?: string } = {}): Promise<string> {
  const s = await rawServer(reply, { tls: opts.tls });
  servers.push(s);
  return `${opts.tls ? 'https' : 'http'}://${opts.host ?? '127.0.0.1'}:${s.port}/m.bin`;
}

/**
 * Pumps a body into memory; `pauseEvery` makes the sink say "full" every n-th chunk and
 * resume a tick later. A chunk that arrives while paused breaks the PushBody contract and fails.
 */
function collect(r: Http1Response, pauseEvery = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    let paused = false;
    const sink: BodySink = {
      data(chunk) {
        if (paused) reject(new Error('data() called while the sink was paused'));
        parts.push(Buffer.from(chunk));
        if (pauseEvery && ++n % pauseEvery === 0) {
          paused = true;
          setImmediate(() => {
            paused = false;
            r.body.resume();
          });
          return false;
        }
        return true;
      },
      // end() may follow the last data() even when that one asked to pause (transfer.ts PushBody).
      end: () => resolve(Buffer.concat(parts)),
      error: reject,
    };
    r.body.pump(sink);
  });
}

const opts = { stallMs: 5000 };

describe('http1Get', () => {
  it('reads a chunked body split across writes, with a sink that pauses, and skips a 103 interim head', async () => {
    const body = pattern(700_000);
    const wire = chunked(body, [65_536, 3, 200_001, 17]);
    const url = await serve(async (sock) => {
      sock.write('HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (let off = 0; off < wire.length; ) {
        const n = Math.min(wire.length - off, 1 + ((off * 7) % 90_000));
        if (!sock.write(wire.subarray(off, off + n))) await new Promise((r) => sock.once('drain', r));
        off += n;
      }
    });
    const r = await http1Get(new URL(url), {}, opts);
    expect(r.status).toBe(200);
    expect(Buffer.compare(await collect(r, 3), body)).toBe(0);
  });

  it('reads a body that ends with the connection (no Content-Length, no chunking)', async () => {
    const body = pattern(150_000);
    const url = await serve((sock) => {
      sock.write('HTTP/1.0 200 OK\r\n\r\n');
      sock.end(body);
    });
    const r = await http1Get(new URL(url), {}, opts);
    expect(r.headers['content-length']).toBeUndefined();
    expect(Buffer.compare(await collect(r), body)).toBe(0);
  });

  it('ends at Content-Length even when the server sends more, and hands over a bodiless 204', async () => {
    const url = await serve((sock, head) => {
      if (head.startsWith('GET /m.bin')) sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more');
      else sock.end('HTTP/1.1 204 No Content\r\n\r\n');
    });
    expect((await collect(await http1Get(new URL(url), {}, opts))).toString()).toBe('hello');
    const empty = await http1Get(new URL(url.replace('m.bin', 'none')), {}, opts);
    expect(empty.status).toBe(204);
    expect((await collect(empty)).length).toBe(0);
  });

  it('fails the body (never a short success) when the connection drops mid-body or the chunking breaks', async () => {
    const url = await serve((sock, head) => {
      if (head.startsWith('GET /m.bin')) {
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
        sock.end(pattern(40_000));
      } else if (head.startsWith('GET /bad-later')) {
        sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n');
        setTimeout(() => sock.write('q\r\n'), 20);
      } else {
        // Head and broken body in one packet: the error surfaces from the bytes that came with the head.
        sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nq\r\n');
      }
    });
    await expect(collect(await http1Get(new URL(url), {}, opts))).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    await expect(collect(await http1Get(new URL(url.replace('m.bin', 'bad')), {}, opts))).rejects.toThrow(/chunk size is not hexadecimal/);
    await expect(collect(await http1Get(new URL(url.replace('m.bin', 'bad-later')), {}, opts))).rejects.toThrow(/chunk size is not hexadecimal/);
  });

  it('rejects a head over 64 KiB, a silent server (stall), and a refused connection', async () => {
    const big = await serve((sock) => sock.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`));
    await expect(http1Get(new URL(big), {}, opts)).rejects.toThrow(/response head larger than 65536 bytes/);
    const silent = await serve(() => undefined);
    await expect(http1Get(new URL(silent), {}, { stallMs: 100 })).rejects.toThrow(/no response from 127\.0\.0\.1:\d+ for 100 ms/);
    const closed = await serve((sock) => sock.destroy());
    await expect(http1Get(new URL(closed), {}, opts)).rejects.toMatchObject({ code: expect.stringMatching(/ERR_STREAM_PREMATURE_CLOSE|ECONNRESET/) });
  });

  it('stops at once on the abort signal, before and after the head', async () => {
    const url = await serve((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const ac = new AbortController();
    const r = await http1Get(new URL(url), {}, { ...opts, signal: ac.signal });
    const body = collect(r);
    ac.abort(new Error('cancelled by test'));
    await expect(body).rejects.toThrow('cancelled by test');
    await expect(http1Get(new URL(url), {}, { ...opts, signal: ac.signal })).rejects.toThrow('cancelled by test');
  });

  it('reads over TLS the same way: chunked, pausing sink, SNI and host name checked against the trusted certificate', async () => {
    const body = pattern(400_000);
    const wire = chunked(body, [100_000, 7, 33_333]);
    const url = await serve(
      (sock, head) => {
        sock.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Host: ${/\r\nHost: ([^\r]*)/.exec(head)?.[1]}\r\n\r\n`);
        sock.end(wire);
      },
      { tls: true, host: 'localhost' },
    );
    const r = await http1Get(new URL(url), {}, { ...opts, ca: TEST_CA });
    expect(r.headers['x-host']).toMatch(/^localhost:\d+$/);
    // TLS may hand over decrypted records after a pause was asked for: they must wait for resume().
    expect(Buffer.compare(await collect(r, 1), body)).toBe(0);
    const again = await http1Get(new URL(url), {}, { ...opts, ca: TEST_CA });
    // A head read, then a delay before pump(): bytes read meanwhile are kept, in order.
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.compare(await collect(again, 3), body)).toBe(0);
  });

  it("refuses a certificate it does not trust (Node's CA store by default), before sending the request", async () => {
    let requests = 0;
    const url = await serve(() => requests++, { tls: true });
    await expect(http1Get(new URL(url), { Authorization: 'Bearer secret' }, opts)).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(requests).toBe(0);
  });

  it('connects to an IPv6 literal ([::1]) with the brackets only in the Host header', async (ctx) => {
    const server = createServer((sock) => {
      let head = '';
      sock.on('data', (d) => {
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n')) sock.end(`HTTP/1.1 200 OK\r\nContent-Length: ${head.length}\r\n\r\n${head}`);
      });
    });
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::1', () => resolve(true));
    });
    if (!listening) return ctx.skip();
    try {
      const port = (server.address() as { port: number }).port;
      const echoed = (await collect(await http1Get(new URL(`http://[::1]:${port}/m.bin`), {}, opts))).toString('latin1');
      expect(echoed).toMatch(new RegExp(`^GET /m\\.bin HTTP/1\\.1\r\nHost: \\[::1\\]:${port}\r\n`));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
