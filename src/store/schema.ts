import type { Generated } from 'kysely';

// Table types for Kysely. Times are integers in milliseconds since the Unix
// epoch unless the column holds a value RWGPS sent (then it is RWGPS's text).

export type ItemType = 'route' | 'trip';
export type UserStatus = 'active' | 'reauthorization_required' | 'disconnected';
export type TokenKind = 'oauth' | 'basic';

/**
 * Backfill states: pending (no backfill has started), listing (the sync job
 * reads the user's whole library from RWGPS), syncing (every entry is queued
 * and item jobs are running), done (no item job of the user is left waiting).
 */
export type BackfillState = 'pending' | 'listing' | 'syncing' | 'done';

/**
 * Job states:
 * - available: ready to run once run_at has passed.
 * - running: claimed by a worker whose lease ends at lease_until.
 * - retryable: failed, runs again at run_at.
 * - completed: finished; kept until retention prunes it.
 * - dead: failed for good (attempts used up or a permanent error); kept until
 *   an operator retries or discards it.
 * - discarded: given up by an operator, or superseded by a newer job with the
 *   same dedupe key.
 * - parked: the user's token was rejected; runs again when the user reconnects.
 * - no_token: no connected user for this notification yet; runs when one connects.
 */
export type JobState =
  | 'available'
  | 'running'
  | 'retryable'
  | 'completed'
  | 'dead'
  | 'discarded'
  | 'parked'
  | 'no_token';

/** States in which a job still waits to run; at most one job per dedupe key is in them. */
export const PENDING_STATES = ['available', 'retryable', 'parked', 'no_token'] as const satisfies readonly JobState[];

export interface UsersTable {
  id: number;
  client_api_key: string;
  token: string;
  token_kind: TokenKind;
  status: UserStatus;
  status_reason: string | null;
  created_at: number;
  updated_at: number;
  /** RWGPS's meta.rwgps_datetime from the last completed sync, as sent; null before the first. */
  sync_cursor: string | null;
  last_synced_at: number | null;
  backfill_state: Generated<BackfillState>;
  /** Distinct items the backfill listed. */
  backfill_items: Generated<number>;
  backfill_started_at: number | null;
  backfill_finished_at: number | null;
}

export interface OAuthStatesTable {
  /** SHA-256 (hex) of the state value sent to RWGPS. */
  state_sha256: string;
  client_api_key: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface DeliveriesTable {
  id: Generated<number>;
  client_api_key: string;
  received_at: number;
  status: 'accepted' | 'rejected';
  reason: string | null;
  notification_count: number;
  queued_count: number;
  ignored_count: number;
  body_sha256: string;
  body: Uint8Array;
}

export interface IgnoredNotificationsTable {
  delivery_id: number;
  position: number;
  reason: string;
  notification: string;
}

export interface JobsTable {
  id: Generated<number>;
  kind: string;
  state: JobState;
  dedupe_key: string;
  lock_key: string;
  user_id: number;
  item_type: ItemType | null;
  item_id: number | null;
  action: string | null;
  payload: string | null;
  attempt: Generated<number>;
  max_attempts: number;
  run_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  last_error: string | null;
  delivery_id: number | null;
  merged_count: Generated<number>;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export interface JobAttemptsTable {
  job_id: number;
  attempt: number;
  started_at: number;
  finished_at: number;
  outcome: 'retry' | 'dead' | 'parked' | 'failed';
  error: string;
}

export interface ItemsTable {
  type: ItemType;
  id: number;
  owner_id: number | null;
  name: string | null;
  /** RWGPS's updated_at, as sent. */
  updated_at: string | null;
  /** The response body exactly as RWGPS sent it, root key included. */
  body: string | null;
  deleted_at: number | null;
  synced_at: number | null;
}

export interface LibraryTable {
  user_id: number;
  item_type: ItemType;
  item_id: number;
  relation: 'owner' | 'pinned';
  added_at: number;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: number;
}

export interface Database {
  users: UsersTable;
  deliveries: DeliveriesTable;
  ignored_notifications: IgnoredNotificationsTable;
  jobs: JobsTable;
  job_attempts: JobAttemptsTable;
  items: ItemsTable;
  library: LibraryTable;
  schema_migrations: SchemaMigrationsTable;
  oauth_states: OAuthStatesTable;
}
