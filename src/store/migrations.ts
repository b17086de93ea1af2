import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from './schema.ts';

// Migrations are a static, append-only list: a bundled executable cannot read
// a folder of files. Each runs in its own write transaction together with the
// row that records it, so a crash leaves either all of it or none.
// Never edit a migration that has shipped; add a new one.

interface Migration {
  version: number;
  name: string;
  statements: RawBuilder<unknown>[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users, deliveries, jobs, items',
    statements: [
      sql`CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        client_api_key TEXT NOT NULL,
        token TEXT NOT NULL,
        token_kind TEXT NOT NULL CHECK (token_kind IN ('oauth', 'basic')),
        status TEXT NOT NULL CHECK (status IN ('active', 'reauthorization_required', 'disconnected')),
        status_reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT`,
      sql`CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_api_key TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
        reason TEXT,
        notification_count INTEGER NOT NULL,
        queued_count INTEGER NOT NULL,
        ignored_count INTEGER NOT NULL,
        body_sha256 TEXT NOT NULL,
        body BLOB NOT NULL
      ) STRICT`,
      sql`CREATE INDEX deliveries_received_at ON deliveries (received_at)`,
      sql`CREATE TABLE ignored_notifications (
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        reason TEXT NOT NULL,
        notification TEXT NOT NULL,
        PRIMARY KEY (delivery_id, position)
      ) STRICT`,
      sql`CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
          ('available', 'running', 'retryable', 'completed', 'dead', 'discarded', 'parked', 'no_token')),
        dedupe_key TEXT NOT NULL,
        lock_key TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        item_type TEXT CHECK (item_type IN ('route', 'trip')),
        item_id INTEGER,
        action TEXT,
        payload TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        last_error TEXT,
        delivery_id INTEGER,
        merged_count INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
      ) STRICT`,
      // At most one waiting job per dedupe key: new work for the same
      // (user, item) merges into it. A running job is outside this index,
      // so a notification that arrives mid-fetch queues one follow-up.
      sql`CREATE UNIQUE INDEX jobs_pending_dedupe ON jobs (dedupe_key)
        WHERE state IN ('available', 'retryable', 'parked', 'no_token')`,
      // The claim query reads only this index, so its cost follows the number
      // of runnable jobs, not the finished ones kept for history.
      sql`CREATE INDEX jobs_runnable ON jobs (run_at) WHERE state IN ('available', 'retryable')`,
      sql`CREATE INDEX jobs_running_lock ON jobs (lock_key) WHERE state = 'running'`,
      sql`CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE state = 'running'`,
      sql`CREATE INDEX jobs_user_state ON jobs (user_id, state)`,
      sql`CREATE INDEX jobs_state_finished ON jobs (state, finished_at)`,
      sql`CREATE TABLE job_attempts (
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (job_id, attempt)
      ) STRICT`,
      sql`CREATE TABLE items (
        type TEXT NOT NULL CHECK (type IN ('route', 'trip')),
        id INTEGER NOT NULL,
        owner_id INTEGER,
        name TEXT,
        updated_at TEXT,
        body TEXT,
        deleted_at INTEGER,
        synced_at INTEGER,
        PRIMARY KEY (type, id)
      ) STRICT`,
      sql`CREATE TABLE library (
        user_id INTEGER NOT NULL,
        item_type TEXT NOT NULL CHECK (item_type IN ('route', 'trip')),
        item_id INTEGER NOT NULL,
        relation TEXT NOT NULL CHECK (relation IN ('owner', 'pinned')),
        added_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, item_type, item_id, relation)
      ) STRICT`,
      sql`CREATE INDEX library_item ON library (item_type, item_id)`,
    ],
  },
  {
    version: 2,
    name: 'sync cursor, backfill progress, OAuth states',
    statements: [
      // The user's position in RWGPS's sync endpoint: meta.rwgps_datetime as
      // RWGPS sent it. NULL means no sync has completed, so the next one is a
      // backfill from 1970.
      sql`ALTER TABLE users ADD COLUMN sync_cursor TEXT`,
      sql`ALTER TABLE users ADD COLUMN last_synced_at INTEGER`,
      sql`ALTER TABLE users ADD COLUMN backfill_state TEXT NOT NULL DEFAULT 'pending'
        CHECK (backfill_state IN ('pending', 'listing', 'syncing', 'done'))`,
      sql`ALTER TABLE users ADD COLUMN backfill_items INTEGER NOT NULL DEFAULT 0`,
      sql`ALTER TABLE users ADD COLUMN backfill_started_at INTEGER`,
      sql`ALTER TABLE users ADD COLUMN backfill_finished_at INTEGER`,
      // OAuth state values are stored as SHA-256 hashes: the table alone does
      // not let anyone complete a pending authorization.
      sql`CREATE TABLE oauth_states (
        state_sha256 TEXT PRIMARY KEY,
        client_api_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
      ) STRICT`,
      sql`CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at)`,
    ],
  },
  {
    version: 3,
    name: 'indexes for retention that leave the claim query on jobs_runnable',
    statements: [
      // Without table statistics SQLite preferred jobs_state_finished
      // (state, finished_at) for the claim query and sorted every runnable
      // job by run_at on each claim. Partial indexes serve retention and
      // `status` without offering the planner an index on state.
      sql`DROP INDEX IF EXISTS jobs_state_finished`,
      sql`CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE state IN ('completed', 'discarded')`,
      sql`CREATE INDEX jobs_dead_finished_at ON jobs (finished_at) WHERE state = 'dead'`,
      sql`CREATE INDEX job_attempts_finished_at ON job_attempts (finished_at)`,
    ],
  },
];

/** Applies every migration newer than the database, in order. Returns how many ran. */
export async function migrate(db: Kysely<Database>): Promise<number> {
  await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`.execute(db);

  const applied = await db.selectFrom('schema_migrations').select('version').execute();
  const done = new Set(applied.map((row) => row.version));
  const newest = Math.max(0, ...done);
  const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
  if (newest > latest) {
    throw new Error(
      `the database is at schema version ${newest}, newer than this program knows (${latest}); ` +
        'run a newer rwgps-sync or restore a backup taken before the upgrade',
    );
  }

  let count = 0;
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version)) continue;
    await db.transaction().execute(async (trx) => {
      for (const statement of migration.statements) await statement.execute(trx);
      await trx
        .insertInto('schema_migrations')
        .values({ version: migration.version, name: migration.name, applied_at: Date.now() })
        .execute();
    });
    count++;
  }
  return count;
}

export function latestSchemaVersion(): number {
  return MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
}
