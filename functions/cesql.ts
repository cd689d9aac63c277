/**
 * @module functions/cesql
 * CloudEvents SQL (CESQL) v1, as a Trigger's `cesql` filter uses it: a parser (at definition time,
 * so a syntax error fails `defineFunction`) and an evaluator (in `kinfer dev`'s Broker, per event).
 * No maintained npm package implements CESQL v1, hence this one.
 *
 * It follows the v1 spec (cloudevents/spec, cesql/spec.md) and, where the spec leaves room, the
 * grammar (cesql/CESQLParser.g4, CESQLLexer.g4) and cloudevents/sdk-go's sql/v2, which Knative's
 * Broker runs (knative/eventing, pkg/eventfilter/subscriptionsapi/cesql_filter.go):
 * - keywords and function names are case-insensitive; identifiers are lower-cased;
 * - NOT and unary `-` bind to the operand right after them: `NOT a = b` is `(NOT a) = b`;
 * - LIKE and IN bind tighter than `* / %`, then `+ -`, then comparisons, then AND, OR and XOR,
 *   which share one level and group to the right: `a AND b OR c` is `a AND (b OR c)`;
 * - a sign directly before digits is part of the literal (`x -1` is two operands: a syntax error);
 * - in a string, only the quote escape (`\'` or `\"`) is unescaped; other backslashes stay;
 * - `=`, `!=`, `<>` cast the left operand to the right's type; IN casts the set to the left's type.
 * Evaluation fails fast: the first error (a missing attribute, a failed cast, division by zero, a
 * function's bad argument) ends it, and a filter whose expression errs does not match, as in
 * Knative. Attributes are Strings (the Broker holds them as binary mode carries them).
 *
 * @example
 * const where = parseCesqlFilter("type LIKE 'io.kinfer.%' AND INT(priority) > 3");
 * cesqlMatches(where, { type: 'io.kinfer.inference.request', priority: '5' }); // true
 */
import { InvalidArgument } from '../runtime/core/errors.js';

/** A CESQL value: String, Integer (a 32-bit signed number) or Boolean. */
export type Value = string | number | boolean;
export type ValueType = 'String' | 'Integer' | 'Boolean';

/** Longest expression taken, and deepest nesting: a filter is short, and evaluation recurses. */
export const MAX_CESQL_LENGTH = 4096;
export const MAX_CESQL_DEPTH = 128;

type BinaryOp = 'AND' | 'OR' | 'XOR' | '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%';

/** A parsed expression. */
export type Expr =
  | { kind: 'literal'; value: Value }
  | { kind: 'attribute'; name: string }
  | { kind: 'exists'; name: string }
  | { kind: 'not'; operand: Expr }
  | { kind: 'negate'; operand: Expr }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr }
  | { kind: 'like'; operand: Expr; pattern: LikeToken[]; negated: boolean }
  | { kind: 'in'; operand: Expr; set: Expr[]; negated: boolean }
  | { kind: 'call'; name: string; args: Expr[] };

/** A LIKE pattern's parts: `%` (any run), `_` (one character), or one literal character. */
type LikeToken = { any: true } | { one: true } | { char: string };

/** The spec's evaluation error kinds (3.3), less ParseError (a CesqlSyntaxError at parse time). */
export type CesqlErrorKind = 'math' | 'cast' | 'missingAttribute' | 'functionEvaluation';

/** An expression that does not parse, or names a function CESQL lacks; the message names the position (1-based). */
export class CesqlSyntaxError extends InvalidArgument {}

/** An error while evaluating: the expression's value is undefined, and as a filter it does not match. */
export class CesqlEvalError extends Error {
  constructor(
    readonly kind: CesqlErrorKind,
    message: string,
  ) {
    super(message);
  }
}

// ---- Lexer ----

const KEYWORDS = new Set(['AND', 'OR', 'XOR', 'NOT', 'LIKE', 'EXISTS', 'IN', 'TRUE', 'FALSE']);

