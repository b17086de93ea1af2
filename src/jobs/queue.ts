import { CompiledQuery, sql, type Compilable, type Kysely, type Selectable, type SqlBool, type Transaction } from 'kysely';
import { indexedBy } from '../store/db.ts';
import type { Database, JobsTable, JobState } from '../store/schema.ts';

// The job queue on top of the jobs table.
//
// Guarantees:
// - At least once: a job leaves the table only through retention after it
//   completed, died or was discarded. A worker that crashes mid-job loses its
//   lease; once the lease ends the job runs again. A crash costs one attempt,
//   never the job.
// - One holder: claim() sets the lease and bumps the attempt in one statement,
//   and only the lease holder can complete or fail the job. A claim is named
//   by its owner and its attempt number, so a run whose lease expired cannot
//   complete the job after the same process claimed it again.
// - One job per lock key at a time: a job is not claimed while another job
//   with the same lock_key (the same item, or the same user's sync) runs.
// - Merging: at most one waiting job per dedupe_key; enqueueing again merges
//   into it (see enqueue()).
//
// State names and literals are written into the SQL text, not bound, so that
// SQLite can match the partial indexes in the migrations.

export type Job = Selectable<JobsTable>;
type Db = Kysely<Database> | Transaction<Database>;

const PENDING_TEXT = `state in ('available', 'retryable', 'parked', 'no_token')`;
const PENDING = sql.raw<SqlBool>(PENDING_TEXT);
const RUNNING = sql.raw<SqlBool>(`state = 'running'`);
const RUNNABLE = sql.raw<SqlBool>(`j.state in ('available', 'retryable')`);

export interface NewJob {
  kind: string;
  dedupeKey: string;
  lockKey: string;
  userId: number;
  state: 'available' | 'parked' | 'no_token';
  itemType?: 'route' | 'trip' | null;
  itemId?: number | null;
  action?: string | null;
  payload?: string | null;
  deliveryId?: number | null;
  maxAttempts: number;
  runAt?: number;
}

// SQLite allows 32,766 bound parameters per statement; a row here binds 14.
const ENQUEUE_BATCH_ROWS = 500;
const ENQUEUE_COLUMNS = [
  'kind', 'state', 'dedupe_key', 'lock_key', 'user_id', 'item_type', 'item_id',
  'action', 'payload', 'delivery_id', 'max_attempts', 'run_at', 'created_at', 'updated_at',
] as const;
const ENQUEUE_ROW = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

// The enqueue statement is the hottest on the webhook path (one row per
// notification). Its text is built once per row count and executed as a
// compiled query, because building it with the query builder on every
// delivery cost more than SQLite's own work for the rows.
const enqueueSqlByRows = new Map<number, string>();

function enqueueSql(rows: number): string {
  let text = enqueueSqlByRows.get(rows);
  if (text === undefined) {
    text =
      `insert into jobs (${ENQUEUE_COLUMNS.join(', ')}) values ${Array(rows).fill(ENQUEUE_ROW).join(', ')} ` +
      `on conflict (dedupe_key) where ${PENDING_TEXT} do update set ` +
      'action = excluded.action, payload = excluded.payload, delivery_id = excluded.delivery_id, ' +
      'merged_count = jobs.merged_count + 1, updated_at = excluded.updated_at, ' +
      'run_at = min(jobs.run_at, excluded.run_at), attempt = 0';
    enqueueSqlByRows.set(rows, text);
  }
  return text;
}

/**
 * Inserts jobs, merging each into a waiting job with the same dedupe key.
 * A merge keeps the waiting job's state and takes the newer action, payload
 * and delivery: for one (user, item) the newest notification decides what to do
 * (a delete after an update wins, and an update after a delete is checked
 * against RWGPS, which answers 404). The merged job runs at the earlier of
 * the two run times with a fresh attempt count, so new work does not inherit
 * a long backoff or die after the old work's failures.
 */
export async function enqueue(db: Db, jobs: NewJob[], now = Date.now()): Promise<void> {
  for (let start = 0; start < jobs.length; start += ENQUEUE_BATCH_ROWS) {
    const batch = jobs.slice(start, start + ENQUEUE_BATCH_ROWS);
    const parameters: unknown[] = [];
    for (const job of batch) {
      parameters.push(
        job.kind,
        job.state,
        job.dedupeKey,
        job.lockKey,
        job.userId,
        job.itemType ?? null,
        job.itemId ?? null,
        job.action ?? null,
        job.payload ?? null,
        job.deliveryId ?? null,
        job.maxAttempts,
        job.runAt ?? now,
        now,
        now,
      );
    }
    await db.executeQuery(CompiledQuery.raw(enqueueSql(batch.length), parameters));
  }
}

