import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { join } from 'node:path';
import { claimQuery } from '../src/jobs/queue.ts';
import { explainQueryPlan, openStore, type Store } from '../src/store/db.ts';
import { pruneHistory } from '../src/store/retention.ts';
import { startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

const DAY_MS = 86_400_000;

// Inserts history rows backdated by `ageDays`: completed jobs with one
// failed attempt each, deliveries with an ignored notification each.
async function insertHistory(store: Store, count: number, ageDays: number, first: number, state: 'completed' | 'dead' = 'completed') {
  const at = Date.now() - ageDays * DAY_MS;
  for (let start = 0; start < count; start += 400) {
    const rows = Array.from({ length: Math.min(400, count - start) }, (_, i) => first + start + i);
    await store.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('jobs')
        .values(rows.map((n) => ({
          kind: 'item', state, dedupe_key: `item:1:route:${n}`, lock_key: `item:route:${n}`, user_id: 1, item_type: 'route' as const, item_id: n,
          action: 'created', attempt: 2, max_attempts: 12, run_at: at, delivery_id: n, created_at: at, updated_at: at, finished_at: at,
        })))
        .execute();
      const ids = await trx.selectFrom('jobs').select('id').where('item_id', 'in', rows).execute();
      await trx
        .insertInto('job_attempts')
        .values(ids.map(({ id }) => ({ job_id: id, attempt: 1, started_at: at, finished_at: at, outcome: 'retry' as const, error: 'RWGPS answered 503' })))
        .execute();
      const deliveries = await trx
        .insertInto('deliveries')
        .values(rows.map((n) => ({
          client_api_key: 'ops-key', received_at: at, status: 'accepted' as const, reason: null, notification_count: 1, queued_count: 1,
          ignored_count: 1, body_sha256: String(n), body: Buffer.from(`{"n":${n}}`),
        })))
        .returning('id')
        .execute();
      await trx
        .insertInto('ignored_notifications')
        .values(deliveries.map(({ id }) => ({ delivery_id: id, position: 0, reason: 'unknown action', notification: '{}' })))
        .execute();
    });
  }
}

async function count(store: Store, table: 'jobs' | 'deliveries' | 'job_attempts' | 'ignored_notifications'): Promise<number> {
  const row = await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

test('retention keeps the tables bounded', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  const configPath = writeConfig(dir, fake.url, { retention: { intervalMs: 300, finishedJobsDays: 7, deliveriesDays: 30, attemptsDays: 30 } });
  const { service, lines } = await startRunning(t, configPath, { connect: false });
  const store = service.store;

  for (let round = 0; round < 2; round++) {
    const base = round * 100_000;
    await insertHistory(store, 1200, 40, base + 1); // past every retention
    await insertHistory(store, 300, 10, base + 10_000); // jobs pruned; deliveries and attempts kept
    await insertHistory(store, 100, 1, base + 20_000); // recent: kept
    await insertHistory(store, 20, 60, base + 30_000, 'dead'); // dead: kept with their history; their deliveries are pruned

    await waitFor(`round ${round} pruned`, async () => (await count(store, 'deliveries')) === (round + 1) * 400, 30_000, 100);
    await waitFor(`round ${round} jobs pruned`, async () => (await count(store, 'jobs')) === (round + 1) * 120, 30_000, 100);
    assert.equal(await count(store, 'ignored_notifications'), (round + 1) * 400, 'ignored notifications go with their delivery');
    // Attempts of pruned jobs go with them (cascade); those of the dead jobs stay.
    assert.equal(await count(store, 'job_attempts'), (round + 1) * 120);
    const dead = await store.db.selectFrom('jobs').select('id').where('state', '=', 'dead').execute();
    assert.equal(dead.length, (round + 1) * 20, 'dead jobs are kept until retried or discarded');
  }
  const pruneLines = lines.filter((line) => line.msg === 'pruned old history');
  assert.ok(pruneLines.length >= 2);
  assert.ok(pruneLines.every((line) => typeof line.durationMs === 'number'));
});

test('pruning works in batches', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(join(dir, 'prune.db'), { synchronous: 'normal', busyTimeoutMs: 1000 });
  t.after(() => store.close());
  await insertHistory(store, 1234, 40, 1);

  let checks = 0;
  const result = await pruneHistory(store.db, { finishedJobsDays: 7, deliveriesDays: 30, attemptsDays: 30 }, { batchRows: 100, shouldStop: () => checks++ > 1000 });
  assert.deepEqual(result, { jobs: 1234, deliveries: 1234, attempts: 0 });
  // 13 batches of jobs and a final empty one, the same for deliveries, one empty for attempts.
  assert.equal(checks, 14 + 14 + 1);

  await insertHistory(store, 50, 40, 5000);
  const kept = await pruneHistory(store.db, { finishedJobsDays: 0, deliveriesDays: 0, attemptsDays: 0 });
  assert.deepEqual(kept, { jobs: 0, deliveries: 0, attempts: 0 }, '0 days keeps everything');
  assert.equal(await count(store, 'jobs'), 50);
});

test('claim query uses jobs_runnable as tables grow', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(join(dir, 'plan.db'), { synchronous: 'normal', busyTimeoutMs: 1000 });
  t.after(() => store.close());
  await insertHistory(store, 20_000, 1, 1);
  await insertHistory(store, 500, 1, 100_000, 'dead');
  const now = Date.now();
  await store.db
    .insertInto('jobs')
    .values(Array.from({ length: 10 }, (_, i) => ({
      kind: 'item', state: 'available' as const, dedupe_key: `item:1:route:${900_000 + i}`, lock_key: `item:route:${900_000 + i}`,
      user_id: 1, item_type: 'route' as const, item_id: 900_000 + i, action: 'created', max_attempts: 12, run_at: now, created_at: now, updated_at: now,
    })))
    .execute();

  const check = async (label: string) => {
    const plan = await explainQueryPlan(store.db, claimQuery(store.db, 'owner', 1000, now).compile());
    const text = plan.join('\n');
    assert.ok(plan.some((line) => /USING (COVERING )?INDEX jobs_runnable/.test(line)), `${label}: plan uses jobs_runnable:\n${text}`);
    assert.ok(!plan.some((line) => /^SCAN (j|jobs)\b(?! USING)/.test(line)), `${label}: no full scan of jobs:\n${text}`);
  };
  await check('without statistics');
  await sql`analyze`.execute(store.db);
  await check('after ANALYZE');
});
