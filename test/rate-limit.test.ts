import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../src/config/config.ts';
import { RwgpsClient, type Credentials } from '../src/rwgps/client.ts';
import { FakeRwgps } from '../scripts/fake-rwgps.ts';

const CLIENT = { apiKey: 'key-1', clientId: 'client-1', clientSecret: 'secret-1' };
const CREDENTIALS: Credentials = { token: 'access-1', kind: 'oauth', client: CLIENT };

async function startFake(t: TestContext): Promise<FakeRwgps> {
  const fake = await FakeRwgps.start({ clients: [CLIENT] });
  t.after(() => fake.close());
  fake.addUser({ id: 1, accessToken: 'access-1' });
  for (let id = 1; id <= 40; id++) fake.putRoute({ id, userId: 1, trackPoints: 2 });
  return fake;
}

// The largest number of requests the fake received within any 900 ms. The
// limit applies to request starts at the client; 100 ms of the second are
// left for the time a request takes to arrive (a new connection for the first).
function maxInOneSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let max = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= 900) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

test('rate limit spaces concurrent requests', async (t) => {
  const fake = await startFake(t);
  const client = new RwgpsClient({ baseUrl: fake.url, requestTimeoutMs: 10_000, maxRequestsPerSecond: 20 });

  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => client.fetchItem('route', i + 1, CREDENTIALS)));
  const elapsed = Date.now() - started;

  assert.ok(results.every((result) => result.kind === 'ok'));
  assert.equal(fake.requests.length, 30);
  assert.ok(maxInOneSecond(fake.requests.map((r) => r.at)) <= 20, 'at most 20 requests per second');
  assert.ok(elapsed >= 1400, `30 requests at 20/s took only ${elapsed} ms`);
});

test('429 pauses every request of the client', async (t) => {
  const fake = await startFake(t);
  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'status', status: 429, retryAfter: '1' } });
  const client = new RwgpsClient({ baseUrl: fake.url, requestTimeoutMs: 10_000, maxRequestsPerSecond: 0 });

  const first = await client.fetchItem('route', 1, CREDENTIALS);
  assert.equal(first.kind, 'retry');
  const started = Date.now();
  const second = await client.fetchItem('route', 2, CREDENTIALS);
  const waited = Date.now() - started;

  assert.equal(second.kind, 'ok');
  assert.ok(waited >= 900, `a request for another item went out ${waited} ms after a 429 with Retry-After: 1`);
});

test('no limit sends at once', async (t) => {
  const fake = await startFake(t);
  const client = new RwgpsClient({ baseUrl: fake.url, requestTimeoutMs: 10_000, maxRequestsPerSecond: 0 });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.fetchItem('route', i + 1, CREDENTIALS)));
  assert.ok(results.every((result) => result.kind === 'ok'));
  assert.equal(fake.requests.length, 10);
});

test('config default and bounds', () => {
  const parse = (rwgps: Record<string, unknown>) => parseConfig(JSON.stringify({ rwgps, clients: [CLIENT] }), '/tmp/rate-limit-test.json');
  assert.equal(parse({}).rwgps.maxRequestsPerSecond, 10);
  assert.equal(parse({ maxRequestsPerSecond: 0 }).rwgps.maxRequestsPerSecond, 0);
  assert.throws(() => parse({ maxRequestsPerSecond: -1 }), /rwgps\.maxRequestsPerSecond: expected an integer from 0 to 10000, found -1/);
  assert.throws(() => parse({ maxRequestsPerSecond: 2.5 }), /rwgps\.maxRequestsPerSecond/);
});
