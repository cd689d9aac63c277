/**
 * @module repository/config-files
 * Reads a model's configuration file into the normalised `ModelConfig`.
 * `config.toml` wins over `config.pbtxt` over `config.json` (TOML wins, as in
 * the original Xilinx server). Accepted dialects, mixed freely:
 * - Triton: `input`/`output` with `data_type: TYPE_FP32` and `dims`,
 *   `max_batch_size`, `dynamic_batching`, `instance_group`, `parameters`
 *   (`{ key: "k" value { string_value: "v" } }`), `backend`;
 * - Xilinx/KServe: `inputs`/`outputs` with `datatype: "FP32"` and `shape`;
 * - JSON in Triton's form, with snake_case or camelCase keys.
 * `model_warmup` (run by `warmup.ts`), `response_cache { enable }`, `version_policy`,
 * `ensemble_scheduling`, `sequence_batching`, `default_model_filename`, the entries'
 * `reshape` and `optional`, and `dynamic_batching`'s priority levels and queue policies are read.
 * Triton's other fields (`optimization`, `batch_input`, ...) are ignored so that real Triton
 * configs load; any other field is listed in `unknownFields` (with the field
 * it was probably meant to be; at most 100, each name cut to 128 characters,
 * then `and N more`) for the repository to log: Triton would refuse
 * such a config, and a misspelt `max_queue_delay_microsecond` would otherwise
 * silently mean no delay.
 *
 * @example
 * const config = await readModelConfig('/mnt/models/resnet', 'resnet');
 * if (config?.maxBatchSize) { ... }
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { isDatatype, type Datatype } from '../core/datatypes.js';
import { InvalidArgument, Unsupported } from '../core/errors.js';
import type { TensorSpec } from '../core/tensor.js';
import { defaultConfig, type DynamicBatchingConfig, type EnsembleStep, type ModelConfig, type PriorityConfig, type QueuePolicy, type SequenceBatchingConfig, type SequenceControl, type SequenceControlKind, type SequenceState, type VersionPolicy, type WarmupInput, type WarmupSample } from './model-config.js';

// The TOML parser is loaded on the first config.toml (pbtxt is the common case; start-up should not pay for it).
const requireLazy = createRequire(import.meta.url);
let toml: typeof import('smol-toml') | undefined;

/** Config file names in order of precedence. */
export const CONFIG_FILES = ['config.toml', 'config.pbtxt', 'config.json'] as const;

/**
 * Reads the first config file present in `modelDir` (see precedence above).
 * Returns undefined when there is none. The served name is always `name` (the
 * folder's name); a different `name` inside the file is ignored, because in
 * function mode the name comes from `MODEL_NAME`.
 * Throws InvalidArgument naming the file (and line, where known) when the file
 * is malformed, and Unsupported for a datatype kinfer cannot serve.
 */
export async function readModelConfig(modelDir: string, name: string): Promise<ModelConfig | undefined> {
  for (const file of CONFIG_FILES) {
    let text: string;
    try {
      text = await readFile(join(modelDir, file), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (code === 'EISDIR') throw new InvalidArgument(`model '${name}': ${file} is a folder, not a file`);
      throw err;
    }
    return parseModelConfig(text, file, name);
  }
  return undefined;
}

/** Parses config text; `file` picks the dialect by extension and names the file in errors. */
export function parseModelConfig(text: string, file: string, name: string): ModelConfig {
  let tree: ConfigObject;
  const lines = new WeakMap<object, number>();
  if (file.endsWith('.toml')) {
    try {
      toml ??= requireLazy('smol-toml') as typeof import('smol-toml');
      tree = toml.parse(text) as ConfigObject;
    } catch (err) {
      const where = toml && err instanceof toml.TomlError ? ` line ${err.line}` : '';
      throw new InvalidArgument(`${file}${where}: ${firstLine(err)}`);
    }
  } else if (file.endsWith('.json')) {
    try {
      tree = JSON.parse(text) as ConfigObject;
    } catch (err) {
      throw new InvalidArgument(`${file} line ${lineAt(text, jsonErrorOffset(text))}: ${firstLine(err)}`);
    }
    if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) {
      throw new InvalidArgument(`${file}: expected a JSON object at the top level`);
    }
  } else {
    tree = parseTextProto(text, file, lines);
  }
  return normalise(tree, new Context(file, lines), name);
}

// ---------------------------------------------------------------------------
// Text proto. There is no maintained text-format protobuf parser on npm
// (protobufjs reads .proto schemas and binary/JSON, not the text format), so
// this is a small tokenizer and recursive-descent parser for the subset model
// configs use: scalars, enums, strings, nested messages with `{}` or `<>`,
// repeated fields written as repeats or as `[a, b]` lists, `#` comments and
// optional `,`/`;` separators. Without the schema it cannot know which fields
// are repeated: a field seen once stays a scalar, a field seen more than once
// or written as a list becomes an array; `normalise` accepts either.

type ConfigValue = string | number | boolean | bigint | ConfigObject | ConfigValue[] | null | undefined | Date;
interface ConfigObject {
  [key: string]: ConfigValue;
}

type TokenKind = 'ident' | 'string' | 'number' | 'punct';
interface Token {
  kind: TokenKind;
  text: string;
  value?: string | number;
  /** A string with octal or hex escapes: its bytes, UTF-8 to be checked once adjacent strings are joined (`text` shows it). */
  utf8?: Uint8Array;
  line: number;
}

const PUNCT = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';']);

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
    } else if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
    } else if (PUNCT.has(c)) {
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      const start = line;
      // The text so far; from the first byte escape on, the string's UTF-8 bytes instead.
      let out = '';
      let bytes: number[] | undefined;
      i++;
      for (;;) {
        if (i >= n || text[i] === '\n') throw new InvalidArgument(`${file} line ${start}: unterminated string`);
        const d = text[i]!;
        if (d === c) {
          i++;
          break;
        }
        if (d === '\\') {
          const [value, isByte, len] = unescape(text, i, file, line);
          if (isByte) {
            bytes ??= Array.from(utf8Encoder.encode(out));
            bytes.push(value);
          } else if (bytes) {
            pushCodePoint(bytes, value);
          } else {
            out += String.fromCodePoint(value);
          }
          i += len;
        } else if (bytes) {
          // A whole code point: a character outside the BMP is two UTF-16 units.
          const cp = text.codePointAt(i)!;
          pushCodePoint(bytes, cp);
          i += cp > 0xffff ? 2 : 1;
        } else {
          out += d;
          i++;
        }
      }
      if (bytes) {
        const utf8 = Uint8Array.from(bytes);
        const shown = utf8Shown.decode(utf8);
        tokens.push({ kind: 'string', text: shown, value: shown, utf8, line: start });
      } else {
        tokens.push({ kind: 'string', text: out, value: out, line: start });
      }
    } else if (/[-+0-9.]/.test(c)) {
      const m = /^[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)[fF]?/i.exec(
        text.slice(i, i + 64),
      );
      if (!m) throw new InvalidArgument(`${file} line ${line}: unexpected character '${c}'`);
      tokens.push({ kind: 'number', text: m[0], value: parseNumber(m[0]), line });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_.]/.test(text[j]!)) j++;
      tokens.push({ kind: 'ident', text: text.slice(i, j), line });
      i = j;
    } else {
      throw new InvalidArgument(`${file} line ${line}: unexpected character '${c}'`);
    }
  }
  return tokens;
}

