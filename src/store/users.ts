import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { moveUserJobs } from '../jobs/queue.ts';
import type { BackfillState, Database, TokenKind, UsersTable, UserStatus } from './schema.ts';

export type User = Selectable<UsersTable>;

export interface ConnectUser {
  id: number;
  clientApiKey: string;
  token: string;
  tokenKind: TokenKind;
}

/**
 * Stores a user's token and marks them active. Jobs that waited for this
 * user (no token yet, or parked after a rejected token) become runnable in
 * the same transaction. Returns how many jobs were woken.
 */
export async function connectUser(db: Kysely<Database>, user: ConnectUser, now = Date.now()): Promise<number> {
  return db.transaction().execute((trx) => connectUserIn(trx, user, now));
}

/** connectUser's work inside a transaction the caller holds. */
export async function connectUserIn(trx: Transaction<Database>, user: ConnectUser, now = Date.now()): Promise<number> {
  await trx
    .insertInto('users')
    .values({
      id: user.id,
      client_api_key: user.clientApiKey,
      token: user.token,
      token_kind: user.tokenKind,
      status: 'active',
      status_reason: null,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        client_api_key: user.clientApiKey,
        token: user.token,
        token_kind: user.tokenKind,
        status: 'active',
        status_reason: null,
        updated_at: now,
      }),
    )
    .execute();
  return moveUserJobs(trx, user.id, ['parked', 'no_token'], 'available', now);
}

export type ReauthorizationResult = 'parked' | 'already_parked' | 'token_replaced';

/**
 * Marks a user "reauthorization required" after RWGPS rejected `token`, and
 * parks their waiting jobs so they stop retrying until the user reconnects.
 * Nothing changes when the user's token is no longer `token`: the user
 * reconnected while the rejected request ran, and the new token is untried.
 */
export async function requireReauthorization(
  db: Kysely<Database>,
  userId: number,
  token: string,
  reason: string,
  now = Date.now(),
): Promise<ReauthorizationResult> {
  return db.transaction().execute(async (trx) => {
    const user = await trx.selectFrom('users').select(['status', 'token']).where('id', '=', userId).executeTakeFirst();
    if (user && user.token !== token) return 'token_replaced';
    const result = await trx
      .updateTable('users')
      .set({ status: 'reauthorization_required', status_reason: reason, updated_at: now })
      .where('id', '=', userId)
      .where('token', '=', token)
      .where('status', '=', 'active')
      .executeTakeFirst();
    await moveUserJobs(trx, userId, ['available', 'retryable'], 'parked', now);
    return result.numUpdatedRows === 1n ? 'parked' : 'already_parked';
  });
}

export async function getUser(db: Kysely<Database>, id: number): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Returns the status of each known user among `ids`. */
export async function userStatuses(db: Kysely<Database>, ids: number[]): Promise<Map<number, UserStatus>> {
  const statuses = new Map<number, UserStatus>();
  if (ids.length === 0) return statuses;
  const rows = await db.selectFrom('users').select(['id', 'status']).where('id', 'in', ids).execute();
  for (const row of rows) statuses.set(row.id, row.status);
  return statuses;
}

export interface UserSummary {
  userId: number;
  status: UserStatus;
  statusReason: string | null;
  tokenKind: TokenKind;
  clientApiKey: string;
  items: number;
  pendingJobs: number;
  failedJobs: number;
  connectedAt: number;
  updatedAt: number;
  /** RWGPS's rwgps_datetime of the last completed sync, or null before the first. */
  syncCursor: string | null;
  lastSyncedAt: number | null;
  backfillState: BackfillState;
  /** Distinct items the backfill listed. */
  backfillItemsKnown: number;
  /** Items of the backfill whose job has finished, counted as known items minus the user's waiting item jobs. */
  backfillItemsSynced: number;
  backfillStartedAt: number | null;
  backfillFinishedAt: number | null;
}

