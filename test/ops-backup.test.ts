import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, verifyCopy } from '../src/store/db.ts';
import { notification, postWebhook, runCli, startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

// Backup under a steady webhook load, then the documented restore:
// stop, replace the file, remove -wal and -shm, start.

test('backup under load, then restore', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  const configPath = writeConfig(dir, fake.url);
  const first = await startRunning(t, configPath);
  const dbPath = first.config.database.path;

  // Senders post deliveries until told to stop (bounded in count too).
  const answered: { id: number; at: number }[] = [];
  let stop = false;
  let sent = 0;
  const sender = async (lane: number) => {
    while (!stop && sent < 3000) {
      const seq = sent++;
      const body = JSON.stringify({ notifications: Array.from({ length: 10 }, (_, i) => notification(1 + (i % 2), 10_000 + lane * 100_000 + seq * 10 + i)) });
      const result = await postWebhook(first.service.url, body);
      assert.equal(result.status, 200, `delivery answered ${result.status} ${result.body}`);
      answered.push({ id: JSON.parse(result.body).delivery, at: Date.now() });
    }
  };
  const senders = [0, 1, 2, 3].map(sender);
  await waitFor('100 deliveries before the backup', () => answered.length >= 100);

  // Every delivery answered 200 before the backup process starts was committed before it.
  const committedBefore = answered.map((entry) => entry.id);
  const backupPath = join(dir, 'backups', 'sync-backup.db');
  mkdirSync(join(dir, 'backups'));
  const backup = await runCli(['backup', backupPath, '--json', '--config', configPath]);
  const answeredDuringBackup = answered.length - committedBefore.length;
  stop = true;
  await Promise.all(senders);

  assert.equal(backup.code, 0, `backup failed: ${backup.stderr}`);
  const report = JSON.parse(backup.stdout);
  assert.equal(report.integrityCheck, 'ok');
  assert.equal(report.path, backupPath);
  assert.ok(report.bytes > 0);
  assert.ok(report.tables.deliveries >= committedBefore.length, `backup has ${report.tables.deliveries} deliveries`);
  assert.ok(answeredDuringBackup > 0, 'the load went on while the backup ran');
  assert.deepEqual(
    readdirSync(join(dir, 'backups')),
    ['sync-backup.db'],
    'no temporary file is left beside the backup',
  );
  t.diagnostic(`backup: ${report.bytes} bytes, ${report.tables.deliveries} deliveries, ${report.durationMs} ms; ${answeredDuringBackup} deliveries answered meanwhile`);

  const verified = await verifyCopy(backupPath);
  assert.equal(verified.tables.deliveries, report.tables.deliveries);

  // Restore: stop, replace the file, remove stale -wal/-shm, start.
  await first.service.close(1000);
  copyFileSync(backupPath, dbPath);
  rmSync(`${dbPath}-wal`, { force: true });
  rmSync(`${dbPath}-shm`, { force: true });
  const second = await startRunning(t, configPath, { connect: false });

  const ready = await fetch(`${second.service.url}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  const restored = await second.service.store.db.selectFrom('deliveries').select('id').execute();
  const restoredIds = new Set(restored.map((row) => row.id));
  const missing = committedBefore.filter((id) => !restoredIds.has(id));
  assert.deepEqual(missing, [], 'every delivery committed before the backup began is restored');
  assert.equal(restored.length, report.tables.deliveries);

  // The restored service takes new deliveries and syncs them.
  fake.putRoute({ id: 777, userId: 1, name: 'After restore' });
  const after = await postWebhook(second.service.url, JSON.stringify({ notifications: [notification(1, 777)] }));
  assert.equal(after.status, 200);
  await waitFor('route 777 synced after restore', async () =>
    second.service.store.db.selectFrom('items').select('synced_at').where('type', '=', 'route').where('id', '=', 777).where('synced_at', 'is not', null).executeTakeFirst(),
  );
  await second.service.close(1000);
  const live = await verifyCopy(dbPath);
  assert.ok(live.tables.deliveries! > report.tables.deliveries);
});

test('backup refuses to overwrite without --force', async (t) => {
  const dir = tempDir(t);
  const configPath = writeConfig(dir, 'http://127.0.0.1:9');
  const store = await openStore(join(dir, 'sync.db'), { synchronous: 'normal', busyTimeoutMs: 1000 });
  await store.close();
  const target = join(dir, 'existing.db');
  writeFileSync(target, 'not a database');

  const refused = await runCli(['backup', target, '--config', configPath]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /already exists; pass --force/);
  assert.equal(readFileSync(target, 'utf8'), 'not a database');

  const forced = await runCli(['backup', target, '--force', '--config', configPath]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /integrity check ok/);
  assert.match(forced.stdout, /schema_migrations/);
  assert.ok((await verifyCopy(target)).tables.schema_migrations! >= 1);

  const missingFolder = await runCli(['backup', join(dir, 'nope', 'b.db'), '--config', configPath]);
  assert.equal(missingFolder.code, 1);
  assert.match(missingFolder.stderr, /does not exist; create it first/);

  const noArgument = await runCli(['backup', '--config', configPath]);
  assert.equal(noArgument.code, 2);
  assert.match(noArgument.stderr, /missing the backup file name/);
});

test('backup of a missing database fails', async (t) => {
  const dir = tempDir(t);
  const configPath = writeConfig(dir, 'http://127.0.0.1:9');
  const result = await runCli(['backup', join(dir, 'b.db'), '--config', configPath]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /database .*sync\.db not found/);
  assert.equal(existsSync(join(dir, 'sync.db')), false, 'backup does not create an empty database');
});
