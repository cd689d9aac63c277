import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ModelStatistics } from './statistics.js';
import { registerTritonMetrics, type TritonMetricsSource } from './triton-metrics.js';

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
