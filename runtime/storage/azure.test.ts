import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../core/errors.js';
import { AzureBlobSource, azureAuth, azureServiceUrl, isAzureBlobUri } from './azure.js';
import { Redactor } from './transfer.js';

describe('Azure Blob URIs', () => {
  it('recognises the forms KServe sends down its Azure path, and nothing else', () => {
    expect(isAzureBlobUri('https://acct.blob.core.windows.net/models/resnet')).toBe(true);
    expect(isAzureBlobUri('https://acct.z13.blob.storage.azure.net/models/resnet')).toBe(true);
    expect(isAzureBlobUri('https://acct.privatelink.blob.core.windows.net/models/resnet')).toBe(true);
    expect(isAzureBlobUri('http://acct.blob.core.windows.net/models/resnet')).toBe(false);
    expect(isAzureBlobUri('https://acct.file.core.windows.net/share/x')).toBe(false);
    expect(isAzureBlobUri('https://blob.core.windows.net.example.com/x')).toBe(false);
    expect(isAzureBlobUri('https://example.com/acct.blob.core.windows.net/x')).toBe(false);
  });

  it('parses account, container and a percent-decoded prefix; the cache key drops the SAS', () => {
    const s = new AzureBlobSource('https://Acct01.blob.core.windows.net/models/my%20model/v1?sv=2024&sig=abc%2Bdef');
    expect([s.account, s.container, s.prefix]).toEqual(['acct01', 'models', 'my model/v1']);
    expect(s.cacheKey).toBe('https://acct01.blob.core.windows.net/models/my%20model/v1');
    expect(new AzureBlobSource('https://acct.blob.core.windows.net/models').prefix).toBe('');
    expect(() => new AzureBlobSource('https://acct.blob.core.windows.net/')).toThrow(InvalidArgument);
    expect(() => new AzureBlobSource('https://a.blob.core.windows.net/models/x')).toThrow(/not a storage account name/);
    expect(() => new AzureBlobSource('https://u:p@acct.blob.core.windows.net/models/x')).toThrow(InvalidArgument);
  });

  it('picks credentials in KServe order and registers every secret with the redactor', () => {
    const r = new Redactor();
    const sp = azureAuth({ AZ_CLIENT_ID: 'app', AZ_TENANT_ID: 't', AZ_CLIENT_SECRET: 'sp-secret-1', AZURE_STORAGE_ACCESS_KEY: 'a2V5LWtleS1rZXk=' }, '', { redact: r });
    expect(sp.kind).toBe('service principal');
    expect(azureAuth({ AZURE_CLIENT_ID: 'app', AZURE_TENANT_ID: 't', AZURE_CLIENT_SECRET: 's3cr3t' }, '').kind).toBe('service principal');
    expect(azureAuth({ AZURE_STORAGE_ACCESS_KEY: 'a2V5LWtleS1rZXk=' }, '', { redact: r }).kind).toBe('shared key');
    const sas = azureAuth({ AZURE_STORAGE_ACCESS_KEY: '?sv=2024-01-01&sr=c&sp=rl&sig=SiGnAtUrE%3D' }, '', { redact: r });
    expect(sas).toMatchObject({ kind: 'SAS', sas: 'sv=2024-01-01&sr=c&sp=rl&sig=SiGnAtUrE%3D' });
    // A SAS in the URI wins: no other credential is sent with it.
    expect(azureAuth({ AZ_CLIENT_ID: 'app', AZ_CLIENT_SECRET: 'x', AZ_TENANT_ID: 't' }, 'sv=1&sig=abcd').kind).toBe('SAS');
    expect(azureAuth({}, '').kind).toBe('anonymous');
    expect(r.redact('sp-secret-1 a2V5LWtleS1rZXk= SiGnAtUrE= SiGnAtUrE%3D')).toBe('*** *** *** ***');
    // Only the signature is secret: a portal SAS's spr=https and dates must not blank URLs and times.
    const portal = new Redactor();
    azureAuth({ AZURE_STORAGE_ACCESS_KEY: 'sv=2022-11-02&spr=https&st=2026-12-01T00:00:00Z&se=2026-12-31T00:00:00Z&sr=c&sp=rl&sig=PoRtAlSiG' }, '', { redact: portal });
    expect(portal.redact('https://acct.blob.core.windows.net/models/m (2022-11-02) sig=PoRtAlSiG')).toBe('https://acct.blob.core.windows.net/models/m (2022-11-02) sig=***');
  });

  it('takes a URI query as a SAS only when it is one', () => {
    expect(new AzureBlobSource('https://acct.blob.core.windows.net/models/m?sv=1&sig=abcd').uriSas).toBe('sv=1&sig=abcd');
    expect(new AzureBlobSource('https://acct.blob.core.windows.net/models/m?foo=1').uriSas).toBe('');
  });

  it('AZURE_STORAGE_BLOB_ENDPOINT replaces the service URL; anything but a plain http(s) URL is refused', () => {
    expect(azureServiceUrl({}, 'https://acct.blob.core.windows.net')).toBe('https://acct.blob.core.windows.net');
    expect(azureServiceUrl({ AZURE_STORAGE_BLOB_ENDPOINT: 'http://127.0.0.1:10000/devstoreaccount1/' }, 'https://x')).toBe('http://127.0.0.1:10000/devstoreaccount1');
    expect(() => azureServiceUrl({ AZURE_STORAGE_BLOB_ENDPOINT: '127.0.0.1:10000' }, 'https://x')).toThrow(/AZURE_STORAGE_BLOB_ENDPOINT/);
    expect(() => azureServiceUrl({ AZURE_STORAGE_BLOB_ENDPOINT: 'http://h/a?sig=x' }, 'https://x')).toThrow(/without query/);
  });
});
