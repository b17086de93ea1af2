import { sql, type Kysely, type SqlBool } from 'kysely';
import type { Database, JobState, UserStatus } from './schema.ts';

// Read-only summaries of the database for `status` and /metrics. Each is one
// query that reads an index or a small table, cheap enough for a scrape
// every few seconds.

export const JOB_STATES: readonly JobState[] = ['available', 'running', 'retryable', 'completed', 'dead', 'discarded', 'parked', 'no_token'];
export const USER_STATUSES: readonly UserStatus[] = ['active', 'reauthorization_required', 'disconnected'];

// Written into the SQL text so SQLite can match the partial indexes
// jobs_runnable and jobs_dead_finished_at.
const RUNNABLE = sql.raw<SqlBool>(`state in ('available', 'retryable')`);
const DEAD = sql.raw<SqlBool>(`state = 'dead'`);

/** Counts jobs in each state; states with no jobs are 0. */
export async function countJobsByState(db: Kysely<Database>): Promise<Record<JobState, number>> {
  const rows = await db.selectFrom('jobs').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
  const counts = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<JobState, number>;
  for (const row of rows) counts[row.state] = Number(row.n);
  return counts;
}

/** Counts users in each status; statuses with no users are 0. */
export async function countUsersByStatus(db: Kysely<Database>): Promise<Record<UserStatus, number>> {
  const rows = await db.selectFrom('users').select(['status', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('status').execute();
  const counts = Object.fromEntries(USER_STATUSES.map((status) => [status, 0])) as Record<UserStatus, number>;
  for (const row of rows) counts[row.status] = Number(row.n);
  return counts;
}

/**
 * Returns the due job (available or retryable, run_at passed) that has
 * waited longest for a worker: the backlog. Jobs waiting for a backoff or a
 * scheduled time, and parked or no_token jobs, are not counted.
 */
export async function oldestPendingJob(
  db: Kysely<Database>,
  now = Date.now(),
): Promise<{ id: number; createdAt: number; dueAt: number; state: JobState } | undefined> {
  const row = await db
    .selectFrom('jobs')
    .select(['id', 'created_at', 'run_at', 'state'])
    .where(RUNNABLE)
    .where('run_at', '<=', now)
    .orderBy('run_at')
    .limit(1)
    .executeTakeFirst();
  return row && { id: row.id, createdAt: row.created_at, dueAt: row.run_at, state: row.state };
}

/** Time the newest delivery (accepted or rejected) was received, in ms since the epoch. */
export async function lastDeliveryAt(db: Kysely<Database>): Promise<number | null> {
  const row = await db.selectFrom('deliveries').select('received_at').orderBy('received_at', 'desc').limit(1).executeTakeFirst();
  return row?.received_at ?? null;
}

export interface UserSyncSummary {
  userId: number;
  status: UserStatus;
  /** Newest synced_at among the items in the user's library. */
  lastItemSyncedAt: number | null;
  /** Newest finished_at among the user's completed jobs still kept by retention. */
  lastJobCompletedAt: number | null;
  pendingJobs: number;
  deadJobs: number;
}

/** Returns each user's last sync, from the library's items and from completed jobs. */
export async function lastSyncPerUser(db: Kysely<Database>): Promise<UserSyncSummary[]> {
  const rows = await db
    .selectFrom('users as u')
    .select((eb) => [
      'u.id',
      'u.status',
      eb
        .selectFrom('library as l')
        .innerJoin('items as i', (join) => join.onRef('i.type', '=', 'l.item_type').onRef('i.id', '=', 'l.item_id'))
        .select((inner) => inner.fn.max('i.synced_at').as('m'))
        .whereRef('l.user_id', '=', 'u.id')
        .as('last_item'),
      eb
        .selectFrom('jobs as j')
        .select((inner) => inner.fn.max('j.finished_at').as('m'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.state', '=', 'completed')
        .as('last_job'),
      eb
        .selectFrom('jobs as j')
        .select((inner) => inner.fn.countAll<number>().as('n'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.state', 'in', ['available', 'retryable', 'running', 'parked', 'no_token'])
        .as('pending'),
      eb
        .selectFrom('jobs as j')
        .select((inner) => inner.fn.countAll<number>().as('n'))
        .whereRef('j.user_id', '=', 'u.id')
        .where('j.state', '=', 'dead')
        .as('dead'),
    ])
    .orderBy('u.id')
    .execute();
  return rows.map((row) => ({
    userId: row.id,
    status: row.status,
    lastItemSyncedAt: row.last_item === null ? null : Number(row.last_item),
    lastJobCompletedAt: row.last_job === null ? null : Number(row.last_job),
    pendingJobs: Number(row.pending ?? 0),
    deadJobs: Number(row.dead ?? 0),
  }));
}

/** Counts jobs that died at or after `since` (ms since the epoch) and are still dead. */
export async function countDeadJobsSince(db: Kysely<Database>, since: number): Promise<number> {
  const row = await db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(DEAD)
    .where('finished_at', '>=', since)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Returns the newest applied migration version, or 0 for an empty database. */
export async function appliedSchemaVersion(db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('schema_migrations').select((eb) => eb.fn.max('version').as('v')).executeTakeFirst();
  return Number(row?.v ?? 0);
}

export interface BackfillProgress {
  /** Users whose backfill is listing or syncing their library. */
  users: number;
  /** Items those backfills listed that have been synced. */
  done: number;
  /** Items those backfills listed that still wait for or run a job. */
  remaining: number;
}

/**
 * Sums the progress of the backfills under way. "Remaining" counts all of
 * those users' waiting and running item jobs, webhook work included, so it
 * can read a little high until the backfill ends.
 */
export async function backfillProgress(db: Kysely<Database>): Promise<BackfillProgress> {
  const running = await db
    .selectFrom('users')
    .select(['id', 'backfill_items'])
    .where('backfill_state', 'in', ['listing', 'syncing'])
    .execute();
  if (running.length === 0) return { users: 0, done: 0, remaining: 0 };

  const known = running.reduce((sum, user) => sum + Number(user.backfill_items), 0);
  const row = await db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('kind', '=', 'item')
    .where('user_id', 'in', running.map((user) => user.id))
    .where('state', 'in', ['available', 'retryable', 'running'])
    .executeTakeFirstOrThrow();
  const remaining = Number(row.n);
  return { users: running.length, done: Math.max(0, known - remaining), remaining };
}
