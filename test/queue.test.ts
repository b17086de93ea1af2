import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { claim, complete, enqueue, fail, releaseLeases, rescueExpiredLeases, retryDead } from '../src/jobs/queue.ts';
import { openStore } from '../src/store/db.ts';
import {
  CLIENT,
  connect,
  delivery,
  itemRow,
  jobRows,
  newItemJob,
  runCli,
  startTestService,
  tempDir,
  TOKENS,
  waitFor,
  waitForIdle,
  waitForJob,
} from './helpers.ts';

test('same body twice makes one job', async (t) => {
  const ts = await startTestService(t);
  await ts.service.worker.stop(1000);
  await connect(ts.db, 1);
  const body = JSON.stringify(delivery({ user_id: 1, item_id: 1 }, { user_id: 1, item_id: 2 }));
  assert.equal((await ts.send(body)).status, 200);
  assert.equal((await ts.send(body)).status, 200);

  const jobs = await jobRows(ts.db);
  assert.deepEqual(jobs.map((job) => [job.item_id, job.state, job.merged_count]), [[1, 'available', 1], [2, 'available', 1]]);
  assert.equal((await ts.db.selectFrom('deliveries').select('id').execute()).length, 2, 'both deliveries recorded');
});

test('repeated notification makes one job', async (t) => {
  const ts = await startTestService(t);
  await ts.service.worker.stop(1000);
  await connect(ts.db, 1);
  const answer = await ts.send(delivery({ user_id: 1, item_id: 1 }, { user_id: 1, item_id: 1, action: 'updated' }, { user_id: 1, item_id: 1, action: 'updated' }));
  assert.equal(JSON.parse(answer.body).queued, 3, 'every notification counted');
  const jobs = await jobRows(ts.db);
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0]?.action, 'updated', 'the newest action wins');
  assert.equal(jobs[0]?.merged_count, 2);
});

test('same item, two users, two jobs', async (t) => {
  const ts = await startTestService(t);
  await ts.service.worker.stop(1000);
  await ts.send(delivery({ user_id: 1, item_id: 1 }, { user_id: 2, item_id: 1, item_user_id: 1, action: 'added' }));
  assert.equal((await jobRows(ts.db)).length, 2);
});

test('notification while running queues one follow-up', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 1, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'slow', delayMs: 1000 } });
  await ts.send(delivery({ user_id: 1, item_id: 1 }));
  const running = await waitForJob(ts.db, { userId: 1, itemId: 1, state: 'running' });

  await ts.send(delivery({ user_id: 1, item_id: 1, action: 'updated' }));
  await ts.send(delivery({ user_id: 1, item_id: 1, action: 'updated' }));
  const during = await jobRows(ts.db);
  assert.deepEqual(during.map((job) => job.state), ['running', 'available']);
  assert.equal(during[1]?.merged_count, 1);

  await waitForIdle(ts.db);
  const after = await jobRows(ts.db);
  assert.deepEqual(after.map((job) => job.state), ['completed', 'completed']);
  const requests = ts.fake.requests.filter((request) => request.path === '/api/v1/routes/1.json');
  assert.equal(requests.length, 2, 'one fetch for the first job, one for the follow-up');
  const first = after.find((job) => job.id === running.id);
  assert.ok(requests[1]!.at >= first!.finished_at! - 5, 'the follow-up ran after the first job finished');
});

test('jobs for one item never overlap', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 60, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/60.json', times: 2, fault: { kind: 'slow', delayMs: 500 } });
  await ts.send(delivery({ user_id: 1, item_id: 60 }, { user_id: 2, item_id: 60, item_user_id: 1, action: 'added' }));
  await waitForIdle(ts.db);
  const [first, second] = ts.fake.requests.filter((request) => request.path === '/api/v1/routes/60.json');
  assert.ok(second!.at - first!.at >= 450, `second fetch started ${second!.at - first!.at} ms after the first`);
});

test('late update after delete stays deleted', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 101, userId: 1, name: 'Old loop' });
  await ts.send(delivery({ user_id: 1, item_id: 101 }));
  await waitForJob(ts.db, { userId: 1, itemId: 101, state: 'completed' });

  ts.fake.deleteItem('route', 101);
  await ts.send(delivery({ user_id: 1, item_id: 101, action: 'deleted' }));
  await waitFor(async () => (await jobRows(ts.db, { state: 'completed' })).length === 2, { what: 'the delete job' });
  const deletedAt = (await itemRow(ts.db, 'route', 101))?.deleted_at;
  assert.notEqual(deletedAt, null);

  await ts.send(delivery({ user_id: 1, item_id: 101, action: 'updated' }));
  await waitFor(async () => (await jobRows(ts.db, { state: 'completed' })).length === 3, { what: 'the late update job' });
  const item = await itemRow(ts.db, 'route', 101);
  assert.equal(item?.deleted_at, deletedAt, 'still deleted, with the first deletion time');
  assert.equal(item?.name, 'Old loop', 'the last copy is kept');
});

test('delete then update merged stays deleted', async (t) => {
  const dir = tempDir(t);
  const first = await startTestService(t, { dir });
  await first.service.worker.stop(1000);
  await connect(first.db, 1);
  first.fake.putRoute({ id: 102, userId: 1 });
  first.fake.deleteItem('route', 102);
  await first.send(delivery({ user_id: 1, item_id: 102, action: 'deleted' }));
  await first.send(delivery({ user_id: 1, item_id: 102, action: 'updated' }));
  assert.equal((await jobRows(first.db))[0]?.action, 'updated');
  await first.service.close();

  // A second process on the same database runs the merged job.
  const second = await startTestService(t, { dir, fake: first.fake });
  await waitForIdle(second.db);
  assert.notEqual((await itemRow(second.db, 'route', 102))?.deleted_at, null);
});

