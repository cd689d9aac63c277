import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ModelStatistics, type ModelStat } from './statistics.js';
import { registerTritonMetrics } from './triton-metrics.js';

describe("Triton's metrics, derived at each scrape", () => {
  it('exposes each loaded version under Triton names and labels, reads the source once per scrape, and drops a version that went', async () => {
    const stats = new ModelStatistics();
    stats.request(true, 0, 2.5); // 2.5 ms
    stats.request(true, 0, 1.0004);
    stats.request(false, 0, 7);
    stats.cacheHit(0.25);
    let versions: { stat: ModelStat; pending: number }[] = [{ stat: stats.snapshot('resnet', '3'), pending: 4 }];
    let reads = 0;
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'fn' });
    registerTritonMetrics(registry, () => (reads++, versions));

    const text = await registry.metrics();
    expect(reads).toBe(1);
    const line = (name: string) => text.split('\n').find((l) => l.startsWith(`${name}{`));
    expect(line('nv_inference_request_success')).toBe('nv_inference_request_success{model="resnet",version="3",service="fn"} 2');
    expect(line('nv_inference_request_failure')).toBe('nv_inference_request_failure{model="resnet",version="3",service="fn"} 1');
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
