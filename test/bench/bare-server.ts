/**
 * @module test/bench/bare-server
 * The floor for Node: a bare `node:http` server doing the minimum a v2 JSON
 * infer must do — read the body, `JSON.parse`, turn each input's `data` into
 * a `Float32Array`, and `JSON.stringify` the same tensors back (echo). No
 * framework, no validation, no metrics.
 *
 * A request with `gzip` in `Accept-Encoding` gets the reply gzipped whole
 * with `zlib.gzipSync` at level 1, the least a compressing server does.
 *
 * Given an ONNX session, the floor for serving a model: the same, but the
 * tensors go through `session.run` on the event loop (no worker thread, no
 * queue, no batching) and the outputs are sent back instead.
 *
 * The floor for batching: a request to `/v2/models/bare-b<N>/infer` waits until
 * N such requests are parsed, then all N run as one `session.run` (inputs
 * copied into one tensor along dim 0, outputs split by row). The batcher knows
 * the load's concurrency from the name, which no real server does, and has no
 * queue bound, deadline, validation or metrics: the least batching costs.
 * A batch short of N runs once no request has come for 5 ms (the end of a load;
 * 32 requests can take longer than that to parse, so the wait restarts on each).
 *
 * Run as a script (`bare-server.js <port> [model.onnx]`) it listens on
 * 127.0.0.1 and prints `PORT <n>`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { constants, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import type Ort from 'onnxruntime-node';
import { baselineSessionOptions } from './lib.js';

interface WireInput {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

interface WireOutput {
  name: string;
  shape: readonly number[];
  datatype: string;
  data: number[];
}

/** Sends `out` as a 200 JSON body with its length, gzipped when the client accepts gzip. */
function reply(req: IncomingMessage, res: ServerResponse, out: { model_name: string; outputs: WireOutput[] }): void {
  const text = JSON.stringify(out);
  if (req.headers['accept-encoding']?.includes('gzip')) {
    const gz = gzipSync(text, { level: constants.Z_BEST_SPEED });
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.byteLength });
    res.end(gz);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Sends the error's message as a 400 v2 error body. */
function fail(res: ServerResponse, err: unknown): void {
  res.writeHead(400, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: (err as Error).message }));
}

/** A batch short of its size runs this long after its last request. */
const BATCH_WAIT_MS = 5;

interface Waiting {
  req: IncomingMessage;
  res: ServerResponse;
  inputs: WireInput[];
}

/** `model`: FP32 inputs run through this session; without it every input is echoed (synchronously, no promise). */
export function createBareServer(model?: { ort: typeof Ort; session: Ort.InferenceSession }): Server {
  const run = async (req: IncomingMessage, res: ServerResponse, inputs: WireInput[], m: NonNullable<typeof model>): Promise<void> => {
    const feeds: Record<string, Ort.Tensor> = {};
    for (const i of inputs) feeds[i.name] = new m.ort.Tensor('float32', Float32Array.from(i.data), i.shape);
    const results = await m.session.run(feeds);
    const outputs = Object.entries(results).map(([name, t]) => ({ name, datatype: 'FP32', shape: t.dims, data: Array.from(t.data as Float32Array) }));
    reply(req, res, { model_name: 'bare', outputs });
  };
  // Batches by size, one queue per size; a batch runs whole or fails whole.
  const queues = new Map<number, { waiting: Waiting[]; timer?: NodeJS.Timeout }>();
  const runBatch = async (batch: Waiting[], m: NonNullable<typeof model>): Promise<void> => {
    const first = batch[0]!.inputs;
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [k, input] of first.entries()) {
      const row = input.shape.slice(1).reduce((a, b) => a * b, 1);
      const data = new Float32Array(row * batch.length);
      for (const [j, w] of batch.entries()) {
        const mine = w.inputs[k];
        if (mine?.name !== input.name || mine.data.length !== row) throw new Error(`request ${j} of the batch does not match the first request's input ${input.name}`);
        for (let e = 0; e < row; e++) data[j * row + e] = mine.data[e]!;
      }
      feeds[input.name] = new m.ort.Tensor('float32', data, [batch.length, ...input.shape.slice(1)]);
    }
    const results = Object.entries(await m.session.run(feeds));
    for (const [j, w] of batch.entries()) {
      const outputs = results.map(([name, t]) => {
        const row = t.size / batch.length;
        const data = Array.from((t.data as Float32Array).subarray(j * row, (j + 1) * row));
        return { name, datatype: 'FP32', shape: [1, ...t.dims.slice(1)], data };
      });
      reply(w.req, w.res, { model_name: 'bare', outputs });
    }
  };
  const enqueue = (size: number, w: Waiting, m: NonNullable<typeof model>): void => {
    let q = queues.get(size);
    if (!q) queues.set(size, (q = { waiting: [] }));
    q.waiting.push(w);
    const fire = () => {
      clearTimeout(q.timer);
      q.timer = undefined;
      const batch = q.waiting.splice(0, size);
      if (batch.length === 0) return;
      if (q.waiting.length > 0) q.timer = setTimeout(fire, BATCH_WAIT_MS);
      runBatch(batch, m).catch((err: unknown) => {
        for (const b of batch) if (!b.res.headersSent) fail(b.res, err);
      });
    };
    clearTimeout(q.timer);
    if (q.waiting.length >= size) fire();
    else q.timer = setTimeout(fire, BATCH_WAIT_MS);
  };
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { inputs: WireInput[] };
        if (model) {
          const size = Number(/\/models\/bare-b(\d+)\//.exec(req.url ?? '')?.[1] ?? 0);
          if (size > 0) enqueue(size, { req, res, inputs: body.inputs }, model);
          else run(req, res, body.inputs, model).catch((err: unknown) => fail(res, err));
          return;
        }
        const outputs = body.inputs.map((i) => {
          const data = Float32Array.from(i.data);
          return { name: i.name, datatype: i.datatype, shape: i.shape, data: Array.from(data) };
        });
        reply(req, res, { model_name: 'echo', outputs });
      } catch (err) {
        fail(res, err);
      }
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const modelFile = process.argv[3];
  let model: { ort: typeof Ort; session: Ort.InferenceSession } | undefined;
  if (modelFile) {
    const ort = (await import('onnxruntime-node')).default;
    model = { ort, session: await ort.InferenceSession.create(modelFile, baselineSessionOptions()) };
  }
  const server = createBareServer(model);
  server.keepAliveTimeout = 60_000;
  server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
    process.stdout.write(`PORT ${(server.address() as { port: number }).port}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
