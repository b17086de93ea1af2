import type { Kysely } from 'kysely';
import type { Config } from '../config/config.ts';
import type { Job } from '../jobs/queue.ts';
import { JobFailure, type JobContext, type JobHandler } from '../jobs/worker.ts';
import type { RwgpsClient } from '../rwgps/client.ts';
import { markDeleted, recordDeletion, removeFromLibrary, storeItem, type FetchedItem } from '../store/items.ts';
import type { Database, ItemType, UserStatus } from '../store/schema.ts';
import { credentialsFor, parkRejectedUser } from './credentials.ts';
import { scanItemBody } from './item-body.ts';

// The "item" job: bring one item of one user's library in line with RWGPS
// after a notification. Item work is idempotent, so running a job twice
// (at-least-once delivery) stores the same result.

export const ITEM_JOB = 'item';

const USER_GONE = 'user was disconnected while the job ran; their library was not changed';

/**
 * Returns the key under which waiting jobs for one item of one user merge,
 * keeping the newest action. `added` and `removed` change the "pinned"
 * relation and the other actions change the "owner" one, so each group has
 * its own key. A single key would let a pin replace a waiting `created` (the
 * owner row is never written) or an edit replace a waiting `added`.
 */
export function itemDedupeKey(userId: number, type: ItemType, id: number, action: string): string {
  const pinned = action === 'added' || action === 'removed';
  return pinned ? `item:${userId}:${type}:${id}:pinned` : `item:${userId}:${type}:${id}`;
}

/** Jobs for the same item never run at once, whichever user they are for. */
export function itemLockKey(type: ItemType, id: number): string {
  return `item:${type}:${id}`;
}

/** The state a new job starts in, from its user's status: runnable, parked, or waiting for a token. */
export function jobStateFor(status: UserStatus | undefined): 'available' | 'parked' | 'no_token' {
  if (status === 'active') return 'available';
  if (status === 'reauthorization_required') return 'parked';
  return 'no_token';
}

export function createItemJobHandler(deps: { db: Kysely<Database>; config: Config; rwgps: RwgpsClient }): JobHandler {
  const { db, config, rwgps } = deps;

  return async (job: Job, context: JobContext) => {
    const type = job.item_type;
    const id = job.item_id;
    if (type === null || id === null) throw new JobFailure('dead', 'item job without item_type or item_id');

    switch (job.action) {
      case 'deleted':
        // The item is gone at RWGPS: keep the last copy, marked deleted, in
        // the owner's library so the deletion is visible.
        if (!(await recordDeletion(db, job.user_id, type, id))) context.logger.info(USER_GONE);
        return;
      case 'removed':
        await removeFromLibrary(db, job.user_id, type, id, 'pinned');
        return;
      case 'created':
      case 'updated':
      case 'added':
        await fetchAndStore(job, type, id, context);
        return;
      default:
        throw new JobFailure('dead', `unknown action "${job.action}"`);
    }
  };

  async function fetchAndStore(job: Job, type: ItemType, id: number, context: JobContext) {
    const credentials = await credentialsFor(db, config, job.user_id);
    const result = await rwgps.fetchItem(type, id, credentials, context.signal);

    switch (result.kind) {
      case 'ok': {
        const item = parseItem(type, id, result.body);
        let relation: 'owner' | 'pinned' | null = null;
        if (job.action === 'added') relation = 'pinned';
        else if (item.ownerId === job.user_id) relation = 'owner';
        // A run whose lease was lost meanwhile must not overwrite what the
        // run now holding the job stores.
        context.signal.throwIfAborted();
        if (!(await storeItem(db, item, job.user_id, relation))) context.logger.info(USER_GONE);
        return;
      }
      case 'not_found':
        // Deleted at RWGPS. Whatever order the notifications came in, a 404
        // leaves the item deleted: nothing resurrects it.
        await markDeleted(db, type, id);
        context.logger.info('item not found at RWGPS; marked deleted');
        return;
      case 'forbidden':
        await removeFromLibrary(db, job.user_id, type, id, null);
        context.logger.info('user may no longer see the item; removed from their library');
        return;
      case 'unauthorized':
        return parkRejectedUser(db, job.user_id, credentials, result.message, context.logger);
      case 'retry':
        throw new JobFailure('retry', result.message, result.retryAfterMs);
      case 'permanent':
        throw new JobFailure('dead', result.message);
    }
  }
}

/**
 * Reads the key fields from an item response. A body that is not the
 * documented shape is retried: a proxy or a partial deploy can send one
 * bad answer, and giving up would lose the item.
 */
export function parseItem(type: ItemType, id: number, body: Uint8Array): FetchedItem {
  const scanned = scanItemBody(body, type);
  if (!scanned.ok && scanned.problem === 'not_json') {
    throw new JobFailure('retry', `RWGPS responded 200 with a body that is not JSON (${body.length} bytes)`);
  }
  if (!scanned.ok) {
    throw new JobFailure('retry', `RWGPS responded 200 without a "${type}" object`);
  }
  return { type, id, ...scanned.fields, body };
}
