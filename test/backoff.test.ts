import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffCeiling, backoffDelay, parseRetryAfter } from '../src/jobs/backoff.ts';
import { connect, delivery, startTestService, waitForJob, type TestService } from './helpers.ts';

const NOW = Date.parse('2024-03-01T12:00:00Z');

test('parseRetryAfter reads delta-seconds', () => {
  assert.equal(parseRetryAfter('0', NOW), 0);
  assert.equal(parseRetryAfter('120', NOW), 120_000);
  assert.equal(parseRetryAfter(' 7 ', NOW), 7000);
});

test('parseRetryAfter reads HTTP dates', () => {
  assert.equal(parseRetryAfter('Fri, 01 Mar 2024 12:00:30 GMT', NOW), 30_000);
  assert.equal(parseRetryAfter('Friday, 01-Mar-24 12:01:00 GMT', NOW), 60_000);
  assert.equal(parseRetryAfter('Fri Mar  1 12:00:05 2024', NOW), 5000);
  assert.equal(parseRetryAfter('Fri, 01 Mar 2024 11:00:00 GMT', NOW), 0, 'a past date means now');
});

test('parseRetryAfter ignores nonsense', () => {
  const nonsense = [
    '',
    '   ',
    'soon',
    '-5',
    '1.5',
    '5s',
    '1e3',
    '0x10',
    'Fri, 99 Foo 2024 12:00:00 GMT',
    'Fri, 01 Mar 2024 12:00:30 GMT junk GMT',
    'Fri, 01 Mar 2024 12:00:30',
    '2024-03-01T12:00:30Z',
  ];
  for (const value of nonsense) assert.equal(parseRetryAfter(value, NOW), undefined, JSON.stringify(value));
  assert.equal(parseRetryAfter(null, NOW), undefined);
  assert.equal(parseRetryAfter(undefined, NOW), undefined);
});

test('parseRetryAfter keeps huge values', () => {
  assert.equal(parseRetryAfter('31536000', NOW), 31_536_000_000);
  assert.equal(parseRetryAfter('99999999999999999999', NOW), Number.MAX_SAFE_INTEGER);
});

const OPTIONS = { baseMs: 1000, maxMs: 60_000 };

test('backoffCeiling doubles up to max', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 100].map((attempt) => backoffCeiling(attempt, OPTIONS)),
    [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000],
  );
  assert.equal(backoffCeiling(0, OPTIONS), 1000, 'attempt 0 counts as the first');
});

test('backoffDelay stays within jitter bounds', () => {
  for (let attempt = 1; attempt <= 12; attempt++) {
    const ceiling = backoffCeiling(attempt, OPTIONS);
    assert.equal(backoffDelay(attempt, OPTIONS, undefined, () => 0), 0, `attempt ${attempt}: lowest`);
    assert.equal(backoffDelay(attempt, OPTIONS, undefined, () => 0.999_999_999), ceiling, `attempt ${attempt}: highest`);
    const middle = backoffDelay(attempt, OPTIONS, undefined, () => 0.5);
    assert.ok(middle >= 0, `attempt ${attempt}: ${middle} at least 0`);
    assert.ok(middle <= ceiling, `attempt ${attempt}: ${middle} at most ${ceiling}`);
  }
  for (let i = 0; i < 1000; i++) {
    const delay = backoffDelay(3, OPTIONS);
    assert.ok(delay >= 0, `Math.random draw ${delay} at least 0`);
    assert.ok(delay <= 4000, `Math.random draw ${delay} at most 4000`);
  }
});

test('backoffDelay honours Retry-After', () => {
  assert.equal(backoffDelay(1, OPTIONS, 5000, () => 0), 5000, 'never sooner than Retry-After');
  assert.equal(backoffDelay(6, OPTIONS, 5000, () => 0.999_999_999), 32_000, 'a longer backoff wins');
  assert.equal(backoffDelay(1, OPTIONS, 10 * 86_400_000, () => 0), 60_000, 'a huge Retry-After is capped at maxMs');
  assert.equal(backoffDelay(1, OPTIONS, Number.MAX_SAFE_INTEGER, () => 0), 60_000);
});

// Worker retries against the fake: the schedule on the wire.

async function retryService(t: Parameters<typeof startTestService>[0], worker: Record<string, unknown> = {}): Promise<TestService> {
  const ts = await startTestService(t, { config: { worker: { backoffBaseMs: 20, backoffMaxMs: 10_000, ...worker } } });
  await connect(ts.db, 1);
  return ts;
}

function requestTimes(ts: TestService, path: string): number[] {
  return ts.fake.requests.filter((request) => request.path === path).map((request) => request.at);
}

test('429 waits Retry-After seconds', async (t) => {
  const ts = await retryService(t);
  ts.fake.putRoute({ id: 1, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'status', status: 429, retryAfter: '2' } });
  await ts.send(delivery({ user_id: 1, item_id: 1 }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 1, state: 'completed' });
  assert.equal(job.attempt, 2);
  const [first, second] = requestTimes(ts, '/api/v1/routes/1.json');
  assert.ok(second! - first! >= 1900, `retried after ${second! - first!} ms, not before Retry-After`);
});

