import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { FakeRwgps, sendWebhook, signBody, type FakeRwgpsOptions } from '../scripts/fake-rwgps.ts';

const CLIENT = { apiKey: 'key-1', clientId: 'client-1', clientSecret: 'secret-1' };
const SCRIPT = fileURLToPath(new URL('../scripts/fake-rwgps.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

// Starts a fake with two users (1 and 2) and closes it when the test ends.
async function startFake(t: TestContext, options: FakeRwgpsOptions = {}): Promise<FakeRwgps> {
  const fake = await FakeRwgps.start({ clients: [CLIENT], ...options });
  t.after(() => fake.close());
  fake.addUser({ id: 1, name: 'Ann', accessToken: 'access-1', authToken: 'auth-1' });
  fake.addUser({ id: 2, name: 'Bob', accessToken: 'access-2', authToken: 'auth-2' });
  return fake;
}

function get(fake: FakeRwgps, path: string, token = 'access-1', init: RequestInit = {}): Promise<Response> {
  return fetch(`${fake.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}` } });
}

// Response.json() is typed unknown, and the tests read fields of known shapes.
async function jsonOf(response: Response): Promise<any> {
  return response.json();
}

async function getJson(fake: FakeRwgps, path: string, token = 'access-1'): Promise<{ status: number; body: any }> {
  const response = await get(fake, path, token);
  return { status: response.status, body: await jsonOf(response) };
}