type Token =
  | { t: 'int'; text: string; at: number }
  | { t: 'string'; value: string; at: number }
  /** Letters and digits, not all digits: an attribute, or (letters only) a function name. */
  | { t: 'word'; text: string; at: number }
  /** Letters and `_`: only a function name. */
  | { t: 'fname'; text: string; at: number }
  | { t: 'keyword'; text: string; at: number }
  | { t: 'punct'; text: string; at: number }
  | { t: 'end'; at: number };

const PUNCT = ['!=', '<>', '<=', '>=', '<', '>', '=', '*', '/', '%', '+', '-', '(', ')', ','];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const at = (re: RegExp) => {
    re.lastIndex = i;
    return re.exec(src)?.[0] ?? '';
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      // CESQLLexer: a backslash escapes any character, a doubled quote stays inside; only `\<quote>` is unescaped (sdk-go).
      let j = i + 1;
      for (; j < src.length; j++) {
        if (src[j] === '\\') j++;
        else if (src[j] === c && src[j + 1] === c) j++;
        else if (src[j] === c) break;
      }
      if (j >= src.length) throw syntax(src, i, `string starting here has no closing ${c}`);
      out.push({ t: 'string', value: src.slice(i + 1, j).replaceAll(`\\${c}`, c), at: i });
      i = j + 1;
      continue;
    }
    // The lexer's longest match: a signed integer, a word of letters and digits, or a function name with `_`.
    const int = at(/[+-]?[0-9]+/y);
    const word = at(/[A-Za-z0-9]+/y);
    const fname = at(/[A-Za-z][A-Za-z_]*/y);
    if (int.length > 0 && int.length >= word.length) {
      out.push({ t: 'int', text: int, at: i });
      i += int.length;
    } else if (fname.length > word.length) {
      out.push({ t: 'fname', text: fname.toUpperCase(), at: i });
      i += fname.length;
    } else if (word.length > 0) {
      const upper = word.toUpperCase();
      out.push(KEYWORDS.has(upper) ? { t: 'keyword', text: upper, at: i } : { t: 'word', text: word, at: i });
      i += word.length;
    } else {
      const p = PUNCT.find((p) => src.startsWith(p, i));
      if (!p) throw syntax(src, i, `unexpected character ${JSON.stringify(c)}`);
      out.push({ t: 'punct', text: p, at: i });
      i += p.length;
    }
  }
  out.push({ t: 'end', at: src.length });
  return out;
}

function syntax(src: string, at: number, why: string): CesqlSyntaxError {
  const near = src.slice(at, at + 20);
  return new CesqlSyntaxError(`CESQL ${JSON.stringify(src.length > 200 ? `${src.slice(0, 200)}…` : src)}: at position ${at + 1}${near ? ` (${JSON.stringify(near)})` : ' (the end)'}: ${why}`);
}

// ---- Parser ----

/** Binding power, after the grammar's alternatives: suffix LIKE and IN, then the binary levels; prefix operators above all. */
const PREC: Record<string, number> = { LIKE: 6, IN: 5, '*': 4, '/': 4, '%': 4, '+': 3, '-': 3, '=': 2, '!=': 2, '<>': 2, '<': 2, '<=': 2, '>': 2, '>=': 2, AND: 1, OR: 1, XOR: 1 };
const PREFIX_PREC = 7;

