/**
 * @module storage/http1
 * One GET over `http://` or `https://` on a raw socket, for downloads. The
 * body is read into one reused 64 KiB buffer per connection (`onread`, which
 * `net` and `tls` sockets both take) and copied once, into the download's write
 * batch. node:http(s) instead allocates a fresh Buffer for every read and copies
 * it again in its parser (`on_body`). On a 200 MiB loopback pull that made plain
 * HTTP ~0.55× curl (this reader ~1.0×), and HTTPS 415–455 ms against 250–350 ms.
 * TLS is Node's default: its CA store (plus NODE_EXTRA_CA_CERTS), SNI for host
 * names, certificates verified.
 *
 * It speaks only what a download needs: `Connection: close`, one request per
 * connection; a response head of at most 64 KiB; bodies framed by
 * Content-Length, `Transfer-Encoding: chunked`, or the connection's end; 1xx
 * heads skipped; 204/304 bodiless. Anything else (obs-fold, a bad Content-Length
 * or chunk size, another transfer coding) is an error, never a guess: a lenient
 * parser would turn a broken body into a silently truncated model.
 *
 * @example
 * const r = await http1Get(new URL('http://models.local/m.onnx'), {}, { stallMs: 30_000, signal });
 * if (r.status === 200) r.body.pump(sink); // sink.data(chunk) copies chunk before returning
 * else r.abort();
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { TransientError, type BodySink, type PushBody } from './transfer.js';

/** A response head plus a body that is not read until `pump` is called. */
export interface Http1Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: PushBody;
  /** Closes the connection; the body (if pumping) ends with an error. */
  abort: () => void;
}

export interface Http1Options {
  /** A connection that sends no response head for this long is a TransientError. */
  stallMs: number;
  signal?: AbortSignal;
  /** Trusted CA certificates (PEM) for `https:`, replacing Node's store; tests use it. */
  ca?: string | Buffer;
}

const MAX_HEAD_BYTES = 64 * 1024;
/** The one buffer each connection reads into (head and body), as node:http's reads. */
const READ_BYTES = 64 * 1024;
/** Hex digits allowed in a chunk size: 2^60 bytes is more than any artifact. */
const MAX_CHUNK_SIZE_DIGITS = 15;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** An HTTP response the parser refuses; not transient (the same server would send it again). */
function malformed(host: string, why: string): Error {
  return Object.assign(new Error(`malformed HTTP response from ${host}: ${why}`), { code: 'HPE_INVALID' });
}

/** Whether `name` is an HTTP token, i.e. a valid header name. */
export function isHeaderName(name: string): boolean {
  return TOKEN.test(name);
}

/** Whether a header value is free of CR, LF and NUL, so it cannot inject a header or end the head. */
export function isSafeHeaderValue(value: string): boolean {
  return !/[\r\n\0]/.test(value);
}

