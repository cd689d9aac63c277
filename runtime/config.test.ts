import { describe, expect, it } from 'vitest';
import { parseEnv } from './config.js';

describe('parseEnv', () => {
  it('reads ports with one rule: PORT defaults to 8080, GRPC_PORT is off unless set, both 0..65535', () => {
    expect(parseEnv({}).PORT).toBe(8080);
    expect(parseEnv({}).GRPC_PORT).toBeUndefined();
    expect(parseEnv({ PORT: '9000', GRPC_PORT: '8081' })).toMatchObject({ PORT: 9000, GRPC_PORT: 8081 });
    expect(parseEnv({ GRPC_PORT: '0' }).GRPC_PORT).toBe(0);
    expect(() => parseEnv({ PORT: '70000' })).toThrow(/invalid environment: PORT: expected a port from 0 to 65535, got "70000"/);
    expect(() => parseEnv({ GRPC_PORT: 'x' })).toThrow(/GRPC_PORT: expected a port/);
  });

  it('reads the gRPC TLS files, an empty value as unset', () => {
    expect(parseEnv({ KINFER_GRPC_TLS_CERT: '/tls/c.pem', KINFER_GRPC_TLS_KEY: '/tls/k.pem', KINFER_GRPC_TLS_CLIENT_CA: '' })).toMatchObject({
      KINFER_GRPC_TLS_CERT: '/tls/c.pem',
      KINFER_GRPC_TLS_KEY: '/tls/k.pem',
      KINFER_GRPC_TLS_CLIENT_CA: undefined,
    });
  });

  it('keeps KINFER_STORAGE_URI apart from STORAGE_URI (KServe acts on the latter)', () => {
    const cfg = parseEnv({ KINFER_STORAGE_URI: 'file:///opt/m' });
    expect(cfg.KINFER_STORAGE_URI).toBe('file:///opt/m');
    expect(cfg.STORAGE_URI).toBeUndefined();
  });

  it('reads KINFER_CACHE_MAX_BYTES as bytes or a quantity, and names it when it is bad', () => {
    expect(parseEnv({}).KINFER_CACHE_MAX_BYTES).toBeUndefined();
    expect(parseEnv({ KINFER_CACHE_MAX_BYTES: '' }).KINFER_CACHE_MAX_BYTES).toBeUndefined();
    expect(parseEnv({ KINFER_CACHE_MAX_BYTES: '2Gi' }).KINFER_CACHE_MAX_BYTES).toBe(2 * 2 ** 30);
    expect(parseEnv({ KINFER_CACHE_MAX_BYTES: '1000' }).KINFER_CACHE_MAX_BYTES).toBe(1000);
    expect(() => parseEnv({ KINFER_CACHE_MAX_BYTES: '2GB' })).toThrow(/invalid environment: KINFER_CACHE_MAX_BYTES: expected a byte count such as .*500Mi.*, got "2GB"/);
    expect(() => parseEnv({ KINFER_CACHE_MAX_BYTES: '0' })).toThrow(/KINFER_CACHE_MAX_BYTES: .*more than 0/);
  });
});