/** Lists users with their item count, waiting or running jobs, dead jobs and sync progress. Never includes tokens. */
export async function listUsers(db: Kysely<Database>): Promise<UserSummary[]> {
  const rows = await db
    .selectFrom('users as u')
    .select((eb) => [
      'u.id',
      'u.status',
      'u.status_reason',
      'u.token_kind',
      'u.client_api_key',
      'u.created_at',
      'u.updated_at',
      'u.sync_cursor',
      'u.last_synced_at',
      'u.backfill_state',
      'u.backfill_items',
      'u.backfill_started_at',
      'u.backfill_finished_at',
      eb
        .selectFrom('library as l')
        .select(sql<number>`count(distinct l.item_type || ':' || l.item_id)`.as('n'))
        .whereRef('l.user_id', '=', 'u.id')
        .as('items'),
      eb
        .selectFrom('jobs as j')
        .select(eb.fn.countAll<number>().as('n'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.state', 'in', ['available', 'retryable', 'running', 'parked', 'no_token'])
        .as('pending'),
      eb
        .selectFrom('jobs as j')
        .select(eb.fn.countAll<number>().as('n'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.kind', '=', 'item')
        .where('j.state', 'in', ['available', 'retryable', 'running', 'parked', 'no_token'])
        .as('pendingItems'),
      eb
        .selectFrom('jobs as j')
        .select(eb.fn.countAll<number>().as('n'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.state', '=', 'dead')
        .as('failed'),
    ])
    .orderBy('u.id')
    .execute();

  return rows.map((row) => {
    const known = row.backfill_items;
    // Waiting item jobs may include webhook work outside the backfill, so
    // during a backfill this count is a lower bound.
    let synced = 0;
    if (row.backfill_state === 'done') synced = known;
    else if (row.backfill_state === 'syncing') synced = Math.max(0, known - Number(row.pendingItems ?? 0));
    return {
      userId: row.id,
      status: row.status,
      statusReason: row.status_reason,
      tokenKind: row.token_kind,
      clientApiKey: row.client_api_key,
      items: Number(row.items ?? 0),
      pendingJobs: Number(row.pending ?? 0),
      failedJobs: Number(row.failed ?? 0),
      connectedAt: row.created_at,
      updatedAt: row.updated_at,
      syncCursor: row.sync_cursor,
      lastSyncedAt: row.last_synced_at,
      backfillState: row.backfill_state,
      backfillItemsKnown: known,
      backfillItemsSynced: synced,
      backfillStartedAt: row.backfill_started_at,
      backfillFinishedAt: row.backfill_finished_at,
    };
  });
}

/**
 * Marks a user disconnected and deletes their token. Their waiting jobs wait
 * for a token again (state no_token), so a later reconnect resumes them.
 * With `purge`, the user's mirrored library is deleted instead: library rows,
 * items no other user has in their library, and the user's waiting jobs; the
 * cursor is reset so a reconnect backfills again. Returns false for an
 * unknown user.
 */
export async function disconnectUser(
  db: Kysely<Database>,
  userId: number,
  options: { purge: boolean },
  now = Date.now(),
): Promise<{ found: boolean; itemsDeleted: number; jobsDiscarded: number }> {
  return db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('users')
      .set({ status: 'disconnected', status_reason: 'removed by the operator', token: '', updated_at: now })
      .where('id', '=', userId)
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) return { found: false, itemsDeleted: 0, jobsDiscarded: 0 };

    if (!options.purge) {
      await moveUserJobs(trx, userId, ['available', 'retryable', 'parked'], 'no_token', now);
      return { found: true, itemsDeleted: 0, jobsDiscarded: 0 };
    }

    const discarded = await trx
      .updateTable('jobs')
      .set({ state: 'discarded', finished_at: now, updated_at: now, last_error: 'user removed with --purge' })
      .where('user_id', '=', userId)
      .where('state', 'in', ['available', 'retryable', 'parked', 'no_token'])
      .executeTakeFirst();
    const owned = await trx.selectFrom('library').select(['item_type', 'item_id']).where('user_id', '=', userId).execute();
    await trx.deleteFrom('library').where('user_id', '=', userId).execute();
    let itemsDeleted = 0;
    for (const row of owned) {
      const result = await trx
        .deleteFrom('items')
        .where('type', '=', row.item_type)
        .where('id', '=', row.item_id)
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom('library as l').select('l.user_id').whereRef('l.item_type', '=', 'items.type').whereRef('l.item_id', '=', 'items.id'))),
        )
        .executeTakeFirst();
      itemsDeleted += Number(result.numDeletedRows);
    }
    await trx
      .updateTable('users')
      .set({ sync_cursor: null, backfill_state: 'pending', backfill_items: 0, backfill_started_at: null, backfill_finished_at: null })
      .where('id', '=', userId)
      .execute();
    return { found: true, itemsDeleted, jobsDiscarded: Number(discarded.numUpdatedRows) };
  });
}
