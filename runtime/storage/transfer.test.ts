import { describe, expect, it } from 'vitest';
import { displayUri } from './transfer.js';

describe('displayUri', () => {
  it('drops userinfo up to the last @ of the authority, as the URL parser reads it, and the query', () => {
    expect(displayUri('https://alice@corp.com:TOKEN@host/m.onnx')).toBe('https://host/m.onnx');
    expect(new URL('https://alice@corp.com:TOKEN@host/m.onnx').host).toBe('host');
    expect(displayUri('http://u:p@127.0.0.1:9/a/b.tar.gz?X-Amz-Signature=abc')).toBe('http://127.0.0.1:9/a/b.tar.gz?…');
    expect(displayUri('s3://bucket/models/x@2/model.onnx')).toBe('s3://bucket/models/x@2/model.onnx');
    expect(displayUri('gs://b/p#frag')).toBe('gs://b/p?…');
    expect(displayUri('not a uri?token=1')).toBe('not a uri');
  });
});