/** The named escapes and the code points they stand for. */
const ESCAPES: Record<string, number> = { n: 0x0a, t: 0x09, r: 0x0d, '"': 0x22, "'": 0x27, '\\': 0x5c, a: 0x07, b: 0x08, f: 0x0c, v: 0x0b, '?': 0x3f };

const utf8Encoder = new TextEncoder();
/** Strict: a string whose escaped bytes are not UTF-8 is refused, not given U+FFFD; a leading BOM is kept. */
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Lenient, for a token's `text` (shown in errors) before the strict check. */
const utf8Shown = new TextDecoder('utf-8', { ignoreBOM: true });

/** Appends the UTF-8 encoding of code point `cp` (a lone surrogate as U+FFFD, as TextEncoder does). */
function pushCodePoint(bytes: number[], cp: number): void {
  if (cp < 0x80) bytes.push(cp);
  else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp >= 0xd800 && cp <= 0xdfff) bytes.push(0xef, 0xbf, 0xbd);
  else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}

/**
 * One escape sequence at `text[i] === '\\'`: its value and its length in the source. As in
 * protobuf's text format (tokenizer.cc), `\ooo` (1 to 3 octal digits, at most \377) and `\xhh`
 * (1 or 2 hex digits) are one byte each (`isByte`): the string's bytes are UTF-8, so
 * `"\303\251"` is "é" (Python's text_format writes non-ASCII so). `\uXXXX` (a surrogate pair as two)
 * and `\UXXXXXXXX` (up to 10FFFF) are Unicode code points.
 */
function unescape(text: string, i: number, file: string, line: number): [value: number, isByte: boolean, length: number] {
  const e = text[i + 1];
  if (e !== undefined && Object.hasOwn(ESCAPES, e)) return [ESCAPES[e]!, false, 2];
  const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
  if (oct) {
    const byte = parseInt(oct[0], 8);
    if (byte > 0xff) throw new InvalidArgument(`${file} line ${line}: octal escape '\\${oct[0]}' is more than a byte (\\377)`);
    return [byte, true, 1 + oct[0].length];
  }
  const hex = /^[xX]([0-9a-fA-F]{1,2})/.exec(text.slice(i + 1, i + 4));
  if (hex) return [parseInt(hex[1]!, 16), true, 1 + hex[0].length];
  if (e === 'x' || e === 'X') throw new InvalidArgument(`${file} line ${line}: expected hex digits after '\\${e}' in string`);
  if (e === 'u' || e === 'U') {
    const digits = e === 'u' ? 4 : 8;
    const m = new RegExp(`^[0-9a-fA-F]{${digits}}`).exec(text.slice(i + 2, i + 2 + digits));
    if (!m) throw new InvalidArgument(`${file} line ${line}: expected ${digits} hex digits after '\\${e}' in string`);
    const cp = parseInt(m[0], 16);
    const len = 2 + digits;
    if (cp >= 0xd800 && cp <= 0xdbff && e === 'u') {
      // UTF-16's pairs: a high surrogate and a low one written as two \u escapes are one code point.
      const low = /^\\u([dD][c-fC-F][0-9a-fA-F]{2})/.exec(text.slice(i + len, i + len + 6));
      if (low) return [0x10000 + ((cp - 0xd800) << 10) + (parseInt(low[1]!, 16) - 0xdc00), false, len + 6];
    }
    if (cp >= 0xd800 && cp <= 0xdfff) throw new InvalidArgument(`${file} line ${line}: '${text.slice(i, i + len)}' is half of a surrogate pair without the other half`);
    if (cp > 0x10ffff) throw new InvalidArgument(`${file} line ${line}: '${text.slice(i, i + len)}' is beyond Unicode (\\U0010FFFF)`);
    return [cp, false, len];
  }
  throw new InvalidArgument(`${file} line ${line}: unknown escape '\\${e ?? ''}' in string`);
}

function parseNumber(s: string): number {
  const t = s.replace(/[fF]$/, '').toLowerCase();
  const sign = t.startsWith('-') ? -1 : 1;
  const body = t.replace(/^[-+]/, '');
  if (body.startsWith('inf')) return sign * Infinity;
  if (body === 'nan') return NaN;
  if (body.startsWith('0x')) return sign * parseInt(body.slice(2), 16);
  return sign * Number(body);
}

const MAX_DEPTH = 64;

class TextProtoParser {
  private pos = 0;
  private depth = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly file: string,
    private readonly lines: WeakMap<object, number>,
  ) {}

  parseDocument(): ConfigObject {
    const obj = this.parseFields(undefined, 1);
    return obj;
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private fail(message: string, tok = this.peek()): never {
    const line = tok?.line ?? this.tokens[this.tokens.length - 1]?.line ?? 1;
    throw new InvalidArgument(`${this.file} line ${line}: ${message}`);
  }

  private isPunct(text: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === 'punct' && t.text === text;
  }

  private expect(text: string): Token {
    const t = this.peek();
    if (!t || t.kind !== 'punct' || t.text !== text) this.fail(`expected '${text}', got ${describeToken(t)}`);
    this.pos++;
    return t;
  }

  /** Fields until `close` (or the end of input when `close` is undefined). */
  private parseFields(close: string | undefined, line: number): ConfigObject {
    const obj: ConfigObject = {};
    this.lines.set(obj, line);
    const seen = new Set<string>();
    for (;;) {
      const t = this.peek();
      if (!t) {
        if (close) this.fail(`missing '${close}' for the message opened on line ${line}`);
        return obj;
      }
      if (close && t.kind === 'punct' && t.text === close) {
        this.pos++;
        return obj;
      }
      if (t.kind !== 'ident') this.fail(`expected a field name, got ${describeToken(t)}`);
      this.pos++;
      const key = t.text;
      let values: ConfigValue[];
      let isList = false;
      if (this.isPunct(':')) this.pos++;
      if (this.isPunct('[')) {
        // `input [ {...}, {...} ]`: the colon is optional before a list of messages.
        values = this.parseList(key);
        isList = true;
      } else if (this.tokens[this.pos - 1]!.text === ':' || this.isPunct('{') || this.isPunct('<')) {
        values = [this.parseValue(key)];
      } else {
        this.fail(`expected ':' or '{' after field '${key}', got ${describeToken(this.peek())}`);
      }
      if (isList || seen.has(key)) {
        // Appended in place: the arrays here are the parser's own (a value is never an array), and a
        // copy per repeat made a field repeated n times cost n²/2 element copies.
        const prev = obj[key];
        if (Array.isArray(prev)) {
          for (const v of values) prev.push(v);
        } else {
          obj[key] = prev === undefined ? values : [prev, ...values];
        }
      } else {
        obj[key] = values[0];
      }
      seen.add(key);
      if (this.isPunct(',') || this.isPunct(';')) this.pos++;
    }
  }

  private parseList(key: string): ConfigValue[] {
    const open = this.expect('[');
    const out: ConfigValue[] = [];
    if (this.isPunct(']')) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue(key));
      if (this.isPunct(',')) {
        this.pos++;
        continue;
      }
      if (this.isPunct(']')) {
        this.pos++;
        return out;
      }
      if (!this.peek()) this.fail(`missing ']' for the list opened on line ${open.line}`, open);
      this.fail(`expected ',' or ']' in list, got ${describeToken(this.peek())}`);
    }
  }

  /** One value of field `key` (named in errors). */
  private parseValue(key: string): ConfigValue {
    const t = this.peek();
    if (!t) this.fail('expected a value, got the end of the file');
    if (t.kind === 'punct' && (t.text === '{' || t.text === '<')) {
      this.pos++;
      if (++this.depth > MAX_DEPTH) this.fail(`messages nested more than ${MAX_DEPTH} deep`, t);
      const obj = this.parseFields(t.text === '{' ? '}' : '>', t.line);
      this.depth--;
      return obj;
    }
    this.pos++;
    if (t.kind === 'string') {
      // Adjacent string literals concatenate, as in C and the text format: as bytes, so an escaped
      // UTF-8 sequence may span two of them.
      const parts = [t];
      while (this.peek()?.kind === 'string') parts.push(this.tokens[this.pos++]!);
      if (!parts.some((p) => p.utf8)) return parts.length === 1 ? (t.value as string) : parts.map((p) => p.value as string).join('');
      const chunks = parts.map((p) => p.utf8 ?? utf8Encoder.encode(p.value as string));
      const bytes = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.length;
      }
      try {
        return utf8Decoder.decode(bytes);
      } catch {
        this.fail(`field '${clip(key)}': the string is not UTF-8 once its escapes are read (each \\ooo or \\xhh escape is one byte of UTF-8)`, t);
      }
    }
    if (t.kind === 'number') return t.value as number;
    if (t.kind === 'ident') {
      if (t.text === 'true' || t.text === 'True' || t.text === 't') return true;
      if (t.text === 'false' || t.text === 'False' || t.text === 'f') return false;
      if (/^-?(inf|infinity|nan)$/i.test(t.text)) return parseNumber(t.text);
      return t.text; // an enum value such as TYPE_FP32 or KIND_CPU
    }
    this.fail(`expected a value, got ${describeToken(t)}`);
  }
}

