import type { Kysely } from 'kysely';
import { enqueue } from '../jobs/queue.ts';
import { errorMessage, type Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { activeUserIds } from '../store/sync-state.ts';
import { userStatuses } from '../store/users.ts';
import { newSyncJob } from './sync-job.ts';

// Periodic reconciliation: every interval, each active user gets one sync
// from their cursor. This recovers deliveries that were lost even when no
// later webhook arrives for that user.
//
// A round gives user i of n a slot of interval/n and a random time inside
// that slot. Syncs are spread over the interval instead of sent at once. The plan lives
// in memory: a restart starts a new round, which also syncs every user soon
// after start, covering deliveries missed while the service was down.

export interface SchedulerOptions {
  db: Kysely<Database>;
  /** Round length in milliseconds; 0 disables the scheduler. */
  intervalMs: number;
  maxAttempts: number;
  logger: Logger;
  /** Called after syncs were queued, to wake the worker. */
  onQueued: () => void;
  random?: () => number;
}

interface PlannedSync {
  at: number;
  userId: number;
}

export class SyncScheduler {
  readonly #options: SchedulerOptions;
  #plan: PlannedSync[] = [];
  #nextRoundAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: SchedulerOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#options.intervalMs <= 0 || this.#stopped) return;
    this.#run(() => this.#planRound());
  }

  /** Cancels the plan and waits for a tick in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#busy;
  }

  #run(step: () => Promise<void>): void {
    this.#busy = step().catch((error: unknown) => {
      this.#options.logger.error('reconciliation step failed; trying again in one interval', { error: errorMessage(error) });
      this.#plan = [];
      this.#nextRoundAt = Date.now() + this.#options.intervalMs;
    }).finally(() => this.#arm());
  }

  async #planRound(): Promise<void> {
    const { db, intervalMs, logger, random = Math.random } = this.#options;
    const roundStart = Date.now();
    const users = await activeUserIds(db);
    const slot = intervalMs / Math.max(1, users.length);
    this.#plan = users.map((userId, index) => ({ userId, at: roundStart + (index + random()) * slot }));
    this.#plan.sort((a, b) => a.at - b.at);
    this.#nextRoundAt = roundStart + intervalMs;
    logger.info('reconciliation round planned', { users: users.length, intervalMs });
  }

  async #tick(): Promise<void> {
    const { db, maxAttempts, onQueued } = this.#options;
    const now = Date.now();
    const due: number[] = [];
    while (this.#plan.length > 0 && this.#plan[0]!.at <= now) due.push(this.#plan.shift()!.userId);

    if (due.length > 0) {
      await db.transaction().execute(async (trx) => {
        const statuses = await userStatuses(trx, due);
        const active = due.filter((userId) => statuses.get(userId) === 'active');
        await enqueue(trx, active.map((userId) => newSyncJob(userId, 'active', 'schedule', maxAttempts)), now);
      });
      onQueued();
    }
    if (this.#plan.length === 0 && now >= this.#nextRoundAt) await this.#planRound();
  }

  #arm(): void {
    if (this.#stopped) return;
    const nextAt = this.#plan[0]?.at ?? this.#nextRoundAt;
    this.#timer = setTimeout(() => this.#run(() => this.#tick()), Math.max(0, nextAt - Date.now()));
    this.#timer.unref();
  }
}
