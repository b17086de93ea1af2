import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { databaseFileSizes, JOURNAL_SIZE_LIMIT_BYTES } from '../src/store/db.ts';
import { notification, postWebhook, REPO_ROOT, startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

const READER = fileURLToPath(new URL('./fixtures/wal-reader.ts', import.meta.url));

const LOAD_MS = 10_000;

// A steady webhook load for about 10 s while another process keeps opening
// read transactions that overlap the writes, as a monitoring loop would.
// Without a checkpoint that waits for such readers, the WAL cannot start
// over and grows by every commit (about 80 MB in 10 s here). The -wal file must stay bounded during the load and be
// emptied by the idle TRUNCATE checkpoint afterwards.
test('WAL size bounded after sustained load', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  const running = await startRunning(
    t,
    writeConfig(dir, fake.url, { database: { checkpointIntervalMs: 300 } }),
  );
  const { service, config } = running;
  const dbPath = config.database.path;
  const reader = spawn(process.execPath, ['--import', 'tsx', READER, dbPath, String(LOAD_MS), '20'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => reader.kill());
  let readerOutput = '';
  reader.stdout.on('data', (chunk: Buffer) => (readerOutput += chunk.toString()));
  reader.stderr.on('data', (chunk: Buffer) => (readerOutput += chunk.toString()));
  const readerExit = new Promise<number | null>((resolve) => reader.on('close', resolve));

  let stop = false;
  let maxWal = 0;
  let lastWal = 0;
  let resets = 0;
  let deliveries = 0;
  const started = Date.now();
  const sender = async (lane: number) => {
    for (let seq = 0; !stop && seq < 20_000; seq++) {
      const body = JSON.stringify({ notifications: Array.from({ length: 20 }, (_, i) => notification(1, lane * 1_000_000 + seq * 20 + i, i % 2 === 0 ? 'deleted' : 'removed')) });
      const result = await postWebhook(service.url, body);
      assert.equal(result.status, 200);
      deliveries++;
    }
  };
  const sampler = setInterval(() => {
    const wal = databaseFileSizes(dbPath).wal;
    maxWal = Math.max(maxWal, wal);
    // The file shrinks only when a checkpoint truncated it after a reset.
    if (wal < lastWal) resets++;
    lastWal = wal;
    if (Date.now() - started > LOAD_MS) stop = true;
  }, 50);

  await Promise.all([sender(1), sender(2), sender(3)]);
  clearInterval(sampler);
  assert.equal(await readerExit, 0, readerOutput);
  const reads = Number(readerOutput.trim());
  assert.ok(reads > 20, `the reader made ${reads} read transactions`);
  const sizes = databaseFileSizes(dbPath);
  t.diagnostic(`${deliveries} deliveries and ${reads} read transactions in ${Date.now() - started} ms; database ${sizes.database} bytes, max wal ${maxWal} bytes, ${resets} truncations`);

  assert.ok(deliveries > 50, `the load wrote ${deliveries} deliveries`);
  assert.ok(maxWal < JOURNAL_SIZE_LIMIT_BYTES, `the -wal file peaked at ${maxWal} bytes`);
  assert.ok(resets >= 2, `the -wal file was truncated ${resets} times during the load; it must start over despite the reader`);

  await waitFor('jobs to finish', async () => (await service.store.db.selectFrom('jobs').select('id').where('state', 'in', ['available', 'running', 'retryable']).limit(1).execute()).length === 0, 60_000, 200);
  await waitFor('the idle checkpoint to empty the -wal file', () => databaseFileSizes(dbPath).wal === 0, 20_000, 100);
});
