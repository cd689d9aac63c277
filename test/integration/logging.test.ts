/**
 * Triton's logging extension (`GET/POST /v2/logging`) through a real server
 * whose logger writes into memory: the settings read back, the access lines
 * that follow them, and the combinations a level threshold cannot express.
 */
import { Writable } from 'node:stream';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../runtime/server/serve.js';
import { postJson, startTestServer, tempDir } from '../helpers/server.js';
import * as grpc from '@grpc/grpc-js';
import { inferenceClient, unary } from '../helpers/grpc-client.js';

describe('logging extension', () => {
  let server: RunningServer;
  let repo: { dir: string; cleanup: () => Promise<void> };
  const lines: { level: string; event?: string; msg?: string; path?: string }[] = [];

  beforeAll(async () => {
    repo = await tempDir();
    await mkdir(join(repo.dir, 'echo'), { recursive: true });
    await writeFile(join(repo.dir, 'echo', 'config.pbtxt'), 'platform: "echo"\n');
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const logger = pino({ level: 'info', formatters: { level: (label) => ({ level: label }) } }, sink);
    server = await startTestServer({ modelRepository: repo.dir, logger, grpcPort: 0 });
  });
  afterAll(async () => {
    await server.close();
    await repo.cleanup();
  });

  const infer = () => postJson(`${server.url}/v2/models/echo/infer`, { inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [1] }] });
  const accessLines = () => lines.filter((l) => l.msg === 'request').length;

  it('reads the settings of the running level, and names the extension', async () => {
    expect(await (await fetch(`${server.url}/v2/logging`)).json()).toEqual({ log_file: '', log_info: true, log_warning: true, log_error: true, log_verbose_level: 0, log_format: 'default' });
    expect(((await (await fetch(`${server.url}/v2`)).json()) as { extensions: string[] }).extensions).toContain('logging');
  });

  it('turns the access lines off with log_info: false and back on, and verbose on as debug; each change is logged', async () => {
    await infer();
    const before = accessLines();
    expect(before).toBeGreaterThan(0);
    const off = await postJson(`${server.url}/v2/logging`, { log_info: false });
    expect(off.status).toBe(200);
    expect(await off.json()).toMatchObject({ log_info: false, log_warning: true, log_verbose_level: 0 });
    await infer();
    expect(accessLines()).toBe(before);
    const verbose = await postJson(`${server.url}/v2/logging`, { log_info: true, log_verbose_level: 1 });
    expect(await verbose.json()).toMatchObject({ log_info: true, log_verbose_level: 1 });
    await infer();
    expect(accessLines()).toBe(before + 1);
    expect(lines.filter((l) => l.event === 'log_level').map((l) => (l as unknown as { to: string }).to)).toEqual(['warn', 'debug']);
    // Silence, and back: the change to silence was still written, the one back too.
    await postJson(`${server.url}/v2/logging`, { log_error: false, log_warning: false, log_info: false, log_verbose_level: 0 });
    expect(await (await fetch(`${server.url}/v2/logging`)).json()).toMatchObject({ log_error: false, log_warning: false });
    await postJson(`${server.url}/v2/logging`, { log_error: true, log_warning: true, log_info: true });
    // Errors only, then silent: neither shows warnings, the change is still written (at error).
    await postJson(`${server.url}/v2/logging`, { log_info: false, log_warning: false });
    await postJson(`${server.url}/v2/logging`, { log_error: false });
    expect(lines.filter((l) => l.event === 'log_level').map((l) => (l as unknown as { to: string }).to)).toEqual(['warn', 'debug', 'silent', 'info', 'error', 'silent']);
    // A change of format alone leaves the level as it is.
    await postJson(`${server.url}/v2/logging`, { log_error: true, log_warning: true, log_info: true });
    expect(await (await postJson(`${server.url}/v2/logging`, { log_format: 'ISO8601' })).json()).toMatchObject({ log_info: true, log_format: 'ISO8601' });
  });

  it('refuses what it cannot do with 400 and leaves the settings as they were', async () => {
    const cases: [unknown, RegExp][] = [
      [{ log_info: true, log_warning: false }, /log_info: true needs log_warning: true/],
      [{ log_verbose_level: 2, log_info: false }, /log_verbose_level > 0 needs log_info: true/],
      [{ log_file: '/var/log/kinfer.log' }, /stdout .* only/],
      [{ log_format: 'xml' }, /log_format/],
      [{ log_verbose_level: -1 }, /log_verbose_level/],
      [{ log_infos: true }, /logging settings: \(root\): Unrecognized key.*log_infos/],
    ];
    const now = await (await fetch(`${server.url}/v2/logging`)).json();
    for (const [body, message] of cases) {
      const res = await postJson(`${server.url}/v2/logging`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    }
    expect(await (await fetch(`${server.url}/v2/logging`)).json()).toEqual(now);
  });

  it("serves the same settings over gRPC's LogSettings: a change there shows in REST, and refusals are INVALID_ARGUMENT", async () => {
    const client = inferenceClient(server.grpcPort!);
    const call = (settings: object) => unary(client, 'LogSettings', { settings });
    try {
      const now = (await call({})).settings;
      expect(now.log_info).toMatchObject({ parameter_choice: 'bool_param', bool_param: true });
      expect(now.log_format).toMatchObject({ parameter_choice: 'string_param' });
      const changed = (await call({ log_verbose_level: { uint32_param: 1 } })).settings;
      expect(changed.log_verbose_level).toMatchObject({ uint32_param: 1 });
      expect(await (await fetch(`${server.url}/v2/logging`)).json()).toMatchObject({ log_verbose_level: 1, log_info: true });
      const refused = await call({ log_info: { bool_param: true }, log_warning: { bool_param: false } }).catch((e: grpc.ServiceError) => e);
      expect([refused.code, refused.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/log_info: true needs log_warning: true/)]);
      // tritonclient sends an empty value for None: refused, not read as "false".
      const empty = await call({ log_info: {} }).catch((e: grpc.ServiceError) => e);
      expect([empty.code, empty.details]).toEqual([grpc.status.INVALID_ARGUMENT, "log setting 'log_info': no value given (bool_param, uint32_param or string_param)"]);
      expect(await (await fetch(`${server.url}/v2/logging`)).json()).toMatchObject({ log_info: true });
      await call({ log_verbose_level: { uint32_param: 0 } });
      expect(await (await fetch(`${server.url}/v2/logging`)).json()).toMatchObject({ log_verbose_level: 0 });
    } finally {
      client.close();
    }
  });
});
