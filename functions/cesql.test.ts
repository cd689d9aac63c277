/**
 * CESQL v1 (functions/cesql.ts) against the spec's examples and its TCK: the cases below are those of
 * cloudevents/spec cesql/cesql_tck/*.yaml (binary_comparison_operators, binary_logical_operators,
 * binary_math_operators, casting_functions, context_attributes_access, integer_builtin_functions,
 * like_expression, literals, negate_operator, not_operator, spec_examples, string_builtin_functions,
 * sub_expression, subscriptions_api_recreations), and spec.md section 5's examples, rewritten as a
 * table. Evaluation is fail-fast, so a case the TCK gives both a value and an error checks the error.
 * Where a TCK file predates v1 (NOT 10 a cast error; an absent attribute ""; the last conjunctive
 * normal form case, written before AND short-circuited, expecting myext's error), v1's text decides.
 */
import { describe, expect, it } from 'vitest';
import { CesqlEvalError, CesqlSyntaxError, MAX_CESQL_DEPTH, MAX_CESQL_LENGTH, cesqlMatches, evaluateCesql, parseCesql, parseCesqlFilter, type CesqlErrorKind, type Value } from './cesql.js';

const event = { specversion: '1.0', id: 'myId', source: 'localhost.localdomain', type: 'myType' };

type Case = [expression: string, expected: Value | { error: CesqlErrorKind }, attributes?: Record<string, string>];

function run(expression: string, attributes: Record<string, string> = {}): Value | { error: CesqlErrorKind } {
  try {
    return evaluateCesql(parseCesql(expression), { ...event, ...attributes });
  } catch (err) {
    if (err instanceof CesqlEvalError) return { error: err.kind };
    throw err;
  }
}

