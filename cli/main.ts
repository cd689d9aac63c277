#!/usr/bin/env node
/**
 * @module cli/main
 * The `kinfer` command line. Exit codes: 0 ok, 1 the server (or cluster) said
 * no, 2 usage error.
 */
import { Command, CommanderError } from 'commander';
import { MAX_TIMER_MS } from '../runtime/core/within.js';
import { parsePort } from './options.js';
import type { ModelControlMode, ServeFlags } from './serve.js';

/**
 * The whole program. With `serveOnly` (the container's `kinfer serve`), the
 * client and cluster verbs are left out: their imports (client, image codecs,
 * manifests) cost cold start and `serve` never uses them.
 */
export async function buildProgram(serveOnly = false): Promise<Command> {
  const program = new Command('kinfer')
    .description('Serve ML models as Knative functions speaking the KServe v2 protocol')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('serve')
    .description(
      'start the server: repository mode (default), function mode (MODEL_NAME + STORAGE_URI), or multi-model mode (MULTI_MODEL_SERVER=true)',
    )
    .option('--model-repository <dir>', 'folder of model folders (default: MODEL_REPOSITORY or the bundled models/)')
    .option('--port <port>', 'port to listen on (default: PORT or 8080)', (v) => parsePort(v))
    .option('--grpc-port <port>', 'also serve the v2 gRPC API on this port, h2c or with --grpc-tls-* TLS (default: GRPC_PORT, else off)', (v) => parsePort(v))
    .option('--host <host>', 'address to bind (default: HOST or 0.0.0.0)')
    .option('--function <name|path>', 'call this function\'s lifecycle hooks (default: KINFER_FUNCTION)')
    .option('--repository-monitoring', 'load and unload models as their folders appear and disappear')
    .option('--model-control-mode <mode>', "Triton's: none (every model loaded at start, load/unload refused), poll (as --repository-monitoring), explicit (only --load-model models at start)", (v) => parseControlMode(v))
    .option('--load-model <name>', "with --model-control-mode explicit: a model to load at start; repeatable, '*' for all", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--repository-poll-secs <secs>', 'seconds between repository polls (default 2)', (v) => parsePositiveSeconds(v))
    .option('--grpc-tls-cert <file>', 'serve gRPC over TLS with this PEM certificate chain (default: KINFER_GRPC_TLS_CERT); needs --grpc-tls-key')
    .option('--grpc-tls-key <file>', 'the PEM private key of --grpc-tls-cert (default: KINFER_GRPC_TLS_KEY)')
    .option('--grpc-tls-client-ca <file>', 'mutual TLS: clients must present a certificate from this PEM CA bundle (default: KINFER_GRPC_TLS_CLIENT_CA)')
    .option('--allow-client-shm', 'let clients register system shared-memory regions and send tensors through them (default: KINFER_ALLOW_CLIENT_SHM, else off)')
    .option('--http-restricted-api <categories:key=value>', "Triton's: these REST API categories answer only requests with header key: value; repeatable (default: KINFER_HTTP_RESTRICTED_API, groups separated by ';')", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--grpc-restricted-protocol <categories:key=value>', "Triton's: the same for gRPC, metadata triton-grpc-protocol-<key>; repeatable (default: KINFER_GRPC_RESTRICTED_PROTOCOL)", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .action(async (flags: ServeFlags) => {
      const { runServe } = await import('./serve.js');
      await runServe(flags);
    });
  if (serveOnly) return program;

  const [
    { deployCommand },
    { devCommand },
    { devicesCommand },
    { healthCommand },
    { inferCommand },
    { listCommand },
    { loadCommand, unloadCommand },
    { logsCommand },
    { manifestsCommand, validateCommand },
    { metadataCommand },
    { modelsCommand },
    { pullCommand },
    { statsCommand },
    { statusCommand },
    { tuneCommand },
  ] = await Promise.all([
    import('./commands/deploy.js'),
    import('./commands/dev.js'),
    import('./commands/devices.js'),
    import('./commands/health.js'),
    import('./commands/infer.js'),
    import('./commands/list.js'),
    import('./commands/load.js'),
    import('./commands/logs.js'),
    import('./commands/manifests.js'),
    import('./commands/metadata.js'),
    import('./commands/models.js'),
    import('./commands/pull.js'),
    import('./commands/stats.js'),
    import('./commands/status.js'),
    import('./commands/tune.js'),
  ]);
  // Client and cluster verbs (cli/commands/): each sets process.exitCode itself (0, 1 or 2).
  for (const make of [
    inferCommand,
    healthCommand,
    modelsCommand,
    metadataCommand,
    statsCommand,
    tuneCommand,
    loadCommand,
    unloadCommand,
    devicesCommand,
    pullCommand,
    manifestsCommand,
    validateCommand,
    deployCommand,
    statusCommand,
    listCommand,
    logsCommand,
    devCommand,
  ]) {
    // addCommand (unlike command()) does not inherit exitOverride and the output settings.
    program.addCommand(make().copyInheritedSettings(program));
  }

  return program;
}

/** Seconds a timer can wait: positive, and at most 2^31 - 1 ms (setTimeout fires a longer delay after 1 ms). */
function parsePositiveSeconds(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new CommanderError(2, 'kinfer.number', `expected a positive number, got '${v}'`);
  if (n * 1000 > MAX_TIMER_MS) throw new CommanderError(2, 'kinfer.number', `expected at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds (about 24.8 days), got '${v}'`);
  return n;
}

function parseControlMode(v: string): ModelControlMode {
  if (v !== 'none' && v !== 'poll' && v !== 'explicit') throw new CommanderError(2, 'kinfer.mode', `invalid --model-control-mode '${v}': expected none, poll or explicit`);
  return v;
}

/** `--json` among the arguments (before a `--` that ends the options). */
function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

async function main(): Promise<void> {
  // `kinfer serve …` (and nothing else first) builds the serve verb alone; `kinfer serve --help` still works.
  const program = await buildProgram(process.argv[2] === 'serve');
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander prints its own errors; ours (code kinfer.*) are printed here.
      if (err.code.startsWith('kinfer.')) console.error(`kinfer: ${err.message}`);
      // With --json an error is also an {"error"} object on stdout, as the verbs print theirs (cli/commands/common.ts).
      if (err.exitCode !== 0 && wantsJson(process.argv.slice(2))) {
        process.stdout.write(JSON.stringify({ error: err.message.replace(/^error: /, '') }, null, 2) + '\n');
      }
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    console.error(`kinfer: ${(err as Error).message}`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  console.error(`kinfer: ${(err as Error).message}`);
  process.exit(1);
});