// The claim and complete statements run once per job, so they are fixed SQL
// texts executed as compiled queries rather than built on every call. The
// claim subquery walks the jobs_runnable partial index in run_at order, so
// its cost does not grow with the finished jobs kept in the table.
const CLAIM_SQL = `update jobs
  set state = 'running', attempt = attempt + 1, lease_owner = ?, lease_until = ?, updated_at = ?
  where id = (
    select j.id from jobs as j ${indexedBy('jobs_runnable')}
    where j.state in ('available', 'retryable') and j.run_at <= ?
      and not exists (select 1 from jobs as r where r.state = 'running' and r.lock_key = j.lock_key)
    order by j.run_at, j.id
    limit 1
  )
  returning *`;

const COMPLETE_SQL = `update jobs
  set state = 'completed', lease_owner = null, lease_until = null, finished_at = ?, updated_at = ?, last_error = null
  where id = ? and state = 'running' and lease_owner = ? and attempt = ?`;

/**
 * Claims the next runnable job for `owner`, or returns undefined when none is
 * due. One statement sets the lease and bumps the attempt together.
 */
export async function claim(db: Db, owner: string, leaseMs: number, now = Date.now()): Promise<Job | undefined> {
  const result = await db.executeQuery(claimQuery(db, owner, leaseMs, now).compile());
  return result.rows[0];
}

/** The claim statement, unexecuted, so a test can check its query plan uses the jobs_runnable index. */
export function claimQuery(_db: Db, owner: string, leaseMs: number, now: number): Compilable<Job> {
  return { compile: () => CompiledQuery.raw(CLAIM_SQL, [owner, now + leaseMs, now, now]) as CompiledQuery<Job> };
}

/** Extends a lease this claim still holds. Returns false when the lease was lost. */
export async function extendLease(db: Db, job: Job, owner: string, leaseMs: number, now = Date.now()) {
  const result = await db
    .updateTable('jobs')
    .set({ lease_until: now + leaseMs, updated_at: now })
    .where('id', '=', job.id)
    .where(RUNNING)
    .where('lease_owner', '=', owner)
    .where('attempt', '=', job.attempt)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Marks a job completed. Returns false when this claim no longer holds its lease. */
export async function complete(db: Db, job: Job, owner: string, now = Date.now()): Promise<boolean> {
  const result = await db.executeQuery(CompiledQuery.raw(COMPLETE_SQL, [now, now, job.id, owner, job.attempt]));
  return result.numAffectedRows === 1n;
}

export type Failure =
  | { outcome: 'retry'; error: string; runAt: number }
  | { outcome: 'dead'; error: string }
  | { outcome: 'parked'; error: string }
  | { outcome: 'no_token'; error: string };

export type FailResult = 'retryable' | 'dead' | 'parked' | 'no_token' | 'superseded' | 'lease_lost';

/**
 * Records a failed attempt and moves the job on. A job that goes back to
 * waiting while a newer waiting job with its dedupe key exists is discarded
 * as superseded, because the newer job does the same work.
 */
export async function fail(
  db: Kysely<Database>,
  job: Job,
  owner: string,
  failure: Failure,
  startedAt: number,
  now = Date.now(),
): Promise<FailResult> {
  return db.transaction().execute(async (trx) => {
    const current = await trx
      .selectFrom('jobs')
      .select(['state', 'lease_owner', 'attempt'])
      .where('id', '=', job.id)
      .executeTakeFirst();
    if (current?.state !== 'running' || current.lease_owner !== owner || current.attempt !== job.attempt) return 'lease_lost';

    await trx
      .insertInto('job_attempts')
      .values({
        job_id: job.id,
        attempt: job.attempt,
        started_at: startedAt,
        finished_at: now,
        outcome: attemptOutcome(failure),
        error: failure.error,
      })
      .onConflict((oc) => oc.columns(['job_id', 'attempt']).doUpdateSet({ finished_at: now, error: failure.error }))
      .execute();

    const common = { lease_owner: null, lease_until: null, last_error: failure.error, updated_at: now };
    if (failure.outcome === 'dead') {
      await trx.updateTable('jobs').set({ ...common, state: 'dead', finished_at: now }).where('id', '=', job.id).execute();
      return 'dead';
    }

    let next: JobState = failure.outcome === 'retry' ? 'retryable' : failure.outcome;
    let runAt = failure.outcome === 'retry' ? failure.runAt : now;
    if (next === 'parked' || next === 'no_token') {
      // The user may have connected while this attempt ran, after their
      // waiting jobs were woken; parking this one then would strand it.
      const user = await trx.selectFrom('users').select('status').where('id', '=', job.user_id).executeTakeFirst();
      if (user?.status === 'active') {
        next = 'retryable';
        runAt = now;
      }
    }
    if (await hasWaitingSibling(trx, job)) {
      await trx
        .updateTable('jobs')
        .set({ ...common, state: 'discarded', finished_at: now, last_error: `superseded by a newer job; last error: ${failure.error}` })
        .where('id', '=', job.id)
        .execute();
      return 'superseded';
    }
    await trx.updateTable('jobs').set({ ...common, state: next, run_at: runAt }).where('id', '=', job.id).execute();
    return next;
  });
}

/** Returns the outcome recorded in job_attempts; waiting for a token counts as parked. */
function attemptOutcome(failure: Failure): 'retry' | 'dead' | 'parked' {
  if (failure.outcome === 'retry' || failure.outcome === 'dead') return failure.outcome;
  return 'parked';
}

async function hasWaitingSibling(trx: Transaction<Database>, job: Job): Promise<boolean> {
  const sibling = await trx
    .selectFrom('jobs')
    .select('id')
    .where('dedupe_key', '=', job.dedupe_key)
    .where(PENDING)
    .where('id', '!=', job.id)
    .executeTakeFirst();
  return sibling !== undefined;
}

/**
 * Returns running jobs whose lease has ended (their worker crashed or hung)
 * to the queue. A job that had used its last attempt dies instead. Returns
 * how many jobs were rescued.
 */
export async function rescueExpiredLeases(db: Kysely<Database>, now = Date.now()): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const expired = await trx
      .selectFrom('jobs')
      .selectAll()
      .where(RUNNING)
      .where('lease_until', '<=', now)
      .execute();
    for (const job of expired) {
      const error = `lease expired during attempt ${job.attempt} (worker stopped or crashed)`;
      const common = { lease_owner: null, lease_until: null, last_error: error, updated_at: now };
      if (job.attempt >= job.max_attempts) {
        await trx.updateTable('jobs').set({ ...common, state: 'dead', finished_at: now }).where('id', '=', job.id).execute();
      } else if (await hasWaitingSibling(trx, job)) {
        await trx.updateTable('jobs').set({ ...common, state: 'discarded', finished_at: now }).where('id', '=', job.id).execute();
      } else {
        // run_at stays as it was: the job was already due, and keeping its
        // place in run_at order runs it before work queued after it.
        await trx.updateTable('jobs').set({ ...common, state: 'retryable' }).where('id', '=', job.id).execute();
      }
    }
    return expired.length;
  });
}

