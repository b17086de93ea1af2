import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signBody } from '../scripts/fake-rwgps.ts';
import { checkSignature } from '../src/intake/signature.ts';
import { CLIENT, delivery, startTestService, type TestService } from './helpers.ts';

const BODY = JSON.stringify(delivery({ user_id: 1, item_id: 10 }));

async function countRows(ts: TestService) {
  const deliveries = await ts.db.selectFrom('deliveries').select('id').execute();
  const jobs = await ts.db.selectFrom('jobs').select('id').execute();
  return { deliveries: deliveries.length, jobs: jobs.length };
}

// Each case is answered 401, stores nothing and logs one line without secrets.
const REJECTED: { name: string; headers: Record<string, string>; reason: RegExp }[] = [
  { name: 'missing signature', headers: { 'x-rwgps-signature': '' }, reason: /signature missing/ },
  { name: 'short signature', headers: { 'x-rwgps-signature': signBody(BODY, CLIENT.clientSecret).slice(0, 62) }, reason: /malformed/ },
  { name: 'long signature', headers: { 'x-rwgps-signature': `${signBody(BODY, CLIENT.clientSecret)}00` }, reason: /malformed/ },
  { name: 'non-hex signature', headers: { 'x-rwgps-signature': 'g'.repeat(64) }, reason: /malformed/ },
  { name: 'wrong signature', headers: { 'x-rwgps-signature': signBody(BODY, 'another-secret') }, reason: /mismatch/ },
  { name: 'empty api key', headers: { 'x-rwgps-api-key': '' }, reason: /missing x-rwgps-api-key/ },
  { name: 'unknown api key', headers: { 'x-rwgps-api-key': 'not-a-client' }, reason: /unknown x-rwgps-api-key/ },
];

test('signature rejections answer 401', async (t) => {
  const ts = await startTestService(t);
  for (const entry of REJECTED) {
    const before = ts.logs.lines.length;
    const answer = await ts.send(BODY, { headers: entry.headers });
    assert.equal(answer.status, 401, `${entry.name}: status`);
    assert.match(JSON.parse(answer.body).error, /./, `${entry.name}: JSON error body`);

    const lines = ts.logs.records.slice(before).filter((record) => record.msg === 'delivery rejected');
    assert.equal(lines.length, 1, `${entry.name}: one log line`);
    assert.match(String(lines[0]?.reason), entry.reason, `${entry.name}: reason logged`);
  }
  assert.deepEqual(await countRows(ts), { deliveries: 0, jobs: 0 }, 'nothing stored');
  assert.ok(!ts.logs.text.includes(CLIENT.clientSecret), 'the client secret is never logged');
  assert.ok(!ts.logs.text.includes(signBody(BODY, 'another-secret')), 'the signature is never logged');
});

test('signature header absent answers 401', async (t) => {
  const ts = await startTestService(t);
  const response = await fetch(`${ts.service.url}/webhooks/rwgps`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-rwgps-api-key': CLIENT.apiKey },
    body: BODY,
  });
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { error: 'missing x-rwgps-signature header' });
  assert.deepEqual(await countRows(ts), { deliveries: 0, jobs: 0 });
});

test('api key header absent answers 401', async (t) => {
  const ts = await startTestService(t);
  const response = await fetch(`${ts.service.url}/webhooks/rwgps`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-rwgps-signature': signBody(BODY, CLIENT.clientSecret) },
    body: BODY,
  });
  assert.equal(response.status, 401);
  assert.equal(ts.logs.find('delivery rejected', { outcome: 'unknown_api_key' }).length, 1);
  assert.deepEqual(await countRows(ts), { deliveries: 0, jobs: 0 });
});

test('upper-case hex signature accepted', async (t) => {
  const ts = await startTestService(t);
  const answer = await ts.send(BODY, { signature: signBody(BODY, CLIENT.clientSecret).toUpperCase() });
  assert.equal(answer.status, 200);
});

