import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { loadConfig } from '../src/config/config.ts';
import { openStore } from '../src/store/db.ts';
import { connectUser } from '../src/store/users.ts';
import { CLIENT, notification, postWebhook, REPO_ROOT, startFake, tempDir, waitFor, writeConfig, type PostResult } from './ops-helpers.ts';

// SIGTERM to the node process running `serve` while deliveries arrive and
// jobs are in flight (some of them stalled at RWGPS past the grace period).
test('SIGTERM mid-burst loses nothing', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t, 100);
  for (let id = 1; id <= 50; id++) fake.putRoute({ id, userId: 1 });
  fake.putRoute({ id: 999, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/999.json', times: Infinity, fault: { kind: 'stall' } });
  const configPath = writeConfig(dir, fake.url, { worker: { concurrency: 4, shutdownGraceMs: 1500, pollIntervalMs: 50 } });

  // Connect the user before start, through the same database file.
  const dbPath = loadConfig(configPath, {}).database.path;
  const setup = await openStore(dbPath, { synchronous: 'normal', busyTimeoutMs: 5000 });
  await connectUser(setup.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'token-1', tokenKind: 'oauth' });
  await setup.close();

  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--config', configPath], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  const started = await waitFor('serve to start', () => stdout.split('\n').find((line) => line.includes('"rwgps-sync started"')), 30_000);
  const url = `http://127.0.0.1:${JSON.parse(started!).port}`;

  // The stalled job must be in flight when the signal arrives.
  const stallBody = JSON.stringify({ notifications: [notification(1, 999)] });
  assert.equal((await postWebhook(url, stallBody)).status, 200);
  await waitFor('the stalled request to reach RWGPS', () => fake.requests.some((request) => request.path === '/api/v1/routes/999.json'));

  const results: { marker: number; result: PostResult }[] = [];
  let next = 0;
  let refused = 0;
  let signalledAt = 0;
  const sender = async () => {
    // Bounded: at most 400 requests; stops once connections are refused.
    while (next < 400 && refused < 8) {
      const marker = next++;
      const body = JSON.stringify({ notifications: [notification(1, 1 + (marker % 50), 'updated'), notification(2, 100_000 + marker)] });
      const result = await postWebhook(url, body);
      results.push({ marker, result });
      if (result.error === 'ECONNREFUSED') refused++;
      if (!signalledAt && results.filter((entry) => entry.result.status === 200).length >= 40) {
        signalledAt = Date.now();
        child.kill('SIGTERM');
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));

  const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 30_000))]);
  const stopMs = Date.now() - signalledAt;
  assert.equal(code, 0, `serve exits 0 after SIGTERM (stderr: ${stderr.slice(0, 500)})`);
  assert.ok(signalledAt > 0, 'SIGTERM was sent mid-burst');
  assert.ok(stopMs < 20_000, `serve stopped ${stopMs} ms after SIGTERM`);

  const ok = results.filter((entry) => entry.result.status === 200);
  const unexpected = results.filter((entry) => entry.result.status !== 200 && entry.result.error !== 'ECONNREFUSED' && entry.result.error !== 'ECONNRESET');
  assert.deepEqual(unexpected.map((entry) => entry.result), [], 'every answer is 200, and every other request was refused');
  const reset = results.filter((entry) => entry.result.error === 'ECONNRESET');
  t.diagnostic(`${results.length} requests: ${ok.length} answered 200, ${refused} refused, ${reset.length} reset; stopped ${stopMs} ms after SIGTERM`);

  const lines = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
  assert.ok(lines.some((line) => line.msg === 'stopping' && line.signal === 'SIGTERM'));
  assert.ok(lines.some((line) => line.msg === 'released job leases at shutdown' && line.jobs >= 1));
  assert.equal(lines.at(-1)?.msg, 'rwgps-sync stopped');

  const store = await openStore(dbPath, { synchronous: 'normal', busyTimeoutMs: 5000, migrate: false });
  t.after(() => store.close());
  const deliveries = await store.db.selectFrom('deliveries').select(['id', 'body']).execute();
  const stored = new Map(deliveries.map((row) => [row.id, Buffer.from(row.body).toString('utf8')]));
  for (const entry of ok) {
    const id = JSON.parse(entry.result.body).delivery as number;
    assert.ok(stored.has(id), `delivery ${id} answered 200 is committed`);
  }
  // Every committed delivery (but the first, sent before the burst) got its 200:
  // a request cut off after it was accepted would show up here.
  assert.equal(stored.size, ok.length + 1, 'every committed delivery was answered 200');
  for (const entry of reset) {
    const marker = `"item_id":${100_000 + entry.marker},`;
    assert.ok(![...stored.values()].some((body) => body.includes(marker)), `reset request ${entry.marker} was not committed`);
  }

  const running = await store.db.selectFrom('jobs').select('id').where('state', '=', 'running').execute();
  assert.deepEqual(running, [], 'no job is left running: leases were released');
  const stalled = await store.db.selectFrom('jobs').select(['state', 'attempt', 'lease_owner']).where('item_id', '=', 999).executeTakeFirstOrThrow();
  assert.deepEqual(stalled, { state: 'available', attempt: 0, lease_owner: null }, 'the aborted job is back in the queue with its attempt returned');
});