function describeToken(t: Token | undefined): string {
  if (!t) return 'the end of the file';
  if (t.kind === 'string') return `the string ${JSON.stringify(t.text)}`;
  return `'${t.text}'`;
}

/** Parses Protocol Buffers text format into plain objects (see the note above). */
export function parseTextProto(text: string, file = 'config.pbtxt', lines = new WeakMap<object, number>()): ConfigObject {
  return new TextProtoParser(tokenize(text, file), file, lines).parseDocument();
}

// ---------------------------------------------------------------------------
// Normalisation: one pass over the plain-object tree, whatever its dialect.

class Context {
  constructor(
    readonly file: string,
    private readonly lines: WeakMap<object, number>,
  ) {}

  fail(path: string, message: string, at?: object): never {
    const line = at ? this.lines.get(at) : undefined;
    const where = line !== undefined ? ` line ${line}` : '';
    throw new InvalidArgument(`${this.file}${where}: ${path}: ${message}`);
  }
}

/** camelCase → snake_case, so JSON in protobuf's JSON mapping reads like the text format. */
function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

function fieldsOf(obj: ConfigObject): Map<string, ConfigValue> {
  const out = new Map<string, ConfigValue>();
  for (const [k, v] of Object.entries(obj)) out.set(snake(k), v);
  return out;
}

function isObject(v: ConfigValue): v is ConfigObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function asList(v: ConfigValue): ConfigValue[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function one(ctx: Context, path: string, v: ConfigValue, at: object): ConfigValue {
  if (Array.isArray(v)) {
    // The text format lets a singular field repeat; the last value wins.
    if (v.length === 0) return undefined;
    const last = v[v.length - 1];
    if (Array.isArray(last)) ctx.fail(path, 'expected a single value, got a list', at);
    return last;
  }
  return v;
}

function str(ctx: Context, path: string, v: ConfigValue, at: object): string | undefined {
  const x = one(ctx, path, v, at);
  if (x === undefined || x === null) return undefined;
  if (typeof x !== 'string') ctx.fail(path, `expected a string, got ${JSON.stringify(String(x))}`, at);
  return x;
}

function int(ctx: Context, path: string, v: ConfigValue, at: object, min: number): number | undefined {
  const x = one(ctx, path, v, at);
  if (x === undefined || x === null) return undefined;
  // JSON int64 fields arrive as strings in protobuf's JSON mapping ("dims": ["3"]).
  const n = typeof x === 'string' && /^-?\d+$/.test(x) ? Number(x) : typeof x === 'bigint' ? Number(x) : x;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    ctx.fail(path, `expected an integer ≥ ${min}, got ${typeof x === 'string' ? JSON.stringify(x) : String(x)}`, at);
  }
  return n;
}

function object(ctx: Context, path: string, v: ConfigValue, at: object): ConfigObject | undefined {
  const x = one(ctx, path, v, at);
  if (x === undefined || x === null) return undefined;
  if (!isObject(x)) ctx.fail(path, 'expected a message/table', at);
  return x;
}

function bool(ctx: Context, path: string, v: ConfigValue, at: object): boolean | undefined {
  const x = one(ctx, path, v, at);
  if (x === undefined || x === null) return undefined;
  if (typeof x !== 'boolean') ctx.fail(path, `expected true or false, got ${JSON.stringify(String(x))}`, at);
  return x;
}

/** `ensemble_scheduling { step [...] }`: each step's model, version (-1 or absent: the highest serving) and maps. */
function ensembleSteps(ctx: Context, obj: ConfigObject, unknown: UnknownFields): EnsembleStep[] {
  unknown.note(obj, 'ensemble_scheduling.');
  return asList(fieldsOf(obj).get('step')).map((s, i): EnsembleStep => {
    const path = `ensemble_scheduling.step[${i}]`;
    if (!isObject(s)) ctx.fail(path, 'expected a message/table', obj);
    unknown.note(s, 'ensemble_scheduling.step[].');
    const f = fieldsOf(s);
    const modelName = str(ctx, `${path}.model_name`, f.get('model_name'), s);
    if (!modelName) ctx.fail(`${path}.model_name`, 'expected the composing model\'s name', s);
    const version = int(ctx, `${path}.model_version`, f.get('model_version'), s, -1);
    if (version === 0) ctx.fail(`${path}.model_version`, 'expected -1 (the highest serving) or a version number ≥ 1, got 0', s);
    const map = (field: 'input_map' | 'output_map') => {
      const out: Record<string, string> = {};
      eachMapEntry(ctx, `${path}.${field}`, f.get(field), s, (key, value, at) => {
        if (typeof value !== 'string' || value === '') ctx.fail(`${path}.${field} '${key}'`, 'expected an ensemble tensor name', at);
        out[key] = value;
      });
      return out;
    };
    return { modelName, modelVersion: version === undefined || version === -1 ? '' : String(version), inputMap: map('input_map'), outputMap: map('output_map') };
  });
}

/** Triton's control kind names (the JSON config answer writes them back: sequence-plan.ts). */
export const CONTROL_KINDS: Record<string, SequenceControlKind> = {
  CONTROL_SEQUENCE_START: 'start',
  CONTROL_SEQUENCE_END: 'end',
  CONTROL_SEQUENCE_READY: 'ready',
  CONTROL_SEQUENCE_CORRID: 'corrid',
};
/** Each false/true values field and the datatype of the control tensor it makes. */
export const FALSE_TRUE = { fp32_false_true: 'FP32', int32_false_true: 'INT32', bool_false_true: 'BOOL' } as const;
/** Triton's four integer types, and TYPE_STRING for string ids (newer Tritons). */
const CORRID_TYPES: readonly Datatype[] = ['UINT64', 'INT64', 'UINT32', 'INT32', 'BYTES'];

