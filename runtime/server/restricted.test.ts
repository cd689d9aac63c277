/**
 * @module server/restricted.test
 * Triton's restricted API groups: the option's form and refusals, and every REST route the
 * app registers sorted into a category (a route left out would be a way around a restriction).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import type { DataPlane } from '../dataplane.js';
import { LogControl } from '../observability/log-settings.js';
import { createMetrics } from '../observability/metrics.js';
import { TraceSettings } from '../observability/trace-settings.js';
import { createApp } from './app.js';
import { grpcCategory } from './grpc-restricted.js';
import { grpcPackageDefinition } from './grpc.js';
import { API_CATEGORIES, httpCategory, parseRestrictions } from './restricted.js';

describe('parseRestrictions', () => {
  it('takes groups of categories, each with its header (lower-cased) and value', () => {
    const r = parseRestrictions(['model-repository,shared-memory:Admin-Key=s3:c=ret', 'inference:infer-key=k'], '--http-restricted-api');
    expect([...r.keys()]).toEqual(['model-repository', 'shared-memory', 'inference']);
    expect(r.get('shared-memory')!.header).toBe('admin-key');
    expect(r.get('shared-memory')!.value.toString()).toBe('s3:c=ret'); // the value runs to the end, ':' and '=' included
  });

  it('refuses a malformed group, an unknown category, a category in two groups and a header that is not a token, never echoing the value', () => {
    const bad = (g: string) => () => parseRestrictions([g, 'trace:t=v'], 'KINFER_HTTP_RESTRICTED_API');
    expect(bad('model-repository')).toThrow(/^KINFER_HTTP_RESTRICTED_API: group 1 is not <category>\[,<category>...\]:<key>=<value>$/);
    expect(bad('model-repository:admin-key=')).toThrow(/group 1 is not/);
    expect(bad(':k=v')).toThrow(/group 1 is not/);
    expect(bad('models:k=secret-value')).toThrow(`KINFER_HTTP_RESTRICTED_API: group 1: a category is not one of ${API_CATEGORIES.join(', ')}`);
    expect(bad('trace,logging:k=secret-value')).toThrow("category 'trace' is in two groups");
    expect(bad('logging:bad key=secret-value')).toThrow('group 1: the header name is not an HTTP token');
    // A value holding ';' and ':' splits into a group whose "category" is part of the secret: not echoed.
    expect(() => parseRestrictions(['model-repository:k=ab', 'cd:ef=gh'], 'KINFER_HTTP_RESTRICTED_API')).toThrow(/^KINFER_HTTP_RESTRICTED_API: group 2: a category is not one of/);
    // A ';' inside a value splits it into a group of its own: that fragment must not be echoed either.
    expect(() => parseRestrictions(['logging:k=secret', 'value'], 'KINFER_HTTP_RESTRICTED_API')).toThrow(/^KINFER_HTTP_RESTRICTED_API: group 2 is not/);
    for (const g of ['models:k=secret-value', 'logging:bad key=secret-value', 'nothing-here:k', 'secret-value']) {
      try {
        bad(g)();
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgument);
        expect((err as Error).message).not.toContain('secret-value');
      }
    }
  });
});

describe('httpCategory', () => {
  it("puts every route the app registers in Triton's category for it; only /metrics and the catch-alls are in none", () => {
    const app = createApp({
      dataplane: {} as DataPlane,
      logger: pino({ level: 'silent' }),
      metrics: createMetrics({}),
      maxBodyBytes: 1024,
      logs: new LogControl(pino({ level: 'silent' })),
      traceSettings: new TraceSettings(false),
    });
    const sample = (path: string) => path.replace(':model', 'm').replace(':version', '1').replace(':name', 'r').replace(':target', 'm:predict');
    const routes = app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`);
    const none = routes.filter((r) => httpCategory(r.split(' ')[0]!, sample(r.split(' ')[1]!)) === undefined);
    expect(none).toEqual(['GET /metrics']);
    expect(routes.length).toBeGreaterThan(40);
    // Spot checks, one per category.
    expect(httpCategory('GET', '/v2/health/ready')).toBe('health');
    expect(httpCategory('GET', '/v2/models/m/versions/2/ready')).toBe('health');
    expect(httpCategory('GET', '/v2/')).toBe('metadata'); // the OpenAPI document's spelling of /v2
    expect(httpCategory('GET', '/v2/models/m')).toBe('metadata');
    expect(httpCategory('POST', '/v2/models/m/versions/2/infer')).toBe('inference');
    expect(httpCategory('POST', '/v1/models/m:predict')).toBe('inference');
    expect(httpCategory('POST', '/v2/models/m/versions/2/generate_stream')).toBe('inference');
    expect(httpCategory('POST', '/v2/models/m/generate')).toBe('inference');
    expect(httpCategory('POST', '/')).toBe('inference');
    expect(httpCategory('POST', '/v2/systemsharedmemory/region/r/register')).toBe('shared-memory');
    expect(httpCategory('GET', '/v2/models/m/config')).toBe('model-config');
    expect(httpCategory('POST', '/v2/repository/models/m/load')).toBe('model-repository');
    expect(httpCategory('GET', '/v2/models/stats')).toBe('statistics');
    expect(httpCategory('POST', '/v2/models/m/trace/setting')).toBe('trace');
    expect(httpCategory('GET', '/v2/logging')).toBe('logging');
    // Hono serves HEAD with the GET route: it is restricted as GET is.
    expect(httpCategory('HEAD', '/v2/models/m/config')).toBe('model-config');
    expect(httpCategory('HEAD', '/v2/health/ready')).toBe('health');
  });

  it('names every method of the gRPC services by category', () => {
    const service = grpcPackageDefinition()['inference.GRPCInferenceService'] as Record<string, { path: string }>;
    const paths = Object.values(service).map((m) => m.path);
    expect(paths.length).toBeGreaterThan(15);
    expect(paths.filter((p) => grpcCategory(p) === undefined)).toEqual([]);
    expect(grpcCategory('/inference.GRPCInferenceService/RepositoryModelLoad')).toBe('model-repository');
    expect(grpcCategory('/inference.GRPCInferenceService/ModelStreamInfer')).toBe('inference');
    expect(grpcCategory('/grpc.health.v1.Health/Watch')).toBe('health');
    expect(grpcCategory('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo')).toBeUndefined();
  });
});
