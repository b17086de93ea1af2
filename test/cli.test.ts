import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLIENT,
  connect,
  delivery,
  runCli,
  startTestService,
  TOKENS,
  waitFor,
  waitForIdle,
  waitForJob,
  jobRows,
} from './helpers.ts';

test('cli usage errors exit 2', async (t) => {
  const cases: { args: string[]; pattern: RegExp }[] = [
    { args: ['bogus'], pattern: /unknown command "bogus"/ },
    { args: ['users', 'list', '--bogus'], pattern: /Unknown option '--bogus'/ },
    { args: ['users', 'frobnicate'], pattern: /unknown users command "frobnicate"/ },
    { args: ['items', 'list', '--user', 'abc'], pattern: /--user must be a positive integer, got "abc"/ },
    { args: ['items', 'show', 'segment', '1'], pattern: /item type must be "route" or "trip", got "segment"/ },
    { args: ['jobs', 'list', '--state', 'sleeping'], pattern: /--state must be one of/ },
    { args: ['jobs', 'retry'], pattern: /give a job id or --dead/ },
    { args: ['serve', 'extra'], pattern: /unexpected argument "extra"/ },
  ];
  const results = await Promise.all(cases.map((entry) => runCli(entry.args)));
  results.forEach((result, index) => {
    const entry = cases[index]!;
    const name = entry.args.join(' ');
    assert.equal(result.code, 2, `${name}: exit code`);
    assert.match(result.stderr, entry.pattern, `${name}: says what was wrong`);
    assert.match(result.stderr, /usage: /, `${name}: prints usage`);
  });
  t.diagnostic(`${cases.length} commands checked`);
});

test('cli without command prints usage', async () => {
  const [none, help] = await Promise.all([runCli([]), runCli(['--help'])]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /^usage: rwgps-sync <command>/);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /serve/);
});

test('users add and list --json', async (t) => {
  const ts = await startTestService(t);
  // users add queues a sync; this test is about the stored users only.
  await ts.service.worker.stop(1000);
  const config = ['--config', ts.configPath];
  const [oauth, basic] = await Promise.all([
    runCli(['users', 'add', '--user-id', '1', '--token', TOKENS[1]!, ...config]),
    runCli(['users', 'add', '--user-id', '2', '--token', TOKENS[2]!, '--basic', '--client', CLIENT.apiKey, ...config]),
  ]);
  assert.equal(oauth.code, 0, oauth.stderr);
  assert.equal(basic.code, 0, basic.stderr);
  assert.match(oauth.stdout, /user 1 connected \(OAuth token\)/);

  const listed = await runCli(['users', 'list', '--json', ...config]);
  assert.equal(listed.code, 0, listed.stderr);
  const users = JSON.parse(listed.stdout) as Record<string, unknown>[];
  assert.deepEqual(users.map((user) => [user.userId, user.status, user.tokenKind]), [[1, 'active', 'oauth'], [2, 'active', 'basic']]);
  assert.equal(users[0]?.items, 0);
  assert.equal(users[0]?.pendingJobs, 1, 'the backfill sync that users add queued');
  assert.equal(users[0]?.failedJobs, 0);
  for (const output of [oauth, basic, listed]) {
    assert.ok(!(output.stdout + output.stderr).includes(TOKENS[1]!), 'token 1 never printed');
    assert.ok(!(output.stdout + output.stderr).includes(TOKENS[2]!), 'token 2 never printed');
  }
});

test('users add rejects unknown client', async (t) => {
  const ts = await startTestService(t);
  const [unknown, noToken] = await Promise.all([
    runCli(['users', 'add', '--user-id', '1', '--token', 'x', '--client', 'nope', '--config', ts.configPath]),
    runCli(['users', 'add', '--user-id', '1', '--config', ts.configPath]),
  ]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--client "nope" is not an apiKey/);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /missing --token/);
});

