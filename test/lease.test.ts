import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { claim, complete, enqueue, fail, rescueExpiredLeases } from '../src/jobs/queue.ts';
import { Worker } from '../src/jobs/worker.ts';
import { silentLogger } from '../src/log.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { connectUser, getUser, requireReauthorization } from '../src/store/users.ts';
import { CLIENT, newItemJob, tempDir, waitFor } from './helpers.ts';

/** Opens a store that closes after the test, once `worker` (when given later) has stopped. */
async function openTestStore(t: import('node:test').TestContext): Promise<Store & { worker?: Worker }> {
  const store: Store & { worker?: Worker } = await openStore(join(tempDir(t), 'lease.db'), {
    synchronous: 'normal',
    busyTimeoutMs: 1000,
  });
  t.after(async () => {
    await store.worker?.stop(100);
    await store.close();
  });
  return store;
}


test('worker renews a long job lease', async (t) => {
  const store = await openTestStore(t);
  await enqueue(store.db, [newItemJob(1)]);
  let runs = 0;
  const worker = new Worker({
    db: store.db,
    // The handler takes three lease lengths; renewal every third of a lease keeps it.
    handlers: { item: async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 3000));
    } },
    concurrency: 2,
    leaseMs: 1000,
    pollIntervalMs: 50,
    backoff: { baseMs: 10, maxMs: 10 },
    logger: silentLogger,
  });
  store.worker = worker;
  worker.start();

  const job = await waitFor(() => store.db.selectFrom('jobs').selectAll().where('state', '=', 'completed').executeTakeFirst(), {
    what: 'the job completed',
    timeoutMs: 15_000,
  });
  assert.equal(job.attempt, 1, 'the lease never expired, so no second attempt');
  assert.equal(runs, 1);
});

test('worker aborts a run whose lease was lost', async (t) => {
  const store = await openTestStore(t);
  await enqueue(store.db, [newItemJob(1)]);
  const attempts: { attempt: number; aborted: boolean }[] = [];
  const worker = new Worker({
    db: store.db,
    handlers: {
      item: async (job, context) => {
        const entry = { attempt: job.attempt, aborted: false };
        attempts.push(entry);
        if (job.attempt > 1) return;
        // Attempt 1 stalls until it is aborted (or the test gives up).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 10_000);
          context.signal.addEventListener('abort', () => {
            entry.aborted = true;
            clearTimeout(timer);
            resolve();
          });
        });
        context.signal.throwIfAborted();
      },
    },
    concurrency: 2,
    leaseMs: 1500,
    pollIntervalMs: 50,
    backoff: { baseMs: 10, maxMs: 10 },
    logger: silentLogger,
  });
  store.worker = worker;
  worker.start();

  await waitFor(() => attempts.length === 1, { what: 'attempt 1 started' });
  // What a stalled event loop looks like from the database: the lease ran
  // out and another pass rescued the job.
  await store.db.updateTable('jobs').set({ lease_until: 0 }).execute();
  assert.equal(await rescueExpiredLeases(store.db), 1);

  const done = await waitFor(() => store.db.selectFrom('jobs').selectAll().where('state', '=', 'completed').executeTakeFirst(), {
    what: 'the job completed by a later attempt',
    timeoutMs: 15_000,
  });
  assert.equal(done.attempt, 2, 'the run that completed is the second claim');
  await waitFor(() => attempts[0]?.aborted === true, { what: 'attempt 1 aborted' });
});

test('stale claim cannot complete or fail', async (t) => {
  const store = await openTestStore(t);
  await enqueue(store.db, [newItemJob(1)], 0);
  const first = await claim(store.db, 'worker-a', 1000, 1000);
  assert.ok(first);
  await rescueExpiredLeases(store.db, 5000);
  const second = await claim(store.db, 'worker-a', 1000, 5000);
  assert.equal(second?.attempt, 2);

  // The same owner string, but the first claim's attempt: not the holder.
  assert.equal(await complete(store.db, first, 'worker-a', 5100), false);
  assert.equal(await fail(store.db, first, 'worker-a', { outcome: 'dead', error: 'stale' }, 1000, 5100), 'lease_lost');
  assert.equal(await complete(store.db, second!, 'worker-a', 5200), true);
});

test('old token 401 keeps reconnected user', async (t) => {
  const store = await openTestStore(t);
  await connectUser(store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'token-old', tokenKind: 'oauth' });
  await connectUser(store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'token-new', tokenKind: 'oauth' });

  assert.equal(await requireReauthorization(store.db, 1, 'token-old', 'RWGPS responded with status 401'), 'token_replaced');
  assert.equal((await getUser(store.db, 1))?.status, 'active');
  assert.equal(await requireReauthorization(store.db, 1, 'token-new', 'RWGPS responded with status 401'), 'parked');
  assert.equal((await getUser(store.db, 1))?.status, 'reauthorization_required');
  assert.equal(await requireReauthorization(store.db, 1, 'token-new', 'again'), 'already_parked');
});

test('parking for an active user retries', async (t) => {
  // The user reconnected while the attempt ran: connectUser woke the waiting
  // jobs but not this running one, so parking it would strand it.
  const store = await openTestStore(t);
  await connectUser(store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'token-1', tokenKind: 'oauth' });
  await enqueue(store.db, [newItemJob(1)], 1000);
  const job = await claim(store.db, 'worker-a', 60_000, 1000);
  assert.ok(job);
  assert.equal(await fail(store.db, job, 'worker-a', { outcome: 'parked', error: '401' }, 1000, 2000), 'retryable');
  const row = await store.db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow();
  assert.equal(row.state, 'retryable');
  assert.equal(row.run_at, 2000);
});

test('merge resets backoff and attempts', async (t) => {
  const store = await openTestStore(t);
  await enqueue(store.db, [newItemJob(1)], 1000);
  const job = await claim(store.db, 'worker-a', 60_000, 1000);
  assert.ok(job);
  await fail(store.db, job, 'worker-a', { outcome: 'retry', error: '503', runAt: 3_600_000 }, 1000, 2000);

  await enqueue(store.db, [newItemJob(1, { action: 'deleted' })], 5000);
  const row = await store.db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow();
  assert.equal(row.state, 'retryable');
  assert.equal(row.action, 'deleted');
  assert.equal(row.run_at, 5000, 'new work runs now, not after the old backoff');
  assert.equal(row.attempt, 0);
});