/** `sequence_batching { direct | oldest, max_sequence_idle_microseconds, control_input [...], state [...] }`. */
function sequenceBatching(ctx: Context, obj: ConfigObject, unknown: UnknownFields): SequenceBatchingConfig {
  unknown.note(obj, 'sequence_batching.');
  const f = fieldsOf(obj);
  const path = 'sequence_batching';
  if (one(ctx, `${path}.iterative_sequence`, f.get('iterative_sequence'), obj) === true) {
    throw new Unsupported(`${ctx.file}: ${path}.iterative_sequence: iterative sequences (decoupled models) are not supported`);
  }
  const direct = object(ctx, `${path}.direct`, f.get('direct'), obj);
  const oldest = object(ctx, `${path}.oldest`, f.get('oldest'), obj);
  if (direct && oldest) ctx.fail(path, 'expected one strategy, direct or oldest, got both', obj);
  const idle = int(ctx, `${path}.max_sequence_idle_microseconds`, f.get('max_sequence_idle_microseconds'), obj, 0) ?? 0;
  const config: SequenceBatchingConfig = {
    strategy: oldest ? 'oldest' : 'direct',
    // Triton: absent or 0 means one second.
    maxSequenceIdleMicroseconds: idle || 1_000_000,
    maxCandidateSequences: 0,
    maxQueueDelayMicroseconds: 0,
    minimumSlotUtilization: 0,
    preferredBatchSize: [],
    controls: [],
    states: [],
  };
  if (direct) {
    unknown.note(direct, 'sequence_batching.direct.');
    const d = fieldsOf(direct);
    config.maxQueueDelayMicroseconds = int(ctx, `${path}.direct.max_queue_delay_microseconds`, d.get('max_queue_delay_microseconds'), direct, 0) ?? 0;
    const share = one(ctx, `${path}.direct.minimum_slot_utilization`, d.get('minimum_slot_utilization'), direct) ?? 0;
    if (typeof share !== 'number' || !(share >= 0 && share <= 1)) ctx.fail(`${path}.direct.minimum_slot_utilization`, `expected a number from 0 to 1, got ${JSON.stringify(String(share))}`, direct);
    config.minimumSlotUtilization = share;
  }
  if (oldest) {
    unknown.note(oldest, 'sequence_batching.oldest.');
    const o = fieldsOf(oldest);
    const candidates = int(ctx, `${path}.oldest.max_candidate_sequences`, o.get('max_candidate_sequences'), oldest, 1);
    if (candidates === undefined) ctx.fail(`${path}.oldest.max_candidate_sequences`, 'expected an integer ≥ 1, got nothing', oldest);
    config.maxCandidateSequences = candidates;
    config.maxQueueDelayMicroseconds = int(ctx, `${path}.oldest.max_queue_delay_microseconds`, o.get('max_queue_delay_microseconds'), oldest, 0) ?? 0;
    config.preferredBatchSize = asList(o.get('preferred_batch_size')).map((x, i) => int(ctx, `${path}.oldest.preferred_batch_size[${i}]`, x, oldest, 1)!);
  }
  asList(f.get('control_input')).forEach((item, i) => {
    const at = `${path}.control_input[${i}]`;
    if (!isObject(item)) ctx.fail(at, 'expected { name, control [...] }', obj);
    unknown.note(item, 'sequence_batching.control_input[].');
    const g = fieldsOf(item);
    const input = str(ctx, `${at}.name`, g.get('name'), item);
    if (!input) ctx.fail(`${at}.name`, 'expected the model input it fills', item);
    const controls = asList(g.get('control'));
    // Triton allows one control per input.
    if (controls.length !== 1) ctx.fail(`${path}.control_input '${input}'`, `expected exactly one control, got ${controls.length}`, item);
    const c = controls[0]!;
    const cpath = `${path}.control_input '${input}'.control`;
    if (!isObject(c)) ctx.fail(cpath, 'expected { kind, ... }', item);
    unknown.note(c, 'sequence_batching.control_input[].control[].');
    config.controls.push(sequenceControl(ctx, cpath, input, c));
  });
  const named = new Set<string>();
  for (const c of config.controls) {
    if (named.has(c.input)) ctx.fail(`${path}.control_input '${c.input}'`, 'named twice', obj);
    named.add(c.input);
  }
  const kinds = config.controls.map((c) => c.kind);
  for (const k of new Set(kinds)) if (kinds.indexOf(k) !== kinds.lastIndexOf(k)) ctx.fail(`${path}.control_input`, `two inputs take the ${k.toUpperCase()} control`, obj);
  asList(f.get('state')).forEach((item, i) => {
    const at = `${path}.state[${i}]`;
    if (!isObject(item)) ctx.fail(at, 'expected { input_name, output_name, data_type, dims }', obj);
    unknown.note(item, 'sequence_batching.state[].');
    const state = sequenceState(ctx, at, item, unknown);
    if (named.has(state.input)) ctx.fail(at, `input '${state.input}' is already a control or state input`, item);
    named.add(state.input);
    config.states.push(state);
  });
  return config;
}

function sequenceControl(ctx: Context, path: string, input: string, c: ConfigObject): SequenceControl {
  const g = fieldsOf(c);
  const kindText = str(ctx, `${path}.kind`, g.get('kind'), c);
  const kind = kindText ? CONTROL_KINDS[kindText] : undefined;
  if (!kind) ctx.fail(`${path}.kind`, `expected one of ${Object.keys(CONTROL_KINDS).join(', ')}, got ${JSON.stringify(kindText ?? '')}`, c);
  const given = (Object.keys(FALSE_TRUE) as (keyof typeof FALSE_TRUE)[]).filter((k) => g.has(k));
  if (kind === 'corrid') {
    if (given.length) ctx.fail(path, `a CORRID control takes data_type, not ${given.join(', ')}`, c);
    const typeText = str(ctx, `${path}.data_type`, g.get('data_type'), c);
    const datatype = typeText ? datatypeFromConfig(typeText) : undefined;
    if (!datatype || !CORRID_TYPES.includes(datatype)) ctx.fail(`${path}.data_type`, `expected TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING, got ${JSON.stringify(typeText ?? '')}`, c);
    return { input, kind, datatype };
  }
  if (given.length !== 1) ctx.fail(path, `expected exactly one of ${Object.keys(FALSE_TRUE).join(', ')}, got ${given.length ? given.join(', ') : 'none'}`, c);
  const field = given[0]!;
  const raw = asList(g.get(field));
  const values = raw.map((v, j) => {
    if (field === 'bool_false_true') {
      if (typeof v !== 'boolean') ctx.fail(`${path}.${field}[${j}]`, `expected true or false, got ${JSON.stringify(String(v))}`, c);
      return v ? 1 : 0;
    }
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n) || (field === 'int32_false_true' && !Number.isInteger(n))) {
      ctx.fail(`${path}.${field}[${j}]`, `expected a ${field === 'int32_false_true' ? 'integer' : 'number'}, got ${JSON.stringify(String(v))}`, c);
    }
    return n;
  });
  if (values.length !== 2) ctx.fail(`${path}.${field}`, `expected two values [false, true], got ${values.length}`, c);
  return { input, kind, datatype: FALSE_TRUE[field], values: [values[0]!, values[1]!] };
}