test('second client secret verifies', async (t) => {
  const other = { apiKey: 'second-key', clientId: 'second-id', clientSecret: 'second-secret-77' };
  const ts = await startTestService(t, { config: { clients: [CLIENT, other] } });
  const signed = await ts.send(BODY, { headers: { 'x-rwgps-api-key': other.apiKey }, signature: signBody(BODY, other.clientSecret) });
  assert.equal(signed.status, 200);
  const crossed = await ts.send(BODY, { headers: { 'x-rwgps-api-key': other.apiKey } });
  assert.equal(crossed.status, 401, 'the first client secret does not verify for the second key');
});

// Bodies that a re-serialising or re-decoding verifier would get wrong.
const RAW_BODIES: { name: string; bytes: Buffer }[] = [
  {
    name: 'unusual whitespace',
    bytes: Buffer.from(`\r\n{ "notifications" :\t[ {"user_id":1 , "item_type":"route","item_id":11,\n\n"action":"created","collection":null}\t]  }\n\n`),
  },
  {
    name: 'escaped slashes',
    bytes: Buffer.from('{"notifications":[{"user_id":1,"item_type":"route","item_id":12,"item_url":"https:\\/\\/ridewithgps.com\\/routes\\/12.json","action":"created","collection":null}]}'),
  },
  {
    name: 'unicode escape',
    bytes: Buffer.from('{"notifications":[{"user_id":1,"item_type":"route","item_id":13,"action":"created","collection":null,"note":"caf\\u00e9"}]}'),
  },
  {
    name: 'emoji',
    bytes: Buffer.from('{"notifications":[{"user_id":1,"item_type":"route","item_id":14,"action":"created","collection":null,"note":"🚴 ride"}]}'),
  },
  {
    name: 'line separator',
    bytes: Buffer.from('{"notifications":[{"user_id":1,"item_type":"route","item_id":15,"action":"created","collection":null,"note":"a\u2028b"}]}'),
  },
  {
    name: 'invalid utf-8 byte',
    bytes: Buffer.concat([
      Buffer.from('{"notifications":[{"user_id":1,"item_type":"route","item_id":16,"action":"created","collection":null,"note":"'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('"}]}'),
    ]),
  },
];

test('raw bodies verify byte for byte', async (t) => {
  const ts = await startTestService(t);
  for (const entry of RAW_BODIES) {
    const answer = await ts.send(entry.bytes);
    assert.equal(answer.status, 200, `${entry.name}: accepted (${answer.body})`);
    const id = JSON.parse(answer.body).delivery as number;
    const row = await ts.db.selectFrom('deliveries').select(['body', 'status']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.status, 'accepted', `${entry.name}: stored as accepted`);
    assert.ok(Buffer.from(row.body).equals(entry.bytes), `${entry.name}: stored body is the raw bytes`);
  }
});

test('one changed byte fails verification', async (t) => {
  const ts = await startTestService(t);
  for (const entry of RAW_BODIES) {
    const signature = signBody(entry.bytes, CLIENT.clientSecret);
    const changed = Buffer.from(entry.bytes);
    const position = changed.length >> 1;
    changed[position] = changed[position]! ^ 0x01;
    const answer = await ts.send(changed, { signature });
    assert.equal(answer.status, 401, `${entry.name}: rejected`);
  }
  assert.deepEqual(await countRows(ts), { deliveries: 0, jobs: 0 });
});

test('checkSignature classifies headers', () => {
  const body = Buffer.from('{"notifications":[]}');
  const good = signBody(body, 's');
  assert.equal(checkSignature(body, 's', good), 'valid');
  assert.equal(checkSignature(body, 's', good.toUpperCase()), 'valid');
  assert.equal(checkSignature(body, 's', undefined), 'missing');
  assert.equal(checkSignature(body, 's', null), 'missing');
  assert.equal(checkSignature(body, 's', ''), 'missing');
  assert.equal(checkSignature(body, 's', good.slice(1)), 'malformed');
  assert.equal(checkSignature(body, 's', ` ${good}`), 'malformed');
  assert.equal(checkSignature(body, 's', `${good.slice(0, 63)}z`), 'malformed');
  assert.equal(checkSignature(body, 'other', good), 'mismatch');
  assert.equal(checkSignature(Buffer.from('{"notifications":[] }'), 's', good), 'mismatch');
});
