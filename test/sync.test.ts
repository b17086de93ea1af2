import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendWebhook } from '../scripts/fake-rwgps.ts';
import { usersCommand } from '../src/cli/users.ts';
import { RwgpsClient } from '../src/rwgps/client.ts';
import { listLibrary } from '../src/store/items.ts';
import { connectUser, disconnectUser, getUser, listUsers } from '../src/store/users.ts';
import { connectUserAndSync } from '../src/sync/connect.ts';
import { CLIENT, countJobs, startStack, waitFor, waitForIdle, type Stack } from './sync-helpers.ts';

async function connect(stack: Stack, userId: number, token: string, tokenKind: 'oauth' | 'basic' = 'oauth') {
  await connectUserAndSync(stack.service.store.db, { id: userId, clientApiKey: CLIENT.apiKey, token, tokenKind }, 5);
  stack.service.worker.notify();
}

async function backfilled(stack: Stack, userId: number) {
  await waitFor(async () => (await getUser(stack.service.store.db, userId))?.backfill_state === 'done', { what: `user ${userId}'s backfill`, timeoutMs: 60_000 });
}

async function libraryIds(stack: Stack, userId: number): Promise<number[]> {
  return (await listLibrary(stack.service.store.db, userId)).filter((entry) => !entry.deleted).map((entry) => entry.id);
}

