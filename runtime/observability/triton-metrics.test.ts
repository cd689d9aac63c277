import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ModelStatistics } from './statistics.js';
import { totalmem } from 'node:os';
import { registerTritonCpuMetrics, registerTritonMetrics, type TritonMetricsSource } from './triton-metrics.js';

describe("Triton's metrics, derived at each scrape", () => {
  it('exposes each loaded version under Triton names and labels, reads the source once per scrape, and drops a version that went', async () => {
    const stats = new ModelStatistics();
    stats.succeeded(0, 2.5); // 2.5 ms
    stats.succeeded(0, 1.0004);
    stats.failed('REJECTED', 0, 7);
    stats.cacheHit(0.25);
    let versions: ReturnType<TritonMetricsSource> = [{ stat: stats.snapshot('resnet', '3'), failures: stats.failuresByReason(), pending: 4, loadSeconds: 1.25 }];
    let reads = 0;
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'fn' });
    registerTritonMetrics(registry, () => (reads++, versions));

    const text = await registry.metrics();
    expect(reads).toBe(1);
    const line = (name: string) => text.split('\n').find((l) => l.startsWith(`${name}{`));
    expect(line('nv_inference_request_success')).toBe('nv_inference_request_success{model="resnet",version="3",service="fn"} 2');
    const failures = text.split('\n').filter((l) => l.startsWith('nv_inference_request_failure{'));
    expect(failures).toEqual(['REJECTED 1', 'CANCELED 0', 'BACKEND 0', 'OTHER 0'].map((r) => r.split(' ')).map(([reason, n]) => `nv_inference_request_failure{model="resnet",version="3",reason="${reason}",service="fn"} ${n}`));
    expect(line('nv_model_load_duration_secs')).toBe('nv_model_load_duration_secs{model="resnet",version="3",service="fn"} 1.25');
    expect(line('nv_inference_request_duration_us')).toBe('nv_inference_request_duration_us{model="resnet",version="3",service="fn"} 3500'); // 2.5 + 1.0004 ms, rounded to µs
    expect(line('nv_cache_num_hits_per_model')).toBe('nv_cache_num_hits_per_model{model="resnet",version="3",service="fn"} 1');
    expect(line('nv_cache_hit_duration_per_model')).toBe('nv_cache_hit_duration_per_model{model="resnet",version="3",service="fn"} 250');
    expect(line('nv_inference_pending_request_count')).toBe('nv_inference_pending_request_count{model="resnet",version="3",service="fn"} 4');
    expect(text).toContain('# TYPE nv_inference_count counter');
    expect(text).toContain('# TYPE nv_inference_pending_request_count gauge');

    versions = [];
    const after = await registry.metrics();
    expect(reads).toBe(2);
    expect(after).not.toMatch(/^nv_[a-z_]+\{/m);
  });
});

describe("Triton's CPU series (/proc, as Triton reads it)", () => {
  const meminfo = 'MemTotal:       16000000 kB\nMemFree:         2000000 kB\nMemAvailable:   10000000 kB\n';
  it('utilization is the busy share of all ticks between samples (idle and iowait not busy); memory used is total − available', async () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    const stats = ['cpu  100 0 100 700 100 0 0 0 0 0', 'cpu  400 0 200 900 100 0 0 0 50 0'];
    let n = 0;
    const registry = new Registry();
    const cpu = registerTritonCpuMetrics(registry, (p) => (p === '/proc/stat' ? `${stats[Math.min(n++, 1)]}\ncpu0 1 2 3 4\n` : meminfo), 10);
    try {
      const value = async (name: string) => Number((await registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
      expect(await value('nv_cpu_utilization')).toBe(0); // one sample: no interval yet
      await new Promise((r) => setTimeout(r, 50));
      expect(await value('nv_cpu_utilization')).toBeCloseTo(400 / 600, 12); // busy +400 of +600 ticks (guest, inside user, not counted twice)
      expect(await value('nv_cpu_memory_total_bytes')).toBe(16_000_000 * 1024);
      expect(await value('nv_cpu_memory_used_bytes')).toBe(6_000_000 * 1024);
    } finally {
      cpu.stop();
    }
  });

  it('a sample that cannot be read sets the three to 0, as Triton does', async () => {
    let broken = false;
    const registry = new Registry();
    const cpu = registerTritonCpuMetrics(registry, (p) => {
      if (broken) throw new Error('EIO');
      return p === '/proc/stat' ? 'cpu  1 0 1 8 0 0 0 0 0 0\n' : meminfo;
    }, 10);
    try {
      expect(await registry.metrics()).toMatch(/^nv_cpu_memory_total_bytes 16384000000$/m);
      broken = true;
      await new Promise((r) => setTimeout(r, 50));
      const text = await registry.metrics();
      for (const name of ['nv_cpu_utilization', 'nv_cpu_memory_total_bytes', 'nv_cpu_memory_used_bytes']) expect(text).toMatch(new RegExp(`^${name} 0$`, 'm'));
    } finally {
      cpu.stop();
    }
  });

  it.skipIf(process.platform !== 'linux')('registers nothing where /proc cannot be read; on this Linux machine reads its real memory', async () => {
    const none = new Registry();
    registerTritonCpuMetrics(none, () => {
      throw new Error('ENOENT');
    }).stop();
    expect(await none.metrics()).not.toContain('nv_cpu_');
    const real = new Registry();
    const cpu = registerTritonCpuMetrics(real);
    cpu.stop();
    const text = await real.metrics();
    expect(Number(/^nv_cpu_memory_total_bytes (\d+)/m.exec(text)?.[1])).toBe(totalmem());
    const used = Number(/^nv_cpu_memory_used_bytes (\d+)/m.exec(text)?.[1]);
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(totalmem());
  });
});
