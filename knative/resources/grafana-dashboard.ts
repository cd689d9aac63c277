/**
 * @module knative/resources/grafana-dashboard
 * A Grafana dashboard (JSON model, schemaVersion 39) over kinfer's metrics
 * (observability/metrics.ts), templated on the Prometheus datasource, the
 * Knative service (`service` label from K_SERVICE) and the model.
 */

type Panel = Record<string, unknown>;

const SEL = 'service=~"$service", model=~"$model"';

function timeseries(id: number, title: string, unit: string, targets: Array<[string, string]>, x: number, y: number): Panel {
  return {
    id,
    type: 'timeseries',
    title,
    datasource: { type: 'prometheus', uid: '${datasource}' },
    gridPos: { h: 8, w: 12, x, y },
    fieldConfig: { defaults: { unit }, overrides: [] },
    options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    targets: targets.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: { type: 'prometheus', uid: '${datasource}' },
      expr,
      legendFormat,
    })),
  };
}

const q = (name: string, p: number, by = 'model') =>
  `histogram_quantile(${p}, sum by (le, ${by}) (rate(${name}_bucket{${SEL}}[$__rate_interval])))`;

export function grafanaDashboard(): Record<string, unknown> {
  const panels: Panel[] = [
    timeseries(1, 'Request duration p50 / p99 by model', 's', [
      [q('kinfer_request_duration_seconds', 0.5), 'p50 {{model}}'],
      [q('kinfer_request_duration_seconds', 0.99), 'p99 {{model}}'],
    ], 0, 0),
    timeseries(2, 'Requests per second by model and status', 'reqps', [
      [`sum by (model, status) (rate(kinfer_requests_total{${SEL}}[$__rate_interval]))`, '{{model}} {{status}}'],
    ], 12, 0),
    timeseries(3, 'Queue vs compute duration p99', 's', [
      [q('kinfer_queue_duration_seconds', 0.99), 'queue {{model}}'],
      [q('kinfer_compute_duration_seconds', 0.99), 'compute {{model}}'],
    ], 0, 8),
    timeseries(4, 'Batch size (mean)', 'short', [
      [`sum by (model) (rate(kinfer_batch_size_sum{${SEL}}[$__rate_interval])) / sum by (model) (rate(kinfer_batch_size_count{${SEL}}[$__rate_interval]))`, '{{model}}'],
    ], 12, 8),
    timeseries(5, 'Inferences (items) vs executions (batches) per second', 'ops', [
      [`sum by (model) (rate(kinfer_inference_count_total{${SEL}}[$__rate_interval]))`, 'inferences {{model}}'],
      [`sum by (model) (rate(kinfer_execution_count_total{${SEL}}[$__rate_interval]))`, 'executions {{model}}'],
    ], 0, 16),
    timeseries(6, 'Pending requests', 'short', [
      [`sum by (model) (kinfer_pending_requests{${SEL}})`, '{{model}}'],
    ], 12, 16),
    timeseries(7, 'Rejected requests (429/503) per second', 'reqps', [
      [`sum by (model, status) (rate(kinfer_requests_total{${SEL}, status=~"429|503"}[$__rate_interval]))`, '{{model}} {{status}}'],
    ], 0, 24),
    timeseries(8, 'Model load duration p50 / max', 's', [
      [q('kinfer_model_load_duration_seconds', 0.5), 'p50 {{model}}'],
      [`max by (model) (rate(kinfer_model_load_duration_seconds_sum{${SEL}}[$__rate_interval]) / rate(kinfer_model_load_duration_seconds_count{${SEL}}[$__rate_interval]))`, 'mean {{model}}'],
    ], 12, 24),
    timeseries(9, 'Cold start (process start → ready) by revision', 's', [
      [`max by (revision) (kinfer_cold_start_seconds_sum{service=~"$service"} / kinfer_cold_start_seconds_count{service=~"$service"})`, '{{revision}}'],
    ], 0, 32),
  ];
  return {
    title: 'kinfer',
    uid: 'kinfer-overview',
    tags: ['kinfer', 'knative', 'inference'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Datasource' },
        {
          name: 'service',
          type: 'query',
          label: 'Service',
          datasource: { type: 'prometheus', uid: '${datasource}' },
          query: 'label_values(kinfer_requests_total, service)',
          includeAll: true,
          multi: true,
          allValue: '.*',
          refresh: 2,
        },
        {
          name: 'model',
          type: 'query',
          label: 'Model',
          datasource: { type: 'prometheus', uid: '${datasource}' },
          query: 'label_values(kinfer_requests_total{service=~"$service"}, model)',
          includeAll: true,
          multi: true,
          allValue: '.*',
          refresh: 2,
        },
      ],
    },
    panels,
  };
}