function postControl(fake: FakeRwgps, path: string, body: unknown): Promise<Response> {
  return fetch(`${fake.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

test('route GET returns full representation', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 10, userId: 1, name: 'River loop', trackPoints: 50 });

  const { status, body } = await getJson(fake, '/api/v1/routes/10.json');
  assert.equal(status, 200);
  const route = body.route;
  assert.equal(route.id, 10);
  assert.equal(route.name, 'River loop');
  assert.equal(route.url, `${fake.url}/routes/10`);
  assert.equal(route.user_id, 1);
  assert.equal(route.visibility, 'public');
  assert.equal(route.track_points.length, 50);
  assert.deepEqual(Object.keys(route.track_points[0]).sort(), ['d', 'e', 'x', 'y']);
  assert.ok(route.distance > 0);
  assert.ok(route.course_points.length > 0);
  assert.ok(route.points_of_interest.length > 0);
  assert.match(route.updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$/);

  const again = await getJson(fake, '/routes/10.json');
  assert.deepEqual(again.body, body, 'the webhook-style item_url path serves the same body');
});

test('large trip body is over 2 MB', async (t) => {
  const fake = await startFake(t);
  fake.putTrip({ id: 20, userId: 1, trackPoints: 20000 });

  const response = await get(fake, '/api/v1/trips/20.json');
  const text = await response.text();
  assert.equal(response.status, 200);
  assert.ok(text.length > 2_000_000, `body is ${text.length} bytes`);
  const trip = JSON.parse(text).trip;
  assert.equal(trip.track_points.length, 20000);
  assert.deepEqual(Object.keys(trip.track_points[0]).filter((key) => 'xyedtsh'.includes(key)).sort(), ['d', 'e', 'h', 's', 't', 'x', 'y']);
  for (const key of ['departed_at', 'time_zone', 'activity_type', 'duration', 'moving_time', 'avg_speed', 'max_speed', 'calories', 'device', 'gear']) {
    assert.ok(key in trip, `trip has ${key}`);
  }
});

test('authentication schemes and 401s', async (t) => {
  const fake = await startFake(t);
  const path = '/api/v1/users/current.json';
  const basic = Buffer.from(`${CLIENT.apiKey}:auth-2`).toString('base64');

  const cases: Array<{ name: string; headers: Record<string, string>; status: number; userId?: number }> = [
    { name: 'bearer', headers: { authorization: 'Bearer access-1' }, status: 200, userId: 1 },
    { name: 'api key headers', headers: { 'x-rwgps-api-key': CLIENT.apiKey, 'x-rwgps-auth-token': 'auth-2' }, status: 200, userId: 2 },
    { name: 'basic', headers: { authorization: `Basic ${basic}` }, status: 200, userId: 2 },
    { name: 'missing', headers: {}, status: 401 },
    { name: 'unknown bearer', headers: { authorization: 'Bearer nope' }, status: 401 },
    { name: 'unknown api key', headers: { 'x-rwgps-api-key': 'other', 'x-rwgps-auth-token': 'auth-2' }, status: 401 },
    { name: 'access token as auth token', headers: { 'x-rwgps-api-key': CLIENT.apiKey, 'x-rwgps-auth-token': 'access-1' }, status: 401 },
  ];
  for (const testCase of cases) {
    const response = await fetch(`${fake.url}${path}`, { headers: testCase.headers });
    const body = await jsonOf(response);
    assert.equal(response.status, testCase.status, testCase.name);
    if (testCase.userId === undefined) {
      assert.equal(typeof body.error, 'string', `${testCase.name} has an error message`);
    } else {
      assert.equal(body.user.id, testCase.userId, testCase.name);
    }
  }

  fake.revokeToken('access-1');
  fake.revokeToken('auth-2');
  assert.equal((await get(fake, path)).status, 401);
  const revokedBasic = await fetch(`${fake.url}${path}`, { headers: { authorization: `Basic ${basic}` } });
  assert.equal(revokedBasic.status, 401);
  assert.match((await jsonOf(revokedBasic)).error, /revoked/);
});

test('visibility, deletion and unknown ids', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1, visibility: 'public' });
  fake.putRoute({ id: 2, userId: 1, visibility: 'friends_only' });
  fake.putRoute({ id: 3, userId: 1, visibility: 'private' });

  assert.equal((await get(fake, '/api/v1/routes/1.json', 'access-2')).status, 200);
  assert.equal((await get(fake, '/api/v1/routes/2.json', 'access-2')).status, 200);
  assert.equal((await get(fake, '/api/v1/routes/3.json', 'access-2')).status, 403);
  assert.equal((await get(fake, '/api/v1/routes/3.json', 'access-1')).status, 200);
  assert.equal((await get(fake, '/api/v1/routes/99.json')).status, 404);
  assert.equal((await get(fake, '/api/v1/routes/abc.json')).status, 404);
  assert.equal((await get(fake, '/api/v1/trips/1.json')).status, 404, 'a route id is not a trip id');

  fake.deleteItem('route', 1);
  const deleted = await getJson(fake, '/api/v1/routes/1.json');
  assert.equal(deleted.status, 404);
  assert.equal(typeof deleted.body.error, 'string');
});

test('unknown path is 404, wrong method 405', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });

  const unknown = await get(fake, '/api/v1/nothing.json');
  assert.equal(unknown.status, 404);
  assert.equal(typeof (await jsonOf(unknown)).error, 'string');

  const wrongMethod = await fetch(`${fake.url}/api/v1/routes/1.json`, { method: 'DELETE', headers: { authorization: 'Bearer access-1' } });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'GET');
});

test('status fault honours times and match', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });
  fake.putRoute({ id: 2, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/1.json', times: 2, fault: { kind: 'status', status: 429, retryAfter: '3' } });
  fake.injectFault({ method: 'GET', path: /^\/api\/v1\/routes\/2/, fault: { kind: 'status', status: 503, body: 'down' } });

  const first = await get(fake, '/api/v1/routes/1.json');
  assert.equal(first.status, 429);
  assert.equal(first.headers.get('retry-after'), '3');
  assert.equal(typeof (await jsonOf(first)).error, 'string');
  assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 429);
  assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 200, 'the rule is used up after two requests');

  const custom = await get(fake, '/api/v1/routes/2.json');
  assert.equal(custom.status, 503);
  assert.equal(await custom.text(), 'down');
  assert.equal((await get(fake, '/api/v1/routes/2.json')).status, 200);

  fake.injectFault({ path: '/api/v1/routes/1.json', times: Infinity, fault: { kind: 'status', status: 500 } });
  for (let i = 0; i < 3; i++) assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 500);
  fake.clearFaults();
  assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 200);
});

test('slow fault and latency delay responses', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'slow', delayMs: 200 } });

  let started = Date.now();
  assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 200);
  assert.ok(Date.now() - started >= 190, 'slow fault waited');

  fake.latencyMs = 150;
  started = Date.now();
  assert.equal((await get(fake, '/api/v1/routes/1.json')).status, 200);
  assert.ok(Date.now() - started >= 140, 'latency applied');
});

test('stall fault sends partial body', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'stall' } });

  const response = await get(fake, '/api/v1/routes/1.json', 'access-1', { signal: AbortSignal.timeout(300) });
  assert.equal(response.status, 200);
  await assert.rejects(response.text(), 'the body never completes');

  const started = Date.now();
  await fake.close();
  assert.ok(Date.now() - started < 1000, 'close() does not wait for the stalled socket');
});

test('reset and redirect faults', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'reset' } });
  await assert.rejects(get(fake, '/api/v1/routes/1.json'));

  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'redirect', location: 'http://127.0.0.1:9/elsewhere' } });
  const redirected = await fetch(`${fake.url}/api/v1/routes/1.json`, { redirect: 'manual', headers: { authorization: 'Bearer access-1' } });
  assert.equal(redirected.status, 302);
  assert.equal(redirected.headers.get('location'), 'http://127.0.0.1:9/elsewhere');
});

test('changes produce notifications and sync entries', async (t) => {
  const fake = await startFake(t);
  const before = new Date(Date.now() - 1);
  fake.putRoute({ id: 5, userId: 1 });
  const created = (await getJson(fake, '/api/v1/routes/5.json')).body.route;
  fake.putRoute({ id: 5, userId: 1, name: 'Renamed' });
  fake.pin(2, 'route', 5);
  fake.unpin(2, 'route', 5);
  fake.deleteItem('route', 5);

  const notifications = fake.takeNotifications();
  assert.deepEqual(
    notifications.map((n) => [n.user_id, n.action, n.item_user_id]),
    [[1, 'created', 1], [1, 'updated', 1], [2, 'added', 1], [2, 'removed', 1], [1, 'deleted', 1]],
  );
  assert.deepEqual(notifications[2], {
    user_id: 2,
    item_type: 'route',
    item_id: 5,
    item_user_id: 1,
    item_url: `${fake.url}/routes/5.json`,
    action: 'added',
    collection: { id: 2, type: 'pinned', url: null },
  });
  assert.equal(notifications[0]?.collection, null);
  assert.deepEqual(fake.takeNotifications(), [], 'a second call returns only new changes');

  const ownerChanges = fake.changesSince(1, before);
  assert.deepEqual(ownerChanges.map((entry) => entry.action), ['created', 'updated', 'deleted']);
  assert.deepEqual(fake.changesSince(2, before).map((entry) => entry.action), ['added', 'removed']);
  const times = ownerChanges.map((entry) => Date.parse(entry.datetime));
  assert.ok(times.every((time, i) => i === 0 || time > (times[i - 1] ?? 0)), `datetimes strictly increase: ${JSON.stringify(times)}`);

  const last = ownerChanges[2];
  assert.ok(last !== undefined);
  assert.deepEqual(fake.changesSince(1, new Date(last.datetime)).map((entry) => entry.action), ['deleted'], 'since is inclusive');

  fake.putRoute({ id: 5, userId: 1 });
  const recreated = (await getJson(fake, '/api/v1/routes/5.json')).body.route;
  assert.ok(Date.parse(recreated.updated_at) > Date.parse(created.updated_at), 'updated_at moves forward');
  assert.equal(fake.takeNotifications()[0]?.action, 'created', 'putting a deleted item creates it again');
});

test('sync endpoint filters assets and returns cursor', async (t) => {
  const fake = await startFake(t);
  fake.putRoute({ id: 1, userId: 1 });
  fake.putTrip({ id: 2, userId: 1 });
  fake.putRoute({ id: 3, userId: 2 });

  const all = await getJson(fake, '/api/v1/sync.json?since=1970-01-01&assets=routes,trips');
  assert.equal(all.status, 200);
  assert.deepEqual(all.body.items.map((item: { item_id: number }) => item.item_id), [1, 2]);
  assert.equal(all.body.items[0].item_url, `${fake.url}/api/v1/routes/1.json`);

  const routes = await getJson(fake, '/api/v1/sync.json?since=1970-01-01&assets=routes');
  assert.deepEqual(routes.body.items.map((item: { item_type: string }) => item.item_type), ['route']);

  fake.putTrip({ id: 2, userId: 1, name: 'Later' });
  const next = new URL(all.body.meta.next_sync_url);
  assert.equal(next.searchParams.get('since'), all.body.meta.rwgps_datetime);
  const later = await getJson(fake, `${next.pathname}${next.search}`);
  assert.deepEqual(later.body.items.map((item: { action: string }) => item.action), ['updated']);

  assert.equal((await get(fake, '/api/v1/sync.json')).status, 400, 'since is required');
  assert.equal((await get(fake, '/api/v1/sync.json?since=yesterday')).status, 400);
});

test('control API over HTTP', async (t) => {
  const fake = await FakeRwgps.start();
  t.after(() => fake.close());

  assert.equal((await postControl(fake, '/__fake/clients', CLIENT)).status, 200);
  assert.equal((await postControl(fake, '/__fake/users', { id: 7, accessToken: 'token-7' })).status, 200);
  assert.equal((await postControl(fake, '/__fake/users', { id: 8, authToken: 'auth-8' })).status, 200);
  assert.equal((await postControl(fake, '/__fake/routes', { id: 70, userId: 7, visibility: 'private' })).status, 200);
  assert.equal((await postControl(fake, '/__fake/trips', { id: 71, userId: 7, trackPoints: 3 })).status, 200);
  assert.equal((await postControl(fake, '/__fake/pin', { userId: 8, type: 'trip', id: 71 })).status, 200);
  assert.equal((await postControl(fake, '/__fake/unpin', { userId: 8, type: 'trip', id: 71 })).status, 200);
  assert.equal((await postControl(fake, '/__fake/delete', { type: 'route', id: 70 })).status, 200);
  assert.equal((await postControl(fake, '/__fake/faults', { path: '/api/v1/trips/71.json', times: 'Infinity', fault: { kind: 'status', status: 502 } })).status, 200);

  const invalid = await postControl(fake, '/__fake/routes', { id: -1, userId: 7 });
  assert.equal(invalid.status, 400);
  assert.match((await jsonOf(invalid)).error, /invalid route id/);
  assert.equal((await postControl(fake, '/__fake/delete', { type: 'route', id: 999 })).status, 400);

  assert.equal((await get(fake, '/api/v1/trips/71.json', 'token-7')).status, 502);
  assert.equal((await get(fake, '/api/v1/trips/71.json', 'token-7')).status, 502);
  assert.equal((await fetch(`${fake.url}/__fake/faults`, { method: 'DELETE' })).status, 200);
  assert.equal((await get(fake, '/api/v1/trips/71.json', 'token-7')).status, 200);

  const taken = await jsonOf(await postControl(fake, '/__fake/notifications/take', {}));
  assert.deepEqual(
    taken.notifications.map((n: { action: string; user_id: number }) => `${n.user_id}:${n.action}`),
    ['7:created', '7:created', '8:added', '8:removed', '7:deleted'],
  );

  const recorded = await jsonOf(await fetch(`${fake.url}/__fake/requests`));
  assert.deepEqual(
    recorded.requests.map((request: { path: string }) => request.path),
    ['/api/v1/trips/71.json', '/api/v1/trips/71.json', '/api/v1/trips/71.json'],
    'control requests are not recorded',
  );
  assert.equal(fake.requests[0]?.headers.authorization, 'Bearer token-7');
});

test('requests record method, query and headers', async (t) => {
  const fake = await startFake(t);
  await get(fake, '/api/v1/sync.json?since=1970-01-01&assets=trips');

  assert.equal(fake.requests.length, 1);
  const request = fake.requests[0];
  assert.ok(request !== undefined);
  assert.equal(request.method, 'GET');
  assert.equal(request.path, '/api/v1/sync.json');
  assert.deepEqual(request.query, { since: '1970-01-01', assets: 'trips' });
  assert.equal(request.headers.authorization, 'Bearer access-1');
  assert.ok(Math.abs(request.at - Date.now()) < 5000);
});

test('sendWebhook signs the exact bytes', async (t) => {
  const received: Array<{ request: IncomingMessage; body: Buffer }> = [];
  let status = 200;
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ request, body: Buffer.concat(chunks) });
      response.writeHead(status, status === 307 ? { location: '/elsewhere' } : {});
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/rwgps`;

  const body = { notifications: [{ user_id: 1, item_type: 'route', item_id: 1, item_user_id: 1, item_url: 'x', action: 'created', collection: null }] };
  const result = await sendWebhook(target, body, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
  assert.equal(result.status, 200);
  assert.equal(result.body, 'ok');

  const delivery = received[0];
  assert.ok(delivery !== undefined);
  assert.equal(delivery.body.toString('utf8'), JSON.stringify(body));
  assert.equal(delivery.request.headers['content-type'], 'application/json');
  assert.equal(delivery.request.headers['user-agent'], 'RideWithGPS');
  assert.equal(delivery.request.headers['x-rwgps-api-key'], CLIENT.apiKey);
  assert.equal(delivery.request.headers['x-rwgps-signature'], signBody(delivery.body, CLIENT.clientSecret));
  assert.match(signBody('abc', 'k'), /^[0-9a-f]{64}$/);

  await sendWebhook(target, '{"notifications":[]}', { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret, signature: 'bad' });
  assert.equal(received[1]?.request.headers['x-rwgps-signature'], 'bad');

  status = 307;
  const redirected = await sendWebhook(target, new TextEncoder().encode('{}'), { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
  assert.equal(redirected.status, 307);
  assert.equal(received.length, 3, 'the redirect was not followed');
});

test('CLI prints URL and stops on SIGTERM', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--port', '0'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const firstLine = await new Promise<string>((resolve, reject) => {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const newline = output.indexOf('\n');
        if (newline >= 0) resolve(output.slice(0, newline));
      });
      child.on('exit', (code) => reject(new Error(`the CLI exited with ${code} before printing its URL`)));
    });
    const started = JSON.parse(firstLine);
    assert.equal(started.msg, 'fake rwgps listening');
    assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${started.url}/api/v1/users/current.json`)).status, 401);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});

test('CLI rejects unknown options', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--bogus'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  assert.equal(code, 2);
  assert.match(stderr, /Usage:/);
});
