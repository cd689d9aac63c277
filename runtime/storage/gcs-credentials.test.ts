import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gcsAuthHint, gcsCredential, onGoogleCloud } from './gcs-credentials.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kinfer-gcs-cred-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('gcsCredential: the Application Default Credentials order', () => {
  it('key file, then gcloud’s well-known file, then the metadata server (named, or on Google Cloud), else anonymous', async () => {
    const gce = join(dir, 'dmi-gce');
    const other = join(dir, 'dmi-other');
    await mkdir(gce);
    await mkdir(other);
    await writeFile(join(gce, 'product_name'), 'Google Compute Engine\n');
    await writeFile(join(other, 'product_name'), 'KVM\n');
    await writeFile(join(other, 'bios_vendor'), 'SeaBIOS\n');
    const home = join(dir, 'home');
    const wellKnown = join(home, '.config', 'gcloud', 'application_default_credentials.json');

    expect(gcsCredential({}, other)).toEqual({ kind: 'anonymous' });
    expect(gcsCredential({}, join(dir, 'no-dmi'))).toEqual({ kind: 'anonymous' });
    expect(gcsCredential({}, gce)).toEqual({ kind: 'metadata', host: '169.254.169.254' });
    expect(gcsCredential({ GCE_METADATA_HOST: '127.0.0.1:8080' }, other)).toEqual({ kind: 'metadata', host: '127.0.0.1:8080' });
    expect(gcsCredential({ GCE_METADATA_IP: '10.0.0.9' }, other)).toEqual({ kind: 'metadata', host: '10.0.0.9' });
    expect(gcsCredential({ METADATA_SERVER_DETECTION: ' None ', GCE_METADATA_HOST: '127.0.0.1:8080' }, gce)).toEqual({ kind: 'anonymous' });
    expect(gcsCredential({ GCE_METADATA_IP: '10.0.0.9', GCE_METADATA_HOST: 'http://md.local:80/' }, other)).toEqual({ kind: 'metadata', host: '10.0.0.9' }); // the IP first, as gcp-metadata
    expect(gcsCredential({ GCE_METADATA_HOST: 'http://md.local:80/' }, other)).toEqual({ kind: 'metadata', host: 'md.local:80' });
    expect(gcsCredential({ METADATA_SERVER_DETECTION: 'assume-present' }, other)).toEqual({ kind: 'metadata', host: '169.254.169.254' });
    // An emulator or proxy endpoint gets only what is named: not the DMI-found metadata server.
    expect(gcsCredential({ STORAGE_EMULATOR_HOST: 'localhost:4443' }, gce)).toEqual({ kind: 'anonymous' });
    expect(gcsCredential({ GCS_ENDPOINT: 'http://proxy', GCE_METADATA_HOST: '127.0.0.1:8080' }, gce)).toEqual({ kind: 'metadata', host: '127.0.0.1:8080' });

    expect(gcsCredential({ HOME: home }, gce)).toEqual({ kind: 'metadata', host: '169.254.169.254' }); // no file there yet
    await mkdir(join(home, '.config', 'gcloud'), { recursive: true });
    await writeFile(wellKnown, '{}');
    expect(gcsCredential({ HOME: home }, gce)).toEqual({ kind: 'key-file', path: wellKnown, from: `gcloud's ${wellKnown}` });
    expect(gcsCredential({ HOME: home, CLOUDSDK_CONFIG: join(dir, 'elsewhere') }, other)).toEqual({ kind: 'anonymous' }); // CLOUDSDK_CONFIG replaces ~/.config/gcloud
    expect(gcsCredential({ HOME: home, GCS_ENDPOINT: 'http://emulator' }, gce)).toEqual({ kind: 'anonymous' }); // not sent to an emulator
    expect(gcsCredential({ HOME: home, GCE_METADATA_HOST: '127.0.0.1:8080' }, gce)).toMatchObject({ kind: 'key-file' }); // ADC: the file before the metadata server
    expect(gcsCredential({ HOME: home, GOOGLE_APPLICATION_CREDENTIALS: '/keys/sa.json' }, gce)).toEqual({ kind: 'key-file', path: '/keys/sa.json', from: 'GOOGLE_APPLICATION_CREDENTIALS' });
  });

  it('onGoogleCloud reads the BIOS vendor or the product name', async () => {
    await writeFile(join(dir, 'bios_vendor'), 'Google\n');
    expect(onGoogleCloud(dir)).toBe(true);
    await writeFile(join(dir, 'bios_vendor'), 'American Megatrends Inc.\n');
    expect(onGoogleCloud(dir)).toBe(false);
  });

  it('the hint names the credential that was used', () => {
    expect(gcsAuthHint({ kind: 'metadata', host: '169.254.169.254' }, 'b')).toBe('check the credentials (the service account of the metadata server at 169.254.169.254) and the permissions on bucket b');
    expect(gcsAuthHint({ kind: 'anonymous' }, 'b')).toMatch(/anonymous access: set GOOGLE_APPLICATION_CREDENTIALS or a service account/);
  });
});
