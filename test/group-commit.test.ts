import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DeliveryCommitter } from '../src/intake/committer.ts';
import type { Notification } from '../src/intake/notifications.ts';
import type { AcceptedDelivery } from '../src/intake/record.ts';
import { isStoreUnavailable, openStore, type Store } from '../src/store/db.ts';

async function tempStore(t: TestContext, busyTimeoutMs = 5000): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-commit-'));
  const store = await openStore(join(dir, 'test.db'), { synchronous: 'full', busyTimeoutMs });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

function delivery(itemId: number, itemType: string = 'route'): AcceptedDelivery {
  const notification = { userId: 1, itemType, itemId, itemUserId: 1, action: 'created', collectionId: null } as Notification;
  return { clientApiKey: 'key', body: Buffer.from(`{"n":${itemId}}`), receivedAt: Date.now(), notifications: [notification], ignored: [], total: 1 };
}

async function countDeliveries(store: Store): Promise<number> {
  const row = await store.db.selectFrom('deliveries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

// Item jobs only: each delivery also queues one sync job per user, merged into one while it waits.
async function itemJobIds(store: Store): Promise<number[]> {
  const rows = await store.db.selectFrom('jobs').select('item_id').where('kind', '=', 'item').orderBy('item_id').execute();
  return rows.map((row) => row.item_id!);
}

test('concurrent deliveries all commit', async (t) => {
  const store = await tempStore(t);
  const committer = new DeliveryCommitter(store.db, { maxAttempts: 3, maxBatch: 4 });

  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((id) => committer.record(delivery(id))));

  assert.deepEqual(results.map((r) => r.queued), [1, 1, 1, 1, 1, 1, 1]);
  assert.equal(new Set(results.map((r) => r.deliveryId)).size, 7);
  assert.equal(await countDeliveries(store), 7);
  assert.deepEqual(await itemJobIds(store), [1, 2, 3, 4, 5, 6, 7]);
});

test('failing delivery rejects alone', async (t) => {
  const store = await tempStore(t);
  const committer = new DeliveryCommitter(store.db, { maxAttempts: 3 });

  // item_type 'bogus' breaks the jobs table's CHECK constraint inside the batch.
  const outcomes = await Promise.allSettled([committer.record(delivery(1)), committer.record(delivery(2, 'bogus')), committer.record(delivery(3))]);

  assert.equal(outcomes[0]!.status, 'fulfilled');
  assert.equal(outcomes[1]!.status, 'rejected');
  assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /CHECK constraint/);
  assert.equal(outcomes[2]!.status, 'fulfilled');
  assert.equal(await countDeliveries(store), 2, 'the failing delivery row was rolled back');
  assert.deepEqual(await itemJobIds(store), [1, 3]);
});

test('locked database rejects the whole batch', async (t) => {
  const store = await tempStore(t, 100);
  const committer = new DeliveryCommitter(store.db, { maxAttempts: 3 });
  const other = new BetterSqlite3(store.path);
  other.exec('begin immediate');
  t.after(() => other.close());

  const outcomes = await Promise.allSettled([committer.record(delivery(1)), committer.record(delivery(2))]);
  other.exec('rollback');

  for (const outcome of outcomes) {
    assert.equal(outcome.status, 'rejected');
    assert.ok(isStoreUnavailable((outcome as PromiseRejectedResult).reason), String((outcome as PromiseRejectedResult).reason));
  }
  assert.equal(await countDeliveries(store), 0);

  const later = await committer.record(delivery(3));
  assert.equal(later.queued, 1, 'the committer works again once the lock is gone');
});
