import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { warnIfSecretsReadable } from '../src/config/permissions.ts';
import { createLogger, OutageTracker } from '../src/log.ts';
import { CLIENT, notification, postWebhook, runCli, startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

function capture(repeatWindowMs: number) {
  const lines: Record<string, any>[] = [];
  const logger = createLogger({ level: 'debug', repeatWindowMs, sink: { write: (line: string) => lines.push(JSON.parse(line)) } });
  return { lines, logger };
}

test('repeated errors are counted', async () => {
  const { lines, logger } = capture(200);
  for (let i = 0; i < 50; i++) logger.child({ jobId: i }).warn('job attempt failed', { error: 'RWGPS answered 503' });
  logger.warn('job attempt failed', { error: 'request timed out after 30000 ms' });
  for (let i = 0; i < 3; i++) logger.info('job completed', { jobId: i });
  assert.deepEqual(lines.map((line) => [line.msg, line.error ?? null]), [
    ['job attempt failed', 'RWGPS answered 503'],
    ['job attempt failed', 'request timed out after 30000 ms'],
    ['job completed', null],
    ['job completed', null],
    ['job completed', null],
  ]);
  assert.equal(lines[0]!.jobId, 0);

  await waitFor('the summary line', () => lines.length === 6, 5000, 20);
  const summary = lines[5]!;
  assert.equal(summary.msg, 'repeated log lines suppressed');
  assert.equal(summary.level, 'warn');
  assert.equal(summary.repeatedMsg, 'job attempt failed');
  assert.equal(summary.error, 'RWGPS answered 503');
  assert.equal(summary.count, 49);

  logger.warn('job attempt failed', { error: 'RWGPS answered 503' });
  assert.equal(lines.length, 7, 'a new window writes the first line again');
});

test('outage and recovery logged once', () => {
  const { lines, logger } = capture(0);
  const tracker = new OutageTracker(logger, 'RWGPS');
  tracker.success();
  for (let i = 0; i < 10; i++) tracker.failure(new Error(`RWGPS answered 50${i % 2}`));
  tracker.success();
  tracker.success();
  assert.deepEqual(lines.map((line) => line.msg), ['RWGPS unavailable', 'RWGPS available again']);
  assert.equal(lines[1]!.failures, 10);
  assert.equal(lines[1]!.lastError, 'RWGPS answered 501');
});

test('RWGPS outage in the service logs once', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  for (let id = 1; id <= 10; id++) fake.putRoute({ id, userId: 1 });
  fake.injectFault({ path: /^\/api\/v1\/routes\/\d+\.json$/, times: 30, fault: { kind: 'status', status: 503 } });
  const { service, lines } = await startRunning(t, writeConfig(dir, fake.url));
  const body = JSON.stringify({ notifications: Array.from({ length: 10 }, (_, i) => notification(1, i + 1)) });
  assert.equal((await postWebhook(service.url, body)).status, 200);

  await waitFor('all ten routes synced', async () => {
    const rows = await service.store.db.selectFrom('items').select('id').where('synced_at', 'is not', null).execute();
    return rows.length === 10;
  }, 30_000, 100);
  const failed = lines.filter((line) => line.msg === 'job attempt failed; will retry');
  assert.equal(failed.length, 1, `30 failed attempts with one error text write one line, got ${failed.length}`);
  assert.equal(lines.filter((line) => line.msg === 'RWGPS unavailable').length, 1);
  const recovered = lines.filter((line) => line.msg === 'RWGPS available again');
  assert.equal(recovered.length, 1);
  assert.equal(recovered[0]!.failures, 30);
});

test('readable config with secrets warns', async (t) => {
  const dir = tempDir(t);
  const path = writeConfig(dir, 'http://127.0.0.1:9');
  const { lines, logger } = capture(0);

  chmodSync(path, 0o644);
  assert.equal(warnIfSecretsReadable(loadConfig(path, {}), logger), true);
  assert.equal(lines[0]!.msg, 'config file holding secrets is readable by other users');
  assert.equal(lines[0]!.file, path);
  assert.equal(lines[0]!.mode, '0644');
  assert.deepEqual(lines[0]!.secrets, ['clients[0].clientSecret']);
  assert.match(lines[0]!.fix, new RegExp(`^chmod 600 ${path}`));
  assert.ok(!JSON.stringify(lines).includes(CLIENT.clientSecret), 'the secret itself is never logged');

  chmodSync(path, 0o600);
  assert.equal(warnIfSecretsReadable(loadConfig(path, {}), logger), false);

  const envOnly = join(dir, 'env-only.json');
  writeFileSync(envOnly, JSON.stringify({ clients: [{ apiKey: 'k', clientId: 'c', clientSecretEnv: 'OPS_SECRET' }] }));
  chmodSync(envOnly, 0o644);
  assert.equal(warnIfSecretsReadable(loadConfig(envOnly, { OPS_SECRET: 's' }), logger), false, 'no secret in the file, no warning');
  assert.equal(lines.length, 1);
});

test('status and jobs commands', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  fake.putRoute({ id: 31, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/32.json', times: 1, fault: { kind: 'status', status: 418 } });
  const configPath = writeConfig(dir, fake.url);
  const { service } = await startRunning(t, configPath);
  const body = JSON.stringify({ notifications: [notification(1, 31), notification(1, 32)] });
  assert.equal((await postWebhook(service.url, body)).status, 200);
  await waitFor('both jobs finished', async () => {
    const rows = await service.store.db.selectFrom('jobs').select('state').where('state', 'in', ['completed', 'dead']).execute();
    return rows.length === 2;
  });

  const status = await runCli(['status', '--json', '--config', configPath]);
  assert.equal(status.code, 0, status.stderr);
  const report = JSON.parse(status.stdout);
  assert.equal(report.database.schemaVersion, 3);
  assert.deepEqual(report.usersByStatus, { active: 2, reauthorization_required: 0, disconnected: 0 });
  assert.equal(report.jobsByState.completed, 1);
  assert.equal(report.jobsByState.dead, 1);
  assert.equal(report.deadJobsLastDay, 1);
  assert.equal(report.oldestPendingJob, null);
  assert.ok(Date.parse(report.lastDeliveryAt) > Date.now() - 60_000);
  assert.equal(report.users[0].userId, 1);
  assert.ok(report.users[0].lastItemSyncedAt, 'user 1 has a last sync time');
  assert.equal(report.users[0].deadJobs, 1);

  const text = await runCli(['status', '--config', configPath]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^dead jobs, 24 h: +1 \(see: rwgps-sync jobs list --state dead\)$/m);

  const listed = await runCli(['jobs', 'list', '--item', 'route:32', '--json', '--config', configPath]);
  assert.equal(listed.code, 0, listed.stderr);
  const jobs = JSON.parse(listed.stdout);
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0].state, 'dead');
  const badItem = await runCli(['jobs', 'list', '--item', 'route-32', '--config', configPath]);
  assert.equal(badItem.code, 2);
  assert.match(badItem.stderr, /--item must look like route:123/);

  const shown = await runCli(['jobs', 'show', String(jobs[0].id), '--config', configPath]);
  assert.equal(shown.code, 0);
  assert.match(shown.stdout, /^attempt history:\n {2}#1 \S+ -> \S+ dead: RWGPS \S+ .*418/m);

  const retried = await runCli(['jobs', 'retry', '--dead', '--config', configPath]);
  assert.equal(retried.stdout, '1 job queued again\n');
  await waitFor('route 32 synced after retry', async () =>
    service.store.db.selectFrom('items').select('id').where('id', '=', 32).where('synced_at', 'is not', null).executeTakeFirst(),
  );
});
