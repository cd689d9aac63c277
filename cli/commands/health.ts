/**
 * @module cli/commands/health
 * `kinfer health [--model m] [--wait ms]`: server liveness and readiness (and
 * a model's). Exit 0 when ready, 1 when not (or unreachable).
 */
import { Command } from 'commander';
import { makeClient, positiveMs, runVerb, withConnection, type ConnectionFlags } from './common.js';

interface HealthFlags extends ConnectionFlags {
  model?: string;
  modelVersion?: string;
  wait?: number;
}

export function healthCommand(): Command {
  const cmd = new Command('health')
    .description('is the server (or a model) live and ready? exit 0 if ready, 1 if not')
    .option('-m, --model <name>', 'also check this model')
    .option('--model-version <v>', 'model version')
    .option('--wait <ms>', 'poll until ready, at most this long', positiveMs);
  withConnection(cmd);
  return cmd.action(async (flags: HealthFlags) => {
    await runVerb('health', flags, async (out) => {
      const client = makeClient(flags);
      try {
        if (flags.wait) {
          await client.waitUntilReady({ timeoutMs: flags.wait, model: flags.model, version: flags.modelVersion }).catch(() => undefined);
        }
        const live = await client.serverLive();
        const ready = await client.serverReady();
        const report: Record<string, unknown> = { url: flags.url, live, ready };
        let ok = live && ready;
        if (flags.model) {
          const modelReady = await client.modelReady(flags.model, { version: flags.modelVersion });
          report.model = { name: flags.model, ready: modelReady };
          ok = ok && modelReady;
        }
        out.data(report);
        out.line(`${flags.url}: live ${live ? 'yes' : 'no'}, ready ${ready ? 'yes' : 'no'}`);
        if (flags.model) out.line(`model ${flags.model}: ready ${(report.model as { ready: boolean }).ready ? 'yes' : 'no'}`);
        return ok;
      } finally {
        client.close();
      }
    });
  });
}