function sequenceState(ctx: Context, path: string, item: ConfigObject, unknown: UnknownFields): SequenceState {
  const g = fieldsOf(item);
  const input = str(ctx, `${path}.input_name`, g.get('input_name'), item);
  const output = str(ctx, `${path}.output_name`, g.get('output_name'), item);
  if (!input || !output) ctx.fail(path, 'expected input_name and output_name', item);
  const at = `sequence_batching.state '${input}'`;
  const typeText = str(ctx, `${at}.data_type`, g.get('data_type'), item);
  const datatype = typeText ? datatypeFromConfig(typeText) : undefined;
  if (!datatype) ctx.fail(`${at}.data_type`, `expected a data_type such as TYPE_FP32, got ${JSON.stringify(typeText ?? '')}`, item);
  let dims = asList(g.get('dims')).map((d, j) => int(ctx, `${at}.dims[${j}]`, d, item, -1)!);
  let initial: SequenceState['initial'] = { kind: 'zero' };
  const inits = asList(g.get('initial_state'));
  if (inits.length > 1) ctx.fail(`${at}.initial_state`, `expected at most one, got ${inits.length}`, item);
  const init = inits[0];
  if (init !== undefined) {
    const ipath = `${at}.initial_state`;
    if (!isObject(init)) ctx.fail(ipath, 'expected { data_type, dims, zero_data | data_file }', item);
    unknown.note(init, 'sequence_batching.state[].initial_state.');
    const h = fieldsOf(init);
    const itype = str(ctx, `${ipath}.data_type`, h.get('data_type'), init);
    if (itype !== undefined && datatypeFromConfig(itype) !== datatype) ctx.fail(`${ipath}.data_type`, `expected the state's ${typeText}, got ${itype}`, init);
    if (h.has('dims')) dims = asList(h.get('dims')).map((d, j) => int(ctx, `${ipath}.dims[${j}]`, d, init, 0)!);
    const zero = one(ctx, `${ipath}.zero_data`, h.get('zero_data'), init) === true;
    const file = str(ctx, `${ipath}.data_file`, h.get('data_file'), init);
    if (zero === (file !== undefined)) ctx.fail(ipath, 'expected exactly one of zero_data: true, data_file', init);
    if (file !== undefined) {
      if (!file || file.startsWith('/') || file.split(/[\\/]/).includes('..')) ctx.fail(`${ipath}.data_file`, `must name a file inside <model>/initial_state/, got ${JSON.stringify(file)}`, init);
      initial = { kind: 'file', file };
    }
  }
  if (dims.some((d) => d < 0)) ctx.fail(`${at}.dims`, `[${dims.join(',')}] has a variable dim: give initial_state with its fixed dims`, item);
  return { input, output, datatype, dims, initial };
}

/** `version_policy`: exactly one of `latest { num_versions }`, `all { }`, `specific { versions }`. */
function versionPolicy(ctx: Context, obj: ConfigObject, unknown: UnknownFields): VersionPolicy {
  unknown.note(obj, 'version_policy.');
  const f = fieldsOf(obj);
  const kinds = (['latest', 'all', 'specific'] as const).filter((k) => f.get(k) !== undefined);
  if (kinds.length !== 1) {
    ctx.fail('version_policy', kinds.length ? `expected one of latest, all, specific; got ${kinds.join(' and ')}` : 'expected one of latest { num_versions: N }, all { }, specific { versions: [...] }', obj);
  }
  const kind = kinds[0]!;
  const body = object(ctx, `version_policy.${kind}`, f.get(kind), obj) ?? {};
  if (kind === 'all') {
    unknown.note(body, 'version_policy.all.');
    return { kind };
  }
  unknown.note(body, `version_policy.${kind}.`);
  const b = fieldsOf(body);
  if (kind === 'latest') {
    // Triton's num_versions defaults to 0, which it refuses: say so here, with the field's name.
    const n = int(ctx, 'version_policy.latest.num_versions', b.get('num_versions'), body, 1);
    if (n === undefined) ctx.fail('version_policy.latest.num_versions', 'expected an integer ≥ 1, got nothing', body);
    return { kind, numVersions: n };
  }
  const versions = asList(b.get('versions')).map((v, i) => int(ctx, `version_policy.specific.versions[${i}]`, v, body, 1)!);
  if (versions.length === 0) ctx.fail('version_policy.specific.versions', 'expected at least one version number', body);
  return { kind, versions: [...new Set(versions)].sort((x, y) => x - y) };
}

/** Triton's `TYPE_FP32`, the v2 name `FP32`, or the Xilinx server's `STRING`. */
export function datatypeFromConfig(value: string): Datatype | undefined {
  let t = value.trim().toUpperCase();
  if (t.startsWith('TYPE_')) t = t.slice(5);
  if (t === 'STRING') return 'BYTES';
  return isDatatype(t) ? t : undefined;
}

/** A role's specs, and Triton's per-tensor extras of its entries (tensor name → value). */
interface TensorEntries {
  specs: TensorSpec[];
  /** `reshape { shape }`: the shape the backend takes or gives, where it differs from `dims`. */
  reshape: Record<string, number[]>;
  /** `optional: true` (inputs only): a request may leave the input out. */
  optional: string[];
}

function tensorSpecs(ctx: Context, role: 'input' | 'output', fields: Map<string, ConfigValue>, root: object, unknown: UnknownFields): TensorEntries {
  const items = [...asList(fields.get(role)), ...asList(fields.get(`${role}s`))];
  const out: TensorEntries = { specs: [], reshape: {}, optional: [] };
  items.forEach((item, i) => {
    const path = `${role}[${i}]`;
    if (!isObject(item)) ctx.fail(path, 'expected a message/table with name, data_type and dims', root);
    unknown.note(item, `${role}[].`);
    const f = fieldsOf(item);
    const name = str(ctx, `${path}.name`, f.get('name'), item);
    if (!name) ctx.fail(path, 'missing name', item);
    const tpath = `${role} '${name}'`;
    const typeText = str(ctx, `${tpath}.data_type`, f.get('data_type') ?? f.get('datatype'), item);
    if (!typeText) ctx.fail(tpath, 'missing data_type (or datatype)', item);
    const datatype = datatypeFromConfig(typeText);
    if (!datatype) {
      const msg = `unsupported data_type ${typeText}; supported: TYPE_BOOL, TYPE_UINT8..64, TYPE_INT8..64, TYPE_FP16/32/64, TYPE_STRING (or the v2 names)`;
      if (/^(TYPE_)?(BF16|INVALID)$/i.test(typeText)) {
        throw new Unsupported(`${ctx.file}: ${tpath}: ${msg}`);
      }
      ctx.fail(tpath, msg, item);
    }
    const dimsRaw = f.has('dims') ? f.get('dims') : f.get('shape');
    if (dimsRaw === undefined) ctx.fail(tpath, 'missing dims (or shape)', item);
    const shape = asList(dimsRaw).map((d, j) => int(ctx, `${tpath}.dims[${j}]`, d, item, -1)!);
    out.specs.push({ name, datatype, shape });
    const reshape = object(ctx, `${tpath}.reshape`, f.get('reshape'), item);
    if (reshape) {
      unknown.note(reshape, `${role}[].reshape.`);
      // `reshape: { shape: [ ] }` (or `{ }`): a scalar per batch item.
      const to = asList(fieldsOf(reshape).get('shape')).map((d, j) => int(ctx, `${tpath}.reshape.shape[${j}]`, d, reshape, -1)!);
      checkReshape(ctx, tpath, shape, to, reshape);
      out.reshape[name] = to;
    }
    if (role === 'input' && bool(ctx, `${tpath}.optional`, f.get('optional'), item)) out.optional.push(name);
  });
  const seen = new Set<string>();
  for (const s of out.specs) {
    if (seen.has(s.name)) ctx.fail(`${role} '${s.name}'`, 'declared twice', root);
    seen.add(s.name);
  }
  return out;
}