test('429 waits Retry-After date', async (t) => {
  const ts = await retryService(t);
  ts.fake.putRoute({ id: 2, userId: 1 });
  const retryAt = new Date(Date.now() + 3000).toUTCString();
  ts.fake.injectFault({ path: '/api/v1/routes/2.json', fault: { kind: 'status', status: 429, retryAfter: retryAt } });
  await ts.send(delivery({ user_id: 1, item_id: 2 }));

  await waitForJob(ts.db, { userId: 1, itemId: 2, state: 'completed' });
  const [first, second] = requestTimes(ts, '/api/v1/routes/2.json');
  // The date has whole seconds and the first fetch comes some time after it
  // was made, so the gap between fetches is not fixed: the date is the bound.
  assert.ok(second! > first!, 'retried once');
  assert.ok(second! >= Date.parse(retryAt) - 5, `retried ${Date.parse(retryAt) - second!} ms before the Retry-After date`);
});

test('5xx retried then stored', async (t) => {
  const ts = await retryService(t);
  ts.fake.putRoute({ id: 3, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/3.json', times: 2, fault: { kind: 'status', status: 503, retryAfter: 'soon' } });
  await ts.send(delivery({ user_id: 1, item_id: 3 }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 3, state: 'completed' });
  assert.equal(job.attempt, 3);
  const attempts = await ts.db.selectFrom('job_attempts').selectAll().where('job_id', '=', job.id).orderBy('attempt').execute();
  assert.deepEqual(attempts.map((a) => [a.attempt, a.outcome]), [[1, 'retry'], [2, 'retry']]);
  assert.match(attempts[0]?.error ?? '', /503/);

  const logged = ts.logs.find('job attempt failed; will retry', { jobId: job.id });
  assert.equal(logged.length, 2);
  assert.equal(logged[0]?.attempt, '1/5');
  assert.equal(logged[0]?.userId, 1);
  assert.equal(logged[0]?.item, 'route:3');
  assert.match(String(logged[0]?.error), /503/);
  assert.ok(!Number.isNaN(Date.parse(String(logged[0]?.nextRunAt))), 'next run time logged');
});

test('reset connection retried', async (t) => {
  const ts = await retryService(t);
  ts.fake.putRoute({ id: 4, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/4.json', fault: { kind: 'reset' } });
  await ts.send(delivery({ user_id: 1, item_id: 4 }));
  const job = await waitForJob(ts.db, { userId: 1, itemId: 4, state: 'completed' });
  assert.equal(job.attempt, 2);
  const attempt = await ts.db.selectFrom('job_attempts').select('error').where('job_id', '=', job.id).executeTakeFirstOrThrow();
  assert.match(attempt.error, /request failed/);
});

test('stalled body times out and retries', async (t) => {
  const ts = await retryService(t, { requestTimeoutMs: 500, leaseMs: 2000 });
  ts.fake.putTrip({ id: 5, userId: 1, trackPoints: 2000 });
  ts.fake.injectFault({ path: '/api/v1/trips/5.json', fault: { kind: 'stall' } });
  await ts.send(delivery({ user_id: 1, item_id: 5, item_type: 'trip' }));
  const job = await waitForJob(ts.db, { userId: 1, itemId: 5, state: 'completed' });
  assert.equal(job.attempt, 2);
  const attempt = await ts.db.selectFrom('job_attempts').select('error').where('job_id', '=', job.id).executeTakeFirstOrThrow();
  assert.match(attempt.error, /timed out after 500 ms/);
});

test('slow answer within timeout stored', async (t) => {
  const ts = await retryService(t, { requestTimeoutMs: 3000, leaseMs: 4000 });
  ts.fake.putRoute({ id: 6, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/6.json', fault: { kind: 'slow', delayMs: 300 } });
  await ts.send(delivery({ user_id: 1, item_id: 6 }));
  const job = await waitForJob(ts.db, { userId: 1, itemId: 6, state: 'completed' });
  assert.equal(job.attempt, 1);
});

test('maxAttempts exhausted leaves job dead', async (t) => {
  const ts = await retryService(t, { maxAttempts: 3 });
  ts.fake.putRoute({ id: 7, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/7.json', times: Infinity, fault: { kind: 'status', status: 500 } });
  await ts.send(delivery({ user_id: 1, item_id: 7 }));

  const job = await waitForJob(ts.db, { userId: 1, itemId: 7, state: 'dead' });
  assert.equal(job.attempt, 3);
  assert.match(job.last_error ?? '', /\b500\b/);
  assert.match(job.last_error ?? '', /gave up after 3 attempts/);
  assert.notEqual(job.finished_at, null);
  assert.equal(requestTimes(ts, '/api/v1/routes/7.json').length, 3);
  const dead = ts.logs.find('job dead', { jobId: job.id });
  assert.equal(dead.length, 1);
  assert.equal(dead[0]?.attempt, '3/3');
});
