import type { Kysely } from 'kysely';
import { enqueue } from '../jobs/queue.ts';
import type { Database } from '../store/schema.ts';
import { connectUserIn, getUser, type ConnectUser } from '../store/users.ts';
import { newSyncJob } from './sync-job.ts';

export interface ConnectResult {
  /** Jobs that waited for this user's token and became runnable. */
  jobsWoken: number;
  /** True when the queued sync is a backfill (the user has no cursor yet). */
  backfill: boolean;
}

/**
 * Stores a user's token, wakes their parked or token-less jobs and queues a
 * sync, all in one transaction: a backfill for a new user, a catch-up from
 * the cursor for a returning one.
 */
export async function connectUserAndSync(db: Kysely<Database>, user: ConnectUser, maxAttempts: number, now = Date.now()): Promise<ConnectResult> {
  return db.transaction().execute(async (trx) => {
    const jobsWoken = await connectUserIn(trx, user, now);
    await enqueue(trx, [newSyncJob(user.id, 'active', 'connect', maxAttempts)], now);
    const stored = await getUser(trx, user.id);
    return { jobsWoken, backfill: stored?.sync_cursor === null };
  });
}