/**
 * Triton's rule for `reshape`: `dims` and the reshape have as many variable dims (-1), and the
 * fixed dims between them multiply to the same counts, so every request's tensor has a reshape.
 */
function checkReshape(ctx: Context, path: string, dims: number[], to: number[], at: object): void {
  const runs = (shape: number[]) => {
    const out = [1];
    for (const d of shape) {
      if (d === -1) out.push(1);
      else out[out.length - 1]! *= d;
    }
    return out;
  };
  const a = runs(dims);
  const b = runs(to);
  if (a.length !== b.length) {
    ctx.fail(`${path}.reshape`, `dims [${dims.join(',')}] and reshape [${to.join(',')}] have different numbers of variable dims (-1)`, at);
  }
  if (a.some((n, i) => n !== b[i])) {
    ctx.fail(`${path}.reshape`, `dims [${dims.join(',')}] and reshape [${to.join(',')}] hold different element counts`, at);
  }
}

/** Each output's `label_filename`, a plain path inside the model folder (tensorSpecs has checked the items). */
function outputLabelFiles(ctx: Context, fields: Map<string, ConfigValue>): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const item of [...asList(fields.get('output')), ...asList(fields.get('outputs'))]) {
    if (!isObject(item)) continue;
    const f = fieldsOf(item);
    const name = str(ctx, 'output.name', f.get('name'), item)!;
    const file = str(ctx, `output '${name}'.label_filename`, f.get('label_filename'), item);
    if (!file) continue;
    if (file.startsWith('/') || file.split(/[\\/]/).includes('..')) {
      ctx.fail(`output '${name}'.label_filename`, `must name a file inside the model folder, got ${JSON.stringify(file)}`, item);
    }
    (out ??= {})[name] = file;
  }
  return out;
}

function parameters(ctx: Context, v: ConfigValue, root: object): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (key: string, value: ConfigValue, at: object) => {
    let x = value;
    // Triton wraps each value as { string_value: "..." }.
    if (isObject(x)) {
      const f = fieldsOf(x);
      if (!f.has('string_value')) ctx.fail(`parameters '${key}'`, 'expected { string_value: "..." }', x);
      x = one(ctx, `parameters '${key}'`, f.get('string_value'), x);
    }
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') out[key] = String(x);
    else ctx.fail(`parameters '${key}'`, 'expected a string, number or boolean value', at);
  };
  eachMapEntry(ctx, 'parameters', v, root, put);
  return out;
}

/** Calls `put` for each entry of a protobuf map field: `{ key, value }` entries (text format) or a plain map (JSON, TOML). */
function eachMapEntry(ctx: Context, path: string, v: ConfigValue, root: object, put: (key: string, value: ConfigValue, at: object) => void): void {
  for (const entry of asList(v)) {
    if (!isObject(entry)) ctx.fail(path, 'expected a map or { key, value } entries', root);
    const f = fieldsOf(entry);
    if (f.has('key') && f.has('value') && f.size === 2) {
      // Map keys are strings or integers (Triton's priority_queue_policy is keyed by level).
      const raw = one(ctx, `${path}.key`, f.get('key'), entry);
      const key = typeof raw === 'number' || typeof raw === 'bigint' ? String(raw) : str(ctx, `${path}.key`, raw, entry);
      if (!key) ctx.fail(path, 'empty key', entry);
      put(key, one(ctx, `${path} '${key}'`, f.get('value'), entry), entry);
    } else {
      // JSON and TOML maps: keys verbatim (not snake-cased; they are user names).
      for (const [key, value] of Object.entries(entry)) put(key, value, entry);
    }
  }
}

/**
 * Fields per message: those read here, then Triton's others (model_config.proto), which are
 * ignored. JSON's camelCase keys are compared snake-cased.
 */
const FIELDS = {
  '': {
    read: ['name', 'platform', 'backend', 'max_batch_size', 'input', 'inputs', 'output', 'outputs', 'dynamic_batching', 'instance_group', 'parameters', 'model_warmup', 'response_cache', 'version_policy', 'ensemble_scheduling', 'sequence_batching', 'default_model_filename'],
    triton: ['runtime', 'batch_input', 'batch_output', 'optimization', 'cc_model_filenames', 'metric_tags', 'model_operations', 'model_transaction_policy', 'model_repository_agents', 'model_metrics'],
  },
  'input[].': {
    read: ['name', 'data_type', 'datatype', 'dims', 'shape', 'reshape', 'optional'],
    triton: ['format', 'is_shape_tensor', 'allow_ragged_batch', 'is_non_linear_format_io'],
  },
  'input[].reshape.': {
    read: ['shape'],
    triton: [],
  },
  'output[].': {
    read: ['name', 'data_type', 'datatype', 'dims', 'shape', 'reshape', 'label_filename'],
    triton: ['is_shape_tensor', 'is_non_linear_format_io'],
  },
  'output[].reshape.': {
    read: ['shape'],
    triton: [],
  },
  'dynamic_batching.': {
    read: ['max_queue_delay_microseconds', 'preferred_batch_size', 'default_queue_policy', 'priority_levels', 'default_priority_level', 'priority_queue_policy'],
    triton: ['preserve_ordering'],
  },
  'dynamic_batching.queue_policy.': {
    read: ['max_queue_size', 'timeout_action', 'default_timeout_microseconds', 'allow_timeout_override'],
    triton: [],
  },
  'response_cache.': {
    read: ['enable'],
    triton: [],
  },
  'ensemble_scheduling.': {
    read: ['step'],
    triton: ['max_inflight_requests'],
  },
  'ensemble_scheduling.step[].': {
    read: ['model_name', 'model_version', 'input_map', 'output_map'],
    triton: ['model_namespace'],
  },
  'sequence_batching.': {
    read: ['direct', 'oldest', 'max_sequence_idle_microseconds', 'control_input', 'state', 'iterative_sequence'],
    triton: [],
  },
  'sequence_batching.direct.': {
    read: ['max_queue_delay_microseconds', 'minimum_slot_utilization'],
    triton: [],
  },
  'sequence_batching.oldest.': {
    read: ['max_candidate_sequences', 'preferred_batch_size', 'max_queue_delay_microseconds'],
    triton: ['preserve_ordering'],
  },
  'sequence_batching.control_input[].': {
    read: ['name', 'control'],
    triton: [],
  },
  'sequence_batching.control_input[].control[].': {
    read: ['kind', 'int32_false_true', 'fp32_false_true', 'bool_false_true', 'data_type'],
    triton: [],
  },
  'sequence_batching.state[].': {
    read: ['input_name', 'output_name', 'data_type', 'dims', 'initial_state'],
    triton: ['use_same_buffer_for_input_output', 'use_growable_memory'],
  },
  'sequence_batching.state[].initial_state.': {
    read: ['data_type', 'dims', 'zero_data', 'data_file', 'name'],
    triton: [],
  },
  'version_policy.': {
    read: ['latest', 'all', 'specific'],
    triton: [],
  },
  'version_policy.all.': {
    read: [],
    triton: [],
  },
  'version_policy.latest.': {
    read: ['num_versions'],
    triton: [],
  },
  'version_policy.specific.': {
    read: ['versions'],
    triton: [],
  },
  'instance_group[].': {
    read: ['count'],
    triton: ['name', 'kind', 'gpus', 'secondary_devices', 'profile', 'passive', 'host_policy', 'rate_limiter'],
  },
} as const;

