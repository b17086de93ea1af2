import type { Kysely } from 'kysely';
import { errorMessage, type Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { reportBackfillIfFinished } from './sync-job.ts';

// Notices when a backfill's last item job has finished. The worker reports
// every item job attempt here. A backfill finishes thousands of jobs, so the
// check runs at most once per CHECK_DELAY_MS for all users seen in that time.

const CHECK_DELAY_MS = 250;

export class BackfillTracker {
  readonly #db: Kysely<Database>;
  readonly #logger: Logger;
  readonly #users = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(db: Kysely<Database>, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
  }

  /** Records that an item job of `userId` finished an attempt. */
  noteItemAttempt(userId: number): void {
    if (this.#stopped) return;
    this.#users.add(userId);
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#checking = this.#check();
    }, CHECK_DELAY_MS);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#checking;
  }

  async #check(): Promise<void> {
    const users = [...this.#users];
    this.#users.clear();
    for (const userId of users) {
      try {
        await reportBackfillIfFinished(this.#db, userId, this.#logger);
      } catch (error) {
        this.#logger.error('backfill progress check failed', { userId, error: errorMessage(error) });
      }
    }
  }
}
