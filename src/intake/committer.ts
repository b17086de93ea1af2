import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { writeDelivery, type AcceptedDelivery, type RecordResult } from './record.ts';

// Group commit for webhook deliveries.
//
// With synchronous=FULL every commit waits for an fsync, and better-sqlite3
// runs that wait on the event loop. Committing each delivery on its own caps
// intake at one delivery per fsync. Here, deliveries that arrive while a
// commit is in progress wait for the next one, and all of them are written
// in one transaction and one commit.
//
// Guarantees, the same as recordDelivery's for each delivery:
// - A promise resolves only after the transaction holding its rows has
//   committed, so the webhook never answers 200 for uncommitted rows.
// - Each delivery is written inside its own savepoint. A delivery whose
//   writes fail is rolled back alone and its promise rejects; the others in
//   the batch still commit.
// - When the transaction itself fails (BEGIN or COMMIT, for example the
//   database is locked past the busy timeout or the disk is full), every
//   delivery of the batch rejects, and none of them was stored.

export interface DeliveryCommitterOptions {
  maxAttempts: number;
  /** Delay before the sync job each delivery queues for its users, in milliseconds. */
  syncDelayMs?: number;
  /** Most deliveries written in one transaction; bounds how long one commit holds the lock. */
  maxBatch?: number;
}

interface Pending {
  delivery: AcceptedDelivery;
  resolve: (result: RecordResult) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; result: RecordResult } | { ok: false; error: unknown };

const DEFAULT_MAX_BATCH = 64;

export class DeliveryCommitter {
  readonly #db: Kysely<Database>;
  readonly #maxAttempts: number;
  readonly #maxBatch: number;
  readonly #syncDelayMs: number;
  #queue: Pending[] = [];
  #flushing = false;
  #scheduled = false;

  constructor(db: Kysely<Database>, options: DeliveryCommitterOptions) {
    this.#db = db;
    this.#maxAttempts = options.maxAttempts;
    this.#maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.#syncDelayMs = options.syncDelayMs ?? 0;
  }

  /** Stores a verified delivery; resolves once it is committed. */
  record(delivery: AcceptedDelivery): Promise<RecordResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ delivery, resolve, reject });
      this.#schedule();
    });
  }

  // setImmediate lets the requests already read in this turn of the event
  // loop join the batch before it starts.
  #schedule(): void {
    if (this.#flushing || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        await this.#commitBatch(batch);
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #commitBatch(batch: Pending[]): Promise<void> {
    let outcomes: Outcome[];
    try {
      outcomes = await this.#db.transaction().execute(async (trx) => {
        const results: Outcome[] = [];
        for (const pending of batch) {
          await sql`savepoint delivery`.execute(trx);
          try {
            const result = await writeDelivery(trx, pending.delivery, this.#maxAttempts, this.#syncDelayMs);
            await sql`release delivery`.execute(trx);
            results.push({ ok: true, result });
          } catch (error) {
            // If SQLite already rolled back the whole transaction (it does
            // for some I/O and full-disk errors), this throws and fails the
            // batch, which is right: nothing of it will commit.
            await sql`rollback to delivery`.execute(trx);
            await sql`release delivery`.execute(trx);
            results.push({ ok: false, error });
          }
        }
        return results;
      });
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, index) => {
      const outcome = outcomes[index]!;
      if (outcome.ok) pending.resolve(outcome.result);
      else pending.reject(outcome.error);
    });
  }
}
