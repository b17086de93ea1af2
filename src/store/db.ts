import {
  CompiledQuery,
  Kysely,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteDialectConfig,
  type SqliteStatement,
} from 'kysely';
import { migrate } from './migrations.ts';
import type { Database } from './schema.ts';
import { openSqlite, sqliteErrorCode } from './sqlite-driver.ts';

// The only module with SQLite-specific code, and sqlite-driver.ts below it
// picks the driver for the runtime. The rest of the code sees a Kysely<Database>
// and the Store interface.

export interface StoreOptions {
  synchronous: 'full' | 'normal';
  busyTimeoutMs: number;
  /** Apply pending migrations on open (serve and most commands do). */
  migrate?: boolean;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly path: string;
  /** The SQLite driver in use ("better-sqlite3" or "node:sqlite"), for the start-up log. */
  readonly driver: string;
  /** Runs a passive WAL checkpoint; returns the pages still in the WAL. */
  checkpoint(): void;
  close(): Promise<void>;
}

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
  const raw = openSqlite(path, { busyTimeoutMs: options.busyTimeoutMs });
  try {
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    raw.pragma('foreign_keys = ON');
    // Truncate the WAL file back to this size after checkpoints, so one
    // large burst does not leave a large file behind for good.
    raw.pragma('journal_size_limit = 67108864');
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
    checkpoint: () => {
      raw.pragma('wal_checkpoint(PASSIVE)');
    },
    close: () => db.destroy(),
  };
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
