/**
 * @module test/helpers/raw-http-server
 * A `net` server on 127.0.0.1 that reads one request head per connection and
 * lets the test write the response bytes by hand, so HTTP framing (splits,
 * chunking, broken bodies, dropped connections) is under the test's control.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface RawServer {
  port: number;
  /** The request heads seen, in order (without the blank line). */
  seen: string[];
  /** Closes the server; rejects if a client connection is still open after `ms` (a leaked socket). */
  close(ms?: number): Promise<void>;
}

/** Starts a server; `reply(sock, head, n)` answers the n-th request (1-based). */
export async function rawServer(reply: (sock: Socket, head: string, n: number) => void): Promise<RawServer> {
  const seen: string[] = [];
  const open = new Set<Socket>();
  const server: Server = createServer((sock) => {
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
  });
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
