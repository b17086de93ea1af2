import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  CompiledQuery,
  sql,
  Kysely,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteDialectConfig,
  type SqliteStatement,
} from 'kysely';
import { openSqlite, sqliteErrorCode } from './sqlite-driver.ts';
import { migrate } from './migrations.ts';
import type { Database } from './schema.ts';

// The only module with SQLite-specific code, and sqlite-driver.ts below it
// picks the driver for the runtime. The rest of the code sees a Kysely<Database>
// and the Store interface.

export interface StoreOptions {
  synchronous: 'full' | 'normal';
  busyTimeoutMs: number;
  /** Apply pending migrations on open (serve and most commands do). */
  migrate?: boolean;
  /** Fail instead of creating an empty database when the file is missing (backup, status). */
  mustExist?: boolean;
}

export type CheckpointMode = 'passive' | 'truncate';

export interface CheckpointResult {
  /** True when another connection kept the checkpoint from finishing. */
  busy: boolean;
  /** Pages in the WAL, and how many of them are now copied into the database file. */
  walPages: number;
  checkpointedPages: number;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly path: string;
  /** The SQLite driver in use ("better-sqlite3" or "node:sqlite"), for the start-up log. */
  readonly driver: string;
  /**
   * Copies WAL pages into the database file. `passive` never waits and
   * never blocks writers. `truncate` also empties the -wal file; it waits
   * up to `waitMs` (default 0) for other connections' read transactions to
   * end, blocking this process's event loop meanwhile (better-sqlite3 is
   * synchronous), so keep `waitMs` short.
   */
  checkpoint(mode?: CheckpointMode, waitMs?: number): Promise<CheckpointResult>;
  close(): Promise<void>;
}

/** Size the -wal file is truncated back to after a checkpoint that reset it. */
export const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

// Kysely prepares every statement anew; a small cache of prepared statements
// saves that work on the hot paths (intake, claim, complete). Bounded because
// multi-row inserts produce one SQL text per row count.
const STATEMENT_CACHE_SIZE = 256;

function withStatementCache(db: SqliteDatabase): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(text: string): SqliteStatement {
      let statement = cache.get(text);
      if (statement) {
        // Re-insert so the Map's order is least recently used first.
        cache.delete(text);
        cache.set(text, statement);
        return statement;
      }
      statement = db.prepare(text);
      cache.set(text, statement);
      if (cache.size > STATEMENT_CACHE_SIZE) {
        const oldest = cache.keys().next().value as string;
        cache.delete(oldest);
      }
      return statement;
    },
  };
}

// SQLite answers SQLITE_BUSY at once, without waiting for the busy timeout,
// when a read transaction later tries to write while another connection
// writes. Every transaction here may write, so each begins IMMEDIATE and
// waits for the write lock up front.
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

export async function openStore(path: string, options: StoreOptions): Promise<Store> {
  if (options.mustExist && !existsSync(path)) {
    throw new Error(`database ${path} not found; check database.path in the config`);
  }
  createPrivateFile(path);
  const raw = openSqlite(path, { busyTimeoutMs: options.busyTimeoutMs, fileMustExist: options.mustExist === true });
  try {
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    raw.pragma('foreign_keys = ON');
    // Truncate the WAL file back to this size after checkpoints, so one
    // large burst does not leave a large file behind for good.
    raw.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
  } catch (error) {
    raw.close();
    throw error;
  }

  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(raw) }) });
  if (options.migrate !== false) {
    try {
      await migrate(db);
    } catch (error) {
      await db.destroy();
      throw error;
    }
  }

  return {
    db,
    path,
    driver: raw.driver,
    checkpoint: (mode = 'passive', waitMs = 0) => checkpoint(db, mode, waitMs, options.busyTimeoutMs),
    close: () => db.destroy(),
  };
}

