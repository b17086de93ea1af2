import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { enqueue, type NewJob } from '../jobs/queue.ts';
import type { Database } from '../store/schema.ts';
import { userStatuses } from '../store/users.ts';
import { ITEM_JOB, itemDedupeKey, itemLockKey, jobStateFor } from '../sync/item-job.ts';
import { newSyncJob } from '../sync/sync-job.ts';
import type { IgnoredNotification, Notification } from './notifications.ts';

export interface AcceptedDelivery {
  clientApiKey: string;
  body: Uint8Array;
  receivedAt: number;
  notifications: Notification[];
  ignored: IgnoredNotification[];
  total: number;
}

export interface RecordResult {
  deliveryId: number;
  queued: number;
  ignored: number;
  /** Users with queued work but no usable token, so the caller can log them once. */
  waitingUsers: number[];
}

/**
 * Stores a verified delivery and the work for each of its notifications in
 * one transaction. When this resolves, everything is committed: only then may
 * the webhook answer 200.
 *
 * The same transaction queues one sync per user of the delivery, due
 * `syncDelayMs` later. RWGPS does not retry lost deliveries, and that sync
 * recovers any the user missed before this one; a sync already waiting for
 * the user absorbs it.
 */
export async function recordDelivery(
  db: Kysely<Database>,
  delivery: AcceptedDelivery,
  maxAttempts: number,
  syncDelayMs = 0,
): Promise<RecordResult> {
  return db.transaction().execute((trx) => writeDelivery(trx, delivery, maxAttempts, syncDelayMs));
}

/**
 * Writes a delivery and its work inside the caller's write transaction.
 * Nothing is durable until that transaction commits, so no caller may
 * answer 200 before then (see DeliveryCommitter, which shares one commit
 * among concurrent deliveries).
 */
export async function writeDelivery(
  trx: Transaction<Database>,
  delivery: AcceptedDelivery,
  maxAttempts: number,
  syncDelayMs = 0,
): Promise<RecordResult> {
  const sha256 = createHash('sha256').update(delivery.body).digest('hex');
  const { id } = await trx
    .insertInto('deliveries')
    .values({
      client_api_key: delivery.clientApiKey,
      received_at: delivery.receivedAt,
      status: 'accepted',
      reason: null,
      notification_count: delivery.total,
      queued_count: delivery.notifications.length,
      ignored_count: delivery.ignored.length,
      body_sha256: sha256,
      body: delivery.body,
    })
    .returning('id')
    .executeTakeFirstOrThrow();

  const userIds = [...new Set(delivery.notifications.map((n) => n.userId))];
  const statuses = await userStatuses(trx, userIds);
  const jobs: NewJob[] = delivery.notifications.map((n) => ({
    kind: ITEM_JOB,
    dedupeKey: itemDedupeKey(n.userId, n.itemType, n.itemId, n.action),
    lockKey: itemLockKey(n.itemType, n.itemId),
    userId: n.userId,
    state: jobStateFor(statuses.get(n.userId)),
    itemType: n.itemType,
    itemId: n.itemId,
    action: n.action,
    deliveryId: id,
    maxAttempts,
  }));
  const syncRunAt = delivery.receivedAt + syncDelayMs;
  const syncs = userIds.map((userId) => newSyncJob(userId, statuses.get(userId), 'webhook', maxAttempts, syncRunAt));
  await enqueue(trx, [...jobs, ...syncs], delivery.receivedAt);

  if (delivery.ignored.length > 0) {
    await trx
      .insertInto('ignored_notifications')
      .values(
        delivery.ignored.map((entry) => ({
          delivery_id: id,
          position: entry.position,
          reason: entry.reason,
          notification: JSON.stringify(entry.raw) ?? 'null',
        })),
      )
      .execute();
  }

  return {
    deliveryId: id,
    queued: jobs.length,
    ignored: delivery.ignored.length,
    waitingUsers: userIds.filter((userId) => statuses.get(userId) !== 'active'),
  };
}

/** Stores a signed delivery whose body could not be used, so the operator can inspect it. */
export async function recordRejectedDelivery(
  db: Kysely<Database>,
  clientApiKey: string,
  body: Uint8Array,
  receivedAt: number,
  reason: string,
): Promise<number> {
  const row = await db
    .insertInto('deliveries')
    .values({
      client_api_key: clientApiKey,
      received_at: receivedAt,
      status: 'rejected',
      reason,
      notification_count: 0,
      queued_count: 0,
      ignored_count: 0,
      body_sha256: createHash('sha256').update(body).digest('hex'),
      body,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}
