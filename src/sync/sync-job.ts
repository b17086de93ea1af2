import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.ts';
import { enqueue, type Job, type NewJob } from '../jobs/queue.ts';
import { JobFailure, type JobContext, type JobHandler } from '../jobs/worker.ts';
import type { Logger } from '../log.ts';
import type { Credentials, RwgpsClient } from '../rwgps/client.ts';
import { BACKFILL_SINCE, continuation, parseSyncPage, syncPath, type SyncEntry } from '../rwgps/sync-api.ts';
import type { Database, UserStatus } from '../store/schema.ts';
import { beginBackfill, finishBackfillIfIdle, saveCursorIn, syncStartUnchanged, type SyncStart } from '../store/sync-state.ts';
import { getUser, userStatuses } from '../store/users.ts';
import { credentialsFor, parkRejectedUser } from './credentials.ts';
import { ITEM_JOB, itemDedupeKey, itemLockKey, jobStateFor } from './item-job.ts';

// The "sync" job: read the user's changes from RWGPS's sync endpoint since
// their cursor and queue one item job per changed item. A user without a
// cursor gets a backfill: a sync since 1970, which lists the whole library.
//
// - No transaction is open during a request. Entries are queued in batches
//   of ENQUEUE_BATCH, each its own short transaction, with a turn of the
//   event loop between them, so webhook intake keeps getting the database.
// - The cursor (RWGPS's meta.rwgps_datetime, never our clock) is stored in
//   the transaction that queues the last batch. A crash before it leaves the
//   old cursor, and the next sync lists the same entries again; queued item
//   jobs merge by dedupe key, and item work is idempotent.
// - Each batch first checks that the user still has the cursor the sync
//   started from. `users remove --purge` resets it while a sync may be
//   listing; that sync then stops without queuing more or saving a cursor,
//   so a reconnect backfills from scratch. The cursor is saved only while the
//   user is active and still has the starting cursor (see saveCursorIn).
// - The next sync starts CURSOR_OVERLAP_MS before the cursor, so a change
//   stamped at the cursor's boundary, or committed at RWGPS a little late,
//   is listed again rather than skipped.

export const SYNC_JOB = 'sync';

/** Overlap of consecutive syncs; entries in it are queued twice and merged or fetched again. */
export const CURSOR_OVERLAP_MS = 10_000;
const ENQUEUE_BATCH = 200;
const MAX_PAGES = 1000;

/** At most one sync per user waits; a webhook during a running sync queues one more. */
export function syncDedupeKey(userId: number): string {
  return `sync:${userId}`;
}

/** Two syncs of one user never run at once. */
export function syncLockKey(userId: number): string {
  return `sync:${userId}`;
}

export type SyncReason = 'connect' | 'webhook' | 'schedule';

export function newSyncJob(userId: number, status: UserStatus | undefined, reason: SyncReason, maxAttempts: number, runAt?: number): NewJob {
  return {
    kind: SYNC_JOB,
    dedupeKey: syncDedupeKey(userId),
    lockKey: syncLockKey(userId),
    userId,
    state: jobStateFor(status),
    payload: JSON.stringify({ reason }),
    maxAttempts,
    ...(runAt === undefined ? {} : { runAt }),
  };
}

export interface SyncJobDeps {
  db: Kysely<Database>;
  config: Config;
  rwgps: RwgpsClient;
  /** Called after item jobs were queued, to wake the worker. */
  onQueued: () => void;
  /** Called with each finished backfill, for the log line. */
  logger: Logger;
}

