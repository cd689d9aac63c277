/**
 * @module test/helpers/raw-http-server
 * A `net` (or, with `tls: true`, `tls`) server on 127.0.0.1 that reads one
 * request head per connection and lets the test write the response bytes by
 * hand, so HTTP framing (splits, chunking, broken bodies, dropped connections)
 * is under the test's control. TLS uses the test-only certificate in
 * `test/helpers/tls/` (`TEST_CA`: trust it to connect).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';

// Beside this file in the sources; three levels up and back down when run from dist/.
const tlsDir = [new URL('tls/', import.meta.url), new URL('../../../test/helpers/tls/', import.meta.url)].find((u) => existsSync(new URL('cert.pem', u)))!;
/** The self-signed certificate (PEM) of TLS raw servers, for `localhost` and `127.0.0.1`. */
export const TEST_CA = readFileSync(new URL('cert.pem', tlsDir), 'utf8');
/** Its file, for NODE_EXTRA_CA_CERTS in child processes. */
export const TEST_CA_FILE = new URL('cert.pem', tlsDir).pathname;
/** Its private key (PEM), public on purpose: test servers only. */
export const TEST_KEY = readFileSync(new URL('key.pem', tlsDir), 'utf8');

export interface RawServer {
  port: number;
  /** The request heads seen, in order (without the blank line). */
  seen: string[];
  /** Closes the server; rejects if a client connection is still open after `ms` (a leaked socket). */
  close(ms?: number): Promise<void>;
}

/** Starts a server; `reply(sock, head, n)` answers the n-th request (1-based). */
export async function rawServer(reply: (sock: Socket, head: string, n: number) => void, opts: { tls?: boolean } = {}): Promise<RawServer> {
  const seen: string[] = [];
  const open = new Set<Socket>();
  const onConnection = (sock: Socket) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let buf = '';
    sock.on('error', () => undefined);
    sock.on('data', (d) => {
      if (buf.includes('\r\n\r\n')) return;
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      seen.push(buf.slice(0, buf.indexOf('\r\n\r\n')));
      reply(sock, seen.at(-1)!, seen.length);
    });
  };
  const server: Server = opts.tls
    ? createTlsServer({ key: TEST_KEY, cert: TEST_CA }, onConnection)
    : createServer(onConnection);
  // A client that refuses the certificate aborts the handshake: not the test's failure.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    seen,
    close(ms = 2000) {
      // close() waits for every open connection: a client that never closed its socket shows here.
      const closed = new Promise<void>((r) => server.close(() => r()));
      let timer: NodeJS.Timeout | undefined;
      const leak = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          for (const sock of open) sock.destroy();
          reject(new Error(`raw server :${(server.address() as { port: number } | null)?.port}: a client connection was left open`));
        }, ms);
      });
      return Promise.race([closed, leak]).finally(() => clearTimeout(timer));
    },
  };
}