/**
 * Returns the SQL text `indexed by <index>` for a table in a FROM clause.
 * Without statistics (ANALYZE) SQLite's planner may prefer a plain index on
 * `state` and sort every waiting job, so a query whose cost must stay flat
 * as the table grows names its partial index here. SQLite rejects the query
 * if the index cannot serve it, so a broken hint fails loudly, never slowly.
 */
export function indexedBy(index: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(index)) throw new Error(`invalid index name ${JSON.stringify(index)}`);
  return `indexed by ${index}`;
}

// Runs on Kysely's single connection, reserved for the whole sequence, so no
// other query runs with the shortened busy timeout and no checkpoint runs
// inside another caller's open transaction.
async function checkpoint(db: Kysely<Database>, mode: CheckpointMode, waitMs: number, busyTimeoutMs: number): Promise<CheckpointResult> {
  return db.connection().execute(async (connection) => {
    let rows: { busy: number; log: number; checkpointed: number }[];
    if (mode === 'passive') {
      rows = (await sql<{ busy: number; log: number; checkpointed: number }>`pragma wal_checkpoint(PASSIVE)`.execute(connection)).rows;
    } else {
      await sql.raw(`pragma busy_timeout = ${Math.trunc(waitMs)}`).execute(connection);
      try {
        rows = (await sql<{ busy: number; log: number; checkpointed: number }>`pragma wal_checkpoint(TRUNCATE)`.execute(connection)).rows;
      } finally {
        await sql.raw(`pragma busy_timeout = ${Math.trunc(busyTimeoutMs)}`).execute(connection);
      }
    }
    const row = rows[0] ?? { busy: 1, log: -1, checkpointed: -1 };
    return { busy: row.busy !== 0, walPages: row.log, checkpointedPages: row.checkpointed };
  });
}

/** Sizes in bytes of the database file and of its -wal file (0 when there is none). */
export function databaseFileSizes(path: string): { database: number; wal: number } {
  const size = (file: string) => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  return { database: size(path), wal: size(`${path}-wal`) };
}

const ROLLBACK_PROBE = Symbol('rollback probe');

/**
 * Checks that the database takes writes now: takes the write lock and
 * updates a row in a transaction that is then rolled back. Throws the
 * SQLite error when the file is read-only, locked past the busy timeout or
 * unusable.
 * NOTE: nothing reaches the disk, so a full disk shows up only on the next
 * real commit, not here.
 */
export async function probeWritable(db: Kysely<Database>): Promise<void> {
  try {
    await db.transaction().execute(async (trx) => {
      await sql`update schema_migrations set name = name where version = (select max(version) from schema_migrations)`.execute(trx);
      throw ROLLBACK_PROBE;
    });
  } catch (error) {
    if (error !== ROLLBACK_PROBE) throw error;
  }
}

/** Returns SQLite's query plan for a compiled query, one line per step. */
export async function explainQueryPlan(db: Kysely<Database>, query: CompiledQuery): Promise<string[]> {
  const result = await db.executeQuery<{ detail: string }>(
    CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
  );
  return result.rows.map((row) => row.detail);
}

export interface BackupResult {
  path: string;
  bytes: number;
  durationMs: number;
  /** Rows per table in the copy, read back from the copy itself. */
  tables: Record<string, number>;
  schemaVersion: number;
}

/** A backup that could not be written or did not verify; nothing was left at the target path. */
export class BackupError extends Error {
  override name = 'BackupError';
}

/**
 * Creates an empty database file readable only by its owner, unless it
 * exists. The database holds users' tokens, and SQLite gives the -wal and
 * -shm files the permissions of the database file.
 */
