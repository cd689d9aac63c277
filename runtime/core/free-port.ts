/**
 * @module core/free-port
 * A port nothing listens on at 127.0.0.1 now (the OS picks it), for a child process to listen on
 * right after: `kinfer dev`'s function processes, and the tests' and the bench's servers.
 */
import { createServer, type AddressInfo } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
