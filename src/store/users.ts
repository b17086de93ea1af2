import { sql, type Kysely, type Selectable } from 'kysely';
import { moveUserJobs } from '../jobs/queue.ts';
import type { Database, TokenKind, UsersTable, UserStatus } from './schema.ts';

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
  return db.transaction().execute(async (trx) => {
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
  });
}

/**
 * Marks a user "reauthorization required" after RWGPS rejected their token,
 * and parks their waiting jobs so they stop retrying until the user
 * reconnects. Returns false when the user was already in that state.
 */
export async function requireReauthorization(
  db: Kysely<Database>,
  userId: number,
  reason: string,
  now = Date.now(),
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('users')
      .set({ status: 'reauthorization_required', status_reason: reason, updated_at: now })
      .where('id', '=', userId)
      .where('status', '=', 'active')
      .executeTakeFirst();
    await moveUserJobs(trx, userId, ['available', 'retryable'], 'parked', now);
    return result.numUpdatedRows === 1n;
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
}

/** Lists users with their item count, waiting or running jobs, and dead jobs. Never includes tokens. */
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
        .where('j.state', '=', 'dead')
        .as('failed'),
    ])
    .orderBy('u.id')
    .execute();

  return rows.map((row) => ({
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
  }));
}
