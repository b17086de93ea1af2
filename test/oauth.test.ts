import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashState, MAX_PENDING_OAUTH_STATES } from '../src/store/oauth-states.ts';
import { getUser } from '../src/store/users.ts';
import { listLibrary } from '../src/store/items.ts';
import { countJobs, followRedirects, startStack, waitFor, waitForIdle, type Stack } from './sync-helpers.ts';

async function startWithUser(t: Parameters<typeof startStack>[0]): Promise<Stack> {
  const stack = await startStack(t);
  stack.fake.addUser({ id: 7, name: 'Ann' });
  stack.fake.oauth.authorizeAs = 7;
  stack.fake.putRoute({ id: 70, userId: 7, name: 'Hill loop' });
  stack.fake.putTrip({ id: 71, userId: 7, name: 'Commute' });
  return stack;
}

// Returns the state and the callback URL that RWGPS would redirect to, without visiting it.
async function beginConnect(stack: Stack): Promise<{ state: string; callback: URL }> {
  const connect = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
  assert.equal(connect.status, 302);
  const authorize = await fetch(connect.headers.get('location')!, { redirect: 'manual' });
  assert.equal(authorize.status, 302);
  const callback = new URL(authorize.headers.get('location')!);
  return { state: callback.searchParams.get('state')!, callback };
}

function tokenRequests(stack: Stack): number {
  return stack.fake.requests.filter((request) => request.path === '/oauth/token.json').length;
}

test('OAuth happy path connects and backfills', async (t) => {
  const stack = await startWithUser(t);
  const { hops, status, body } = await followRedirects(`${stack.service.url}/connect`);

  assert.equal(hops.length, 3, 'connect -> authorize -> callback');
  const authorize = new URL(hops[0]!.location!);
  assert.equal(authorize.origin, stack.fake.url);
  assert.equal(authorize.pathname, '/oauth/authorize');
  assert.equal(authorize.searchParams.get('client_id'), 'client-1');
  assert.equal(authorize.searchParams.get('response_type'), 'code');
  assert.equal(authorize.searchParams.get('redirect_uri'), `${stack.config.server.publicUrl}/oauth/callback`);
  assert.match(authorize.searchParams.get('state')!, /^[A-Za-z0-9_-]{40,}$/);
  assert.equal(status, 200);
  assert.match(body, /Account connected/);
  assert.match(body, /account 7 is connected/);

  const user = await getUser(stack.service.store.db, 7);
  assert.equal(user?.status, 'active');
  assert.equal(user?.token_kind, 'oauth');
  assert.match(user!.token, /^oauth-7-/);
  const exchange = stack.fake.requests.find((request) => request.path === '/oauth/token.json');
  assert.equal(exchange?.method, 'POST');

  await waitFor(async () => (await getUser(stack.service.store.db, 7))?.backfill_state === 'done', { what: 'the backfill to finish' });
  const library = await listLibrary(stack.service.store.db, 7);
  assert.deepEqual(library.map((entry) => `${entry.type}:${entry.id}:${entry.relation}`), ['route:70:owner', 'trip:71:owner']);
  const text = JSON.stringify(stack.logs);
  assert.ok(!text.includes(user!.token), 'the access token is never logged');
  assert.ok(stack.logs.some((line) => line.msg === 'user connected through OAuth' && line.userId === 7));
});

