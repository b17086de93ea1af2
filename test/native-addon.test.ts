import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { CACHE_DIR_ENV, loadNativeAddon, nativeAddonCacheDir, nativeAddonFileName, writeNativeAddon } from '../src/store/native-addon.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODULE = fileURLToPath(new URL('../src/store/native-addon.ts', import.meta.url));
const ADDON_BYTES = new Uint8Array(Buffer.from('not really an addon, but bytes with a hash\n'));

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-addon-'));
  t.after(() => {
    // Read-only folders left by a test must become writable to be removed.
    spawnSync('chmod', ['-R', 'u+w', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// Runs writeNativeAddon in a child process. As root, the child runs as
// nobody, because root writes into read-only folders regardless of their mode.
function writeInChild(dir: string): { status: number | null; stdout: string; stderr: string } {
  const base64 = JSON.stringify(Buffer.from(ADDON_BYTES).toString('base64'));
  const code = `import(${JSON.stringify(MODULE)}).then((m) => {
    try { console.log('wrote ' + m.writeNativeAddon(${JSON.stringify(dir)}, new Uint8Array(Buffer.from(${base64}, 'base64')))); }
    catch (error) { console.log('error ' + error.message); }
  })`;
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO_ROOT, encoding: 'utf8', ...asNobody });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('file name is the content hash', () => {
  assert.equal(nativeAddonFileName(ADDON_BYTES), `better_sqlite3-${sha256(ADDON_BYTES)}.node`);
  assert.notEqual(nativeAddonFileName(new Uint8Array([1])), nativeAddonFileName(new Uint8Array([2])));
});

test('first write creates private folder and file', (t) => {
  const dir = join(tempDir(t), 'cache', 'rwgps-sync');
  const path = writeNativeAddon(dir, ADDON_BYTES);

  assert.equal(path, join(dir, nativeAddonFileName(ADDON_BYTES)));
  assert.deepEqual(new Uint8Array(readFileSync(path)), ADDON_BYTES);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(path).mode & 0o777, 0o500);
  assert.deepEqual(readdirSync(dir), [nativeAddonFileName(ADDON_BYTES)], 'no temporary file is left behind');
});

test('intact file is reused without rewriting', (t) => {
  const dir = tempDir(t);
  const path = writeNativeAddon(dir, ADDON_BYTES);
  const before = statSync(path);

  assert.equal(writeNativeAddon(dir, ADDON_BYTES), path);
  const after = statSync(path);
  assert.equal(after.ino, before.ino, 'the same inode: the file was not replaced');
  assert.equal(after.mtimeMs, before.mtimeMs);
});

test('corrupted file is replaced', (t) => {
  const dir = tempDir(t);
  const path = writeNativeAddon(dir, ADDON_BYTES);
  chmodSync(path, 0o600);
  writeFileSync(path, 'tampered');

  assert.equal(writeNativeAddon(dir, ADDON_BYTES), path);
  assert.deepEqual(new Uint8Array(readFileSync(path)), ADDON_BYTES);
  assert.equal(statSync(path).mode & 0o777, 0o500);
});

test('symbolic link at the name is replaced', (t) => {
  const dir = tempDir(t);
  const elsewhere = join(dir, 'elsewhere.node');
  writeFileSync(elsewhere, ADDON_BYTES);
  symlinkSync(elsewhere, join(dir, nativeAddonFileName(ADDON_BYTES)));

  const path = writeNativeAddon(dir, ADDON_BYTES);
  assert.ok(lstatSync(path).isFile(), 'a regular file, not the link');
  assert.deepEqual(new Uint8Array(readFileSync(path)), ADDON_BYTES);
});

test('concurrent processes leave one intact file', async (t) => {
  const dir = join(tempDir(t), 'shared');
  // A larger payload widens the window in which the writers overlap.
  const bytes = new Uint8Array(8 * 1024 * 1024).map((_, index) => index % 251);
  const code = `import(${JSON.stringify(MODULE)}).then((m) => {
    const bytes = new Uint8Array(${bytes.length}).map((_, index) => index % 251);
    console.log(m.writeNativeAddon(${JSON.stringify(dir)}, bytes));
  })`;
  const writers = Array.from({ length: 6 }, () =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO_ROOT });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('exit', (exitCode) => resolve({ code: exitCode, stdout, stderr }));
    }),
  );
  const results = await Promise.all(writers);

  const expected = join(dir, nativeAddonFileName(bytes));
  for (const result of results) {
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), expected);
  }
  assert.equal(sha256(readFileSync(expected)), sha256(bytes));
  assert.deepEqual(readdirSync(dir), [nativeAddonFileName(bytes)], 'no temporary file is left behind');
});

test('read-only folder error names folder and variable', (t) => {
  const parent = tempDir(t);
  chmodSync(parent, 0o755);
  const dir = join(parent, 'read-only');
  mkdirSync(dir, { mode: 0o555 });
  chmodSync(dir, 0o555);

  const result = writeInChild(dir);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^error /);
  assert.ok(result.stdout.includes(dir), result.stdout);
  assert.ok(result.stdout.includes(CACHE_DIR_ENV), result.stdout);
  assert.match(result.stdout, /not writable \(EACCES\)/);
});

test('read-only folder with intact file works', (t) => {
  const parent = tempDir(t);
  chmodSync(parent, 0o755);
  const dir = join(parent, 'prepared');
  const path = writeNativeAddon(dir, ADDON_BYTES);
  chmodSync(path, 0o555);
  chmodSync(dir, 0o555);

  const result = writeInChild(dir);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), `wrote ${path}`);
});

test('folder that cannot be created is named', (t) => {
  const parent = tempDir(t);
  writeFileSync(join(parent, 'a-file'), '');
  const dir = join(parent, 'a-file', 'rwgps-sync');

  assert.throws(() => writeNativeAddon(dir, ADDON_BYTES), (error: Error) => {
    assert.equal(error.name, 'NativeAddonCacheError');
    assert.ok(error.message.includes(`${dir} could not be created (ENOTDIR)`), error.message);
    assert.ok(error.message.includes(CACHE_DIR_ENV), error.message);
    return true;
  });
});

test('cache folder follows variables', () => {
  assert.equal(nativeAddonCacheDir({ [CACHE_DIR_ENV]: '/srv/cache', XDG_CACHE_HOME: '/x', HOME: '/home/a' }), '/srv/cache');
  assert.equal(nativeAddonCacheDir({ XDG_CACHE_HOME: '/x', HOME: '/home/a' }), '/x/rwgps-sync');
  assert.equal(nativeAddonCacheDir({ [CACHE_DIR_ENV]: '', HOME: '/home/a' }), '/home/a/.cache/rwgps-sync');
  assert.equal(nativeAddonCacheDir({ XDG_CACHE_HOME: 'relative', HOME: '/home/a' }), '/home/a/.cache/rwgps-sync', 'a relative XDG_CACHE_HOME is ignored');
});

test('cached addon opens a database', (t) => {
  const require = createRequire(import.meta.url);
  const source = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
  const path = writeNativeAddon(tempDir(t), readFileSync(source));

  const addon = loadNativeAddon(path);
  // better-sqlite3 12 accepts the loaded addon object; its types admit only a path.
  const db = new BetterSqlite3(':memory:', { nativeBinding: addon as unknown as string });
  t.after(() => db.close());
  assert.deepEqual(db.prepare('select 6 * 7 as answer').get(), { answer: 42 });
});
