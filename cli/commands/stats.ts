/**
 * @module cli/commands/stats
 * `kinfer stats [model]`: Triton's statistics extension as a table, one row
 * per model version: requests (ok/failed), items and executions (their ratio
 * is the mean batch), and the mean request, queue and compute times per
 * request, as perf_analyzer prints its server-side figures.
 */
import { Command } from 'commander';
import type { DurationStat, ModelStatistics } from '../../client/index.js';
import { makeClient, runVerb, withConnection, type ConnectionFlags } from './common.js';

const HEADER = ['model', 'version', 'ok', 'failed', 'items', 'executions', 'mean batch', 'request µs', 'queue µs', 'compute µs', 'cache hits'];

export function statsCommand(): Command {
  const cmd = new Command('stats')
    .description("show each model's request, batch and timing statistics since it was loaded (every model without one)")
    .argument('[model]', 'model name')
    .option('--model-version <v>', 'model version');
  withConnection(cmd);
  return cmd.action(async (model: string | undefined, flags: ConnectionFlags & { modelVersion?: string }) => {
    await runVerb('stats', flags, async (out) => {
      const client = makeClient(flags);
      try {
        const stats = await client.modelStatistics(model, { version: flags.modelVersion });
        out.data({ model_stats: stats });
        if (stats.length === 0) {
          out.line('(no models loaded)');
          return;
        }
        out.line(HEADER.join('\t'));
        for (const s of stats) out.line(statsRow(s).join('\t'));
      } finally {
        client.close();
      }
    });
  });
}

/** One table row; means per request (µs, one decimal), '-' where nothing was counted. */
export function statsRow(s: ModelStatistics): string[] {
  const i = s.inference_stats;
  const meanUs = (d: DurationStat, per = d.count) => (per > 0 ? (d.ns / per / 1000).toFixed(1) : '-');
  const compute = { count: i.compute_infer.count, ns: i.compute_input.ns + i.compute_infer.ns + i.compute_output.ns };
  return [
    s.name,
    s.version ?? '-',
    String(i.success.count),
    String(i.fail.count),
    String(s.inference_count),
    String(s.execution_count),
    s.execution_count > 0 ? (s.inference_count / s.execution_count).toFixed(2) : '-',
    meanUs(i.success),
    meanUs(i.queue),
    meanUs(compute),
    String(i.cache_hit.count),
  ];
}
