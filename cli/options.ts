/**
 * @module cli/options
 * Option parsers shared by `kinfer serve` (cli/main.ts) and the other verbs.
 * Only Commander is imported here: `serve` loads this at start.
 */
import { CommanderError } from 'commander';

/** A TCP port, 0 (any free port) to 65535; anything else is a usage error (exit 2). */
export function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) throw new CommanderError(2, 'kinfer.port', `invalid port '${v}'`);
  return n;
}
