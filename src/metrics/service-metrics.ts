import type { Kysely } from 'kysely';
import type { Job } from '../jobs/queue.ts';
import type { RequestOutcome } from '../rwgps/client.ts';
import { databaseFileSizes } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { backfillProgress, countJobsByState, countUsersByStatus, oldestPendingJob } from '../store/stats.ts';
import { COMMIT, VERSION } from '../version.ts';
import { Registry } from './registry.ts';

// The service's metrics. Counters and histograms are fed by hooks on the
// webhook, the worker and the RWGPS client; gauges are read from the
// database when /metrics is scraped, so they are right after a restart too.

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #deliveriesAccepted = this.registry.counter('rwgps_sync_deliveries_accepted_total', 'Webhook deliveries stored and answered 200.');
  readonly #deliveriesRejected = this.registry.counter(
    'rwgps_sync_deliveries_rejected_total',
    'Webhook deliveries not accepted, by reason (unknown_api_key, too_large, signature_*, malformed, store_failed).',
  );
  readonly #notifications = this.registry.counter('rwgps_sync_notifications_total', 'Notifications queued from accepted deliveries, by action.');
  readonly #attempts = this.registry.histogram(
    'rwgps_sync_job_attempt_duration_seconds',
    'Job attempts by outcome (completed, retry, dead, parked, no_token) and their duration in seconds; _count counts attempts.',
  );
  readonly #retries = this.registry.counter('rwgps_sync_job_retries_total', 'Job attempts that failed and were scheduled to run again.');
  readonly #requests = this.registry.histogram(
    'rwgps_sync_rwgps_request_duration_seconds',
    'RWGPS API requests by status class (2xx, 3xx, 4xx, 5xx, error for timeouts and connection failures), in seconds.',
  );
  readonly #jobs = this.registry.gauge('rwgps_sync_jobs', 'Jobs in the database, by state.');
  readonly #users = this.registry.gauge('rwgps_sync_users', 'Connected users, by status; reauthorization_required users have their jobs parked.');
  readonly #parkedUsers = this.registry.gauge('rwgps_sync_parked_users', 'Users whose token RWGPS rejected; their jobs wait until they reconnect.');
  readonly #oldestPending = this.registry.gauge(
    'rwgps_sync_oldest_pending_job_age_seconds',
    'Seconds the longest-waiting due job (available or retryable, run time passed) has waited for a worker; 0 when none is due.',
  );
  readonly #databaseBytes = this.registry.gauge('rwgps_sync_database_size_bytes', 'Size of the database file and of its -wal file, in bytes.');
  readonly #backfill = this.registry.gauge(
    'rwgps_sync_backfill_items',
    'Items listed by the backfills under way, by state (done, remaining); both 0 when none runs.',
  );
  readonly #backfillUsers = this.registry.gauge('rwgps_sync_backfill_users', 'Users whose backfill is under way.');
  readonly #buildInfo = this.registry.gauge('rwgps_sync_build_info', 'Version and commit of the running program; always 1.');

  constructor() {
    this.#buildInfo.set(1, { version: VERSION, commit: COMMIT });
  }

  deliveryOutcome(outcome: string, actions?: Record<string, number>): void {
    if (outcome === 'accepted') {
      this.#deliveriesAccepted.inc();
      for (const [action, count] of Object.entries(actions ?? {})) this.#notifications.inc({ action }, count);
    } else {
      this.#deliveriesRejected.inc({ reason: outcome });
    }
  }

  jobAttempt(_job: Job, outcome: string, durationMs: number): void {
    this.#attempts.observe(durationMs / 1000, { outcome });
    if (outcome === 'retry') this.#retries.inc();
  }

  rwgpsRequest(outcome: RequestOutcome): void {
    const statusClass = outcome.status === null ? 'error' : `${Math.floor(outcome.status / 100)}xx`;
    this.#requests.observe(outcome.durationMs / 1000, { status_class: statusClass });
  }

  /** Reads the gauges from the database and returns the exposition text. */
  async render(db: Kysely<Database>, databasePath: string, now = Date.now()): Promise<string> {
    const [jobs, users, oldest, backfill] = await Promise.all([
      countJobsByState(db),
      countUsersByStatus(db),
      oldestPendingJob(db, now),
      backfillProgress(db),
    ]);
    this.#jobs.reset();
    for (const [state, count] of Object.entries(jobs)) this.#jobs.set(count, { state });
    this.#users.reset();
    for (const [status, count] of Object.entries(users)) this.#users.set(count, { status });
    this.#parkedUsers.set(users.reauthorization_required);
    this.#oldestPending.set(oldest ? Math.max(0, (now - oldest.dueAt) / 1000) : 0);
    const sizes = databaseFileSizes(databasePath);
    this.#databaseBytes.set(sizes.database, { file: 'database' });
    this.#databaseBytes.set(sizes.wal, { file: 'wal' });
    this.#backfill.set(backfill.done, { state: 'done' });
    this.#backfill.set(backfill.remaining, { state: 'remaining' });
    this.#backfillUsers.set(backfill.users);
    return this.registry.render();
  }
}