test('callback rejects missing, wrong, expired and reused state', async (t) => {
  const stack = await startWithUser(t);

  const missing = await fetch(`${stack.service.url}/oauth/callback?code=abc`);
  assert.equal(missing.status, 400);
  assert.match(await missing.text(), /no state parameter[\s\S]*href="http:\/\/127\.0\.0\.1:\d+\/connect"/);

  const wrong = await fetch(`${stack.service.url}/oauth/callback?code=abc&state=not-a-state`);
  assert.equal(wrong.status, 400);
  assert.match(await wrong.text(), /not one this server issued/);
  assert.equal(tokenRequests(stack), 0, 'no code exchange for a bad state');

  const expired = await beginConnect(stack);
  await stack.service.store.db
    .updateTable('oauth_states')
    .set({ expires_at: Date.now() - 1000 })
    .where('state_sha256', '=', hashState(expired.state))
    .execute();
  const expiredAnswer = await fetch(expired.callback);
  assert.equal(expiredAnswer.status, 400);
  assert.match(await expiredAnswer.text(), /expired/);
  assert.equal(tokenRequests(stack), 0, 'no code exchange for an expired state');

  const fresh = await beginConnect(stack);
  assert.equal((await fetch(fresh.callback)).status, 200);
  assert.equal(tokenRequests(stack), 1);
  const reused = await fetch(fresh.callback);
  assert.equal(reused.status, 400);
  assert.match(await reused.text(), /already used/);
  assert.equal(tokenRequests(stack), 1, 'a reused state sends nothing to RWGPS');
});

test('code used twice is rejected by RWGPS', async (t) => {
  const stack = await startWithUser(t);
  const first = await beginConnect(stack);
  assert.equal((await fetch(first.callback)).status, 200);

  // A new state with the old code: the state passes, RWGPS rejects the code.
  const second = await beginConnect(stack);
  const replay = new URL(second.callback);
  replay.searchParams.set('code', first.callback.searchParams.get('code')!);
  const answer = await fetch(replay);
  const body = await answer.text();
  assert.equal(answer.status, 400);
  assert.match(body, /rejected the authorization code/);
  assert.ok(!body.includes(first.callback.searchParams.get('code')!), 'the code is not echoed');
  assert.equal(stack.fake.oauth.exchanges.length, 1);
  const failure = stack.logs.find((line) => line.msg === 'oauth callback failed');
  assert.match(String(failure?.reason), /invalid_grant/);
});

test('token response without user_id asks users/current', async (t) => {
  const stack = await startWithUser(t);
  stack.fake.oauth.omitUserId = true;
  const { status } = await followRedirects(`${stack.service.url}/connect`);
  assert.equal(status, 200);
  const current = stack.fake.requests.find((request) => request.path === '/api/v1/users/current.json');
  assert.match(current?.headers.authorization ?? '', /^Bearer oauth-7-/);
  assert.equal((await getUser(stack.service.store.db, 7))?.status, 'active');
});

test('denied authorisation stores nothing', async (t) => {
  const stack = await startWithUser(t);
  stack.fake.oauth.denyAuthorization = true;
  const { status, body, hops } = await followRedirects(`${stack.service.url}/connect`);
  assert.equal(new URL(hops[2]!.url).searchParams.get('error'), 'access_denied');
  assert.equal(status, 403);
  assert.match(body, /Authorization denied/);
  assert.match(body, /href="[^"]*\/connect"/);
  assert.equal(await getUser(stack.service.store.db, 7), undefined);
  assert.equal(tokenRequests(stack), 0);
});

test('connect without publicUrl answers 503', async (t) => {
  const stack = await startStack(t, (config) => {
    delete config.server.publicUrl;
  });
  const answer = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
  assert.equal(answer.status, 503);
  assert.match(((await answer.json()) as { error: string }).error, /server\.publicUrl is not set/);
});

test('connect with several clients needs client', async (t) => {
  const stack = await startStack(t, (config) => {
    config.clients.push({ apiKey: 'key-2', clientId: 'client-2', clientSecret: 'secret-2' });
  });
  const without = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
  assert.equal(without.status, 400);
  const unknown = await fetch(`${stack.service.url}/connect?client=nope`, { redirect: 'manual' });
  assert.equal(unknown.status, 400);
  const named = await fetch(`${stack.service.url}/connect?client=key-2`, { redirect: 'manual' });
  assert.equal(named.status, 302);
  assert.equal(new URL(named.headers.get('location')!).searchParams.get('client_id'), 'client-2');
});

