/**
 * @module cli/commands/dev
 * `kinfer dev [function...]`: the functions served locally as Knative would, behind one port
 * that routes by `Host`, each scaled from and to zero and between replicas as Knative's KPA scales pods (knative/local-serving.ts), their Triggers
 * fed by local Brokers on the same port (knative/local-broker.ts). Runs until Ctrl-C, which stops
 * every function's process.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { parsePort } from '../options.js';
import { positiveInt, positiveMs, positiveSeconds, runVerb, UsageError } from './common.js';

interface DevFlags {
  port: number;
  host: string;
  functions?: string;
  idleSeconds: number;
  storageUri?: string[];
  namespace: string;
  retry: number;
  backoffDelayMs: number;
  maxReplicas: number;
}

export function devCommand(): Command {
  return new Command('dev')
    .description('serve the functions locally as Knative does: one port routing by Host, each function processes scaled from zero to maxScale on concurrency or rps')
    .argument('[function...]', 'functions to serve (default: all)')
    .option('--port <n>', 'port of the local ingress (0: any free port)', (v: string) => parsePort(v), 8080)
    .option('--host <addr>', 'address of the local ingress', '127.0.0.1')
    .option('--functions <dir>', 'compiled function definitions (default: dist/functions of the package)')
    .option('--idle-seconds <n>', 'a minScale 0 function stops after this long without requests', positiveSeconds, 30)
    .option('--max-replicas <n>', 'processes per function at most, below its maxScale (each loads its model)', positiveInt, 10)
    .option('--namespace <ns>', "the namespace in the Brokers' paths (/<namespace>/<broker>) and the functions' Host names", 'default')
    .option('--retry <n>', "a Trigger's retries of a failed delivery (Knative's default: 10)", (v: string) => (v === '0' ? 0 : positiveInt(v)), 10)
    .option('--backoff-delay-ms <n>', 'the first retry waits this long, each next one twice as long (Knative: PT0.2S, exponential)', positiveMs, 200)
    .option('--storage-uri <fn=uri>', "replace a function's storageUri (e.g. a path that exists only in the image); repeatable", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .action(async (only: string[], flags: DevFlags) => {
      await runVerb('dev', {}, async () => {
        const k = await import('../../knative/commands.js');
        const dir = flags.functions ?? join(k.repoRoot(), 'dist', 'functions');
        const defs = await k.loadFunctions(dir);
        const unknown = only.filter((fn) => !defs.some((d) => d.spec.name === fn));
        if (unknown.length > 0) throw new UsageError(`no function ${unknown.join(', ')}; functions: ${defs.map((d) => d.spec.name).join(', ')}`);
        const specs = defs.map((d) => d.spec).filter((s) => only.length === 0 || only.includes(s.name));
        const storageUris: Record<string, string> = {};
        // The image's model folders (the Dockerfile copies functions/<fn>/model to /opt/kinfer/models/<fn>) come from the source tree here.
        for (const s of specs) {
          const m = /^file:\/\/(\/opt\/kinfer\/models\/([^/]+))\/?$/.exec(s.model?.storageUri ?? '');
          const local = m && join(k.repoRoot(), 'functions', m[2]!, 'model');
          if (m && local && !existsSync(m[1]!) && existsSync(local)) storageUris[s.name] = `file://${local}`;
        }
        for (const pair of flags.storageUri ?? []) {
          const [fn, uri] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
          if (!pair.includes('=') || !specs.some((s) => s.name === fn) || !uri) throw new UsageError(`--storage-uri ${JSON.stringify(pair)}: expected <function>=<uri> naming a served function`);
          storageUris[fn] = uri;
        }
        const note = (text: string) => process.stderr.write(`kinfer dev: ${text}\n`);
        // Taken before the minScale ≥ 1 functions start, so a Ctrl-C then still stops them.
        const stopped = new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        const serving = await k.startLocalServing({
          functions: specs,
          command: [process.execPath, process.argv[1]!],
          idleMs: flags.idleSeconds * 1000,
          storageUris,
          modules: Object.fromEntries(specs.flatMap((s) => ['index.js', 'index.ts'].map((f) => join(dir, s.name, f)).filter((f) => existsSync(f)).slice(0, 1).map((f) => [s.name, f]))),
          port: flags.port,
          host: flags.host,
          maxReplicas: flags.maxReplicas,
          onOutput: (fn, line, replica) => process.stdout.write(`[${replica > 1 ? `${fn}#${replica}` : fn}] ${line}\n`),
          onEvent: (fn, text) => note(`${fn}: ${text}`),
          namespace: flags.namespace,
          delivery: { retry: flags.retry, backoffPolicy: 'exponential', backoffDelayMs: flags.backoffDelayMs },
          onBrokerEvent: note,
        });
        note(`listening on ${serving.url}; call a function with Host: <function>.localhost (${specs.map((s) => s.name).join(', ')}), e.g. curl -H 'Host: ${specs[0]?.name ?? 'echo'}.localhost' ${serving.url}/v2/health/ready`);
        for (const [name, url] of Object.entries(serving.brokers)) note(`broker ${name}: send CloudEvents to ${url} (its Triggers: ${specs.flatMap((s) => s.triggers.filter((t) => t.broker === name).map((t) => `${s.name}-${t.name}`)).join(', ')})`);
        await stopped;
        await serving.close();
      });
    });
}