/** Parses an expression; throws CesqlSyntaxError naming the position of the first mistake. */
export function parseCesql(src: string): Expr {
  if (src.length > MAX_CESQL_LENGTH) throw new CesqlSyntaxError(`CESQL expression of ${src.length} characters: at most ${MAX_CESQL_LENGTH}`);
  const tokens = tokenize(src);
  let pos = 0;
  let depth = 0;
  const peek = (k = 0) => tokens[Math.min(pos + k, tokens.length - 1)]!;
  const describe = (t: Token) => (t.t === 'end' ? 'the end' : t.t === 'string' ? 'a string' : JSON.stringify(t.text));
  const fail = (t: Token, why: string): never => {
    throw syntax(src, t.at, why);
  };
  const isPunct = (t: Token, p: string) => t.t === 'punct' && t.text === p;
  const isKeyword = (t: Token, k: string) => t.t === 'keyword' && t.text === k;
  const expect = (p: string) => {
    const t = peek();
    if (!isPunct(t, p)) fail(t, `expected "${p}" but found ${describe(t)}`);
    pos++;
  };
  const nest = <T>(t: Token, f: () => T): T => {
    if (++depth > MAX_CESQL_DEPTH) fail(t, `nested deeper than ${MAX_CESQL_DEPTH}`);
    try {
      return f();
    } finally {
      depth--;
    }
  };
  /** `( e, e, ... )`: non-empty for a set, possibly empty for a call. */
  const list = (allowEmpty: boolean): Expr[] => {
    expect('(');
    const items: Expr[] = [];
    if (allowEmpty && isPunct(peek(), ')')) {
      pos++;
      return items;
    }
    for (;;) {
      items.push(expression(0));
      if (isPunct(peek(), ',')) pos++;
      else break;
    }
    expect(')');
    return items;
  };

  const primary = (): Expr =>
    nest(peek(), () => {
      const t = peek();
      pos++;
      if (isKeyword(t, 'NOT')) return { kind: 'not', operand: expression(PREFIX_PREC) };
      if (isPunct(t, '-')) return { kind: 'negate', operand: expression(PREFIX_PREC) };
      if (isKeyword(t, 'TRUE') || isKeyword(t, 'FALSE')) return { kind: 'literal', value: t.t === 'keyword' && t.text === 'TRUE' };
      if (isKeyword(t, 'EXISTS')) {
        const id = peek();
        if (id.t !== 'word') fail(id, `EXISTS takes an attribute name, not ${describe(id)}`);
        pos++;
        return { kind: 'exists', name: (id as { text: string }).text.toLowerCase() };
      }
      if (isPunct(t, '(')) {
        const inner = expression(0);
        expect(')');
        return inner;
      }
      if (t.t === 'int') {
        const n = Number(t.text);
        if (n < -(2 ** 31) || n > 2 ** 31 - 1) fail(t, `${t.text} is not a 32-bit integer`);
        return { kind: 'literal', value: n };
      }
      if (t.t === 'string') return { kind: 'literal', value: t.value };
      if ((t.t === 'word' && /^[A-Za-z]+$/.test(t.text)) || t.t === 'fname') {
        if (isPunct(peek(), '(')) return call(t, t.text.toUpperCase(), list(true));
      }
      if (t.t === 'fname') fail(peek(), `expected "(" after the function name ${t.text}`);
      if (t.t === 'word') return { kind: 'attribute', name: t.text.toLowerCase() };
      return fail(t, `expected a value, an attribute, a function call, NOT, "-", EXISTS or "(" but found ${describe(t)}`);
    });

  const call = (t: Token, name: string, args: Expr[]): Expr => {
    const f = FUNCTIONS[name];
    if (!f) fail(t, `unknown function ${name}; CESQL has ${Object.keys(FUNCTIONS).join(', ')}`);
    if (args.length < f!.params.length || (!f!.rest && args.length > f!.params.length + (f!.optional ?? 0))) fail(t, `${name} takes ${f!.arity}, not ${args.length} argument${args.length === 1 ? '' : 's'}`);
    return { kind: 'call', name, args };
  };

  const expression = (min: number): Expr =>
    nest(peek(), () => {
      let left = primary();
      for (;;) {
        const t = peek();
        const negated = isKeyword(t, 'NOT') && (isKeyword(peek(1), 'LIKE') || isKeyword(peek(1), 'IN'));
        const op = negated ? peek(1) : t;
        if (isKeyword(op, 'LIKE') || isKeyword(op, 'IN')) {
          const keyword = (op as { text: string }).text;
          if (PREC[keyword]! < min) break;
          pos += negated ? 2 : 1;
          if (keyword === 'IN') {
            left = { kind: 'in', operand: left, set: list(false), negated };
          } else {
            const p = peek();
            if (p.t !== 'string') fail(p, `LIKE takes a string literal pattern, not ${describe(p)}`);
            pos++;
            left = { kind: 'like', operand: left, pattern: likePattern((p as { value: string }).value), negated };
          }
          continue;
        }
        const name = t.t === 'punct' || t.t === 'keyword' ? t.text : undefined;
        const prec = name === undefined ? undefined : PREC[name];
        if (prec === undefined || name === 'LIKE' || name === 'IN' || prec < min) break;
        pos++;
        if (prec === 1) {
          // AND, OR and XOR group to the right (the grammar's <assoc=right>). Their chain is read here,
          // term by term, so a long flat `a OR b OR ...` does not nest the parser once per term.
          const operands = [left, expression(2)];
          const ops = [name as BinaryOp];
          for (let n = peek(); n.t === 'keyword' && PREC[n.text] === 1; n = peek()) {
            ops.push(n.text as BinaryOp);
            pos++;
            operands.push(expression(2));
          }
          left = operands.pop()!;
          while (ops.length > 0) left = { kind: 'binary', op: ops.pop()!, left: operands.pop()!, right: left };
          continue;
        }
        // The others group to the left.
        left = { kind: 'binary', op: name as BinaryOp, left, right: expression(prec + 1) };
      }
      return left;
    });

  const root = expression(0);
  const rest = peek();
  if (rest.t !== 'end') fail(rest, `expected an operator or the end but found ${describe(rest)}`);
  return root;
}