test('revoked user is parked, reconnect catches up', async (t) => {
  const stack = await startWithUser(t);
  const { db } = stack.service.store;
  assert.equal((await followRedirects(`${stack.service.url}/connect`)).status, 200);
  await waitFor(async () => (await getUser(db, 7))?.backfill_state === 'done', { what: 'the backfill' });
  const firstToken = (await getUser(db, 7))!.token;

  // The user revokes access at RWGPS, then changes a route: the sync gets 401.
  stack.fake.revokeToken(firstToken);
  stack.fake.putRoute({ id: 72, userId: 7, name: 'New while revoked' });
  await db.insertInto('jobs').values({
    kind: 'sync', state: 'available', dedupe_key: 'sync:7', lock_key: 'sync:7', user_id: 7, max_attempts: 5,
    run_at: Date.now(), created_at: Date.now(), updated_at: Date.now(),
  }).execute();
  stack.service.worker.notify();
  await waitFor(async () => (await getUser(db, 7))?.status === 'reauthorization_required', { what: 'the user to be parked' });
  assert.equal(await countJobs(stack.service, 'sync', 7, ['parked']), 1);

  const { status } = await followRedirects(`${stack.service.url}/connect`);
  assert.equal(status, 200);
  const user = await getUser(db, 7);
  assert.equal(user?.status, 'active');
  assert.notEqual(user?.token, firstToken);
  await waitForIdle(stack.service);
  const library = await listLibrary(db, 7);
  assert.ok(library.some((entry) => entry.id === 72 && entry.name === 'New while revoked'), 'the change made while parked is caught up');
  assert.equal(await countJobs(stack.service, 'sync', 7, ['parked', 'dead']), 0);
});

test('connect answers 429 over state cap', async (t) => {
  const stack = await startWithUser(t);
  const db = stack.service.store.db;
  const now = Date.now();
  // Fill the table to one below the cap, as a flood of GET /connect would.
  const rows = Array.from({ length: MAX_PENDING_OAUTH_STATES - 1 }, (_, index) => ({
    state_sha256: hashState(`flood-${index}`),
    client_api_key: 'key-1',
    created_at: now,
    expires_at: now + 10 * 60_000,
    used_at: null,
  }));
  for (let start = 0; start < rows.length; start += 200) await db.insertInto('oauth_states').values(rows.slice(start, start + 200)).execute();
  const count = async () => Number((await db.selectFrom('oauth_states').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  const last = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
  assert.equal(last.status, 302, 'the state that reaches the cap is still issued');
  for (let i = 0; i < 5; i++) {
    const over = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
    assert.equal(over.status, 429);
    assert.equal(over.headers.get('retry-after'), '60');
    assert.deepEqual(await over.json(), { error: 'too many pending authorizations; try again in a few minutes' });
  }
  assert.equal(await count(), MAX_PENDING_OAUTH_STATES, 'no row stored over the cap');
  const warnings = stack.logs.filter((line) => line.msg === 'OAuth connect rejected: too many pending authorizations; GET /connect may be flooded');
  assert.equal(warnings.length, 1, 'one log line for the burst');
  assert.equal(warnings[0]?.limit, MAX_PENDING_OAUTH_STATES);

  // States that expired over an hour ago stop counting and are deleted in batches.
  await db
    .updateTable('oauth_states')
    .set({ expires_at: now - 2 * 60 * 60_000 })
    .where('state_sha256', 'in', rows.slice(0, 500).map((row) => row.state_sha256))
    .execute();
  const again = await fetch(`${stack.service.url}/connect`, { redirect: 'manual' });
  assert.equal(again.status, 302);
  assert.equal(await count(), MAX_PENDING_OAUTH_STATES + 1 - 100, 'one batch of 100 expired states deleted, one state added');
});