function createPrivateFile(path: string): void {
  if (path === ':memory:' || path === '' || existsSync(path)) return;
  const folder = dirname(resolve(path));
  if (!existsSync(folder)) {
    throw new Error(`database folder ${folder} does not exist; create it or change database.path in the config`);
  }
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    // Another process created it first: that is fine.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Writes a consistent copy of the open database to `target` while other
 * connections keep writing.
 *
 * VACUUM INTO reads one snapshot in a single read transaction, so writers go
 * on (WAL readers do not block writers) and the copy holds exactly the
 * transactions committed before it started. SQLite's online backup API would
 * restart from the beginning each time another process writes, and under a
 * steady webhook load it might never finish.
 *
 * The copy goes to a temporary file beside the target, is synced, checked
 * with PRAGMA integrity_check and counted, and only then moved to the
 * target, so a failed backup never leaves a partial file under that name.
 * Without `force`, an existing target is an error.
 */
export async function backupDatabase(store: Store, target: string, options: { force?: boolean } = {}): Promise<BackupResult> {
  const started = Date.now();
  const destination = resolve(target);
  const folder = dirname(destination);
  if (resolve(store.path) === destination) throw new BackupError(`backup target ${destination} is the live database itself`);
  if (!existsSync(folder)) throw new BackupError(`folder ${folder} does not exist; create it first`);
  if (!options.force && existsSync(destination)) {
    throw new BackupError(`${destination} already exists; pass --force to replace it`);
  }

  const temporary = join(folder, `.${basename(destination)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    // VACUUM INTO accepts an existing empty file; creating it first keeps
    // the copy, tokens included, private from its first byte.
    closeSync(openSync(temporary, 'wx', 0o600));
    await sql`vacuum into ${temporary}`.execute(store.db);
    syncFile(temporary);
    const verified = await verifyCopy(temporary);

    if (options.force) {
      renameSync(temporary, destination);
    } else {
      // link() fails when the target appeared in the meantime, where
      // rename() would silently replace it.
      try {
        linkSync(temporary, destination);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new BackupError(`${destination} already exists; pass --force to replace it`);
        }
        throw error;
      }
      rmSync(temporary);
    }
    syncFile(folder);
    return { path: destination, bytes: statSync(destination).size, durationMs: Date.now() - started, ...verified };
  } finally {
    rmSync(temporary, { force: true });
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a database file read-only and checks it: PRAGMA integrity_check must
 * return "ok", and every table is counted. Used on backups, before they are
 * moved into place, and by tests on restored files.
 */
export async function verifyCopy(path: string): Promise<{ tables: Record<string, number>; schemaVersion: number }> {
  const raw = openSqlite(path, { busyTimeoutMs: 0, readonly: true, fileMustExist: true });
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
  try {
    const check = await sql<{ integrity_check: string }>`pragma integrity_check`.execute(db);
    const problems = check.rows.map((row) => row.integrity_check).filter((text) => text !== 'ok');
    if (problems.length > 0 || check.rows.length === 0) {
      throw new BackupError(`integrity check of ${path} failed: ${problems.slice(0, 5).join('; ') || 'no result'}`);
    }
    const names = await sql<{ name: string }>`select name from sqlite_schema where type = 'table' and name not like 'sqlite_%' order by name`.execute(db);
    const tables: Record<string, number> = {};
    for (const { name } of names.rows) {
      const count = await sql<{ n: number }>`select count(*) as n from ${sql.table(name)}`.execute(db);
      tables[name] = count.rows[0]?.n ?? 0;
    }
    const version = await sql<{ v: number | null }>`select max(version) as v from schema_migrations`.execute(db).catch(() => ({ rows: [] }));
    return { tables, schemaVersion: version.rows[0]?.v ?? 0 };
  } finally {
    await db.destroy();
  }
}

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|CORRUPT|NOTADB|PROTOCOL)/;

/**
 * Tells whether an error means the database cannot take writes right now
 * (locked past the busy timeout, disk full, read-only, I/O error), as opposed
 * to a bug or bad input. The webhook answers 503 to these.
 */
export function isStoreUnavailable(error: unknown): boolean {
  const code = sqliteErrorCode(error);
  return code !== undefined && UNAVAILABLE_CODES.test(code);
}