const tck: Record<string, Case[]> = {
  'binary comparison': [
    ['TRUE = FALSE', false], ['FALSE = FALSE', true], ['1 = 2', false], ['2 = 2', true], ["'abc' = '123'", false], ["'abc' = 'abc'", true],
    ['missing = 2', { error: 'missingAttribute' }],
    ['TRUE != FALSE', true], ['FALSE != FALSE', false], ['1 != 2', true], ['2 != 2', false], ["'abc' != '123'", true], ["'abc' != 'abc'", false],
    ['missing != 2', { error: 'missingAttribute' }],
    ['TRUE <> FALSE', true], ['FALSE <> FALSE', false], ['1 <> 2', true], ['2 <> 2', false], ["'abc' <> '123'", true], ["'abc' <> 'abc'", false],
    ['missing <> 2', { error: 'missingAttribute' }],
    ['2 <= 2', true], ['3 <= 2', false], ['1 < 2', true], ['2 < 2', false], ['2 >= 2', true], ['2 >= 3', false], ['2 > 1', true], ['2 > 2', false],
    ['missing <= 2', { error: 'missingAttribute' }],
    ["true = 'TRUE'", false], ["'TRUE' = true", true],
  ],
  'binary logical': [
    ['FALSE AND FALSE', false], ['FALSE AND TRUE', false], ['TRUE AND FALSE', false], ['TRUE AND TRUE', true],
    ['false and (1 != 1 / 0)', false], ['true and (1 != 1 / 0)', { error: 'math' }],
    ['FALSE OR FALSE', false], ['FALSE OR TRUE', true], ['TRUE OR FALSE', true], ['TRUE OR TRUE', true],
    ['true or (1 != 1 / 0)', true], ['false or (1 != 1 / 0)', { error: 'math' }],
    ['FALSE XOR FALSE', false], ['FALSE XOR TRUE', true], ['TRUE XOR FALSE', true], ['TRUE XOR TRUE', false],
  ],
  'binary math': [
    ['4 * 2 + 4 / 2', 10], ['4 * (2 + 4) / 2', 12], ['5 / 3', 1], ['5 / 0', { error: 'math' }], ['5 % 2', 1], ['5 % 0', { error: 'math' }],
    ['missing / 0', { error: 'missingAttribute' }], ['missing % 0', { error: 'missingAttribute' }],
    ['4 + 1', 5], ['-4 + 1', -3], ['-4 + -1', -5], ['4 + -1', 3], ['4 - 1', 3], ['-4 - 1', -5],
    ["'5' + 3", 8], ["5 + '3'", 8], ["'5' + '3'", 8], ['5 + TRUE', 6],
  ],
  'casting functions': [
    ["INT('1')", 1], ["INT('-1')", -1], ['INT(1)', 1], ['INT(-1)', -1], ['INT(TRUE)', 1], ['INT(FALSE)', 0], ["INT('ABC')", { error: 'cast' }],
    ["BOOL('TRUE')", true], ['BOOL("false")', false], ['BOOL(TRUE)', true], ['BOOL(FALSE)', false], ["BOOL('ABC')", { error: 'cast' }],
    ['BOOL(1)', true], ['BOOL(0)', false], ['BOOL(100)', true], ['BOOL(-50)', true],
    ['STRING(TRUE)', 'true'], ['STRING(FALSE)', 'false'], ['STRING(1)', '1'], ['STRING(-1)', '-1'], ['STRING("abc")', 'abc'],
  ],
  'context attributes': [
    ['id', 'myId'], ['subject', 'mySubject', { subject: 'mySubject' }], ['subject', { error: 'missingAttribute' }],
    ['myext', 'my extension', { myext: 'my extension' }], ['source', 'http://localhost/source', { source: 'http://localhost/source' }],
    ['time', '2018-04-26T14:48:09+02:00', { time: '2018-04-26T14:48:09+02:00' }],
  ],
  'integer functions': [['ABS(10)', 10], ['ABS(-10)', 10], ['ABS(0)', 0], ['ABS(-2147483648)', { error: 'math' }]],
  like: [
    ["'abc' LIKE 'abc'", true], ["'ab\\c' LIKE 'ab\\c'", true], ["'abc' NOT LIKE 'abc'", false],
    ["'abc' LIKE 'a%b%c'", true], ["'azbc' LIKE 'a%b%c'", true], ["'azzzbzzzc' LIKE 'a%b%c'", true], ["'a%b%c' LIKE 'a%b%c'", true],
    ["'ac' LIKE 'abc'", false], ["'' LIKE 'abc'", false], ["'.ab.cde.' LIKE '.%.%.'", true], ["'ab.cde' LIKE '.%.%.'", false],
    ["'abc' LIKE 'a_b_c'", false], ["'a_b_c' LIKE 'a_b_c'", true], ["'abzc' LIKE 'a_b_c'", false], ["'azbc' LIKE 'a_b_c'", false],
    ["'azbzc' LIKE 'a_b_c'", true], ["'.a.b.' LIKE '._._.'", true], ["'abcd.' LIKE '._._.'", false],
    ["'a_b_c' LIKE 'a\\_b\\_c'", true], ["'a_b_c' NOT LIKE 'a\\_b\\_c'", false], ["'azbzc' LIKE 'a\\_b\\_c'", false], ["'abc' LIKE 'a\\_b\\_c'", false],
    ["'abc' LIKE 'a\\%b\\%c'", false], ["'a%b%c' LIKE 'a\\%b\\%c'", true], ["'azbzc' LIKE 'a\\%b\\%c'", false],
    ["myext LIKE 'abc%123\\%456\\_d_f'", true, { myext: 'abc123123%456_dzf' }], ["myext NOT LIKE 'abc%123\\%456\\_d_f'", false, { myext: 'abc123123%456_dzf' }],
    ["234 LIKE '23_'", true], ["2344 LIKE '23%'", true], ["2344 LIKE '23_'", false],
    ["TRUE LIKE 'tr%'", true], ["TRUE LIKE '%ue'", true], ["FALSE LIKE 'tr%'", false], ["FALSE LIKE 'fal%'", true],
  ],
  literals: [
    ['TRUE', true], ['FALSE', false], ['0', 0], ['1', 1], ["'abc'", 'abc'], ['"abc"', 'abc'], ["'aBc'", 'aBc'], ['"AbC"', 'AbC'],
    ["'a\"b\\'c'", 'a"b\'c'], ['"a\'b\\"c"', 'a\'b"c'],
  ],
  negate: [['-10', -10], ['--10', 10], ["-'10'", -10], ["--'10'", 10], ['-TRUE', -1], ['-missing', { error: 'missingAttribute' }]],
  not: [['NOT TRUE', false], ['NOT FALSE', true], ["NOT 'TRUE'", false], ["NOT 'FALSE'", true], ['NOT 10', false], ['NOT missing', { error: 'missingAttribute' }]],
  'spec examples': [
    ['int(hop) < int(ttl) and int(hop) < 1000', true, { hop: '5', ttl: '10' }],
    ['INT(hop) < INT(ttl) AND INT(hop) < 1000', true, { hop: '5', ttl: '10' }],
    ['hop < ttl', true, { hop: '5', ttl: '10' }],
    ['sequence = 5', true, { sequence: '5' }], ['sequence = 5', false, { sequence: '6' }],
    ["firstname = 'Francesco' OR subject = 'Francesco'", true, { subject: 'Francesco', firstname: 'Doug' }],
    ["firstname = 'Francesco' OR subject = 'Francesco'", true, { firstname: 'Francesco', subject: 'Doug' }],
    ["(firstname = 'Francesco' AND lastname = 'Guardiani') OR subject = 'Francesco Guardiani'", true, { subject: 'Doug', firstname: 'Francesco', lastname: 'Guardiani' }],
    ["(firstname = 'Francesco' AND lastname = 'Guardiani') OR subject = 'Francesco Guardiani'", true, { subject: 'Francesco Guardiani', firstname: 'Doug', lastname: 'Davis' }],
    ['EXISTS subject', true, { subject: 'Francesco Guardiani' }], ['EXISTS subject', false], ['EXISTS id', true],
  ],
  'string functions': [
    ["LENGTH('abc')", 3], ["LENGTH('')", 0], ["LENGTH('2')", 1], ['LENGTH(TRUE)', 4],
    ["CONCAT('a', 'b', 'c')", 'abc'], ['CONCAT()', ''], ["CONCAT('a')", 'a'],
    ["CONCAT_WS(',', 'a', 'b', 'c')", 'a,b,c'], ["CONCAT_WS(',')", ''], ["CONCAT_WS(',', 'a')", 'a'],
    ["LOWER('ABC')", 'abc'], ["LOWER('AbC')", 'abc'], ["LOWER('abc')", 'abc'], ["UPPER('ABC')", 'ABC'], ["UPPER('AbC')", 'ABC'], ["UPPER('abc')", 'ABC'],
    ["TRIM('   a b c   ')", 'a b c'], ["TRIM('   a b c')", 'a b c'], ["TRIM('a b c   ')", 'a b c'], ["TRIM('a b c')", 'a b c'],
    ["LEFT('abc', 2)", 'ab'], ["LEFT('abc', 10)", 'abc'], ["LEFT('', 0)", ''], ["LEFT('abc', -2)", { error: 'functionEvaluation' }],
    ["RIGHT('abc', 2)", 'bc'], ["RIGHT('abc', 10)", 'abc'], ["RIGHT('', 0)", ''], ["RIGHT('abc', -2)", { error: 'functionEvaluation' }],
    ["SUBSTRING('abcdef', 1)", 'abcdef'], ["SUBSTRING('abcdef', 2)", 'bcdef'], ["SUBSTRING('Quadratically', 5)", 'ratically'], ["SUBSTRING('Sakila', -3)", 'ila'],
    ["SUBSTRING('abcdef', 1, 6)", 'abcdef'], ["SUBSTRING('abcdef', 2, 4)", 'bcde'], ["SUBSTRING('Sakila', -5, 3)", 'aki'],
    ["SUBSTRING('Quadratically', 0)", ''], ["SUBSTRING('Quadratically', 0, 1)", ''],
    ["SUBSTRING('abcdef', 10)", { error: 'functionEvaluation' }], ["SUBSTRING('abcdef', -10)", { error: 'functionEvaluation' }],
    ["SUBSTRING('abcdef', 10, 10)", { error: 'functionEvaluation' }], ["SUBSTRING('abcdef', -10, 10)", { error: 'functionEvaluation' }],
  ],
  'sub expressions': [['(TRUE)', true], ['4 * (2 + 3)', 20], ['(2 + 3) * 4', 20]],
  'subscriptions API recreations': [
    ["source LIKE 'https://%'", true, { source: 'https://example.com' }], ["source LIKE 'https://%'", false, { source: 'http://example.com' }],
    ["myext LIKE 'custom%'", true, { myext: 'customext' }], ["myext LIKE 'custom%'", { error: 'missingAttribute' }],
    ["type like '%.error'", true, { type: 'com.github.error' }], ["type like '%.error'", false, { type: 'com.github.success' }],
    ["myext = 'customext'", { error: 'missingAttribute' }], ["id = 'myId'", false, { id: 'notmyId' }],
    ["id LIKE 'my%' AND source LIKE '%.ca'", true, { source: 'http://www.some-website.ca' }],
    ["id LIKE 'my%' AND source LIKE '%.ca'", false, { source: 'http://www.some-website.com' }],
    ["type LIKE 'example.%' AND myext LIKE 'custom%'", { error: 'missingAttribute' }, { type: 'example.event.type' }],
    ["id LIKE 'my%' OR source LIKE '%.ca'", true, { id: 'notmyId', source: 'http://www.some-website.ca' }],
    ["id LIKE 'my%' OR source LIKE '%.ca'", false, { id: 'notmyId', source: 'http://www.some-website.com' }],
    ["id LIKE 'my%' OR myext LIKE '%ext'", { error: 'missingAttribute' }, { id: 'notmyId' }],
    ["(id = 'myId' AND type LIKE '%.success') OR (id = 'notmyId' AND source LIKE 'http://%' AND type LIKE '%.warning')", true, { type: 'example.event.success' }],
    ["(id = 'myId' AND type LIKE '%.success') OR (id = 'notmyId' AND source LIKE 'http://%' AND type LIKE '%.warning')", true, { id: 'notmyId', type: 'example.event.warning', source: 'http://localhost.localdomain' }],
    ["(id = 'myId' AND type LIKE '%.success') OR (id = 'notmyId' AND source LIKE 'http://%' AND type LIKE '%.warning')", false, { id: 'notmyId', type: 'example.event.warning', source: 'https://localhost.localdomain' }],
    ["(id = 'myId' OR type LIKE '%.success') AND (id = 'notmyId' OR source LIKE 'https://%' OR type LIKE '%.warning')", true, { type: 'example.event.warning', source: 'http://localhost.localdomain' }],
    ["(id = 'myId' OR type LIKE '%.success') AND (id = 'notmyId' OR source LIKE 'https://%' OR type LIKE '%.warning')", false, { id: 'notmyId', type: 'example.event.warning', source: 'http://localhost.localdomain' }],
    ["(id = 'myId' OR type LIKE '%.success') AND (id = 'notmyId' OR source LIKE 'https://%' OR type LIKE '%.warning') AND (myext = 'customext')", false, { type: 'example.event.success' }],
  ],
};

