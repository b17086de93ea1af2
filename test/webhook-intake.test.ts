import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { signBody } from '../scripts/fake-rwgps.ts';
import { MAX_BODY_BYTES } from '../src/http/webhook.ts';
import { CLIENT, delivery, jobRows, notification, startTestService, type TestService } from './helpers.ts';

interface RawAnswer {
  status: number | null;
  body: string;
  error: string | null;
  bytesSent: number;
}

/**
 * Sends a signed POST with node:http so the test controls Content-Length and
 * chunking. `chunks` are written one by one; writing stops at the first
 * error (the server may close the connection after answering 413).
 */
function rawPost(url: string, chunks: Buffer[], headers: Record<string, string>): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let bytesSent = 0;
    let settled = false;
    const finish = (answer: Omit<RawAnswer, 'bytesSent'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...answer, bytesSent });
    };
    const req = request(`${url}/webhooks/rwgps`, { method: 'POST', headers: { 'x-rwgps-api-key': CLIENT.apiKey, ...headers } });
    req.on('response', (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      response.on('end', () => finish({ status: response.statusCode ?? null, body, error: null }));
      response.on('error', (error) => finish({ status: response.statusCode ?? null, body, error: error.message }));
    });
    req.on('error', (error) => finish({ status: null, body: '', error: error.message }));
    const writeNext = (index: number) => {
      if (settled || req.destroyed) return;
      if (index >= chunks.length) {
        req.end();
        return;
      }
      const chunk = chunks[index]!;
      req.write(chunk, (error) => {
        if (error) return;
        bytesSent += chunk.length;
        setImmediate(() => writeNext(index + 1));
      });
    };
    writeNext(0);
  });
}

// A JSON body of exactly `size` bytes: an empty notification list and padding.
function paddedBody(size: number): Buffer {
  const head = '{"notifications":[],"padding":"';
  const tail = '"}';
  return Buffer.from(`${head}${'x'.repeat(size - head.length - tail.length)}${tail}`);
}

async function deliveryRows(ts: TestService) {
  return ts.db.selectFrom('deliveries').select(['id', 'status', 'reason', 'body']).orderBy('id').execute();
}

test('body limit rejects declared length', async (t) => {
  const ts = await startTestService(t);
  const answer = await rawPost(ts.service.url, [Buffer.from('{"notifications":[')], {
    'content-length': String(MAX_BODY_BYTES + 1),
    'x-rwgps-signature': 'a'.repeat(64),
  });
  assert.equal(answer.status, 413, `answered before the body was sent (${answer.error ?? ''})`);
  assert.match(JSON.parse(answer.body).error, /larger than/);
  assert.equal((await deliveryRows(ts)).length, 0);
});

test('body limit rejects chunked body', async (t) => {
  const ts = await startTestService(t);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const chunks = Array.from({ length: 32 }, () => chunk); // 2 MiB in total
  const answer = await rawPost(ts.service.url, chunks, { 'transfer-encoding': 'chunked', 'x-rwgps-signature': 'a'.repeat(64) });
  assert.equal(answer.status, 413, `status (${answer.error ?? ''})`);
  assert.ok(answer.bytesSent < chunks.length * chunk.length, `stopped reading early: ${answer.bytesSent} bytes sent`);
  assert.equal(ts.logs.find('delivery rejected', { outcome: 'too_large' }).length, 1);
  assert.equal((await deliveryRows(ts)).length, 0);
});

test('body of exactly the limit accepted', async (t) => {
  const ts = await startTestService(t);
  const body = paddedBody(MAX_BODY_BYTES);
  assert.equal(body.length, MAX_BODY_BYTES);
  const answer = await ts.send(body);
  assert.equal(answer.status, 200, answer.body);
  const rows = await deliveryRows(ts);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.body.byteLength, MAX_BODY_BYTES);
});

test('body one byte over the limit rejected', async (t) => {
  const ts = await startTestService(t);
  const answer = await ts.send(paddedBody(MAX_BODY_BYTES + 1));
  assert.equal(answer.status, 413);
});

test('chunked body of exactly the limit accepted', async (t) => {
  const ts = await startTestService(t);
  const body = paddedBody(MAX_BODY_BYTES);
  const chunks = [body.subarray(0, 300_000), body.subarray(300_000, 700_000), body.subarray(700_000)];
  const answer = await rawPost(ts.service.url, chunks, {
    'transfer-encoding': 'chunked',
    'x-rwgps-signature': signBody(body, CLIENT.clientSecret),
  });
  assert.equal(answer.status, 200, answer.body);
});