/** Parses a filter: the expression must be a Boolean (Knative passes an event only on `true`). */
export function parseCesqlFilter(src: string): Expr {
  const e = parseCesql(src);
  const type = staticType(e);
  if (type !== 'Boolean') {
    throw new CesqlSyntaxError(`CESQL ${JSON.stringify(src)}: evaluates to ${type === 'Integer' ? 'an Integer' : 'a String'}, not a Boolean, so it would match no event; compare it (e.g. ${e.kind === 'attribute' ? `${e.name} = 'value' or BOOL(${e.name})` : "x = 'value'"})`);
  }
  return e;
}

/** The type an expression evaluates to, known from its form (attributes are Strings). */
export function staticType(e: Expr): ValueType {
  switch (e.kind) {
    case 'literal':
      return typeOf(e.value);
    case 'attribute':
      return 'String';
    case 'negate':
      return 'Integer';
    case 'binary':
      return '+-*/%'.includes(e.op) ? 'Integer' : 'Boolean';
    case 'call':
      return FUNCTIONS[e.name]!.returns;
    default:
      return 'Boolean';
  }
}

/** `%` any run, `_` one character, `\%` and `\_` themselves; any other character (a lone backslash too) itself. */
function likePattern(p: string): LikeToken[] {
  const chars = Array.from(p);
  const out: LikeToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\' && (chars[i + 1] === '%' || chars[i + 1] === '_')) out.push({ char: chars[++i]! });
    else if (c === '%') out.push({ any: true });
    else if (c === '_') out.push({ one: true });
    else out.push({ char: c });
  }
  return out;
}