/** The request head. Header names must be tokens and values free of CR, LF and NUL (no injection). */
export function requestHead(url: URL, headers: Record<string, string>): string {
  let head = `GET ${url.pathname || '/'}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!isHeaderName(name)) throw Object.assign(new Error(`request header name ${JSON.stringify(name)} is not a valid HTTP token`), { code: 'ERR_INVALID_HTTP_TOKEN' });
    if (!isSafeHeaderValue(value)) throw Object.assign(new Error(`request header ${name}: the value contains CR, LF or NUL`), { code: 'ERR_INVALID_CHAR' });
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection') continue;
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

interface ParsedHead {
  status: number;
  headers: IncomingHttpHeaders;
  /** Body length by Content-Length; undefined with `chunked` or a close-delimited body. */
  length: number | undefined;
  chunked: boolean;
}

/** Parses one response head (without the blank line). Throws `malformed` on anything it does not accept. */
export function parseHead(text: string, host: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(lines[0]!);
  if (!m) throw malformed(host, `bad status line ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  const headers: IncomingHttpHeaders = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || !isHeaderName(line.slice(0, colon))) throw malformed(host, `bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prior = headers[name];
    if (name === 'set-cookie') headers['set-cookie'] = [...(headers['set-cookie'] ?? []), value];
    else headers[name] = prior === undefined ? value : `${prior as string}, ${value}`;
  }
  const status = Number(m[1]);
  const te = headers['transfer-encoding'] as string | undefined;
  const cl = headers['content-length'] as string | undefined;
  let chunked = false;
  let length: number | undefined;
  if (te !== undefined) {
    if (te.toLowerCase() !== 'chunked') throw malformed(host, `unsupported Transfer-Encoding ${JSON.stringify(te)}`);
    chunked = true;
  } else if (cl !== undefined) {
    // Repeated equal values ("5, 5") are allowed, as in RFC 9110 §8.6; differing ones are not.
    const values = new Set(cl.split(',').map((v) => v.trim()));
    const only = [...values][0]!;
    if (values.size !== 1 || !/^\d{1,15}$/.test(only)) throw malformed(host, `bad Content-Length ${JSON.stringify(cl)}`);
    length = Number(only);
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    chunked = false;
    length = 0;
  }
  return { status, headers, length, chunked };
}

const enum Chunk {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  TrailerLf,
  Done,
}

/**
 * Decodes `Transfer-Encoding: chunked` in place: `decode(buf, n)` moves the data
 * bytes of `buf[0, n)` to its front and returns how many there are. Framing
 * bytes are consumed one by one; data moves with one `copyWithin` per piece.
 */
export class ChunkedDecoder {
  private state = Chunk.Size;
  private size = 0;
  private digits = 0;
  private left = 0;
  /** Bytes of the current trailer line (0 means the line so far is empty). */
  private trailerLine = 0;

  constructor(private readonly host: string) {}

  get done(): boolean {
    return this.state === Chunk.Done;
  }

  decode(buf: Uint8Array, n: number): number {
    let out = 0;
    let i = 0;
    while (i < n && this.state !== Chunk.Done) {
      if (this.state === Chunk.Data) {
        const take = Math.min(this.left, n - i);
        if (out !== i) buf.copyWithin(out, i, i + take);
        out += take;
        i += take;
        this.left -= take;
        if (this.left === 0) this.state = Chunk.DataCr;
        continue;
      }
      this.step(buf[i++]!);
    }
    if (i < n && this.state === Chunk.Done) throw malformed(this.host, 'bytes after the last chunk');
    return out;
  }

  private step(c: number): void {
    switch (this.state) {
      case Chunk.Size: {
        const d = hexValue(c);
        if (d >= 0) {
          if (++this.digits > MAX_CHUNK_SIZE_DIGITS) throw malformed(this.host, 'chunk size too large');
          this.size = this.size * 16 + d;
          return;
        }
        if (this.digits === 0) throw malformed(this.host, 'chunk size is not hexadecimal');
        if (c === 0x0d) this.state = Chunk.SizeLf;
        else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) this.state = Chunk.Ext;
        else if (c === 0x0a) throw malformed(this.host, 'chunk header not ended by CRLF');
        else throw malformed(this.host, 'chunk size is not hexadecimal');
        return;
      }
      case Chunk.Ext:
        if (c === 0x0d) this.state = Chunk.SizeLf;
        else if (c === 0x0a) throw malformed(this.host, 'bare LF in a chunk header');
        return;
      case Chunk.SizeLf:
        if (c !== 0x0a) throw malformed(this.host, 'chunk header not ended by CRLF');
        if (this.size === 0) {
          this.state = Chunk.Trailer;
          this.trailerLine = 0;
        } else {
          this.left = this.size;
          this.state = Chunk.Data;
        }
        this.size = 0;
        this.digits = 0;
        return;
      case Chunk.DataCr:
        if (c !== 0x0d) throw malformed(this.host, 'chunk data not followed by CRLF');
        this.state = Chunk.DataLf;
        return;
      case Chunk.DataLf:
        if (c !== 0x0a) throw malformed(this.host, 'chunk data not followed by CRLF');
        this.state = Chunk.Size;
        return;
      case Chunk.Trailer:
        if (c === 0x0d) this.state = Chunk.TrailerLf;
        else if (++this.trailerLine > MAX_HEAD_BYTES) throw malformed(this.host, 'trailer line too long');
        return;
      case Chunk.TrailerLf:
        if (c !== 0x0a) throw malformed(this.host, 'trailer not ended by CRLF');
        // An empty line ends the trailers (and the body); trailer fields are ignored.
        if (this.trailerLine === 0) this.state = Chunk.Done;
        else {
          this.trailerLine = 0;
          this.state = Chunk.Trailer;
        }
        return;
      default:
        return;
    }
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * Sends one GET and resolves once the response head is in. The socket is then
 * paused until `body.pump(sink)`. Every read lands in one 64 KiB buffer owned
 * by this connection and reused, so the sink must copy what it is handed before
 * returning. Errors before the head reject; errors after it go to `sink.error`
 * (or, if `pump` is never called, are dropped with the socket).
 */
export function http1Get(url: URL, headers: Record<string, string>, opts: Http1Options): Promise<Http1Response> {
  const head = requestHead(url, headers);
  return new Promise<Http1Response>((resolve, reject) => {
    const host = url.host;
    const readBuf = Buffer.allocUnsafeSlow(READ_BYTES);
    let headSoFar: Buffer | undefined;
    let parsed: ParsedHead | undefined;
    /**
     * Body bytes not yet handed on (a copy): those that came with the head, and any
     * read while the sink is paused. A TLS socket may deliver a few more decrypted
     * records after its read callback asked to pause; they wait here, in order.
     */
    let kept: Buffer | undefined;
    /** The sink returned false: nothing more goes to it until `resume()`. */
    let paused = false;
    /** The server ended the connection. */
    let eof = false;
    let sink: BodySink | undefined;
    let chunks: ChunkedDecoder | undefined;
    let left = 0;
    /** The body is complete (or the connection ended a close-delimited one) but not yet handed on. */
    let complete = false;
    let finished = false;
    let settled = false;

    const fail = (err: unknown) => {
      if (finished) return;
      finished = true;
      cleanup();
      socket.destroy();
      if (!settled) {
        settled = true;
        reject(err);
      } else sink?.error(err);
    };
    const finish = () => {
      complete = true;
      if (finished || !sink) return;
      finished = true;
      cleanup();
      socket.destroy();
      sink.end();
    };
    const onAbort = () => fail(opts.signal!.reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' }));
    const cleanup = () => opts.signal?.removeEventListener('abort', onAbort);
    const aborted = () => fail(Object.assign(new Error('aborted'), { code: 'ECONNABORTED' }));

    /** Decodes `n` body bytes at the front of `buf` in place and hands them on; false pauses reading. */
    const body = (buf: Buffer, n: number): boolean => {
      let m = n;
      if (chunks) m = chunks.decode(buf, n);
      else if (parsed!.length !== undefined) {
        // Bytes past Content-Length are the server's mistake; they are not part of the artifact.
        m = Math.min(n, left);
        left -= m;
      }
      const more = m > 0 ? sink!.data(buf.subarray(0, m)) : true;
      if (finished) return false;
      if (chunks ? chunks.done : parsed!.length !== undefined && left === 0) {
        // Kept bytes past the end are not part of the body.
        kept = undefined;
        finish();
        return false;
      }
      paused = !more;
      return more;
    };

    /** Hands `kept` to the sink in read-sized pieces; false when the sink paused or the body ended. */
    const drainKept = (): boolean => {
      while (kept) {
        const piece = kept.length > READ_BYTES ? kept.subarray(0, READ_BYTES) : kept;
        kept = kept.length > READ_BYTES ? kept.subarray(READ_BYTES) : undefined;
        if (!body(piece, piece.length)) return false;
      }
      return !finished;
    };

    /** Takes `n` head bytes from `readBuf`; returns false (pause) once the head is complete. */
    const onHead = (bytes: Buffer): boolean => {
      const all = headSoFar ? Buffer.concat([headSoFar, bytes]) : Buffer.from(bytes);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        headSoFar = all;
        if (all.length > MAX_HEAD_BYTES) fail(malformed(host, `response head larger than ${MAX_HEAD_BYTES} bytes`));
        return !finished;
      }
      headSoFar = undefined;
      let p: ParsedHead;
      try {
        if (end > MAX_HEAD_BYTES) throw malformed(host, `response head larger than ${MAX_HEAD_BYTES} bytes`);
        p = parseHead(all.toString('latin1', 0, end), host);
      } catch (err) {
        fail(err);
        return false;
      }
      const rest = all.subarray(end + 4);
      // An interim response (103 Early Hints, 100 Continue): the real one follows.
      if (p.status < 200) return rest.length > 0 ? onHead(rest) : true;
      parsed = p;
      left = p.length ?? 0;
      if (p.chunked) chunks = new ChunkedDecoder(host);
      kept = rest.length > 0 ? rest : undefined;
      socket.setTimeout(0);
      settled = true;
      if (p.length === 0) complete = true;
      resolve({ status: p.status, headers: p.headers, abort: aborted, body: { pump, resume, destroy: aborted } });
      return false;
    };

    const pump = (s: BodySink) => {
      if (sink) throw new Error('http1: body already pumped');
      sink = s;
      if (finished) return void s.error(Object.assign(new Error('aborted'), { code: 'ECONNABORTED' }));
      resume();
    };
    const resume = () => {
      if (finished) return;
      paused = false;
      try {
        if (!drainKept()) return;
      } catch (err) {
        return fail(err);
      }
      if (complete) return finish();
      if (eof) return fail(prematureBody());
      socket.resume();
    };
    const prematureBody = () => Object.assign(new Error(`connection closed by ${host} before the body ended`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const onread = {
      buffer: readBuf,
      callback: (n: number) => {
        if (finished) return false;
        try {
          if (!parsed) return onHead(readBuf.subarray(0, n));
          if (!sink || paused || kept) {
            // Not pumped yet, or paused: keep the bytes (behind any kept before) until resume().
            kept = kept ? Buffer.concat([kept, readBuf.subarray(0, n)]) : Buffer.from(readBuf.subarray(0, n));
            return false;
          }
          return body(readBuf, n);
        } catch (err) {
          fail(err);
          return false;
        }
      },
    };
    let socket: Socket;
    if (url.protocol === 'https:') {
      // tls.connect takes `onread` like net (Node PR #35753); @types/node does not list it.
      const tlsOptions: ConnectionOptions & { onread: typeof onread } = {
        host: hostname,
        port: Number(url.port || 443),
        // SNI carries a host name, never an address (RFC 6066), as node:https does.
        ...(isIP(hostname) ? {} : { servername: hostname }),
        ALPNProtocols: ['http/1.1'],
        ...(opts.ca ? { ca: opts.ca } : {}),
        onread,
      };
      socket = tlsConnect(tlsOptions);
    } else {
      socket = connect({ host: hostname, port: Number(url.port || 80), onread });
    }
    // Flowing from the start, so that an EOF is seen ('end') even while no one reads; data still
    // only goes through `onread`, and returning false from it pauses the socket.
    socket.resume();
    socket.setTimeout(opts.stallMs, () => fail(new TransientError(`no response from ${host} for ${opts.stallMs} ms`)));
    socket.on('error', fail);
    socket.on('end', () => {
      eof = true;
      if (!parsed) return fail(Object.assign(new Error(`connection closed by ${host} before a response`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      // A body without Content-Length or chunked framing ends with the connection.
      if (!chunks && parsed.length === undefined) complete = true;
      // With bytes still kept (not pumped yet, or paused), resume() decides once they are handed on.
      if (!sink || paused || kept) return;
      if (complete) finish();
      else fail(prematureBody());
    });
    socket.on('close', () => {
      if (!eof && !complete) fail(Object.assign(new Error(`connection to ${host} closed`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.write(head);
  });
}