test('items list --json and show', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  await connect(ts.db, 2);
  ts.fake.putRoute({ id: 201, userId: 1, name: 'Morning climb' });
  ts.fake.putRoute({ id: 102, userId: 1, name: 'Coast road' });
  await ts.send(
    delivery(
      { user_id: 1, item_id: 201 },
      { user_id: 1, item_id: 101, action: 'deleted' },
      { user_id: 2, item_id: 102, item_user_id: 1, action: 'added' },
    ),
  );
  await waitForIdle(ts.db);

  const config = ['--config', ts.configPath];
  const [owner, pinned, shown, missing] = await Promise.all([
    runCli(['items', 'list', '--user', '1', '--json', ...config]),
    runCli(['items', 'list', '--user', '2', '--json', ...config]),
    runCli(['items', 'show', 'route', '201', ...config]),
    runCli(['items', 'show', 'trip', '999', ...config]),
  ]);
  assert.equal(owner.code, 0, owner.stderr);
  const items = JSON.parse(owner.stdout) as Record<string, unknown>[];
  assert.equal(items.length, 2);
  const route = items.find((item) => item.id === 201)!;
  for (const field of ['type', 'id', 'ownerId', 'relation', 'name', 'updatedAt', 'deleted', 'syncedAt']) {
    assert.ok(field in route, `field ${field}`);
  }
  assert.equal(route.type, 'route');
  assert.equal(route.ownerId, 1);
  assert.equal(route.relation, 'owner');
  assert.equal(route.name, 'Morning climb');
  assert.equal(route.deleted, false);
  assert.match(String(route.updatedAt), /^\d{4}-\d{2}-\d{2}T/);
  assert.ok(!Number.isNaN(Date.parse(String(route.syncedAt))), 'syncedAt is a time');
  assert.equal(items.find((item) => item.id === 101)?.deleted, true);

  const pins = JSON.parse(pinned.stdout) as Record<string, unknown>[];
  assert.deepEqual(pins.map((item) => [item.id, item.relation, item.ownerId]), [[102, 'pinned', 1]]);

  assert.equal(shown.code, 0, shown.stderr);
  const stored = await ts.db.selectFrom('items').select('body').where('type', '=', 'route').where('id', '=', 201).executeTakeFirstOrThrow();
  assert.equal(shown.stdout, `${stored.body}\n`, 'prints the stored body as RWGPS sent it');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /trip 999 not found/);
});

test('jobs list and retry --dead', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 7, userId: 1 });
  ts.fake.injectFault({ path: '/api/v1/routes/7.json', times: Infinity, fault: { kind: 'status', status: 400 } });
  await ts.send(delivery({ user_id: 1, item_id: 7 }, { user_id: 1, item_id: 8, action: 'deleted' }));
  const dead = await waitForJob(ts.db, { userId: 1, itemId: 7, state: 'dead' });
  await waitForIdle(ts.db);

  const config = ['--config', ts.configPath];
  const [all, onlyDead, table] = await Promise.all([
    runCli(['jobs', 'list', '--json', ...config]),
    runCli(['jobs', 'list', '--state', 'dead', '--json', ...config]),
    runCli(['jobs', 'list', ...config]),
  ]);
  assert.equal(all.code, 0, all.stderr);
  const itemJobs = (JSON.parse(all.stdout) as { kind: string }[]).filter((job) => job.kind === 'item');
  assert.equal(itemJobs.length, 2);
  const deadJobs = JSON.parse(onlyDead.stdout) as Record<string, unknown>[];
  assert.deepEqual(deadJobs.map((job) => [job.id, job.state, job.itemId, job.attempt]), [[dead.id, 'dead', 7, 1]]);
  assert.match(String(deadJobs[0]?.lastError), /\b400\b/);
  assert.match(table.stdout, /^ID\s+STATE/);

  ts.fake.clearFaults();
  const retried = await runCli(['jobs', 'retry', '--dead', ...config]);
  assert.equal(retried.code, 0, retried.stderr);
  assert.match(retried.stdout, /^1 job queued again/);
  await waitForJob(ts.db, { userId: 1, itemId: 7, state: 'completed' });

  const again = await runCli(['jobs', 'retry', String(dead.id), ...config]);
  assert.equal(again.code, 1, 'a completed job is not retried');
  assert.equal((await jobRows(ts.db, { state: 'dead' })).length, 0);
});

test('users list counts items and jobs', async (t) => {
  const ts = await startTestService(t);
  await connect(ts.db, 1);
  ts.fake.putRoute({ id: 1, userId: 1 });
  await ts.send(delivery({ user_id: 1, item_id: 1 }, { user_id: 4, item_id: 2 }));
  await waitFor(async () => (await jobRows(ts.db, { state: 'completed' })).length === 1, { what: 'the job of user 1' });
  const listed = await runCli(['users', 'list', '--json', '--config', ts.configPath]);
  const users = JSON.parse(listed.stdout) as Record<string, unknown>[];
  assert.equal(users.length, 1, 'a user with only a notification is not listed as connected');
  assert.equal(users[0]?.items, 1);
});
