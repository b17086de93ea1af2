import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sendWebhook } from '../scripts/fake-rwgps.ts';
import { openStore } from '../src/store/db.ts';
import { connectUser } from '../src/store/users.ts';
import {
  CLIENT,
  delivery,
  runCli,
  startFake,
  startServe,
  tempDir,
  testConfig,
  TOKENS,
  waitFor,
  writeConfig,
} from './helpers.ts';

// These tests run `serve` as a child process (the node process itself, not
// an npx wrapper) and inspect the database file from the test process.

async function prepare(t: TestContext, worker: Record<string, unknown> = {}) {
  const fake = await startFake(t);
  const dir = tempDir(t);
  const configPath = writeConfig(dir, testConfig(fake.url, { worker: { pollIntervalMs: 50, ...worker } }));
  const dbPath = join(dir, 'test.db');
  const store = await openStore(dbPath, { synchronous: 'full', busyTimeoutMs: 2000 });
  await connectUser(store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: TOKENS[1]!, tokenKind: 'oauth' });
  await store.close();
  const reader = new BetterSqlite3(dbPath, { readonly: true });
  t.after(() => reader.close());
  const jobs = () =>
    reader.prepare("select id, state, attempt, lease_until, last_error from jobs where kind = 'item' order by id").all() as {
      id: number;
      state: string;
      attempt: number;
      lease_until: number | null;
      last_error: string | null;
    }[];
  return { fake, dir, configPath, dbPath, jobs };
}

function send(url: string, body: unknown) {
  return sendWebhook(`${url}/webhooks/rwgps`, body as { notifications: unknown[] }, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
}

test('killed worker job reclaimed after lease', async (t) => {
  const { fake, configPath, jobs } = await prepare(t, { leaseMs: 4000, requestTimeoutMs: 3000 });
  fake.putRoute({ id: 1, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/1.json', fault: { kind: 'slow', delayMs: 60_000 } });

  const first = startServe(t, configPath);
  const firstUrl = await first.started();
  assert.equal((await send(firstUrl, delivery({ user_id: 1, item_id: 1 }))).status, 200);
  await waitFor(() => fake.requests.some((request) => request.path === '/api/v1/routes/1.json'), { what: 'the fetch to be in flight' });
  const running = jobs()[0];
  assert.equal(running?.state, 'running');
  assert.equal(running?.attempt, 1);

  first.kill('SIGKILL');
  assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' });
  assert.equal(jobs()[0]?.state, 'running', 'the dead process still holds the lease');

  fake.clearFaults();
  const second = startServe(t, configPath);
  await second.started();
  await waitFor(() => jobs()[0]?.state === 'completed', { what: 'the reclaimed job to complete', timeoutMs: 20_000 });

  const job = jobs()[0];
  assert.equal(job?.attempt, 2, 'the crash cost one attempt');
  const fetches = fake.requests.filter((request) => request.path === '/api/v1/routes/1.json');
  assert.equal(fetches.length, 2);
  assert.ok(fetches[1]!.at >= running!.lease_until!, 'not reclaimed before the lease ended');
  assert.equal(second.records.filter((record) => record.msg === 'requeued jobs whose lease expired').length, 1);
});

test('SIGTERM finishes job and exits 0', async (t) => {
  const { fake, configPath, jobs } = await prepare(t);
  fake.putRoute({ id: 2, userId: 1 });
  fake.injectFault({ path: '/api/v1/routes/2.json', fault: { kind: 'slow', delayMs: 800 } });

  const serve = startServe(t, configPath);
  const url = await serve.started();
  await send(url, delivery({ user_id: 1, item_id: 2 }));
  await waitFor(() => fake.requests.length > 0, { what: 'the fetch to be in flight' });

  serve.kill('SIGTERM');
  assert.deepEqual(await serve.exited, { code: 0, signal: null });
  assert.equal(jobs()[0]?.state, 'completed', 'the in-flight job finished before exit');
  const messages = serve.records.map((record) => record.msg);
  assert.ok(messages.includes('stopping'));
  assert.equal(messages.at(-1), 'rwgps-sync stopped');
  assert.ok(!serve.stdout.includes(TOKENS[1]!), 'the token is not logged');
  assert.ok(!serve.stdout.includes(CLIENT.clientSecret), 'the secret is not logged');
});

test('serve and CLI wait for the write lock', async (t) => {
  const { dbPath, configPath } = await prepare(t);
  const locker = new BetterSqlite3(dbPath);
  t.after(() => locker.close());
  const insertUser = "insert into users (id, client_api_key, token, token_kind, status, created_at, updated_at) values (?, 'k', 't', 'oauth', 'active', 0, 0)";

  // Both start while another connection holds the write lock.
  locker.exec('begin immediate');
  locker.prepare(insertUser).run(90);
  const serve = startServe(t, configPath);
  const added = runCli(['users', 'add', '--user-id', '2', '--token', TOKENS[2]!, '--config', configPath]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  locker.exec('commit');

  const result = await added;
  assert.equal(result.code, 0, result.stderr);
  const url = await serve.started();

  // A delivery that arrives while the lock is held waits and is stored.
  locker.exec('begin immediate');
  locker.prepare(insertUser).run(91);
  const started = Date.now();
  const pending = send(url, delivery({ user_id: 2, item_id: 5 }));
  await new Promise((resolve) => setTimeout(resolve, 500));
  locker.exec('commit');
  const answer = await pending;
  assert.equal(answer.status, 200, answer.body);
  assert.ok(Date.now() - started >= 400, 'the delivery waited for the lock');
  assert.equal(serve.records.filter((record) => record.level === 'error').length, 0, 'no errors logged');
});
