/**
 * @module test/helpers/loopback
 * Loopback plumbing for tests and the bench: a port nothing listens on now (for servers started
 * as child processes), and a TCP server that accepts connections and never answers (stall tests).
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
export { freePort } from '../../runtime/core/free-port.js';

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
export async function silentServer(): Promise<{ port: number; sockets: Socket[]; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer((sock) => void sockets.push(sock));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: async () => {
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