/** Wildcard match in O(text × pattern) at worst: backtracks only to the last `%` (no regular expression to blow up). */
function like(text: string, pattern: LikeToken[]): boolean {
  const s = Array.from(text);
  let i = 0;
  let p = 0;
  let star = -1;
  let mark = 0;
  while (i < s.length) {
    const t = pattern[p];
    if (t && ('one' in t || ('char' in t && t.char === s[i]))) {
      i++;
      p++;
    } else if (t && 'any' in t) {
      star = p++;
      mark = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && 'any' in pattern[p]!) p++;
  return p === pattern.length;
}

// ---- Evaluation ----

export function typeOf(v: Value): ValueType {
  return typeof v === 'string' ? 'String' : typeof v === 'number' ? 'Integer' : 'Boolean';
}

/** The spec's casts (3.7); one that fails is a cast error. */
export function cast(v: Value, to: ValueType): Value {
  if (typeOf(v) === to) return v;
  if (to === 'String') return String(v);
  if (to === 'Integer') {
    if (typeof v === 'boolean') return v ? 1 : 0;
    const n = /^[+-]?[0-9]+$/.test(v as string) ? Number(v) : NaN;
    if (!(n >= -(2 ** 31) && n <= 2 ** 31 - 1)) throw new CesqlEvalError('cast', `cannot cast ${JSON.stringify(v)} to an Integer`);
    return n | 0;
  }
  if (typeof v === 'number') return v !== 0;
  const lower = (v as string).toLowerCase();
  if (lower === 'true' || lower === 'false') return lower === 'true';
  throw new CesqlEvalError('cast', `cannot cast ${JSON.stringify(v)} to a Boolean`);
}

const int = (v: Value) => cast(v, 'Integer') as number;
const bool = (v: Value) => cast(v, 'Boolean') as boolean;
const str = (v: Value) => cast(v, 'String') as string;

/** Evaluates `e` against an event's attributes; throws CesqlEvalError on the first error (fail-fast mode, spec 4.1). */
export function evaluateCesql(e: Expr, attributes: Readonly<Record<string, string>>): Value {
  const ev = (x: Expr): Value => evaluateCesql(x, attributes);
  switch (e.kind) {
    case 'literal':
      return e.value;
    case 'attribute': {
      const v = Object.hasOwn(attributes, e.name) ? attributes[e.name] : undefined;
      if (v === undefined) throw new CesqlEvalError('missingAttribute', `missing attribute ${e.name}`);
      return v;
    }
    case 'exists':
      return Object.hasOwn(attributes, e.name);
    case 'not':
      return !bool(ev(e.operand));
    case 'negate':
      return -int(ev(e.operand)) | 0;
    case 'like':
      return like(str(ev(e.operand)), e.pattern) !== e.negated;
    case 'in': {
      const x = ev(e.operand);
      // Each element cast to the left's type, in order, up to the first equal one (as sdk-go).
      for (const el of e.set) if (cast(ev(el), typeOf(x)) === x) return !e.negated;
      return e.negated;
    }
    case 'call': {
      const f = FUNCTIONS[e.name]!;
      const args = e.args.map((a, i) => {
        const type = f.params[i] ?? f.optionalType ?? f.rest;
        const v = ev(a);
        return type === 'Any' || type === undefined ? v : cast(v, type);
      });
      return f.fn(args);
    }
    case 'binary':
      return binary(e.op, e.left, e.right, ev);
  }
}

function binary(op: BinaryOp, l: Expr, r: Expr, ev: (x: Expr) => Value): Value {
  switch (op) {
    case 'AND':
      return bool(ev(l)) && bool(ev(r));
    case 'OR':
      return bool(ev(l)) || bool(ev(r));
    case 'XOR':
      return bool(ev(l)) !== bool(ev(r));
    case '=':
    case '!=':
    case '<>': {
      // An ambiguous operator: the left operand is cast to the right's type (spec 3.7).
      const left = ev(l);
      const right = ev(r);
      return (cast(left, typeOf(right)) === right) === (op === '=');
    }
  }
  const a = int(ev(l));
  const b = int(ev(r));
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    // 32-bit arithmetic wraps as Go's int32 does.
    case '+':
      return (a + b) | 0;
    case '-':
      return (a - b) | 0;
    case '*':
      return Math.imul(a, b);
  }
  if (b === 0) throw new CesqlEvalError('math', `${op === '/' ? 'division' : 'modulo'} by zero`);
  return op === '/' ? (a / b) | 0 : a % b | 0;
}

/** Whether a filter's expression matches: true, without error (an error, or any other value, does not). */
export function cesqlMatches(e: Expr, attributes: Readonly<Record<string, string>>): boolean {
  try {
    return evaluateCesql(e, attributes) === true;
  } catch (err) {
    if (err instanceof CesqlEvalError) return false;
    throw err;
  }
}

// ---- Built-in functions (spec 3.5; the casting ones as in the TCK and sdk-go) ----