export function createSyncJobHandler(deps: SyncJobDeps): JobHandler {
  const { db, config, rwgps, onQueued, logger: rootLogger } = deps;

  return async (job: Job, context: JobContext) => {
    const userId = job.user_id;
    const credentials = await credentialsFor(db, config, userId);
    const user = await getUser(db, userId);
    const backfill = user?.sync_cursor === null || user?.sync_cursor === undefined;
    const since = backfill ? BACKFILL_SINCE : overlapped(user.sync_cursor!);
    const start: SyncStart = { cursor: backfill ? null : user.sync_cursor! };
    const started = Date.now();

    if (backfill) {
      await beginBackfill(db, userId, started);
      context.logger.info('backfill started', { userId, since });
    }

    const seen = new Set<string>();
    let queued = 0;
    let invalid = 0;
    let pages = 0;
    // The first page is a path on the RWGPS base URL; later pages are the
    // absolute next_sync_url, checked against that origin here and by the client.
    let target: string | URL = syncPath(since, config.sync.assets);
    let pageSince = since;
    for (;;) {
      const page = await fetchPage(target, credentials, userId, context);
      pages++;
      invalid += page.invalid;
      const next = continuation(page, pageSince);
      if (next.kind === 'stuck') throw new JobFailure('dead', next.message);
      if (next.kind === 'next' && next.url.origin !== new URL(config.rwgps.baseUrl).origin) {
        throw new JobFailure('dead', `RWGPS sync.json pointed to a next page on ${next.url.origin}; tokens are only sent to ${config.rwgps.baseUrl}`);
      }
      if (next.kind === 'next' && pages >= MAX_PAGES) {
        throw new JobFailure('dead', `RWGPS sync.json listed more than ${MAX_PAGES} pages`);
      }

      for (const entry of page.entries) seen.add(`${entry.itemType}:${entry.itemId}`);
      const last = next.kind === 'done';
      const outcome = await queueEntries(page.entries, userId, start, job.max_attempts, last ? { cursor: page.rwgpsDatetime, backfillItems: backfill ? seen.size : null } : null);
      queued += outcome.queued;
      if (queued > 0) onQueued();
      if (outcome.superseded) {
        context.logger.warn('sync stopped: the user was removed with --purge or reconnected while it ran; cursor not moved', { userId, since, entries: queued, pages });
        return;
      }
      if (last) {
        if (!outcome.cursorSaved) {
          context.logger.warn('sync cursor not moved: the user is no longer active or their cursor changed while the sync ran', { userId, since, cursor: page.rwgpsDatetime });
        }
        break;
      }

      pageSince = next.url.searchParams.get('since') ?? pageSince;
      target = next.url;
      if (!(await context.extendLease())) throw new JobFailure('retry', 'lost the lease while listing sync pages');
    }

    const fields = { userId, since, entries: queued, items: seen.size, pages, durationMs: Date.now() - started, ...(invalid > 0 ? { invalidEntries: invalid } : {}) };
    context.logger.info(backfill ? 'backfill listed; item jobs queued' : 'sync finished', fields);
    if (backfill) await reportBackfillIfFinished(db, userId, rootLogger);
  };

  async function fetchPage(target: string | URL, credentials: Credentials, userId: number, context: JobContext) {
    const result = await rwgps.get(target, credentials, context.signal);
    switch (result.kind) {
      case 'ok': {
        const page = parseSyncPage(result.body);
        if ('error' in page) throw new JobFailure('retry', page.error);
        return page;
      }
      case 'unauthorized':
        return parkRejectedUser(db, userId, credentials, result.message, context.logger);
      case 'retry':
        throw new JobFailure('retry', result.message, result.retryAfterMs);
      case 'not_found':
      case 'forbidden':
        throw new JobFailure('dead', `RWGPS responded with status ${result.status} to sync.json`);
      case 'permanent':
        throw new JobFailure('dead', result.message);
    }
  }

  /**
   * Queues one item job per entry, in batches. `finish`, on the last page,
   * stores the cursor in the transaction of the last batch. Stops, with
   * `superseded`, at the first batch that finds the sync's starting cursor
   * gone. Returns how many entries were queued.
   */
  async function queueEntries(
    entries: SyncEntry[],
    userId: number,
    start: SyncStart,
    maxAttempts: number,
    finish: { cursor: string; backfillItems: number | null } | null,
  ): Promise<{ queued: number; superseded: boolean; cursorSaved: boolean }> {
    let queued = 0;
    let cursorSaved = false;
    // The queue keeps the newest action per item when jobs merge, so entries
    // go in oldest first whatever order RWGPS listed them in.
    entries = sortedByDatetime(entries);
    const batches = Math.max(1, Math.ceil(entries.length / ENQUEUE_BATCH));
    for (let index = 0; index < batches; index++) {
      const batch = entries.slice(index * ENQUEUE_BATCH, (index + 1) * ENQUEUE_BATCH);
      const isLast = index === batches - 1;
      const unchanged = await db.transaction().execute(async (trx) => {
        if (!(await syncStartUnchanged(trx, userId, start))) return false;
        const now = Date.now();
        const status = (await userStatuses(trx, [userId])).get(userId);
        const jobs: NewJob[] = batch.map((entry) => ({
          kind: ITEM_JOB,
          dedupeKey: itemDedupeKey(userId, entry.itemType, entry.itemId, entry.action),
          lockKey: itemLockKey(entry.itemType, entry.itemId),
          userId,
          state: jobStateFor(status),
          itemType: entry.itemType,
          itemId: entry.itemId,
          action: entry.action,
          maxAttempts,
        }));
        await enqueue(trx, jobs, now);
        if (isLast && finish !== null) cursorSaved = await saveCursorIn(trx, userId, start, finish.cursor, finish.backfillItems, now);
        return true;
      });
      if (!unchanged) return { queued, superseded: true, cursorSaved: false };
      queued += batch.length;
      // Let webhook requests waiting for the database go first.
      if (!isLast) await yieldToEventLoop();
    }
    return { queued, superseded: false, cursorSaved };
  }
}

/** Logs "backfill finished" when the user's backfill has no item job left. */
export async function reportBackfillIfFinished(db: Kysely<Database>, userId: number, logger: Logger): Promise<void> {
  const finished = await finishBackfillIfIdle(db, userId);
  if (finished) logger.info('backfill finished', { ...finished });
}

function sortedByDatetime(entries: SyncEntry[]): SyncEntry[] {
  const keyed = entries.map((entry, index) => ({ entry, index, at: Date.parse(entry.datetime) }));
  if (keyed.some((item) => Number.isNaN(item.at))) return entries;
  keyed.sort((a, b) => a.at - b.at || a.index - b.index);
  return keyed.map((item) => item.entry);
}

function overlapped(cursor: string): string {
  const at = Date.parse(cursor);
  return Number.isNaN(at) ? cursor : new Date(Math.max(0, at - CURSOR_OVERLAP_MS)).toISOString();
}
