// Instrumented floor: where does c=1 time go?
import { createServer } from 'node:http';
import ort from 'onnxruntime-node';
import { baselineSessionOptions } from './dist/test/bench/lib.js';
const model = process.argv[2];
const session = await ort.InferenceSession.create(model, baselineSessionOptions());
const rec = { gap: [], read: [], prep: [], run: [], send: [], str: [] };
let lastEnd = 0;
const server = createServer((req, res) => {
  const t0 = performance.now();
  if (lastEnd) rec.gap.push(t0 - lastEnd);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const t1 = performance.now();
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const i = body.inputs[0];
    const feeds = { x: new ort.Tensor('float32', Float32Array.from(i.data), i.shape) };
    const t2 = performance.now();
    const out = await session.run(feeds);
    const t3 = performance.now();
    const text = JSON.stringify({ model_name: 'b', outputs: Object.entries(out).map(([name, t]) => ({ name, datatype: 'FP32', shape: t.dims, data: Array.from(t.data) })) });
    const t3b = performance.now(); rec.str.push(t3b - t3);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    const t4 = performance.now();
    lastEnd = t4;
    rec.read.push(t1 - t0); rec.prep.push(t2 - t1); rec.run.push(t3 - t2); rec.send.push(t4 - t3);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[3]), '127.0.0.1', () => process.stdout.write('PORT\n'));
process.on('SIGTERM', () => {
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const o = {};
  for (const [k, v] of Object.entries(rec)) o[k] = `med ${(med(v) * 1000).toFixed(0)}us mean ${(mean(v) * 1000).toFixed(0)}us n ${v.length}`;
  process.stdout.write(JSON.stringify(o, null, 1) + '\n');
  process.exit(0);
});
