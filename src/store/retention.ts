import { sql, type Kysely, type SqlBool } from 'kysely';
import type { Database } from './schema.ts';

// Retention: deletes old history so the tables stay bounded over years.
//
// - Completed and discarded jobs, some days after they finished.
// - Deliveries (raw bodies), some days after they arrived; their ignored
//   notifications go with them (ON DELETE CASCADE).
// - Attempt history, some days after the attempt, except for dead jobs.
//
// Dead jobs and their history are never pruned: they wait for an operator
// to retry or discard them. Waiting and running jobs are never touched.
// Each batch is its own short write transaction, and the loop yields to the
// event loop between batches, so webhooks and the worker get the write lock
// in between.

export interface RetentionDays {
  /** 0 keeps that kind of row forever. */
  finishedJobsDays: number;
  deliveriesDays: number;
  attemptsDays: number;
}

export interface PruneResult {
  jobs: number;
  deliveries: number;
  attempts: number;
}

export const PRUNE_BATCH_ROWS = 500;

// Written into the SQL text so SQLite can match the partial indexes
// jobs_finished_at and jobs_dead_finished_at.
const FINISHED = sql.raw<SqlBool>(`state in ('completed', 'discarded')`);
const DEAD = sql.raw<SqlBool>(`state = 'dead'`);
const DAY_MS = 86_400_000;

/**
 * Deletes rows older than their retention, `batchRows` per transaction,
 * until none are left or `shouldStop()` returns true.
 */
export async function pruneHistory(
  db: Kysely<Database>,
  days: RetentionDays,
  options: { now?: number; batchRows?: number; shouldStop?: () => boolean } = {},
): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  const limit = options.batchRows ?? PRUNE_BATCH_ROWS;
  const stop = options.shouldStop ?? (() => false);
  const result: PruneResult = { jobs: 0, deliveries: 0, attempts: 0 };

  if (days.finishedJobsDays > 0) {
    const cutoff = now - days.finishedJobsDays * DAY_MS;
    result.jobs = await inBatches(stop, () =>
      db
        .deleteFrom('jobs')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('jobs')
            .select('id')
            .where(FINISHED)
            .where('finished_at', '<', cutoff)
            .limit(limit),
        )
        .executeTakeFirst(),
    );
  }

  if (days.deliveriesDays > 0) {
    const cutoff = now - days.deliveriesDays * DAY_MS;
    result.deliveries = await inBatches(stop, () =>
      db
        .deleteFrom('deliveries')
        .where('id', 'in', (eb) => eb.selectFrom('deliveries').select('id').where('received_at', '<', cutoff).limit(limit))
        .executeTakeFirst(),
    );
  }

  if (days.attemptsDays > 0) {
    const cutoff = now - days.attemptsDays * DAY_MS;
    result.attempts = await inBatches(stop, () =>
      db
        .deleteFrom('job_attempts')
        .where((eb) =>
          eb(
            sql<number>`rowid`,
            'in',
            eb
              .selectFrom('job_attempts as a')
              .select(sql<number>`a.rowid`.as('rowid'))
              .where('a.finished_at', '<', cutoff)
              .where('a.job_id', 'not in', eb.selectFrom('jobs').select('id').where(DEAD))
              .limit(limit),
          ),
        )
        .executeTakeFirst(),
    );
  }
  return result;
}

async function inBatches(stop: () => boolean, deleteBatch: () => Promise<{ numDeletedRows: bigint }>): Promise<number> {
  let total = 0;
  while (!stop()) {
    const deleted = Number((await deleteBatch()).numDeletedRows);
    total += deleted;
    if (deleted === 0) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return total;
}
