/**
 * @module test/helpers/free-port
 * A loopback port nothing listens on now (bound to 0 and released), for servers a test or the
 * bench starts as child processes and must name a port for.
 */
import { createServer, type AddressInfo } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
