// The raw store loop: the rows the service writes for one delivery, with the
// same pragmas, inserted by plain better-sqlite3 in a tight loop, one
// transaction per delivery, without HTTP. It is the store's own limit for
// the ingest benchmark.

import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { openStore } from '../../src/store/db.ts';
import { BENCH_CLIENT, BENCH_USERS, deliveryBody, NOTIFICATIONS_PER_DELIVERY } from './fixtures.ts';

export interface RawStoreResult {
  synchronous: 'full' | 'normal';
  deliveries: number;
  seconds: number;
  deliveriesPerSecond: number;
  notificationsPerSecond: number;
}

/** Opens `path` like openStore does (schema included), but as a plain better-sqlite3 handle. */
export async function openRaw(path: string, synchronous: 'full' | 'normal'): Promise<BetterSqlite3.Database> {
  const store = await openStore(path, { synchronous, busyTimeoutMs: 5000 });
  await store.close();
  const db = new BetterSqlite3(path, { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('journal_size_limit = 67108864');
  return db;
}

export async function runRawStoreLoop(
  path: string,
  synchronous: 'full' | 'normal',
  options: { durationMs: number; maxDeliveries: number },
): Promise<RawStoreResult> {
  const db = await openRaw(path, synchronous);
  const now = Date.now();
  const addUser = db.prepare(
    `insert into users (id, client_api_key, token, token_kind, status, created_at, updated_at) values (?, ?, 'token', 'oauth', 'active', ?, ?)`,
  );
  for (const id of BENCH_USERS) addUser.run(id, BENCH_CLIENT.apiKey, now, now);

  const insertDelivery = db.prepare(
    `insert into deliveries (client_api_key, received_at, status, reason, notification_count, queued_count, ignored_count, body_sha256, body)
     values (?, ?, 'accepted', null, ?, ?, 0, ?, ?) returning id`,
  );
  const selectStatuses = db.prepare(`select id, status from users where id in (${BENCH_USERS.map(() => '?').join(', ')})`);
  const insertJob = db.prepare(
    `insert into jobs (kind, state, dedupe_key, lock_key, user_id, item_type, item_id, action, payload, delivery_id, max_attempts, run_at, created_at, updated_at)
     values ('item', ?, ?, ?, ?, ?, ?, ?, null, ?, 12, ?, ?, ?)
     on conflict (dedupe_key) where state in ('available', 'retryable', 'parked', 'no_token')
     do update set action = excluded.action, payload = excluded.payload, delivery_id = excluded.delivery_id,
       merged_count = jobs.merged_count + 1, updated_at = excluded.updated_at`,
  );

  // The body bytes do not change the work; a few real bodies are reused so
  // the loop measures the store, not JSON generation.
  const bodies = Array.from({ length: 8 }, (_, n) => deliveryBody(n));
  const begin = db.prepare('begin immediate');
  const commit = db.prepare('commit');

  const started = performance.now();
  const deadline = started + options.durationMs;
  let deliveries = 0;
  while (deliveries < options.maxDeliveries && performance.now() < deadline) {
    const n = deliveries++;
    const body = bodies[n % bodies.length]!;
    const receivedAt = Date.now();
    begin.run();
    const { id } = insertDelivery.get(
      BENCH_CLIENT.apiKey,
      receivedAt,
      NOTIFICATIONS_PER_DELIVERY,
      NOTIFICATIONS_PER_DELIVERY,
      createHash('sha256').update(body).digest('hex'),
      body,
    ) as { id: number };
    selectStatuses.all(...BENCH_USERS);
    for (let i = 0; i < NOTIFICATIONS_PER_DELIVERY; i++) {
      const itemId = n * NOTIFICATIONS_PER_DELIVERY + i + 1;
      const userId = BENCH_USERS[(n + i) % BENCH_USERS.length]!;
      const type = i % 4 === 0 ? 'trip' : 'route';
      insertJob.run('available', `item:${userId}:${type}:${itemId}`, `item:${type}:${itemId}`, userId, type, itemId, 'updated', id, receivedAt, receivedAt, receivedAt);
    }
    commit.run();
  }
  const seconds = (performance.now() - started) / 1000;
  db.close();
  return {
    synchronous,
    deliveries,
    seconds,
    deliveriesPerSecond: deliveries / seconds,
    notificationsPerSecond: (deliveries * NOTIFICATIONS_PER_DELIVERY) / seconds,
  };
}