const MALFORMED: { name: string; body: string; reason: RegExp }[] = [
  { name: 'not JSON', body: '{"notifications": [', reason: /not valid JSON/ },
  { name: 'empty body', body: '', reason: /not valid JSON/ },
  { name: 'array', body: '[]', reason: /not a JSON object/ },
  { name: 'null', body: 'null', reason: /not a JSON object/ },
  { name: 'no notifications', body: '{"events":[]}', reason: /no "notifications" array/ },
  { name: 'notifications object', body: '{"notifications":{}}', reason: /no "notifications" array/ },
];

test('malformed bodies stored as rejected', async (t) => {
  const ts = await startTestService(t);
  for (const entry of MALFORMED) {
    const answer = await ts.send(entry.body);
    assert.equal(answer.status, 400, `${entry.name}: status`);
    assert.match(JSON.parse(answer.body).error, entry.reason, `${entry.name}: error`);
  }
  const rows = await deliveryRows(ts);
  assert.equal(rows.length, MALFORMED.length, 'each delivery is recorded');
  rows.forEach((row, index) => {
    const entry = MALFORMED[index]!;
    assert.equal(row.status, 'rejected', `${entry.name}: status column`);
    assert.match(row.reason ?? '', entry.reason, `${entry.name}: reason column`);
    assert.equal(Buffer.from(row.body).toString('utf8'), entry.body, `${entry.name}: raw body kept`);
  });
  assert.equal((await jobRows(ts.db)).length, 0, 'no jobs');
  assert.equal(ts.logs.find('delivery rejected', { outcome: 'malformed' }).length, MALFORMED.length);
});

test('unknown notifications ignored, rest queued', async (t) => {
  const ts = await startTestService(t);
  const body = {
    notifications: [
      notification({ user_id: 1, item_id: 1 }),
      notification({ user_id: 1, item_id: 2, action: 'archived' }),
      notification({ user_id: 1, item_id: 3, item_type: 'segment' }),
      notification({ user_id: 1, item_id: 4, action: 'added', collection: { id: 9, type: 'favorites', url: null } }),
      notification({ user_id: 1, item_id: 5, action: 'added', collection: null }),
      'not an object',
      { ...notification({ user_id: 1, item_id: 6 }), user_id: 'one' },
      notification({ user_id: 1, item_id: 7, action: 'updated' }),
    ],
  };
  const answer = await ts.send(body);
  assert.equal(answer.status, 200, answer.body);
  const summary = JSON.parse(answer.body);
  assert.equal(summary.notifications, 8);
  assert.equal(summary.queued, 2);
  assert.equal(summary.ignored, 6);

  const jobs = await jobRows(ts.db);
  assert.deepEqual(jobs.map((job) => job.item_id).sort(), [1, 7]);
  const ignored = await ts.db.selectFrom('ignored_notifications').selectAll().orderBy('position').execute();
  assert.deepEqual(ignored.map((row) => row.position), [1, 2, 3, 4, 5, 6]);
  assert.match(ignored[0]?.reason ?? '', /unknown action "archived"/);
  assert.match(ignored[1]?.reason ?? '', /unknown item_type "segment"/);
  assert.match(ignored[2]?.reason ?? '', /unknown collection type "favorites"/);
  assert.equal(JSON.parse(ignored[0]?.notification ?? 'null').action, 'archived', 'the notification is kept');
  assert.equal(ts.logs.find('notification ignored').length, 6);
});

test('100 notifications queued', async (t) => {
  const ts = await startTestService(t);
  const notifications = Array.from({ length: 100 }, (_, i) => ({ user_id: 1 + (i % 3), item_id: 1000 + i }));
  const answer = await ts.send(delivery(...notifications));
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).queued, 100);
  assert.equal((await jobRows(ts.db)).length, 100);
  assert.equal(ts.logs.find('delivery rejected').length, 0);
});

test('150 notifications accepted and logged', async (t) => {
  const ts = await startTestService(t);
  const notifications = Array.from({ length: 150 }, (_, i) => ({ user_id: 1, item_id: 2000 + i }));
  const answer = await ts.send(delivery(...notifications));
  assert.equal(answer.status, 200);
  assert.equal((await jobRows(ts.db)).length, 150);
  const warnings = ts.logs.records.filter((record) => String(record.msg).includes('more notifications than RWGPS documents'));
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.notifications, 150);
});

test('empty notification list accepted', async (t) => {
  const ts = await startTestService(t);
  const answer = await ts.send('{"notifications":[]}');
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).queued, 0);
});