function post(stack: Stack, notifications: unknown[]) {
  return sendWebhook(`${stack.service.url}/webhooks/rwgps`, { notifications }, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
}

test('backfill of 1000 items keeps webhook fast', async (t) => {
  const stack = await startStack(t);
  const { fake } = stack;
  fake.addUser({ id: 1, accessToken: 'token-1' });
  fake.addUser({ id: 2, accessToken: 'token-2' });
  for (let id = 1; id <= 1000; id++) fake.putRoute({ id, userId: 1, trackPoints: 10 });
  fake.deleteItem('route', 1000);
  await connect(stack, 2, 'token-2');
  await backfilled(stack, 2);

  const started = Date.now();
  await connect(stack, 1, 'token-1');

  // Deliveries for user 2 while user 1's backfill runs, one at a time, each
  // timed. The bound is generous because the test machine may be shared.
  const latencies: number[] = [];
  let backfillSeenRunning = false;
  for (let i = 0; i < 40; i++) {
    fake.putRoute({ id: 5000 + i, userId: 2, trackPoints: 10 });
    const sent = performance.now();
    const answer = await post(stack, fake.takeNotifications());
    latencies.push(performance.now() - sent);
    assert.equal(answer.status, 200);
    const state = (await getUser(stack.service.store.db, 1))?.backfill_state;
    if (state === 'listing' || state === 'syncing') backfillSeenRunning = true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await backfilled(stack, 1);
  const backfillMs = Date.now() - started;

  latencies.sort((a, b) => a - b);
  const max = latencies[latencies.length - 1]!;
  t.diagnostic(`backfill of 1000 items: ${backfillMs} ms; webhook answer p50 ${latencies[20]!.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
  assert.ok(backfillSeenRunning, 'the deliveries overlapped the backfill');
  assert.ok(max < 1000, `slowest webhook answer ${max.toFixed(1)} ms`);

  const summary = (await listUsers(stack.service.store.db)).find((user) => user.userId === 1)!;
  assert.equal(summary.backfillState, 'done');
  assert.equal(summary.backfillItemsKnown, 1000);
  assert.equal(summary.backfillItemsSynced, 1000);
  assert.equal((await libraryIds(stack, 1)).length, 999, 'route 1000 is in the library, marked deleted');
  assert.match(summary.syncCursor ?? '', /^\d{4}-\d\d-\d\dT/);

  const startLine = stack.logs.find((line) => line.msg === 'backfill started' && line.userId === 1);
  const finishLine = stack.logs.find((line) => line.msg === 'backfill finished' && line.userId === 1);
  assert.equal(startLine?.since, '1970-01-01T00:00:00Z');
  assert.equal(finishLine?.itemsKnown, 1000);
  assert.equal(typeof finishLine?.durationMs, 'number');
  await waitForIdle(stack.service);
  assert.equal((await libraryIds(stack, 2)).length, 40);
});

test('backfill of a Basic user follows pages', async (t) => {
  const stack = await startStack(t);
  stack.fake.addUser({ id: 3, authToken: 'basic-3' });
  for (let id = 1; id <= 25; id++) stack.fake.putTrip({ id, userId: 3, trackPoints: 5 });
  stack.fake.syncPageSize = 10;

  await connect(stack, 3, 'basic-3', 'basic');
  await backfilled(stack, 3);

  assert.equal((await libraryIds(stack, 3)).length, 25);
  const syncs = stack.fake.requests.filter((request) => request.path === '/api/v1/sync.json');
  assert.equal(syncs.length, 3, 'three pages of at most 10 entries');
  assert.equal(syncs[0]!.query.since, '1970-01-01T00:00:00Z');
  assert.equal(syncs[0]!.query.assets, 'routes,trips');
  assert.equal(syncs[0]!.headers['x-rwgps-auth-token'], 'basic-3');
  assert.equal(syncs[0]!.headers['x-rwgps-api-key'], CLIENT.apiKey);
  assert.equal((await listUsers(stack.service.store.db))[0]!.backfillItemsKnown, 25);
});

test('lost delivery recovered by next webhook', async (t) => {
  const stack = await startStack(t);
  stack.fake.addUser({ id: 4, accessToken: 'token-4' });
  stack.fake.putRoute({ id: 40, userId: 4 });
  await connect(stack, 4, 'token-4');
  await backfilled(stack, 4);
  const cursorBefore = (await getUser(stack.service.store.db, 4))!.sync_cursor!;

  stack.fake.putRoute({ id: 41, userId: 4, name: 'never delivered' });
  stack.fake.takeNotifications(); // dropped on purpose
  stack.fake.putRoute({ id: 42, userId: 4 });
  assert.equal((await post(stack, stack.fake.takeNotifications())).status, 200);

  await waitFor(async () => (await libraryIds(stack, 4)).includes(41), { what: 'route 41 to be recovered' });
  await waitForIdle(stack.service);
  assert.deepEqual(await libraryIds(stack, 4), [40, 41, 42]);
  const sync = stack.fake.requests.filter((request) => request.path === '/api/v1/sync.json').at(-1)!;
  assert.ok(Date.parse(sync.query.since!) < Date.parse(cursorBefore), 'the sync starts a little before the cursor');
  assert.ok((await getUser(stack.service.store.db, 4))!.sync_cursor! > cursorBefore, 'the cursor moved on');
});

test('lost delivery recovered by reconciliation', async (t) => {
  // 0.01 minutes = 600 ms per round.
  const stack = await startStack(t, (config) => {
    config.sync.intervalMinutes = 0.01;
  });
  stack.fake.addUser({ id: 5, accessToken: 'token-5' });
  await connect(stack, 5, 'token-5');
  await backfilled(stack, 5);

  stack.fake.putRoute({ id: 50, userId: 5 });
  stack.fake.takeNotifications(); // dropped on purpose
  await waitFor(async () => (await libraryIds(stack, 5)).includes(50), { what: 'route 50 to be recovered' });
  assert.ok(stack.logs.some((line) => line.msg === 'reconciliation round planned'));
});

test('webhooks during a waiting sync add none', async (t) => {
  const stack = await startStack(t, (config) => {
    config.sync.afterWebhookDelayMs = 60_000;
  });
  stack.fake.addUser({ id: 6, accessToken: 'token-6' });
  for (let i = 0; i < 3; i++) {
    stack.fake.putRoute({ id: 60 + i, userId: 6 });
    assert.equal((await post(stack, stack.fake.takeNotifications())).status, 200);
  }
  assert.equal(await countJobs(stack.service, 'sync', 6, ['available', 'no_token']), 1);
  const job = await stack.service.store.db.selectFrom('jobs').select(['merged_count', 'state']).where('kind', '=', 'sync').executeTakeFirstOrThrow();
  assert.equal(job.merged_count, 2);
  assert.equal(job.state, 'no_token', 'user 6 is not connected yet');
});

test('sync backs off on 429 and stops on 401', async (t) => {
  const stack = await startStack(t);
  stack.fake.addUser({ id: 9, accessToken: 'token-9' });
  stack.fake.putRoute({ id: 90, userId: 9 });
  stack.fake.injectFault({ path: '/api/v1/sync.json', fault: { kind: 'status', status: 429, retryAfter: '1' } });
  const queuedAt = Date.now();
  await connect(stack, 9, 'token-9');
  await backfilled(stack, 9);
  const syncs = stack.fake.requests.filter((request) => request.path === '/api/v1/sync.json');
  assert.equal(syncs.length, 2);
  assert.ok(syncs[1]!.at - syncs[0]!.at >= 500, 'the retry waited for Retry-After (capped at backoffMaxMs)');
  assert.ok(Date.now() - queuedAt < 20_000);

  stack.fake.injectFault({ path: '/api/v1/sync.json', fault: { kind: 'status', status: 401 } });
  stack.fake.putRoute({ id: 91, userId: 9 });
  assert.equal((await post(stack, stack.fake.takeNotifications())).status, 200);
  await waitFor(async () => (await getUser(stack.service.store.db, 9))?.status === 'reauthorization_required', { what: 'user 9 to be parked' });
});

test('users remove revokes and purges', async (t) => {
  const stack = await startStack(t);
  stack.fake.addUser({ id: 11, accessToken: 'token-11' });
  stack.fake.addUser({ id: 12, accessToken: 'token-12' });
  stack.fake.putRoute({ id: 110, userId: 11 });
  stack.fake.putRoute({ id: 111, userId: 11 });
  stack.fake.pin(12, 'route', 111);
  await connect(stack, 11, 'token-11');
  await connect(stack, 12, 'token-12');
  await backfilled(stack, 11);
  await backfilled(stack, 12);

  const run = async (...argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await usersCommand.run({
      argv: [...argv, '--config', stack.config.file],
      env: {},
      stdout: { write: (text: string) => ((stdout += text), true) } as NodeJS.WritableStream,
      stderr: { write: (text: string) => ((stderr += text), true) } as NodeJS.WritableStream,
    });
    return { code, stdout, stderr };
  };

  const removed = await run('remove', '11', '--revoke', '--purge');
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /user 11 disconnected; token revoked at RWGPS; 1 items deleted/);
  assert.deepEqual(stack.fake.oauth.revocations, ['token-11']);
  const user = await getUser(stack.service.store.db, 11);
  assert.equal(user?.status, 'disconnected');
  assert.equal(user?.token, '');
  assert.equal(user?.sync_cursor, null);
  assert.deepEqual(await libraryIds(stack, 11), []);
  assert.deepEqual(await libraryIds(stack, 12), [111], 'a pinned item of another user stays');

  const kept = await run('remove', '12');
  assert.equal(kept.code, 0);
  assert.match(kept.stdout, /mirrored library kept/);
  assert.deepEqual(await libraryIds(stack, 12), [111]);

  const unknown = await run('remove', '99');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /user 99 not found/);

  const list = await run('list', '--json');
  const users = JSON.parse(list.stdout) as { userId: number; status: string; backfillState: string }[];
  assert.deepEqual(users.map((entry) => [entry.userId, entry.status, entry.backfillState]), [[11, 'disconnected', 'pending'], [12, 'disconnected', 'done']]);
});

test('purge during sync keeps backfill', async (t) => {
  const stack = await startStack(t);
  const db = stack.service.store.db;
  stack.fake.addUser({ id: 21, accessToken: 'token-21' });
  stack.fake.putRoute({ id: 210, userId: 21 });
  stack.fake.putRoute({ id: 211, userId: 21 });
  await connect(stack, 21, 'token-21');
  await backfilled(stack, 21);
  await waitForIdle(stack.service);

  // A catch-up sync whose sync.json request is still open when the purge runs.
  stack.fake.injectFault({ path: '/api/v1/sync.json', fault: { kind: 'slow', delayMs: 1500 } });
  const listed = stack.fake.requests.filter((request) => request.path === '/api/v1/sync.json').length;
  await connect(stack, 21, 'token-21');
  await waitFor(() => stack.fake.requests.filter((request) => request.path === '/api/v1/sync.json').length > listed, { what: 'the catch-up sync to ask RWGPS' });
  const purged = await disconnectUser(db, 21, { purge: true });
  assert.equal(purged.found, true);

  await waitFor(async () => (await countJobs(stack.service, 'sync', 21, ['running', 'available', 'retryable'])) === 0, { what: 'the catch-up sync to end' });
  const user = await getUser(db, 21);
  assert.equal(user?.sync_cursor, null, 'the purge reset the cursor and the sync did not move it');
  assert.equal(user?.backfill_state, 'pending');
  assert.equal(await countJobs(stack.service, 'item', 21, ['available', 'retryable', 'parked', 'no_token']), 0, 'no item job queued after the purge');
  assert.ok(stack.logs.some((line) => line.msg === 'sync stopped: the user was removed with --purge or reconnected while it ran; cursor not moved' && line.userId === 21));

  const reconnected = await connectUserAndSync(db, { id: 21, clientApiKey: CLIENT.apiKey, token: 'token-21', tokenKind: 'oauth' }, 5);
  stack.service.worker.notify();
  assert.equal(reconnected.backfill, true);
  await backfilled(stack, 21);
  await waitForIdle(stack.service);
  assert.deepEqual(await libraryIds(stack, 21), [210, 211]);
});

test('purge during item fetch stores nothing', async (t) => {
  const stack = await startStack(t);
  const db = stack.service.store.db;
  stack.fake.addUser({ id: 22, accessToken: 'token-22' });
  stack.fake.addUser({ id: 23, accessToken: 'token-23' });
  await connectUser(db, { id: 22, clientApiKey: CLIENT.apiKey, token: 'token-22', tokenKind: 'oauth' });
  await connectUser(db, { id: 23, clientApiKey: CLIENT.apiKey, token: 'token-23', tokenKind: 'oauth' });
  // 220 is user 22's alone; 230 is user 23's route, which user 22 pins.
  stack.fake.putRoute({ id: 230, userId: 23 });
  assert.equal((await post(stack, stack.fake.takeNotifications())).status, 200);
  await waitForIdle(stack.service);
  assert.deepEqual(await libraryIds(stack, 23), [230]);

  stack.fake.injectFault({ path: '/api/v1/routes/220.json', fault: { kind: 'slow', delayMs: 1500 } });
  stack.fake.injectFault({ path: '/api/v1/routes/230.json', fault: { kind: 'slow', delayMs: 1500 } });
  stack.fake.putRoute({ id: 220, userId: 22 });
  stack.fake.pin(22, 'route', 230);
  assert.equal((await post(stack, stack.fake.takeNotifications())).status, 200);
  const fetching = (path: string) => stack.fake.requests.some((request) => request.path === path && request.headers.authorization === 'Bearer token-22');
  await waitFor(() => fetching('/api/v1/routes/220.json') && fetching('/api/v1/routes/230.json'), { what: 'both item fetches to start' });
  await disconnectUser(db, 22, { purge: true });
  await waitForIdle(stack.service);

  assert.deepEqual(await listLibrary(db, 22), [], 'nothing put back into the purged library');
  const items = await db.selectFrom('items').select('id').orderBy('id').execute();
  assert.deepEqual(items.map((row) => row.id), [230], 'the purged user\'s own route is not stored; the shared one is');
  assert.deepEqual(await libraryIds(stack, 23), [230]);
});

test('next page never leaves RWGPS origin', async (t) => {
  const stack = await startStack(t);
  const seen: { url: string | undefined; authorization: string | undefined }[] = [];
  const other = createServer((request, response) => {
    seen.push({ url: request.url, authorization: request.headers.authorization });
    response.writeHead(500).end();
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const otherPort = (other.address() as AddressInfo).port;

  // The next_sync_url is on the RWGPS origin, but its path starts with "//",
  // which a resolver reads as a protocol-relative URL to another host.
  stack.fake.addUser({ id: 31, accessToken: 'token-31' });
  const nextSyncUrl = `${stack.fake.url}//127.0.0.1:${otherPort}/steal?since=2000-01-01T00:00:00Z`;
  const body = JSON.stringify({ items: [], meta: { rwgps_datetime: new Date().toISOString(), next_sync_url: nextSyncUrl } });
  stack.fake.injectFault({ path: '/api/v1/sync.json', fault: { kind: 'status', status: 200, body } });
  await connect(stack, 31, 'token-31');
  await waitFor(async () => (await countJobs(stack.service, 'sync', 31, ['dead', 'completed'])) === 1, { what: 'the sync to end' });
  assert.deepEqual(seen, [], 'the other host got no request');
  assert.equal((await getUser(stack.service.store.db, 31))?.sync_cursor, null, 'the cursor did not move');

  // The client itself checks the origin of a path and of an absolute URL before sending.
  const client = new RwgpsClient({ baseUrl: stack.fake.url, requestTimeoutMs: 2000 });
  const credentials = { token: 'token-31', kind: 'oauth' as const, client: CLIENT };
  const relative = await client.get(`//127.0.0.1:${otherPort}/x`, credentials);
  assert.equal(relative.kind, 'permanent');
  const absolute = await client.get(new URL(`http://127.0.0.1:${otherPort}/x`), credentials);
  assert.equal(absolute.kind, 'permanent');
  assert.match('message' in absolute ? absolute.message : '', /not sent: tokens are only sent to http:\/\/127\.0\.0\.1:\d+/);
  assert.deepEqual(seen, [], 'the other host still got no request');
});
