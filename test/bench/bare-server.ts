/**
 * @module test/bench/bare-server
 * The floor for Node: a bare `node:http` server doing the minimum a v2 JSON
 * infer must do — read the body, `JSON.parse`, turn each input's `data` into
 * a `Float32Array`, and `JSON.stringify` the same tensors back (echo). No
 * framework, no validation, no metrics. Run as a script it listens on
 * 127.0.0.1 and prints `PORT <n>`.
 */
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

interface WireInput {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

export function createBareServer(): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { inputs: WireInput[] };
        const outputs = body.inputs.map((i) => {
          const data = Float32Array.from(i.data);
          return { name: i.name, datatype: i.datatype, shape: i.shape, data: Array.from(data) };
        });
        const text = JSON.stringify({ model_name: 'echo', outputs });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      } catch (err) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: (err as Error).message }));
      }
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = createBareServer();
  server.keepAliveTimeout = 60_000;
  server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
    process.stdout.write(`PORT ${(server.address() as { port: number }).port}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