test('trailing slash handled the same', async (t) => {
  const ts = await startTestService(t);
  const answer = await ts.send(delivery({ user_id: 1, item_id: 5 }), { path: '/webhooks/rwgps/' });
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).queued, 1);
  const unsigned = await ts.send('{}', { path: '/webhooks/rwgps/', signature: '0'.repeat(64) });
  assert.equal(unsigned.status, 401, 'the signature is checked on the trailing-slash path too');
});

test('webhook path never answers 3xx', async (t) => {
  const ts = await startTestService(t);
  const body = JSON.stringify(delivery({ user_id: 1, item_id: 5 }));
  const attempts: { method: string; path: string }[] = [
    { method: 'POST', path: '/webhooks/rwgps' },
    { method: 'POST', path: '/webhooks/rwgps/' },
    { method: 'POST', path: '/webhooks/rwgps//' },
    { method: 'POST', path: '/webhooks/rwgps?x=1' },
    { method: 'POST', path: '/webhooks//rwgps' },
    { method: 'POST', path: '/webhooks/RWGPS' },
    { method: 'GET', path: '/webhooks/rwgps' },
    { method: 'PUT', path: '/webhooks/rwgps' },
  ];
  for (const attempt of attempts) {
    const response = await fetch(`${ts.service.url}${attempt.path}`, {
      method: attempt.method,
      redirect: 'manual',
      headers: { 'x-rwgps-api-key': CLIENT.apiKey, 'x-rwgps-signature': signBody(body, CLIENT.clientSecret) },
      ...(attempt.method === 'GET' ? {} : { body }),
    });
    await response.arrayBuffer();
    assert.ok(response.status < 300 || response.status >= 400, `${attempt.method} ${attempt.path} answered ${response.status}`);
  }
});

test('answer 200 only after commit', async (t) => {
  const ts = await startTestService(t);
  const answer = await ts.send(delivery({ user_id: 1, item_id: 5 }, { user_id: 2, item_id: 6 }));
  assert.equal(answer.status, 200);

  // A separate connection sees only committed data.
  const other = new BetterSqlite3(ts.config.database.path, { readonly: true });
  t.after(() => other.close());
  const deliveries = other.prepare('select count(*) as n from deliveries').get() as { n: number };
  const jobs = other.prepare("select count(*) as n from jobs where kind = 'item'").get() as { n: number };
  assert.equal(deliveries.n, 1);
  assert.equal(jobs.n, 2);
});

test('locked database answers 503', async (t) => {
  const ts = await startTestService(t, { config: { database: { busyTimeoutMs: 300 } } });
  const locker = new BetterSqlite3(ts.config.database.path);
  t.after(() => locker.close());
  locker.exec('begin exclusive');
  locker.exec("insert into users (id, client_api_key, token, token_kind, status, created_at, updated_at) values (99, 'k', 't', 'oauth', 'active', 0, 0)");

  const answer = await ts.send(delivery({ user_id: 1, item_id: 5 }));
  assert.equal(answer.status, 503);
  assert.match(JSON.parse(answer.body).error, /database unavailable/);
  const logged = ts.logs.find('delivery not stored');
  assert.equal(logged.length, 1);
  assert.equal(logged[0]?.reason, 'database unavailable');

  locker.exec('rollback');
  assert.equal((await deliveryRows(ts)).length, 0, 'nothing stored');
  assert.equal((await ts.send(delivery({ user_id: 1, item_id: 5 }))).status, 200, 'accepted once the lock is gone');
});

test('read-only database answers 503', async (t) => {
  const ts = await startTestService(t);
  // The service's own connection refuses writes, as with a read-only file
  // (chmod does not stop root, which runs these tests in CI containers).
  await sql`pragma query_only = 1`.execute(ts.db);
  const answer = await ts.send(delivery({ user_id: 1, item_id: 5 }));
  assert.equal(answer.status, 503);
  assert.match(String(ts.logs.find('delivery not stored')[0]?.error), /readonly|read-only/i);

  const malformed = await ts.send('not json');
  assert.equal(malformed.status, 503, 'a rejected delivery that cannot be recorded is our failure too');

  await sql`pragma query_only = 0`.execute(ts.db);
  assert.equal((await deliveryRows(ts)).length, 0, 'nothing stored');
});

test('healthz answers 200', async (t) => {
  const ts = await startTestService(t);
  const response = await fetch(`${ts.service.url}/healthz`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: 'ok' });
});