describe('CESQL: the TCK and the spec examples', () => {
  for (const [suite, cases] of Object.entries(tck)) {
    it(suite, () => {
      for (const [expression, expected, attributes] of cases) expect([expression, run(expression, attributes)]).toEqual([expression, expected]);
    });
  }
});

describe('CESQL: grammar and evaluation details', () => {
  it('groups as the grammar does: prefix operators bind first, LIKE and IN before arithmetic, AND/OR/XOR to the right', () => {
    expect(run('NOT TRUE = FALSE')).toBe(true); // (NOT TRUE) = FALSE
    expect(run('FALSE AND FALSE OR TRUE')).toBe(false); // FALSE AND (FALSE OR TRUE)
    expect(run('TRUE OR FALSE AND FALSE')).toBe(true);
    expect(run('-2 * 3 + 10 % 4')).toBe(-4);
    expect(run("'a' LIKE 'a' = TRUE")).toBe(true);
    expect(run('1 + 2 IN (2)')).toBe(2); // 1 + (2 IN (2)): TRUE as 1
    expect(run('1 < 2 = TRUE')).toBe(true);
  });

  it('IN casts the set to the left type and stops at the first equal element; NOT IN negates', () => {
    expect(run("sequence IN (1, '5', 7)", { sequence: '5' })).toBe(true);
    expect(run('5 IN (1, sequence)', { sequence: '5' })).toBe(true);
    expect(run("type IN ('a', 'myType', missing)")).toBe(true);
    expect(run("type IN ('a', missing)")).toEqual({ error: 'missingAttribute' });
    expect(run("type NOT IN ('a', 'b')")).toBe(true);
    expect(run("5 IN ('x')")).toEqual({ error: 'cast' });
  });

  it('casts strings to integers in 32 bits, wraps arithmetic as int32, compares strings case-sensitively', () => {
    expect(run("'+7' = 7")).toBe(true);
    expect(run("'2147483648' = 1")).toEqual({ error: 'cast' });
    expect(run("' 7' = 7")).toEqual({ error: 'cast' });
    expect(run('2147483647 + 1')).toBe(-2147483648);
    expect(run('-2147483648 / -1')).toBe(-2147483648);
    expect(run('-7 / 2')).toBe(-3);
    expect(run('-7 % 2')).toBe(-1);
    expect(run("'Abc' = 'abc'")).toBe(false);
    expect(run("LENGTH('€uro') = 4 AND LEFT('€uro', 1) = '€' AND 'x€y' LIKE 'x_y'")).toBe(true);
    expect(run("TRIM('\u00a0\u2003a\u0085')")).toBe('a');
  });

  it('keeps backslashes other than the quote escape, and a doubled quote, as the Go SDK does', () => {
    expect(run("'a\\nb'")).toBe('a\\nb');
    expect(run("'it''s'")).toBe("it''s");
  });

  it('a filter matches only on true without error', () => {
    const f = parseCesqlFilter("type LIKE 'io.kinfer.%' AND INT(priority) > 3");
    expect(cesqlMatches(f, { type: 'io.kinfer.inference.request', priority: '5' })).toBe(true);
    expect(cesqlMatches(f, { type: 'io.kinfer.inference.request', priority: '2' })).toBe(false);
    expect(cesqlMatches(f, { type: 'io.kinfer.inference.request', priority: 'high' })).toBe(false);
    expect(cesqlMatches(f, { type: 'io.kinfer.inference.request' })).toBe(false);
    expect(cesqlMatches(parseCesqlFilter('NOT (x = 1)'), {})).toBe(false); // a missing attribute errs: NOT does not rescue it
  });
});

