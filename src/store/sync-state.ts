import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

// A user's sync cursor and backfill progress (see BackfillState).

const WAITING_ITEM_STATES = ['available', 'retryable', 'running', 'parked', 'no_token'] as const;

/** Marks the user's backfill as listing. A retried backfill keeps its first start time. Returns that time. */
export async function beginBackfill(db: Kysely<Database>, userId: number, now = Date.now()): Promise<number> {
  const row = await db
    .updateTable('users')
    .set({
      backfill_state: 'listing',
      backfill_started_at: sql<number>`case when backfill_state = 'listing' then coalesce(backfill_started_at, ${now}) else ${now} end`,
      backfill_items: 0,
      backfill_finished_at: null,
    })
    .where('id', '=', userId)
    .returning('backfill_started_at')
    .executeTakeFirst();
  return row?.backfill_started_at ?? now;
}

/** The starting point of a sync: the cursor it read, or null for a backfill. */
export interface SyncStart {
  cursor: string | null;
}

/**
 * Checks that the user still has the sync's starting point. `users remove
 * --purge` resets the cursor and the backfill state, so a sync running then
 * no longer matches and must queue nothing more, because a reconnect has to
 * backfill from scratch.
 */
export async function syncStartUnchanged(trx: Transaction<Database>, userId: number, start: SyncStart): Promise<boolean> {
  const user = await trx.selectFrom('users').select(['status', 'sync_cursor', 'backfill_state']).where('id', '=', userId).executeTakeFirst();
  if (user === undefined || user.sync_cursor !== start.cursor) return false;
  // A backfill marked itself "listing" when it started; a purge sets "pending".
  return start.cursor !== null || user.backfill_state === 'listing';
}

/**
 * Stores RWGPS's rwgps_datetime as the user's cursor. Called in the
 * transaction that queues the last entries of a sync, so the cursor never
 * covers entries that are not queued. `backfillItems` moves a backfill on to
 * "syncing" with that many known items.
 *
 * The update only applies while the user is active and still has the cursor
 * the sync started from (and, for a backfill, is still listing). Otherwise a
 * purge, a disconnect or a rejected token came in while the sync ran, and
 * moving the cursor would make a later reconnect skip its backfill or miss
 * changes. Returns whether the cursor was saved.
 */
export async function saveCursorIn(
  trx: Transaction<Database>,
  userId: number,
  start: SyncStart,
  cursor: string,
  backfillItems: number | null,
  now = Date.now(),
): Promise<boolean> {
  let query = trx
    .updateTable('users')
    .set({
      sync_cursor: cursor,
      last_synced_at: now,
      ...(backfillItems === null ? {} : { backfill_state: 'syncing' as const, backfill_items: backfillItems }),
    })
    .where('id', '=', userId)
    .where('status', '=', 'active');
  query = start.cursor === null ? query.where('sync_cursor', 'is', null).where('backfill_state', '=', 'listing') : query.where('sync_cursor', '=', start.cursor);
  const result = await query.executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export interface FinishedBackfill {
  userId: number;
  itemsKnown: number;
  itemsInLibrary: number;
  deadJobs: number;
  durationMs: number;
}

/**
 * Marks a "syncing" backfill done once none of the user's item jobs is left
 * waiting or running. Returns its summary when this call finished it.
 */
export async function finishBackfillIfIdle(db: Kysely<Database>, userId: number, now = Date.now()): Promise<FinishedBackfill | null> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('users')
      .select(['backfill_state', 'backfill_items', 'backfill_started_at'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (user?.backfill_state !== 'syncing') return null;

    const waiting = await trx
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('kind', '=', 'item')
      .where('state', 'in', [...WAITING_ITEM_STATES])
      .executeTakeFirstOrThrow();
    if (Number(waiting.n) > 0) return null;

    await trx.updateTable('users').set({ backfill_state: 'done', backfill_finished_at: now }).where('id', '=', userId).execute();
    const startedAt = user.backfill_started_at ?? now;
    const dead = await trx
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('kind', '=', 'item')
      .where('state', '=', 'dead')
      .where('created_at', '>=', startedAt)
      .executeTakeFirstOrThrow();
    const library = await trx
      .selectFrom('library')
      .select(sql<number>`count(distinct item_type || ':' || item_id)`.as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow();
    return {
      userId,
      itemsKnown: user.backfill_items,
      itemsInLibrary: Number(library.n),
      deadJobs: Number(dead.n),
      durationMs: now - startedAt,
    };
  });
}

/** Returns the ids of active users, for reconciliation rounds. */
export async function activeUserIds(db: Kysely<Database>): Promise<number[]> {
  const rows = await db.selectFrom('users').select('id').where('status', '=', 'active').orderBy('id').execute();
  return rows.map((row) => row.id);
}
