import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createApp } from '../src/http/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { OutageTracker, silentLogger } from '../src/log.ts';
import { openStore } from '../src/store/db.ts';
import { notification, postWebhook, startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

// Tests run as root here, and file modes do not stop root from writing, so
// the database is made read-only with PRAGMA query_only on the service's own
// connection: SQLite then rejects every write with SQLITE_READONLY, as it
// does for a read-only file or mount.

test('readyz and webhook with a read-only database', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  const { service, lines } = await startRunning(t, writeConfig(dir, fake.url));
  const body = JSON.stringify({ notifications: [notification(1, 5)] });

  await waitFor('worker loop', () => service.worker.lastLoopAt > 0);
  const ready = await fetch(`${service.url}/readyz`);
  const readyBody = await ready.json() as any;
  assert.equal(ready.status, 200);
  assert.deepEqual(readyBody.checks, { database: 'ok', migrations: 'ok', worker: 'ok' });

  await sql`pragma query_only = on`.execute(service.store.db);

  const notReady = await fetch(`${service.url}/readyz`);
  const notReadyBody = await notReady.json() as any;
  assert.equal(notReady.status, 503);
  assert.match(notReadyBody.checks.database, /^not writable: .*readonly/);
  assert.equal(notReadyBody.checks.migrations, 'ok');
  assert.match(notReadyBody.error, /database: not writable/);

  for (let i = 0; i < 5; i++) {
    const rejected = await postWebhook(service.url, body);
    assert.equal(rejected.status, 503);
    assert.match(JSON.parse(rejected.body).error, /database unavailable; delivery not stored/);
  }
  const health = await fetch(`${service.url}/healthz`);
  assert.equal(health.status, 200, 'healthz only says the process is up and can read');

  await sql`pragma query_only = off`.execute(service.store.db);
  const accepted = await postWebhook(service.url, body);
  assert.equal(accepted.status, 200);
  assert.equal((await fetch(`${service.url}/readyz`)).status, 200);

  const outageLines = lines.filter((line) => line.msg === 'database unavailable');
  const recoveryLines = lines.filter((line) => line.msg === 'database available again');
  assert.equal(outageLines.length, 1, 'the outage is logged once');
  assert.equal(recoveryLines.length, 1, 'the recovery is logged once');
  assert.ok(recoveryLines[0]!.failures >= 6);
  const storeFailures = lines.filter((line) => line.msg === 'delivery not stored');
  assert.equal(storeFailures.length, 1, 'repeats of the same store error are counted, not written');
  const deliveries = await service.store.db.selectFrom('deliveries').select('id').execute();
  assert.equal(deliveries.length, 1, 'no delivery was stored while read-only');
});

test('readyz reports a stuck worker loop', async (t) => {
  const dir = tempDir(t);
  const config = loadConfig(writeConfig(dir, 'http://127.0.0.1:9'), {});
  const store = await openStore(config.database.path, { synchronous: 'normal', busyTimeoutMs: 1000 });
  t.after(() => store.close());
  const build = (lastLoopAt: number, stopping = false) =>
    createApp({
      db: store.db,
      config,
      logger: silentLogger,
      onQueued: () => {},
      readiness: {
        workerLastLoopAt: () => lastLoopAt,
        workerStuckAfterMs: 60_000,
        stopping: () => stopping,
        databaseOutage: new OutageTracker(silentLogger, 'database'),
      },
    });

  const stuck = await build(Date.now() - 10 * 60_000).request('/readyz');
  assert.equal(stuck.status, 503);
  assert.match(((await stuck.json()) as any).checks.worker, /^stuck: last claim-loop pass \d+ s ago/);

  const notStarted = await build(0).request('/readyz');
  assert.equal(((await notStarted.json()) as any).checks.worker, 'not started');

  const stopping = await build(Date.now(), true).request('/readyz');
  assert.equal(stopping.status, 503);
  assert.equal(((await stopping.json()) as any).checks.service, 'stopping');
  assert.equal(stopping.headers.get('connection'), 'close');

  const fine = await build(Date.now()).request('/readyz');
  assert.equal(fine.status, 200);
});