describe('CESQL: what fails at definition', () => {
  const syntaxError = (src: string) => {
    try {
      parseCesqlFilter(src);
    } catch (err) {
      expect(err).toBeInstanceOf(CesqlSyntaxError);
      return (err as Error).message;
    }
    throw new Error(`${src} parsed`);
  };

  it('a syntax error names its position', () => {
    expect(syntaxError("type = 'a' AND")).toMatch(/at position 15 \(the end\): expected a value/);
    expect(syntaxError("type = 'a")).toMatch(/at position 8 .*: string starting here has no closing '/);
    expect(syntaxError('(a = 1')).toMatch(/at position 7 \(the end\): expected "\)" but found the end/);
    expect(syntaxError('a = 1 b = 2')).toMatch(/at position 7 \("b = 2"\): expected an operator or the end but found "b"/);
    expect(syntaxError('x -1 = 2')).toMatch(/at position 3/); // -1 is a literal: two operands in a row
    expect(syntaxError('a # b')).toMatch(/at position 3 .*unexpected character "#"/);
    expect(syntaxError("a LIKE b")).toMatch(/LIKE takes a string literal pattern/);
    expect(syntaxError('a IN ()')).toMatch(/at position 7/);
    expect(syntaxError('EXISTS 1')).toMatch(/EXISTS takes an attribute name/);
    expect(syntaxError('x = 2147483648')).toMatch(/not a 32-bit integer/);
  });

  it('an unknown function or a wrong arity, and an expression that is not a Boolean, fail', () => {
    expect(syntaxError('FOO(1)')).toMatch(/at position 1 .*unknown function FOO; CESQL has LENGTH, CONCAT/);
    expect(syntaxError('CONCAT_WS() = 1')).toMatch(/CONCAT_WS takes at least 1 argument, not 0/);
    expect(syntaxError("SUBSTRING('a') = 'a'")).toMatch(/SUBSTRING takes 2 or 3 arguments, not 1/);
    expect(syntaxError('priority')).toMatch(/evaluates to a String, not a Boolean.*priority = 'value' or BOOL\(priority\)/);
    expect(syntaxError('1 + 2')).toMatch(/evaluates to an Integer/);
  });

  it('bounds length and nesting', () => {
    expect(syntaxError(`a = '${'x'.repeat(MAX_CESQL_LENGTH)}'`)).toMatch(/at most 4096/);
    expect(syntaxError(`${'('.repeat(MAX_CESQL_DEPTH)}TRUE${')'.repeat(MAX_CESQL_DEPTH)}`)).toMatch(/nested deeper than 128/);
    expect(syntaxError(`${'NOT '.repeat(MAX_CESQL_DEPTH + 1)}TRUE`)).toMatch(/nested deeper than 128/);
    expect(() => parseCesqlFilter(Array.from({ length: 60 }, (_, i) => `a${i} = 'v'`).join(' AND '))).not.toThrow();
    // A flat chain is not nesting: 450 terms (the length bound's worth) parse, group to the right, and evaluate.
    const chain = Array.from({ length: 450 }, () => 'FALSE').join(' OR ');
    expect(chain.length).toBeLessThanOrEqual(MAX_CESQL_LENGTH);
    expect(cesqlMatches(parseCesqlFilter(chain), {})).toBe(false);
    expect(cesqlMatches(parseCesqlFilter(`TRUE OR ${chain.slice(9)}`), {})).toBe(true);
    expect(parseCesql('a = 1 AND b = 2 OR c = 3')).toMatchObject({ op: 'AND', right: { op: 'OR' } });
  });
});
