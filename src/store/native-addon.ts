import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Inside the single executable, better-sqlite3's native addon is an embedded
// asset, and the operating system can only load a shared library from a
// file. This module writes the addon once into a cache folder, under a name
// made from its SHA-256, and checks that hash again before every later load,
// because whatever sits in that file runs as native code in our process.

/** Environment variable that replaces the default cache folder. */
export const CACHE_DIR_ENV = 'RWGPS_SYNC_CACHE_DIR';

/** Thrown when the cache folder cannot be found, created or written. */
export class NativeAddonCacheError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeAddonCacheError';
  }
}

/**
 * Returns the cache folder: $RWGPS_SYNC_CACHE_DIR, else
 * $XDG_CACHE_HOME/rwgps-sync, else ~/.cache/rwgps-sync.
 */
export function nativeAddonCacheDir(env: NodeJS.ProcessEnv): string {
  const override = env[CACHE_DIR_ENV];
  if (override !== undefined && override !== '') return override;
  const xdg = env.XDG_CACHE_HOME;
  // The XDG base directory spec says a relative value is invalid and must be ignored.
  if (xdg !== undefined && xdg.startsWith('/')) return join(xdg, 'rwgps-sync');
  let home = env.HOME;
  if (home === undefined || home === '') {
    try {
      home = homedir();
    } catch {
      home = '';
    }
  }
  if (home === '') {
    throw new NativeAddonCacheError(`no cache folder for the SQLite native addon: HOME is not set; set ${CACHE_DIR_ENV} to a writable folder`);
  }
  return join(home, '.cache', 'rwgps-sync');
}

/** Returns the file name for an addon: its SHA-256 in hex, so each build's addon gets its own file. */
export function nativeAddonFileName(bytes: Uint8Array): string {
  return `better_sqlite3-${sha256(bytes)}.node`;
}

/**
 * Makes sure `dir` holds a file with exactly `bytes` and returns its path.
 *
 * An existing file is kept only when its content hashes to its name. A new
 * file is written under a temporary name (mode 0500) and renamed into place,
 * so a process starting at the same time either sees no file or a complete
 * one: rename(2) replaces the name atomically within one file system.
 * The folder is created with mode 0700.
 */
export function writeNativeAddon(dir: string, bytes: Uint8Array): string {
  const name = nativeAddonFileName(bytes);
  const path = join(dir, name);
  if (isIntact(path, name)) return path;

  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw cacheError(dir, 'could not be created', error);
  }

  const temporary = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // Created read-and-execute for the owner only; the open descriptor can
    // still write because the mode applies to later opens, not this one.
    const fd = openSync(temporary, 'wx', 0o500);
    try {
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw cacheError(dir, 'is not writable', error);
  }
  return path;
}

/**
 * Loads a native addon from a file the way `require` would and returns its
 * exports. Inside a single executable `require` only reaches built-in
 * modules, so `process.dlopen` is the only way in.
 */
export function loadNativeAddon(path: string): object {
  const module = { exports: {} };
  process.dlopen(module, path);
  return module.exports;
}

function isIntact(path: string, name: string): boolean {
  let stats;
  try {
    stats = lstatSync(path);
  } catch {
    return false;
  }
  // A symbolic link or anything else but a regular file is never loaded;
  // writeNativeAddon renames a fresh copy over it.
  if (!stats.isFile()) return false;
  try {
    return nativeAddonFileName(readFileSync(path)) === name;
  } catch {
    return false;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function cacheError(dir: string, problem: string, cause: unknown): NativeAddonCacheError {
  const code = (cause as { code?: unknown } | null)?.code;
  const reason = typeof code === 'string' ? ` (${code})` : '';
  return new NativeAddonCacheError(
    `the cache folder for the SQLite native addon ${dir} ${problem}${reason}; ` +
      `set ${CACHE_DIR_ENV} to a writable folder, for example ${CACHE_DIR_ENV}=/var/cache/rwgps-sync`,
    { cause },
  );
}