test('user without token waits in no_token', async (t) => {
  const ts = await startTestService(t);
  ts.fake.putRoute({ id: 31, userId: 3 });
  ts.fake.putRoute({ id: 32, userId: 3 });
  await ts.send(delivery({ user_id: 3, item_id: 31 }));
  await ts.send(delivery({ user_id: 3, item_id: 32 }));
  await new Promise((resolve) => setTimeout(resolve, 200));

  const jobs = await jobRows(ts.db, { userId: 3 });
  assert.deepEqual(jobs.map((job) => [job.state, job.attempt]), [['no_token', 0], ['no_token', 0]]);
  assert.equal(ts.fake.requests.length, 0, 'no request without a token');
  const waiting = ts.logs.records.filter((record) => String(record.msg).includes('without a usable token') && record.userId === 3);
  assert.equal(waiting.length, 1, 'logged once per user');

  const added = await runCli(['users', 'add', '--user-id', '3', '--token', TOKENS[3]!, '--config', ts.configPath]);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /user 3 connected \(OAuth token\); \d+ waiting jobs queued/);
  assert.ok(!added.stderr.includes(TOKENS[3]!), 'the token is not logged');
  for (const itemId of [31, 32]) await waitForJob(ts.db, { userId: 3, itemId, state: 'completed' });
});

// The queue functions directly, on a database without a worker.


async function queueStore(t: Parameters<typeof tempDir>[0]) {
  const store = await openStore(join(tempDir(t), 'queue.db'), { synchronous: 'normal', busyTimeoutMs: 1000 });
  t.after(() => store.close());
  return store;
}

test('only lease holder completes', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1)], 1000);
  const job = await claim(db, 'worker-a', 60_000, 1000);
  assert.equal(job?.attempt, 1);
  assert.equal(await complete(db, job!, 'worker-b', 1100), false);
  assert.equal(await fail(db, job!, 'worker-b', { outcome: 'dead', error: 'x' }, 1000, 1100), 'lease_lost');
  assert.equal(await complete(db, job!, 'worker-a', 1200), true);
});

test('expired lease reclaimed with attempt counted', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1)], 1000);
  const job = await claim(db, 'crashed', 5000, 1000);
  assert.equal(await claim(db, 'other', 5000, 2000), undefined, 'not claimable while leased');
  assert.equal(await rescueExpiredLeases(db, 5999), 0, 'lease still valid');
  assert.equal(await rescueExpiredLeases(db, 6000), 1);

  const again = await claim(db, 'other', 5000, 6000);
  assert.equal(again?.id, job?.id);
  assert.equal(again?.attempt, 2);
  assert.match(again?.last_error ?? '', /lease expired during attempt 1/);
  assert.equal(await complete(db, job!, 'crashed', 6100), false, 'the crashed holder cannot complete');
});

test('expired lease on last attempt dies', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1, { maxAttempts: 1 })], 1000);
  await claim(db, 'crashed', 5000, 1000);
  await rescueExpiredLeases(db, 7000);
  const [job] = await db.selectFrom('jobs').selectAll().execute();
  assert.equal(job?.state, 'dead');
});

test('released lease returns the attempt', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1)], 1000);
  await claim(db, 'stopping', 5000, 1000);
  assert.equal(await releaseLeases(db, 'stopping', 1500), 1);
  const [job] = await db.selectFrom('jobs').selectAll().execute();
  assert.equal(job?.state, 'available');
  assert.equal(job?.attempt, 0);
});

test('lock key blocks a second claim', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1), newItemJob(1, { dedupeKey: 'item:2:route:1', userId: 2 })], 1000);
  assert.notEqual(await claim(db, 'a', 5000, 1000), undefined);
  assert.equal(await claim(db, 'b', 5000, 1000), undefined);
});

test('retryDead resets attempts', async (t) => {
  const { db } = await queueStore(t);
  await enqueue(db, [newItemJob(1)], 1000);
  const job = await claim(db, 'a', 5000, 1000);
  await fail(db, job!, 'a', { outcome: 'dead', error: 'HTTP 400' }, 1000, 1100);
  assert.equal(await retryDead(db, 'all', 2000), 1);
  const [row] = await db.selectFrom('jobs').selectAll().execute();
  assert.equal(row?.state, 'available');
  assert.equal(row?.attempt, 0);
});

test('unknown api client kills job', async (t) => {
  // A user connected through a client later removed from the config: the job
  // is dead, not retried, and says how to bring it back. (Parked jobs would
  // never wake, because nothing watches the config.)
  const ts = await startTestService(t);
  await ts.db
    .insertInto('users')
    .values({ id: 1, client_api_key: 'removed-client', token: TOKENS[1]!, token_kind: 'oauth', status: 'active', status_reason: null, created_at: 0, updated_at: 0 })
    .execute();
  ts.fake.putRoute({ id: 1, userId: 1 });
  await ts.send(delivery({ user_id: 1, item_id: 1 }));
  const job = await waitForJob(ts.db, { userId: 1, itemId: 1, state: 'dead' });
  assert.match(job.last_error ?? '', /removed-client/);
  assert.match(job.last_error ?? '', /jobs retry --dead/);
  assert.ok(!ts.logs.text.includes(CLIENT.clientSecret));
});