/**
 * Hands back the jobs `owner` still holds at shutdown. The attempt it spent
 * is returned too, since the job never ran to an outcome.
 */
export async function releaseLeases(db: Kysely<Database>, owner: string, now = Date.now()): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const held = await trx
      .selectFrom('jobs')
      .selectAll()
      .where(RUNNING)
      .where('lease_owner', '=', owner)
      .execute();
    for (const job of held) {
      const common = { lease_owner: null, lease_until: null, updated_at: now };
      if (await hasWaitingSibling(trx, job)) {
        await trx.updateTable('jobs').set({ ...common, state: 'discarded', finished_at: now, last_error: 'released at shutdown; superseded by a newer job' }).where('id', '=', job.id).execute();
      } else {
        await trx
          .updateTable('jobs')
          .set((eb) => ({ ...common, state: 'available', run_at: now, attempt: eb('attempt', '-', 1) }))
          .where('id', '=', job.id)
          .execute();
      }
    }
    return held.length;
  });
}

/** Moves one dead job, or all dead jobs, back to available with a fresh attempt count. */
export async function retryDead(db: Kysely<Database>, id: number | 'all', now = Date.now()): Promise<number> {
  return db.transaction().execute(async (trx) => {
    let query = trx.selectFrom('jobs').selectAll().where('state', 'in', ['dead', 'discarded']);
    query = id === 'all' ? query.where('state', '=', 'dead') : query.where('id', '=', id);
    const jobs = await query.execute();
    let count = 0;
    for (const job of jobs) {
      if (await hasWaitingSibling(trx, job)) continue;
      await trx
        .updateTable('jobs')
        .set({ state: 'available', attempt: 0, run_at: now, finished_at: null, updated_at: now })
        .where('id', '=', job.id)
        .execute();
      count++;
    }
    return count;
  });
}

/** Marks a waiting or dead job discarded. Returns false when the job is running, finished or unknown. */
export async function discard(db: Kysely<Database>, id: number, now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable('jobs')
    .set({ state: 'discarded', finished_at: now, updated_at: now, last_error: 'discarded by the operator' })
    .where('id', '=', id)
    .where('state', 'in', ['available', 'retryable', 'parked', 'no_token', 'dead'])
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** Moves a user's waiting jobs to `to` (parking a user, or waking their jobs on reconnect). */
export async function moveUserJobs(
  db: Db,
  userId: number,
  from: readonly JobState[],
  to: 'available' | 'parked' | 'no_token',
  now = Date.now(),
): Promise<number> {
  const result = await db
    .updateTable('jobs')
    .set({ state: to, updated_at: now, ...(to === 'available' ? { run_at: now } : {}) })
    .where('user_id', '=', userId)
    .where('state', 'in', [...from])
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Returns the earliest run_at among runnable jobs, for the worker's sleep. */
export async function nextRunAt(db: Db): Promise<number | undefined> {
  const row = await db
    .selectFrom('jobs as j')
    .select('j.run_at')
    .where(RUNNABLE)
    .orderBy('j.run_at')
    .limit(1)
    .executeTakeFirst();
  return row?.run_at;
}
