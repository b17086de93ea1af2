import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { FakeRwgps } from '../scripts/fake-rwgps.ts';
import { connectUser, getUser } from '../src/store/users.ts';
import {
  CLIENT,
  connect,
  delivery,
  itemRow,
  jobRows,
  libraryRows,
  notification,
  startTestService,
  TOKENS,
  waitFor,
  waitForIdle,
  waitForJob,
  type TestService,
} from './helpers.ts';

function itemRequests(ts: TestService, path: string) {
  return ts.fake.requests.filter((request) => request.path === path);
}

async function fakeBody(ts: TestService, path: string, token: string): Promise<string> {
  const response = await fetch(`${ts.fake.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return response.text();
}

function assertNoTokensLogged(ts: TestService) {
  for (const token of Object.values(TOKENS)) assert.ok(!ts.logs.text.includes(token), `token ${token} is never logged`);
  assert.ok(!ts.logs.text.includes(CLIENT.clientSecret), 'the client secret is never logged');
}

test('created stores item for owner', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 201, userId: 1, name: 'Morning climb' });

  assert.equal((await ts.send(delivery({ user_id: 1, item_id: 201 }))).status, 200);
  const job = await waitForJob(ts.db, { userId: 1, itemId: 201, state: 'completed' });
  assert.equal(job.attempt, 1);

  const item = await itemRow(ts.db, 'route', 201);
  assert.equal(item?.name, 'Morning climb');
  assert.equal(item?.owner_id, 1);
  assert.equal(item?.deleted_at, null);
  assert.equal(item?.body, await fakeBody(ts, '/api/v1/routes/201.json', TOKENS[1]!), 'body stored as RWGPS sent it');
  assert.equal(item?.updated_at, JSON.parse(item?.body ?? '{}').route.updated_at);
  assert.deepEqual(await libraryRows(ts.db, 1), [{ item_type: 'route', item_id: 201, relation: 'owner' }]);
  assert.equal(itemRequests(ts, '/api/v1/routes/201.json')[0]?.headers.authorization, `Bearer ${TOKENS[1]}`);
  assertNoTokensLogged(ts);
});

test('created trip stored', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putTrip({ id: 301, userId: 1, name: 'Commute', trackPoints: 20_000 });
  await ts.send(delivery({ user_id: 1, item_id: 301, item_type: 'trip' }));
  await waitForJob(ts.db, { userId: 1, itemId: 301, state: 'completed' });
  const item = await itemRow(ts.db, 'trip', 301);
  assert.equal(item?.name, 'Commute');
  assert.equal(JSON.parse(item?.body ?? '{}').trip.track_points.length, 20_000);
});

test('updated replaces stored copy', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 201, userId: 1, name: 'First' });
  await ts.send(delivery({ user_id: 1, item_id: 201 }));
  await waitForJob(ts.db, { userId: 1, itemId: 201, state: 'completed' });

  ts.fake.putRoute({ id: 201, userId: 1, name: 'Second' });
  await ts.send(delivery({ user_id: 1, item_id: 201, action: 'updated' }));
  await waitFor(async () => (await itemRow(ts.db, 'route', 201))?.name === 'Second', { what: 'the renamed route' });
  assert.equal((await jobRows(ts.db, { state: 'completed' })).length, 2);
});

test('deleted marks item and keeps copy', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 101, userId: 1, name: 'Old loop' });
  await ts.send(delivery({ user_id: 1, item_id: 101 }));
  await waitForJob(ts.db, { userId: 1, itemId: 101, state: 'completed' });
  const requestsBefore = ts.fake.requests.length;

  ts.fake.deleteItem('route', 101);
  await ts.send(delivery({ user_id: 1, item_id: 101, action: 'deleted' }));
  await waitFor(async () => (await itemRow(ts.db, 'route', 101))?.deleted_at, { what: 'the deletion mark' });

  const item = await itemRow(ts.db, 'route', 101);
  assert.equal(item?.name, 'Old loop', 'last copy kept');
  assert.notEqual(item?.body, null);
  assert.equal(ts.fake.requests.length, requestsBefore, 'a delete needs no request');
  assert.deepEqual(await libraryRows(ts.db, 1), [{ item_type: 'route', item_id: 101, relation: 'owner' }]);
});

test('deleted for unknown item recorded', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  await ts.send(delivery({ user_id: 1, item_id: 555, action: 'deleted' }));
  await waitForJob(ts.db, { userId: 1, itemId: 555, state: 'completed' });
  const item = await itemRow(ts.db, 'route', 555);
  assert.notEqual(item?.deleted_at, null);
  assert.equal(item?.body, null);
});

test('added pins item, removed unpins', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 102, userId: 1, name: 'Coast road' });

  await ts.send(delivery({ user_id: 2, item_id: 102, item_user_id: 1, action: 'added' }));
  await waitForJob(ts.db, { userId: 2, itemId: 102, state: 'completed' });
  assert.deepEqual(await libraryRows(ts.db, 2), [{ item_type: 'route', item_id: 102, relation: 'pinned' }]);
  assert.equal((await itemRow(ts.db, 'route', 102))?.owner_id, 1);
  assert.deepEqual(await libraryRows(ts.db, 1), [], "the owner's library is not touched");

  await ts.send(delivery({ user_id: 2, item_id: 102, item_user_id: 1, action: 'removed' }));
  await waitFor(async () => (await libraryRows(ts.db, 2)).length === 0, { what: 'the pin to be removed' });
  assert.notEqual(await itemRow(ts.db, 'route', 102), undefined, 'the item itself stays');
});

test('pin and edit both kept', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 301, userId: 1 });
  ts.fake.putRoute({ id: 302, userId: 1 });
  ts.fake.putRoute({ id: 303, userId: 1 });

  // One delivery, so every job is still waiting when the next one is queued.
  // 301 is created, then pinned; 302 pinned, then edited; 303 pinned, then unpinned.
  const answer = await ts.send(
    delivery(
      { user_id: 1, item_id: 301, action: 'created' },
      { user_id: 1, item_id: 301, action: 'added' },
      { user_id: 1, item_id: 302, action: 'added' },
      { user_id: 1, item_id: 302, action: 'updated' },
      { user_id: 1, item_id: 303, action: 'added' },
      { user_id: 1, item_id: 303, action: 'removed' },
    ),
  );
  assert.equal(answer.status, 200);
  await waitForIdle(ts.db);

  const jobs = await jobRows(ts.db, { userId: 1 });
  assert.deepEqual(
    jobs.map((job) => [job.item_id, job.action, job.state]),
    [
      [301, 'created', 'completed'],
      [301, 'added', 'completed'],
      [302, 'added', 'completed'],
      [302, 'updated', 'completed'],
      [303, 'removed', 'completed'],
    ],
    'owner and pin changes of one item stay separate jobs; a pin and unpin merge',
  );
  assert.deepEqual(await libraryRows(ts.db, 1), [
    { item_type: 'route', item_id: 301, relation: 'owner' },
    { item_type: 'route', item_id: 301, relation: 'pinned' },
    { item_type: 'route', item_id: 302, relation: 'owner' },
    { item_type: 'route', item_id: 302, relation: 'pinned' },
  ]);
});

test('basic auth_token sent with api key', async (t) => {
  const ts = await startTestService(t);
  ts.fake.addUser({ id: 4, authToken: 'auth-token-4-9a' });
  await connectUser(ts.db, { id: 4, clientApiKey: CLIENT.apiKey, token: 'auth-token-4-9a', tokenKind: 'basic' });
  ts.fake.putRoute({ id: 40, userId: 4 });
  await ts.send(delivery({ user_id: 4, item_id: 40 }));
  await waitForJob(ts.db, { userId: 4, itemId: 40, state: 'completed' });
  const sent = itemRequests(ts, '/api/v1/routes/40.json')[0];
  assert.equal(sent?.headers['x-rwgps-api-key'], CLIENT.apiKey);
  assert.equal(sent?.headers['x-rwgps-auth-token'], 'auth-token-4-9a');
  assert.equal(sent?.headers.authorization, undefined);
});

test('404 marks deleted without retry', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  await ts.send(delivery({ user_id: 1, item_id: 404 }));
  const job = await waitForJob(ts.db, { userId: 1, itemId: 404, state: 'completed' });
  assert.equal(job.attempt, 1);
  assert.equal(itemRequests(ts, '/api/v1/routes/404.json').length, 1);
  assert.notEqual((await itemRow(ts.db, 'route', 404))?.deleted_at, null);
});

test('403 drops item from library', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 103, userId: 1, visibility: 'public' });
  await ts.send(delivery({ user_id: 2, item_id: 103, item_user_id: 1, action: 'added' }));
  await waitForJob(ts.db, { userId: 2, itemId: 103, state: 'completed' });
  assert.equal((await libraryRows(ts.db, 2)).length, 1);

  ts.fake.putRoute({ id: 103, userId: 1, visibility: 'private' });
  await ts.send(delivery({ user_id: 2, item_id: 103, item_user_id: 1, action: 'added' }));
  await waitFor(async () => (await jobRows(ts.db, { state: 'completed' })).length === 2, { what: 'the second job' });
  assert.deepEqual(await libraryRows(ts.db, 2), []);
  assert.equal(itemRequests(ts, '/api/v1/routes/103.json').length, 2, 'no retry after 403');
  assert.equal((await jobRows(ts.db))[1]?.attempt, 1);
});

test('401 parks user, others continue', async (t) => {
  const ts = await startTestService(t, { config: { worker: { concurrency: 1 } } });
  await connect(ts.db, 1);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 11, userId: 1 });
  ts.fake.putRoute({ id: 12, userId: 1 });
  ts.fake.putRoute({ id: 21, userId: 2 });
  ts.fake.revokeToken(TOKENS[1]!);

  await ts.send(delivery({ user_id: 1, item_id: 11 }, { user_id: 1, item_id: 12 }, { user_id: 2, item_id: 21 }));
  await waitForJob(ts.db, { userId: 2, itemId: 21, state: 'completed' });
  await waitFor(async () => (await jobRows(ts.db, { userId: 1, state: 'parked' })).length === 2, { what: "both of user 1's jobs parked" });

  const user = await getUser(ts.db, 1);
  assert.equal(user?.status, 'reauthorization_required');
  assert.match(user?.status_reason ?? '', /401/);
  assert.equal((await getUser(ts.db, 2))?.status, 'active');
  assert.equal(ts.logs.records.filter((r) => String(r.msg).startsWith('RWGPS rejected the user token')).length, 1);

  // Parked jobs stay parked: no request is retried with the rejected token.
  const requests = ts.fake.requests.length;
  await ts.send(delivery({ user_id: 1, item_id: 13 }));
  await waitForJob(ts.db, { userId: 1, itemId: 13, state: 'parked' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(ts.fake.requests.length, requests, 'no request for a parked user');

  ts.fake.putRoute({ id: 13, userId: 1 });
  ts.fake.addUser({ id: 1, accessToken: 'token-user-1-renewed' });
  await connect(ts.db, 1, 'token-user-1-renewed');
  for (const itemId of [11, 12, 13]) await waitForJob(ts.db, { userId: 1, itemId, state: 'completed' });
  assert.equal((await jobRows(ts.db, { userId: 1, state: 'parked' })).length, 0, 'no job left parked');
  assertNoTokensLogged(ts);
  assert.ok(!ts.logs.text.includes('token-user-1-renewed'));
});

test('other 4xx dead at once', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 31, userId: 1 });
  ts.fake.putRoute({ id: 32, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/31.json', times: Infinity, fault: { kind: 'status', status: 400, body: '{"error":"bad request"}' } });
  ts.fake.injectFault({ path: '/api/v1/routes/32.json', times: Infinity, fault: { kind: 'status', status: 422 } });
  await ts.send(delivery({ user_id: 1, item_id: 31 }, { user_id: 1, item_id: 32 }));

  const first = await waitForJob(ts.db, { userId: 1, itemId: 31, state: 'dead' });
  const second = await waitForJob(ts.db, { userId: 1, itemId: 32, state: 'dead' });
  assert.equal(first.attempt, 1);
  assert.equal(second.attempt, 1);
  assert.match(first.last_error ?? '', /400: bad request/);
  assert.match(second.last_error ?? '', /422/);
  assert.equal(ts.logs.find('job dead').length, 2);
});

test('200 body not JSON is retried', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 61, userId: 1, name: 'After the glitch' });
  ts.fake.injectFault({ path: '/api/v1/routes/61.json', fault: { kind: 'status', status: 200, body: '<html>maintenance</html>' } });
  await ts.send(delivery({ user_id: 1, item_id: 61 }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 61, state: 'completed' });
  assert.equal(job.attempt, 2, 'the second attempt stores the item');
  const failed = ts.logs.find('job attempt failed; will retry');
  assert.equal(failed.length, 1);
  assert.match(String(failed[0]?.error), /RWGPS responded 200 with a body that is not JSON \(24 bytes\)/);
  assert.equal((await itemRow(ts.db, 'route', 61))?.name, 'After the glitch');
});

test('200 body without root object is retried', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putTrip({ id: 62, userId: 1, name: 'Found later' });
  ts.fake.injectFault({ path: '/api/v1/trips/62.json', fault: { kind: 'status', status: 200, body: '{"route":{"id":62,"user_id":1}}' } });
  await ts.send(delivery({ user_id: 1, item_id: 62, item_type: 'trip' }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 62, state: 'completed' });
  assert.equal(job.attempt, 2);
  const failed = ts.logs.find('job attempt failed; will retry');
  assert.equal(failed.length, 1);
  assert.match(String(failed[0]?.error), /RWGPS responded 200 without a "trip" object/);
  assert.equal((await itemRow(ts.db, 'trip', 62))?.name, 'Found later');
});

test('stored body byte-identical to response', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 63, userId: 1 });
  // Whitespace, escapes, non-ASCII text and duplicate keys: the stored copy
  // keeps each byte, and the key fields follow JSON.parse (the last name wins).
  const body = '{ "route" : {"id":63,"user_id":1,"name":"ignored","name":"Col du Galibier \\u2013 étape ✓","updated_at":"2024-06-01T10:00:00-07:00","track_points":[{"x":6.4,"y":45.06}]} }\n';
  ts.fake.injectFault({ path: '/api/v1/routes/63.json', fault: { kind: 'status', status: 200, body } });
  await ts.send(delivery({ user_id: 1, item_id: 63 }));
  await waitForJob(ts.db, { userId: 1, itemId: 63, state: 'completed' });

  const stored = await sql<{ raw: Buffer }>`SELECT CAST(body AS BLOB) AS raw FROM items WHERE type = 'route' AND id = 63`.execute(ts.db);
  assert.deepEqual(stored.rows[0]?.raw, Buffer.from(body), 'the stored bytes are the response bytes');
  const item = await itemRow(ts.db, 'route', 63);
  assert.equal(item?.body, body);
  assert.equal(item?.name, 'Col du Galibier \u2013 étape ✓');
  assert.equal(item?.owner_id, 1);
  assert.equal(item?.updated_at, '2024-06-01T10:00:00-07:00');
  assert.deepEqual(await libraryRows(ts.db, 1), [{ item_type: 'route', item_id: 63, relation: 'owner' }]);
});

test('cross-origin redirect not followed', async (t) => {
  const elsewhere = await FakeRwgps.start({ clients: [CLIENT] });
  t.after(() => elsewhere.close());
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 51, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/51.json', fault: { kind: 'redirect', location: `${elsewhere.url}/api/v1/routes/51.json` } });
  await ts.send(delivery({ user_id: 1, item_id: 51 }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 51, state: 'dead' });
  assert.match(job.last_error ?? '', /redirected to http:\/\/127\.0\.0\.1/);
  assert.equal(elsewhere.requests.length, 0, 'the other origin got no request');
});

test('same-origin redirect followed', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 52, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/52.json', fault: { kind: 'redirect', location: '/routes/52.json', status: 301 } });
  await ts.send(delivery({ user_id: 1, item_id: 52 }));
  await waitForJob(ts.db, { userId: 1, itemId: 52, state: 'completed' });
  assert.equal(itemRequests(ts, '/routes/52.json')[0]?.headers.authorization, `Bearer ${TOKENS[1]}`);
});

test('item_url never used for requests', async (t) => {
  const elsewhere = await FakeRwgps.start({ clients: [CLIENT] });
  t.after(() => elsewhere.close());
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 53, userId: 1 });
  const body = { notifications: [{ ...notification({ user_id: 1, item_id: 53 }), item_url: `${elsewhere.url}/api/v1/routes/53.json` }] };
  await ts.send(body);
  await waitForJob(ts.db, { userId: 1, itemId: 53, state: 'completed' });
  assert.equal(elsewhere.requests.length, 0);
  assert.equal(itemRequests(ts, '/api/v1/routes/53.json').length, 1);
});

test('demo delivery syncs all three', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 101, userId: 1 });
  ts.fake.putRoute({ id: 102, userId: 1 });
  ts.fake.putRoute({ id: 201, userId: 1 });
  ts.fake.deleteItem('route', 101);
  await ts.send(
    delivery(
      { user_id: 1, item_id: 101, action: 'deleted' },
      { user_id: 2, item_id: 102, item_user_id: 1, action: 'added' },
      { user_id: 1, item_id: 201, action: 'created' },
    ),
  );
  await waitForIdle(ts.db);
  assert.deepEqual(await libraryRows(ts.db, 1), [
    { item_type: 'route', item_id: 101, relation: 'owner' },
    { item_type: 'route', item_id: 201, relation: 'owner' },
  ]);
  assert.deepEqual(await libraryRows(ts.db, 2), [{ item_type: 'route', item_id: 102, relation: 'pinned' }]);
  assert.notEqual((await itemRow(ts.db, 'route', 101))?.deleted_at, null);
  assert.equal((await itemRow(ts.db, 'route', 201))?.deleted_at, null);
});
