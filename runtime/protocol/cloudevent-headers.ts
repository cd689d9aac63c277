/**
 * @module protocol/cloudevent-headers
 * The CloudEvents HTTP binding's header values (3.1.3.2), without the cloudevents SDK: what
 * payload logging needs at every start, where the SDK loads only with the CloudEvents route.
 */
import { InvalidArgument } from '../core/errors.js';

/** Printable ASCII but space, `"` and `%`: what a binary-mode header value may carry unencoded. */
const HEADER_SAFE = /^[\x21\x23\x24\x26-\x7e]*$/;

/**
 * A binary-mode header value (HTTP binding 3.1.3.2): space, `"`, `%` and every
 * character outside U+0021-U+007E as `%XY` of its UTF-8 bytes. The v2 request
 * id is echoed as `ce-requestid` and may hold any string.
 */
export function encodeHeaderValue(value: string): string {
  if (HEADER_SAFE.test(value)) return value;
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x21 && c <= 0x7e && c !== 0x22 && c !== 0x25) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/**
 * The attribute value of a binary-mode header (HTTP binding 3.1.3.2): a
 * double-quoted value unquoted, then one round of percent-decoding; invalid
 * UTF-8 (overlong forms included) is refused.
 */
export function decodeHeaderValue(name: string, raw: string): string {
  const v = raw.startsWith('"') ? unquote(name, raw) : raw;
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    throw new InvalidArgument(`CloudEvent header '${name}' is not valid percent-encoded UTF-8: ${JSON.stringify(raw)}`);
  }
}

/** An RFC 7230 quoted-string: the text between the quotes, backslash escapes resolved. */
function unquote(name: string, raw: string): string {
  let out = '';
  for (let i = 1; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\' && i + 1 < raw.length) out += raw[++i];
    else if (c === '"') {
      if (i === raw.length - 1) return out;
      break;
    } else out += c;
  }
  throw new InvalidArgument(`CloudEvent header '${name}' is not a valid quoted string: ${JSON.stringify(raw)}`);
}

