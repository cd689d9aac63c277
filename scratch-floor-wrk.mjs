import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { writeMlpRepo, FEATURES } from './dist/test/bench/scenarios/model-path.js';
import { floats, v2JsonBody, tempRepo, runScript } from './dist/test/bench/lib.js';
const repo = await tempRepo('exp-');
const model = await writeMlpRepo(repo.dir);
const port = 18000 + Math.floor(Math.random() * 1000);
const child = spawn('taskset', ['-c', '1', process.execPath, 'scratch-floor.mjs', model, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => { out += d; });
while (!out.includes('PORT')) await new Promise((r) => setTimeout(r, 100));
const body = v2JsonBody('x', [1, FEATURES], floats(FEATURES, 3));
writeFileSync('/tmp/exp/body.json', body);
writeFileSync('/tmp/exp/post.lua', `wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local f = io.open("/tmp/exp/body.json", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"us":%d,"p50":%d,"p99":%d,"status":%d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status))
end
`);
const w = (d) => execFileSync('taskset', ['-c', '0', 'wrk', '-t1', '-c1', `-d${d}s`, '-s', '/tmp/exp/post.lua', `http://127.0.0.1:${port}/`]).toString();
w(2);
const o = w(5);
const j = JSON.parse(o.trim().split('\n').pop());
console.log('served', (j.requests / j.us * 1e6).toFixed(1), 'req/s', j);
const b = await runScript('ort-baseline.js', ['throughput', model, 'x', String(FEATURES), '1', '3'], { cpu: 1, timeoutMs: 60000 });
console.log('in-process', b.runs[0].itemsPerSec.toFixed(1), '/s =', b.runs[0].msPerRun.toFixed(2), 'ms');
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));
console.log(out);
await repo.cleanup();
