import BetterSqlite3 from 'better-sqlite3';
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

// The only module that knows the database is SQLite and which driver opens
// it. The rest of the code sees a Kysely<Database> and the Store interface.

export interface StoreOptions {
  synchronous: 'full' | 'normal';
  busyTimeoutMs: number;
  /** Apply pending migrations on open (serve and most commands do). */
  migrate?: boolean;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly path: string;
  /** Runs a passive WAL checkpoint; returns the pages still in the WAL. */
  checkpoint(): void;
  close(): Promise<void>;
}

// Kysely prepares every statement anew; a small cache of prepared statements
// saves that work on the hot paths (intake, claim, complete). Bounded because
// multi-row inserts produce one SQL text per row count.
const STATEMENT_CACHE_SIZE = 256;

function withStatementCache(db: BetterSqlite3.Database): SqliteDatabase {
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
      statement = db.prepare(text) as unknown as SqliteStatement;
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
  const raw = new BetterSqlite3(path, { timeout: options.busyTimeoutMs });
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
    checkpoint: () => {
      raw.pragma('wal_checkpoint(PASSIVE)');
    },
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

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|CORRUPT|NOTADB|PROTOCOL)/;

/**
 * Tells whether an error means the database cannot take writes right now
 * (locked past the busy timeout, disk full, read-only, I/O error), as opposed
 * to a bug or bad input. The webhook answers 503 to these.
 */
export function isStoreUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_CODES.test(code);
}