type Param = ValueType | 'Any';
interface Fn {
  params: Param[];
  /** Trailing optional parameters (SUBSTRING's len) and their type. */
  optional?: number;
  optionalType?: Param;
  /** The type of variadic arguments after `params`. */
  rest?: Param;
  returns: ValueType;
  arity: string;
  fn: (args: Value[]) => Value;
}

/** Unicode White_Space, as Go's unicode.IsSpace (sdk-go's TRIM): JS's trim() differs on U+0085 and U+FEFF. */
const SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const TRIM = new RegExp(`^${SPACE}+|${SPACE}+$`, 'g');
const chars = (s: Value) => Array.from(s as string);
const fnError = (why: string) => new CesqlEvalError('functionEvaluation', why);

const FUNCTIONS: Record<string, Fn> = {
  LENGTH: { params: ['String'], returns: 'Integer', arity: '1 argument', fn: ([x]) => chars(x!).length },
  CONCAT: { params: [], rest: 'String', returns: 'String', arity: 'any number of arguments', fn: (xs) => xs.join('') },
  CONCAT_WS: { params: ['String'], rest: 'String', returns: 'String', arity: 'at least 1 argument', fn: ([d, ...xs]) => xs.join(d as string) },
  LOWER: { params: ['String'], returns: 'String', arity: '1 argument', fn: ([x]) => (x as string).toLowerCase() },
  UPPER: { params: ['String'], returns: 'String', arity: '1 argument', fn: ([x]) => (x as string).toUpperCase() },
  TRIM: { params: ['String'], returns: 'String', arity: '1 argument', fn: ([x]) => (x as string).replace(TRIM, '') },
  LEFT: {
    params: ['String', 'Integer'],
    returns: 'String',
    arity: '2 arguments',
    fn: ([x, y]) => {
      if ((y as number) < 0) throw fnError(`LEFT of a negative length ${y}`);
      return chars(x!).slice(0, y as number).join('');
    },
  },
  RIGHT: {
    params: ['String', 'Integer'],
    returns: 'String',
    arity: '2 arguments',
    fn: ([x, y]) => {
      if ((y as number) < 0) throw fnError(`RIGHT of a negative length ${y}`);
      const c = chars(x!);
      return c.slice(Math.max(0, c.length - (y as number))).join('');
    },
  },
  SUBSTRING: {
    params: ['String', 'Integer'],
    optional: 1,
    optionalType: 'Integer',
    returns: 'String',
    arity: '2 or 3 arguments',
    fn: ([x, p, len]) => {
      const c = chars(x!);
      const pos = p as number;
      if (pos > c.length || pos < -c.length) throw fnError(`SUBSTRING position ${pos} is outside a string of ${c.length} characters`);
      if (len !== undefined && (len as number) < 0) throw fnError(`SUBSTRING of a negative length ${len}`);
      if (pos === 0) return '';
      const start = pos > 0 ? pos - 1 : c.length + pos;
      return c.slice(start, len === undefined ? undefined : start + (len as number)).join('');
    },
  },
  ABS: {
    params: ['Integer'],
    returns: 'Integer',
    arity: '1 argument',
    fn: ([x]) => {
      if (x === -(2 ** 31)) throw new CesqlEvalError('math', 'ABS(-2147483648) overflows a 32-bit integer');
      return Math.abs(x as number);
    },
  },
  INT: { params: ['Any'], returns: 'Integer', arity: '1 argument', fn: ([x]) => cast(x!, 'Integer') },
  BOOL: { params: ['Any'], returns: 'Boolean', arity: '1 argument', fn: ([x]) => cast(x!, 'Boolean') },
  STRING: { params: ['Any'], returns: 'String', arity: '1 argument', fn: ([x]) => cast(x!, 'String') },
  IS_INT: { params: ['Any'], returns: 'Boolean', arity: '1 argument', fn: ([x]) => canCast(x!, 'Integer') },
  IS_BOOL: { params: ['Any'], returns: 'Boolean', arity: '1 argument', fn: ([x]) => canCast(x!, 'Boolean') },
};

function canCast(v: Value, to: ValueType): boolean {
  try {
    cast(v, to);
    return true;
  } catch {
    return false;
  }
}
