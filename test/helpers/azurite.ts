/**
 * @module test/helpers/azurite
 * Starts Azurite's blob service (the Azure Storage emulator, the `azurite`
 * devDependency: no global install) on 127.0.0.1 with a free port, in-memory
 * persistence and telemetry off, waits (bounded) until it answers, and stops
 * it. `tls` serves HTTPS with the test-only certificate in `test/helpers/tls/`
 * and turns on Azurite's basic OAuth (bearer tokens are decoded and their
 * issuer, audience and lifetime checked; signatures are not). The account is
 * Azurite's well-known `devstoreaccount1`, addressed path-style:
 * `<endpoint>` is `http://127.0.0.1:<port>/devstoreaccount1`.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startChildService } from './child-service.js';
import { freePort } from './loopback.js';
import { TEST_CA_FILE } from './raw-http-server.js';

export const AZURITE_ACCOUNT = 'devstoreaccount1';
/** Azurite's published development key (not a secret: every Azurite install has it). */
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const TLS_DIR = path.dirname(TEST_CA_FILE);

export interface Azurite {
  /** The account's blob service URL, path-style: `http(s)://127.0.0.1:<port>/devstoreaccount1`. */
  endpoint: string;
  stop(): Promise<void>;
}

/** The emulator's entry script, or undefined when the package is not installed. */
export function azuriteMain(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('azurite/package.json');
    const main = path.join(path.dirname(pkg), 'dist', 'src', 'blob', 'main.js');
    return existsSync(main) ? main : undefined;
  } catch {
    return undefined;
  }
}

/** Any HTTP answer counts (an unsigned request gets a 4xx): the server is up. */
async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}?comp=list`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Starts Azurite's blob service; rejects if it does not answer within `timeoutMs` (default 30 s). */
export async function startAzurite(opts: { tls?: boolean; timeoutMs?: number } = {}): Promise<Azurite> {
  const main = azuriteMain();
  if (!main) throw new Error('azurite is not installed (npm ci installs it as a devDependency)');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const port = await freePort();
  // In memory (Azurite refuses --location with it); the cwd is a temp dir in case anything is written there.
  const location = await mkdtemp(path.join(tmpdir(), 'kinfer-azurite-'));
  const args = [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--extentMemoryLimit', '256', '--silent', '--disableTelemetry', '--skipApiVersionCheck', '--loose'];
  if (opts.tls) args.push('--cert', path.join(TLS_DIR, 'cert.pem'), '--key', path.join(TLS_DIR, 'key.pem'), '--oauth', 'basic');
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  // The account keys come from Azurite's defaults; an AZURITE_ACCOUNTS in the caller's env must not change them.
  const env = { ...process.env };
  delete env.AZURITE_ACCOUNTS;
  // fetch in this process does not trust the test certificate: a TLS instance is probed with a TCP connect.
  const probe = opts.tls ? () => connects(port) : () => answers(endpoint);
  const cleanup = () => rm(location, { recursive: true, force: true });
  const { stop } = await startChildService({ name: 'azurite', command: process.execPath, args, env, cwd: location, probe, endpoint, timeoutMs, cleanup });
  return { endpoint, stop };
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