/** Most unknown fields listed; the others are counted in a last entry, `and N more`. */
export const MAX_UNKNOWN_LISTED = 100;
/** Longest unknown field name listed (a path and the name as written); a longer one is cut there and ends in '…'. */
export const MAX_UNKNOWN_NAME = 128;
/**
 * Longest field name given a "did you mean": the edit distance costs its length times each known name's.
 * No known name (32 characters at most) is within a quarter of a longer name's length, so this changes no answer.
 */
const MAX_SUGGESTED_NAME = 64;

/**
 * The fields of a config that neither kinfer nor Triton knows, each listed once (repeated messages
 * report a field once), in the order met. A config comes from an API load too, so what one can cost
 * is bounded: duplicates are found through a Set, only the first MAX_UNKNOWN_LISTED are listed (and
 * get a suggestion), and each name is cut to MAX_UNKNOWN_NAME characters.
 */
class UnknownFields {
  private readonly seen = new Set<string>();
  private readonly listed: string[] = [];
  private more = 0;

  /** Notes the fields of `obj` (at `prefix`, shown as `shown`), each with the closest known name if one is near. */
  note(obj: ConfigObject, prefix: keyof typeof FIELDS, shown: string = prefix): void {
    const { read, triton } = FIELDS[prefix];
    const known: readonly string[] = [...read, ...triton];
    for (const written of Object.keys(obj)) {
      const key = snake(written);
      if (known.includes(key)) continue;
      const name = clip(`${shown}${written}`);
      if (this.seen.has(name)) continue;
      this.seen.add(name);
      if (this.listed.length >= MAX_UNKNOWN_LISTED) {
        this.more++;
        continue;
      }
      const near = suggestion(key, known);
      this.listed.push(near ? `${name} (did you mean ${near}?)` : name);
    }
  }

  /** The fields noted, with `and N more` last when there were more than MAX_UNKNOWN_LISTED; none: undefined. */
  list(): string[] | undefined {
    if (this.listed.length === 0) return undefined;
    return this.more > 0 ? [...this.listed, `and ${this.more} more`] : this.listed;
  }
}

