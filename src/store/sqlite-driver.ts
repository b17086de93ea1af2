import BetterSqlite3 from 'better-sqlite3';
import { existsSync } from 'node:fs';
import type { SqliteDatabase, SqliteStatement } from 'kysely';
import { loadNativeAddon, nativeAddonCacheDir, writeNativeAddon } from './native-addon.ts';

// Picks the SQLite driver for the runtime and hides it behind Kysely's
// SqliteDatabase interface plus a pragma call:
// - Node, from source or bundled: better-sqlite3.
// - Node single executable: better-sqlite3 with its native addon taken from
//   the executable's assets (see native-addon.ts).
// - Deno: node:sqlite's DatabaseSync, because Deno loads only Node-API addons
//   and better-sqlite3 uses the older V8 addon interface.
// Only db.ts imports this module.

export interface SqliteConnection extends SqliteDatabase {
  /** The driver that opened the file, for the start-up log. */
  readonly driver: 'better-sqlite3' | 'node:sqlite';
  /** Runs `PRAGMA <text>` and returns its rows. */
  pragma(text: string): unknown[];
}

export interface OpenSqliteOptions {
  busyTimeoutMs: number;
  readonly?: boolean;
  /** Fail instead of creating a new, empty database file. */
  fileMustExist?: boolean;
}

/** The asset name of better-sqlite3's addon in the single executable's blob (see scripts/build.mjs). */
export const NATIVE_ADDON_ASSET = 'better_sqlite3.node';

export function openSqlite(path: string, options: OpenSqliteOptions): SqliteConnection {
  if (isDeno()) return openNodeSqlite(path, options);
  return openBetterSqlite3(path, options);
}

const RESULT_CODES: Record<number, string> = {
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  15: 'SQLITE_PROTOCOL',
  26: 'SQLITE_NOTADB',
};

/**
 * Returns the SQLite result code name of a driver error ("SQLITE_BUSY",
 * "SQLITE_FULL_..."), or undefined for other errors. better-sqlite3 puts the
 * name in `code`; node:sqlite puts "ERR_SQLITE_ERROR" there and the number in
 * `errcode`, whose low byte is the primary result code.
 */
export function sqliteErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errcode } = error as { code?: unknown; errcode?: unknown };
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return code;
  if (typeof errcode === 'number') return RESULT_CODES[errcode & 0xff] ?? `SQLITE_ERROR_${errcode}`;
  return undefined;
}

// ---- better-sqlite3 ---------------------------------------------------------

function openBetterSqlite3(path: string, options: OpenSqliteOptions): SqliteConnection {
  const nativeBinding = seaNativeAddon();
  const raw = new BetterSqlite3(path, {
    timeout: options.busyTimeoutMs,
    readonly: options.readonly === true,
    fileMustExist: options.fileMustExist === true,
    // better-sqlite3 12 accepts the loaded addon object as well as a path;
    // its type definitions only admit a path.
    ...(nativeBinding ? { nativeBinding: nativeBinding as unknown as string } : {}),
  });
  return {
    driver: 'better-sqlite3',
    // better-sqlite3's statements have `reader`, `all`, `run` and `iterate`
    // with the shapes Kysely expects.
    prepare: (text) => raw.prepare(text) as unknown as SqliteStatement,
    pragma: (text) => raw.pragma(text) as unknown[],
    close: () => raw.close(),
  };
}

interface SeaModule {
  isSea(): boolean;
  getRawAsset(key: string): ArrayBuffer;
}

// process.dlopen refuses to load one addon file twice in a process, so the
// loaded addon is kept for every later database this process opens.
let seaAddon: object | undefined;

/** Returns better-sqlite3's addon when running as a single executable, else undefined. */
function seaNativeAddon(): object | undefined {
  // getBuiltinModule keeps `node:sea` out of the bundler's sight and returns
  // undefined where it does not exist (Node before 20.12, Deno).
  const sea = process.getBuiltinModule?.('node:sea') as SeaModule | undefined;
  if (!sea?.isSea()) return undefined;
  if (!seaAddon) {
    const bytes = new Uint8Array(sea.getRawAsset(NATIVE_ADDON_ASSET));
    seaAddon = loadNativeAddon(writeNativeAddon(nativeAddonCacheDir(process.env), bytes));
  }
  return seaAddon;
}

// ---- node:sqlite (Deno) -------------------------------------------------------

// The parts of node:sqlite used here. @types/node 20 has no node:sqlite.
type SqliteValue = null | number | bigint | string | Uint8Array;

interface StatementSync {
  all(...parameters: SqliteValue[]): unknown[];
  run(...parameters: SqliteValue[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...parameters: SqliteValue[]): IterableIterator<unknown>;
  columns(): unknown[];
}

interface DatabaseSync {
  prepare(text: string): StatementSync;
  exec(text: string): void;
  close(): void;
}

interface NodeSqliteModule {
  DatabaseSync: new (path: string, options?: { timeout?: number; readOnly?: boolean }) => DatabaseSync;
}

function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno === 'object';
}

function openNodeSqlite(path: string, options: OpenSqliteOptions): SqliteConnection {
  const sqlite = process.getBuiltinModule?.('node:sqlite') as NodeSqliteModule | undefined;
  if (!sqlite) throw new Error('node:sqlite is not available in this runtime; Deno 2.2 or later is required');
  // node:sqlite has no "must exist" flag; check first, as better-sqlite3 does.
  if (options.fileMustExist && !existsSync(path)) throw new Error(`unable to open database file ${path}: not found`);
  const raw = new sqlite.DatabaseSync(path, { timeout: options.busyTimeoutMs, readOnly: options.readonly === true });
  return {
    driver: 'node:sqlite',
    prepare: (text) => adaptStatement(raw.prepare(text)),
    pragma: (text) => raw.prepare(`pragma ${text}`).all(),
    close: () => raw.close(),
  };
}

// Kysely passes parameters as one array; node:sqlite takes them as arguments.
// `reader` tells Kysely whether to read rows: a statement returns rows exactly
// when it has result columns (SELECT, RETURNING, most pragmas).
function adaptStatement(statement: StatementSync): SqliteStatement {
  const reader = statement.columns().length > 0;
  return {
    reader,
    all: (parameters) => statement.all(...(parameters as SqliteValue[])),
    run: (parameters) => statement.run(...(parameters as SqliteValue[])),
    iterate: (parameters) => statement.iterate(...(parameters as SqliteValue[])),
  };
}
