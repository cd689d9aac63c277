/**
 * @module cli/commands/devices
 * `kinfer devices`: the native addon's enumeration of Xilinx/AMD FPGAs on this
 * machine (sysfs PCI vendor 0x10ee, and XRT when it loads), with the reason
 * when there is nothing to list. Exit 0 either way; `--require N` exits 1 when
 * fewer than N usable devices are found.
 */
import { Command } from 'commander';
import { positiveInt, runVerb, withJson } from './common.js';

export function devicesCommand(): Command {
  const cmd = new Command('devices')
    .description('list the accelerator devices (Xilinx/AMD FPGAs) this machine has')
    .option('--require <n>', 'exit 1 unless at least n usable devices are present', positiveInt);
  withJson(cmd);
  return cmd.action(async (flags: { json?: boolean; require?: number }) => {
    await runVerb('devices', flags, async (out) => {
      const { enumerateDevicesAsync } = await import('../../native/device.js');
      const e = await enumerateDevicesAsync();
      out.data(e);
      if (e.devices.length === 0) {
        const why = [
          e.addonError ? `native addon: ${e.addonError}` : undefined,
          e.sysfsDir ? `no PCI device of vendor 0x10ee under ${e.sysfsDir}` : undefined,
          e.xrt.error ? `XRT: ${e.xrt.error}` : e.xrt.count === null ? undefined : `XRT sees ${e.xrt.count} device(s)`,
        ].filter(Boolean);
        out.line(`no Xilinx/AMD FPGA found${why.length ? ` (${why.join('; ')})` : ''}`);
      }
      for (const d of e.devices) {
        out.line(
          [d.index >= 0 ? `#${d.index}` : '#-', d.name, d.bdf || '-', d.shell || '-', d.driver || '-', `numa ${d.numaNode}`, d.sources.join('+')].join('  '),
        );
      }
      const usable = e.devices.filter((d) => d.driver !== 'xclmgmt').length;
      if (flags.require !== undefined && usable < flags.require) {
        process.stderr.write(`kinfer devices: ${usable} usable device(s), ${flags.require} required\n`);
        return false;
      }
    });
  });
}
