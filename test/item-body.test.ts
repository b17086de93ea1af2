import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanItemBody } from '../src/sync/item-body.ts';

// scanItemBody must accept exactly what JSON.parse accepts and read the same
// fields as JSON.parse(body)[type]. Each case is checked against JSON.parse.

function expected(text: string, type: 'route' | 'trip') {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not_json' };
  }
  const record = (parsed as Record<string, unknown> | null)?.[type];
  if (typeof record !== 'object' || record === null) return { ok: false, problem: 'no_root_object' };
  const fields = record as Record<string, unknown>;
  return {
    ok: true,
    fields: {
      ownerId: typeof fields.user_id === 'number' ? fields.user_id : null,
      name: typeof fields.name === 'string' ? fields.name : null,
      updatedAt: typeof fields.updated_at === 'string' ? fields.updated_at : null,
    },
  };
}

function check(text: string, type: 'route' | 'trip' = 'trip') {
  assert.deepEqual(scanItemBody(Buffer.from(text), type), expected(text, type), `body ${JSON.stringify(text)}`);
}

const CASES = [
  '{"trip":{"user_id":7,"name":"Commute","updated_at":"2024-05-01T08:00:00-07:00","track_points":[{"x":1,"y":2}]}}',
  ' \t\r\n{ "trip" : { "name" : "a" } } \n',
  '{"trip":{"user_id":1,"user_id":2,"name":"first","name":"second"}}',
  '{"trip":{"user_id":1},"trip":{"name":"later"}}',
  '{"trip":{"user_id":1},"trip":null}',
  '{"trip":[]}',
  '{"trip":{}}',
  '{"trip":"text"}',
  '{"route":{"user_id":1}}',
  '{"tr\\u0069p":{"n\\u0061me":"escaped keys"}}',
  '{"trip":{"user_id":"7","name":3,"updated_at":null}}',
  '{"trip":{"user_id":-1.5e3,"name":"\\"quoted\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\ud800"}}',
  '{"trip":{"nested":{"user_id":1,"name":"not this one"}}}',
  '{"x":{"trip":{"name":"deeper"}}}',
  '{"trip":{"name":"ünïcödé ✓"}}',
  '[{"trip":{"name":"array root"}}]',
  '"trip"',
  'null',
  '0',
  '',
  ' ',
  '{',
  '{"trip":{"name":"x"}',
  '{"trip":{"name":"x"}}}',
  '{"trip":{"name":"x",}}',
  '{"trip":{"name":"x"},}',
  '{"trip":[1,]}',
  '{"trip":{"name":\'x\'}}',
  '{trip:{}}',
  '{"trip":{"user_id":01}}',
  '{"trip":{"user_id":1.}}',
  '{"trip":{"user_id":.5}}',
  '{"trip":{"user_id":+1}}',
  '{"trip":{"user_id":1e}}',
  '{"trip":{"user_id":-}}',
  '{"trip":{"user_id":NaN}}',
  '{"trip":{"name":"tab\there"}}',
  '{"trip":{"name":"bad \\x escape"}}',
  '{"trip":{"name":"short \\u12 escape"}}',
  '{"trip":{"a":tru}}',
  '{"trip":{"a":nulls}}',
  '{"trip":{}} {}',
  '\ufeff{"trip":{}}',
  '{"trip":{}}\u00a0',
  '[' .repeat(5000) + ']'.repeat(5000),
  '[' .repeat(5000) + ']'.repeat(4999),
];

test('scanItemBody matches JSON.parse on cases', () => {
  for (const text of CASES) check(text);
  check('{"route":{"user_id":3,"name":"R"},"trip":{"user_id":4}}', 'route');
});

test('scanItemBody matches JSON.parse on mutations', () => {
  // Deterministic mutations of a valid body: deleted, doubled and replaced
  // characters hit most of the grammar's error paths.
  const base = '{"trip":{"id":5,"user_id":12,"name":"Ride \\"x\\"","updated_at":"2024-01-01T00:00:00Z","ok":true,"no":false,"none":null,"track_points":[{"x":-122.5,"y":45.25e0,"t":1.5E+2},[],{}]}}';
  const alphabet = '{}[]",:\\ 0123456789-+.eEtrufalsn\u0001é';
  let seed = 1;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const at = random(base.length);
    const choice = random(3);
    let text: string;
    if (choice === 0) text = base.slice(0, at) + base.slice(at + 1);
    else if (choice === 1) text = base.slice(0, at) + base[at] + base.slice(at);
    else text = base.slice(0, at) + alphabet[random(alphabet.length)] + base.slice(at + 1);
    check(text);
  }
});

test('scanItemBody accepts invalid UTF-8 inside strings only', () => {
  // Node decodes invalid UTF-8 to U+FFFD, which JSON.parse accepts inside a string.
  const inside = Buffer.concat([Buffer.from('{"trip":{"name":"a'), Buffer.from([0xc3, 0xff]), Buffer.from('b"}}')]);
  assert.deepEqual(scanItemBody(inside, 'trip'), { ok: true, fields: { ownerId: null, name: 'a\ufffd\ufffdb', updatedAt: null } });
  const outside = Buffer.concat([Buffer.from('{"trip":{}}'), Buffer.from([0xc3])]);
  assert.deepEqual(scanItemBody(outside, 'trip'), { ok: false, problem: 'not_json' });
});
