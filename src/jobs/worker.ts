import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import { errorMessage, type Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { claim, complete, extendLease, fail, releaseLeases, rescueExpiredLeases, type Failure, type Job } from './queue.ts';

// Runs jobs from the queue in this process, `concurrency` at a time.

/** Thrown by a handler to say how its attempt failed; any other error is retried. */
export class JobFailure extends Error {
  constructor(
    readonly outcome: 'retry' | 'dead' | 'parked' | 'no_token',
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'JobFailure';
  }
}

export interface JobContext {
  /** Aborted when the worker stops and the grace period is over. */
  signal: AbortSignal;
  logger: Logger;
  /** Extends the lease for long jobs; returns false when the lease was lost. */
  extendLease(): Promise<boolean>;
}

export type JobHandler = (job: Job, context: JobContext) => Promise<void>;

export interface WorkerOptions {
  db: Kysely<Database>;
  handlers: Record<string, JobHandler>;
  concurrency: number;
  leaseMs: number;
  pollIntervalMs: number;
  backoff: BackoffOptions;
  logger: Logger;
  /** Called after every attempt, for metrics. */
  onAttempt?: (job: Job, outcome: string, durationMs: number) => void;
}

export class Worker {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #options: WorkerOptions;
  readonly #inFlight = new Set<Promise<void>>();
  /**
   * The claimed jobs being run, each with the controller that aborts it: when
   * its lease is lost, or when stop() runs out of grace time. One controller
   * per job, not AbortSignal.any, which costs more than a no-op job itself.
   */
  readonly #held = new Map<Job, AbortController>();
  #stopAborted = false;
  #renewTimer: NodeJS.Timeout | undefined;
  #running = false;
  #stopping = false;
  #loopDone: Promise<void> = Promise.resolve();
  #wake: (() => void) | null = null;
  #wakeRequested = false;
  #lastLoopAt = 0;
  #lastRescueAt = 0;

  constructor(options: WorkerOptions) {
    this.#options = options;
  }

  /** Time of the last completed pass of the claim loop; /readyz checks it is recent. */
  get lastLoopAt(): number {
    return this.#lastLoopAt;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loopDone = this.#loop();
    // A job may wait longer than its lease (the shared RWGPS rate limiter,
    // a long sync), so every held lease is renewed well before it ends.
    this.#renewTimer = setInterval(() => void this.#renewLeases(), Math.max(250, this.#options.leaseMs / 3));
  }

  /** Wakes the loop at once, for example after a webhook queued work. */
  notify(): void {
    // A wake-up that arrives while the loop is busy claiming is kept, so
    // the loop looks again at once instead of sleeping a poll interval.
    this.#wakeRequested = true;
    this.#wake?.();
  }

  /**
   * Stops claiming, waits up to `graceMs` for jobs in flight, then aborts
   * the rest and hands their leases back so another process can run them.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.#running) return;
    this.#stopping = true;
    this.notify();
    await this.#loopDone;

    const all = Promise.all(this.#inFlight);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#stopAborted = true;
      for (const controller of this.#held.values()) controller.abort(new Error('worker stopped'));
      await all;
    }
    clearInterval(this.#renewTimer);
    const released = await releaseLeases(this.#options.db, this.owner);
    if (released > 0) this.#options.logger.info('released job leases at shutdown', { jobs: released });
    this.#running = false;
  }

  async #loop(): Promise<void> {
    const { db, concurrency, leaseMs, pollIntervalMs, logger } = this.#options;
    while (!this.#stopping) {
      try {
        const now = Date.now();
        if (now - this.#lastRescueAt >= Math.min(leaseMs / 4, 5000)) {
          this.#lastRescueAt = now;
          const rescued = await rescueExpiredLeases(db, now);
          if (rescued > 0) logger.warn('requeued jobs whose lease expired', { jobs: rescued });
        }
        while (this.#inFlight.size < concurrency && !this.#stopping) {
          const job = await claim(db, this.owner, leaseMs);
          if (!job) break;
          this.#start(job);
        }
      } catch (error) {
        logger.error('worker loop failed; retrying after the poll interval', { error: errorMessage(error) });
      }
      this.#lastLoopAt = Date.now();
      if (this.#stopping) break;
      await this.#sleep(pollIntervalMs);
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#wakeRequested) {
      this.#wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#wake = null;
        self.#wakeRequested = false;
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * Extends the lease of every job this worker runs. A job whose lease is
   * gone (rescued after the event loop stalled past it) is aborted: another
   * claim may be running it, and only that claim may finish it.
   */
  async #renewLeases(): Promise<void> {
    const { db, leaseMs, logger } = this.#options;
    for (const [job, controller] of this.#held) {
      if (controller.signal.aborted) continue;
      try {
        if (!(await extendLease(db, job, this.owner, leaseMs))) {
          logger.warn('job lease lost; aborting this run', { jobId: job.id, attempt: `${job.attempt}/${job.max_attempts}` });
          controller.abort(new Error('job lease lost'));
        }
      } catch (error) {
        // The lease stays as it was; the next renewal tries again.
        logger.error('could not renew a job lease', { jobId: job.id, error: errorMessage(error) });
      }
    }
  }

  #start(job: Job): void {
    const run = this.#run(job).finally(() => {
      this.#inFlight.delete(run);
      this.notify();
    });
    this.#inFlight.add(run);
  }

  async #run(job: Job): Promise<void> {
    const { db, handlers, leaseMs, logger: rootLogger, backoff, onAttempt } = this.#options;
    const startedAt = Date.now();
    const fields = {
      jobId: job.id,
      kind: job.kind,
      userId: job.user_id,
      ...(job.item_type ? { item: `${job.item_type}:${job.item_id}`, action: job.action } : {}),
      attempt: `${job.attempt}/${job.max_attempts}`,
    };
    const logger = rootLogger.child(fields);
    const controller = new AbortController();
    if (this.#stopAborted) controller.abort(new Error('worker stopped'));
    this.#held.set(job, controller);
    const signal = controller.signal;
    const context: JobContext = {
      signal,
      logger,
      extendLease: () => extendLease(db, job, this.owner, leaseMs),
    };

    const handler = handlers[job.kind];
    try {
      if (!handler) throw new JobFailure('dead', `no handler for job kind "${job.kind}"`);
      await handler(job, context);
      const held = await complete(db, job, this.owner);
      const durationMs = Date.now() - startedAt;
      if (held) logger.info('job completed', { durationMs });
      else logger.warn('job finished after its lease was lost; another worker may run it again', { durationMs });
      onAttempt?.(job, 'completed', durationMs);
    } catch (error) {
      // After stop() aborts, it hands the lease back; after a lost lease, the
      // job is no longer this run's to fail.
      if (signal.aborted) return;
      await this.#recordFailure(job, error, startedAt, logger, backoff);
      onAttempt?.(job, error instanceof JobFailure ? error.outcome : 'retry', Date.now() - startedAt);
    } finally {
      this.#held.delete(job);
    }
  }

  async #recordFailure(job: Job, error: unknown, startedAt: number, logger: Logger, backoff: BackoffOptions) {
    const message = errorMessage(error);
    const failure = toFailure(job, error, message, backoff);
    try {
      const result = await fail(this.#options.db, job, this.owner, failure, startedAt);
      const durationMs = Date.now() - startedAt;
      if (result === 'dead') {
        logger.error('job dead', { error: message, durationMs });
      } else if (result === 'retryable' && failure.outcome === 'retry') {
        logger.warn('job attempt failed; will retry', { error: message, durationMs, nextRunAt: new Date(failure.runAt).toISOString() });
      } else {
        logger.warn('job attempt failed', { error: message, durationMs, result });
      }
    } catch (storeError) {
      // The lease will expire and the job will run again: nothing is lost.
      logger.error('could not record job failure', { error: message, storeError: errorMessage(storeError) });
    }
  }
}

function toFailure(job: Job, error: unknown, message: string, backoff: BackoffOptions): Failure {
  const outcome = error instanceof JobFailure ? error.outcome : 'retry';
  if (outcome !== 'retry') return { outcome, error: message };
  if (job.attempt >= job.max_attempts) {
    return { outcome: 'dead', error: `${message} (gave up after ${job.attempt} attempts)` };
  }
  const retryAfterMs = error instanceof JobFailure ? error.retryAfterMs : undefined;
  return { outcome: 'retry', error: message, runAt: Date.now() + backoffDelay(job.attempt, backoff, retryAfterMs) };
}