/** `name` cut to MAX_UNKNOWN_NAME characters and an ellipsis (not inside a surrogate pair). */
function clip(name: string): string {
  if (name.length <= MAX_UNKNOWN_NAME) return name;
  let end = MAX_UNKNOWN_NAME;
  const last = name.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${name.slice(0, end)}…`;
}

/** The first known name nearest `key`, if within a quarter of its length (at least 1); none for long names. */
function suggestion(key: string, known: readonly string[]): string | undefined {
  if (key.length > MAX_SUGGESTED_NAME) return undefined;
  const limit = Math.max(1, Math.floor(key.length / 4));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    // The distance is at least the difference in length.
    if (Math.abs(k.length - key.length) > limit) continue;
    const d = editDistance(k, key);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** Levenshtein distance: short strings only (config field names; see suggestion()). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function normalise(tree: ConfigObject, ctx: Context, name: string): ModelConfig {
  const config = defaultConfig(name);
  const f = fieldsOf(tree);
  const unknown = new UnknownFields();
  unknown.note(tree, '');
  const platform = str(ctx, 'platform', f.get('platform'), tree);
  const backend = str(ctx, 'backend', f.get('backend'), tree);
  if (platform) config.platform = platform;
  else if (backend) config.platform = backend === 'onnxruntime' ? 'onnxruntime_onnx' : backend;
  config.maxBatchSize = int(ctx, 'max_batch_size', f.get('max_batch_size'), tree, 0) ?? 0;
  const inputs = tensorSpecs(ctx, 'input', f, tree, unknown);
  const outputs = tensorSpecs(ctx, 'output', f, tree, unknown);
  config.inputs = inputs.specs;
  config.outputs = outputs.specs;
  if (Object.keys(inputs.reshape).length + Object.keys(outputs.reshape).length > 0) config.reshape = { inputs: inputs.reshape, outputs: outputs.reshape };
  if (inputs.optional.length > 0) config.optionalInputs = inputs.optional;
  const modelFile = str(ctx, 'default_model_filename', f.get('default_model_filename'), tree);
  if (modelFile !== undefined) {
    if (!modelFile || modelFile.includes('/') || modelFile.includes('\\') || modelFile === '.' || modelFile === '..') {
      ctx.fail('default_model_filename', `expected a file name in the version folder, got ${JSON.stringify(modelFile)}`, tree);
    }
    config.defaultModelFilename = modelFile;
  }
  const labelFiles = outputLabelFiles(ctx, f);
  if (labelFiles) config.outputLabelFiles = labelFiles;

  const dbRaw = f.get('dynamic_batching');
  if (dbRaw !== undefined) {
    const db = object(ctx, 'dynamic_batching', dbRaw, tree) ?? {};
    const d = fieldsOf(db);
    unknown.note(db, 'dynamic_batching.');
    const policy = object(ctx, 'dynamic_batching.default_queue_policy', d.get('default_queue_policy'), db);
    const byDefault = policy ? queuePolicy(ctx, 'dynamic_batching.default_queue_policy', policy, unknown) : undefined;
    const dynamic: DynamicBatchingConfig = {
      maxQueueDelayMicroseconds: int(ctx, 'dynamic_batching.max_queue_delay_microseconds', d.get('max_queue_delay_microseconds'), db, 0) ?? 0,
      preferredBatchSize: asList(d.get('preferred_batch_size')).map(
        (x, i) => int(ctx, `dynamic_batching.preferred_batch_size[${i}]`, x, db, 1)!,
      ),
      maxQueueSize: byDefault?.maxQueueSize ?? 0,
    };
    if (byDefault && hasTimeout(byDefault)) dynamic.queueTimeout = { action: byDefault.action, defaultMicroseconds: byDefault.defaultMicroseconds, allowOverride: byDefault.allowOverride };
    const priority = priorityLevels(ctx, db, unknown);
    if (priority) dynamic.priority = priority;
    config.dynamicBatching = dynamic;
  }

  const groups = asList(f.get('instance_group'));
  if (groups.length > 0) {
    let count = 0;
    groups.forEach((g, i) => {
      if (!isObject(g)) ctx.fail(`instance_group[${i}]`, 'expected a message/table', tree);
      unknown.note(g, 'instance_group[].');
      // Triton's default count per group is 1.
      count += int(ctx, `instance_group[${i}].count`, fieldsOf(g).get('count'), g, 1) ?? 1;
    });
    config.instanceCount = count;
  }

  const cache = object(ctx, 'response_cache', f.get('response_cache'), tree);
  if (cache) {
    unknown.note(cache, 'response_cache.');
    if (bool(ctx, 'response_cache.enable', fieldsOf(cache).get('enable'), cache)) config.responseCache = true;
  }

  const ensemble = object(ctx, 'ensemble_scheduling', f.get('ensemble_scheduling'), tree);
  if (ensemble) config.ensemble = ensembleSteps(ctx, ensemble, unknown);

  const sequence = object(ctx, 'sequence_batching', f.get('sequence_batching'), tree);
  if (sequence) {
    if (config.ensemble) ctx.fail('sequence_batching', 'an ensemble cannot have sequence_batching (its composing models may)', sequence);
    if (config.dynamicBatching) ctx.fail('sequence_batching', 'a model takes dynamic_batching or sequence_batching, not both (sequence_batching batches across sequences itself)', sequence);
    if (config.responseCache) ctx.fail('response_cache', 'a sequence model cannot use the response cache: its outputs depend on the state, not only the inputs', tree);
    config.sequenceBatching = sequenceBatching(ctx, sequence, unknown);
  }

  const policy = object(ctx, 'version_policy', f.get('version_policy'), tree);
  if (policy) config.versionPolicy = versionPolicy(ctx, policy, unknown);

  config.parameters = parameters(ctx, f.get('parameters'), tree);
  const warmup = warmupSamples(ctx, f.get('model_warmup'), tree);
  if (warmup.length > 0) config.warmup = warmup;
  const unknownList = unknown.list();
  if (unknownList) config.unknownFields = unknownList;
  return config;
}

/** Triton's `ModelQueuePolicy` (`timeout_action` REJECT or DELAY, also as 0/1 in JSON). */
function queuePolicy(ctx: Context, path: string, obj: ConfigObject, unknown: UnknownFields): QueuePolicy {
  unknown.note(obj, 'dynamic_batching.queue_policy.', `${path}.`);
  const f = fieldsOf(obj);
  const action = one(ctx, `${path}.timeout_action`, f.get('timeout_action'), obj);
  const text = typeof action === 'number' ? ['REJECT', 'DELAY'][action] : typeof action === 'string' ? action.toUpperCase() : action === undefined ? 'REJECT' : undefined;
  if (text !== 'REJECT' && text !== 'DELAY') ctx.fail(`${path}.timeout_action`, `expected REJECT or DELAY, got ${JSON.stringify(String(action))}`, obj);
  return {
    maxQueueSize: int(ctx, `${path}.max_queue_size`, f.get('max_queue_size'), obj, 0) ?? 0,
    action: text === 'DELAY' ? 'delay' : 'reject',
    defaultMicroseconds: int(ctx, `${path}.default_timeout_microseconds`, f.get('default_timeout_microseconds'), obj, 0) ?? 0,
    allowOverride: bool(ctx, `${path}.allow_timeout_override`, f.get('allow_timeout_override'), obj) ?? false,
  };
}

/** Timeout fields worth keeping: a default timeout, or allow_timeout_override (kept to be reported; see QueueTimeout). */
function hasTimeout(p: QueuePolicy): boolean {
  return p.defaultMicroseconds > 0 || p.allowOverride;
}

/** `priority_levels`, `default_priority_level` and `priority_queue_policy` of `dynamic_batching`; none without levels. */
function priorityLevels(ctx: Context, db: ConfigObject, unknown: UnknownFields): PriorityConfig | undefined {
  const d = fieldsOf(db);
  const levels = int(ctx, 'dynamic_batching.priority_levels', d.get('priority_levels'), db, 0) ?? 0;
  const defaultLevel = int(ctx, 'dynamic_batching.default_priority_level', d.get('default_priority_level'), db, 0) ?? 0;
  const raw = d.get('priority_queue_policy');
  if (levels === 0) {
    if (defaultLevel > 0 || asList(raw).length > 0) ctx.fail('dynamic_batching.priority_levels', 'default_priority_level and priority_queue_policy need priority_levels > 0', db);
    return undefined;
  }
  if (defaultLevel < 1 || defaultLevel > levels) {
    ctx.fail('dynamic_batching.default_priority_level', `expected a level from 1 to priority_levels (${levels}), got ${defaultLevel}`, db);
  }
  const policies: Record<number, QueuePolicy> = {};
  if (raw !== undefined) {
    eachMapEntry(ctx, 'dynamic_batching.priority_queue_policy', raw, db, (key, value, at) => {
      const path = `dynamic_batching.priority_queue_policy '${key}'`;
      const level = /^\d+$/.test(key) ? Number(key) : NaN;
      if (!(level >= 1 && level <= levels)) ctx.fail(path, `expected a level from 1 to priority_levels (${levels})`, at);
      if (!isObject(value)) ctx.fail(path, 'expected a ModelQueuePolicy message', at);
      policies[level] = queuePolicy(ctx, path, value, unknown);
    });
  }
  return { levels, defaultLevel, policies };
}

const WARMUP_DATA = ['zero_data', 'random_data', 'input_data_file'] as const;

/** Triton's `model_warmup [ { name, batch_size, count, inputs { key, value { data_type, dims, zero_data | random_data | input_data_file } } } ]`. */
function warmupSamples(ctx: Context, v: ConfigValue, root: object): WarmupSample[] {
  return asList(v).map((item, i) => {
    const path = `model_warmup[${i}]`;
    if (!isObject(item)) ctx.fail(path, 'expected a message/table with name, batch_size and inputs', root);
    const f = fieldsOf(item);
    const name = str(ctx, `${path}.name`, f.get('name'), item) || path;
    const where = `model_warmup '${name}'`;
    const batchSize = int(ctx, `${where}.batch_size`, f.get('batch_size'), item, 0) ?? 0;
    const count = int(ctx, `${where}.count`, f.get('count'), item, 0) ?? 0;
    const inputs: WarmupInput[] = [];
    const add = (key: string, value: ConfigValue, at: object) => {
      const ipath = `${where} input '${key}'`;
      const x = object(ctx, ipath, value, at);
      if (!x) ctx.fail(ipath, 'expected { data_type, dims, zero_data | random_data | input_data_file }', at);
      const g = fieldsOf(x);
      const typeText = str(ctx, `${ipath}.data_type`, g.get('data_type') ?? g.get('datatype'), x);
      const datatype = typeText ? datatypeFromConfig(typeText) : undefined;
      if (!datatype) ctx.fail(ipath, `expected a data_type such as TYPE_FP32, got ${JSON.stringify(typeText ?? '')}`, x);
      const dims = asList(g.get('dims') ?? g.get('shape')).map((d, j) => int(ctx, `${ipath}.dims[${j}]`, d, x, 0)!);
      const given = WARMUP_DATA.filter((k) => g.has(k) && one(ctx, `${ipath}.${k}`, g.get(k), x) !== false);
      if (given.length !== 1) ctx.fail(ipath, `expected exactly one of ${WARMUP_DATA.join(', ')}, got ${given.length ? given.join(', ') : 'none'}`, x);
      const file = str(ctx, `${ipath}.input_data_file`, g.get('input_data_file'), x);
      if (given[0] === 'input_data_file' && (!file || file.split(/[\\/]/).includes('..'))) {
        ctx.fail(ipath, `input_data_file must name a file inside <model>/warmup/, got ${JSON.stringify(file ?? '')}`, x);
      }
      inputs.push({
        name: key,
        datatype,
        dims,
        data: given[0] === 'zero_data' ? { kind: 'zero' } : given[0] === 'random_data' ? { kind: 'random' } : { kind: 'file', file: file! },
      });
    };
    eachMapEntry(ctx, `${where}.inputs`, f.get('inputs'), item, add);
    if (inputs.length === 0) ctx.fail(where, 'no inputs', item);
    return { name, batchSize, count, inputs };
  });
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0]!;
}

/**
 * Offset of the first syntax error in `text`. V8's JSON.parse messages do not
 * always carry a position, and the line is what a user needs to fix the file.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail();
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return string();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  const string = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\n') fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail();
    i++;
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
  } catch (pos) {
    if (typeof pos === 'number') return pos;
    throw pos;
  }
  return text.length;
}

function lineAt(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}
