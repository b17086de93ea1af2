import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../src/config/config.ts';
import { join } from 'node:path';
import { Registry } from '../src/metrics/registry.ts';
import { openStore } from '../src/store/db.ts';
import { backfillProgress } from '../src/store/stats.ts';
import { CLIENT, notification, postWebhook, startFake, startRunning, tempDir, waitFor, writeConfig } from './ops-helpers.ts';

const TOKEN = 'metrics-test-token';

/** Reads one sample from exposition text; undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (line.slice(0, space) === series) return Number(line.slice(space + 1));
  }
  return undefined;
}

async function scrape(url: string, token = TOKEN): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return response.text();
}

test('metrics present and moving', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);
  fake.putRoute({ id: 11, userId: 1 });
  fake.putRoute({ id: 12, userId: 1 });
  const { service } = await startRunning(t, writeConfig(dir, fake.url, { metrics: { enabled: true, token: TOKEN, allow: ['127.0.0.0/8', '::1'] } }));

  const before = await scrape(service.url);
  for (const name of [
    'rwgps_sync_deliveries_accepted_total',
    'rwgps_sync_deliveries_rejected_total',
    'rwgps_sync_notifications_total',
    'rwgps_sync_job_attempt_duration_seconds',
    'rwgps_sync_job_retries_total',
    'rwgps_sync_rwgps_request_duration_seconds',
    'rwgps_sync_jobs',
    'rwgps_sync_users',
    'rwgps_sync_parked_users',
    'rwgps_sync_oldest_pending_job_age_seconds',
    'rwgps_sync_database_size_bytes',
    'rwgps_sync_backfill_items',
    'rwgps_sync_backfill_users',
    'rwgps_sync_build_info',
  ]) {
    assert.match(before, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), `${name} is declared`);
  }
  assert.equal(sample(before, 'rwgps_sync_users{status="active"}'), 2);
  assert.equal(sample(before, 'rwgps_sync_jobs{state="completed"}'), 0);
  assert.ok(sample(before, 'rwgps_sync_database_size_bytes{file="database"}')! > 0);

  fake.injectFault({ path: '/api/v1/routes/12.json', times: 1, fault: { kind: 'status', status: 503 } });
  const body = JSON.stringify({ notifications: [notification(1, 11), notification(1, 12, 'updated'), notification(2, 13, 'deleted')] });
  assert.equal((await postWebhook(service.url, body)).status, 200);
  assert.equal((await postWebhook(service.url, body, '0'.repeat(64))).status, 401);
  await waitFor(async () => sample(await scrape(service.url), 'rwgps_sync_jobs{state="completed"}') === 3, { what: 'three jobs completed' });

  const after = await scrape(service.url);
  assert.equal(sample(after, 'rwgps_sync_deliveries_accepted_total'), 1);
  assert.equal(sample(after, 'rwgps_sync_deliveries_rejected_total{reason="signature_mismatch"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_notifications_total{action="created"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_notifications_total{action="updated"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_notifications_total{action="deleted"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_job_attempt_duration_seconds_count{outcome="completed"}'), 3);
  assert.equal(sample(after, 'rwgps_sync_job_attempt_duration_seconds_count{outcome="retry"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_job_retries_total'), 1);
  assert.equal(sample(after, 'rwgps_sync_rwgps_request_duration_seconds_count{status_class="2xx"}'), 2);
  assert.equal(sample(after, 'rwgps_sync_rwgps_request_duration_seconds_count{status_class="5xx"}'), 1);
  assert.equal(sample(after, 'rwgps_sync_oldest_pending_job_age_seconds'), 0);
  const bucketInf = sample(after, 'rwgps_sync_rwgps_request_duration_seconds_bucket{status_class="2xx",le="+Inf"}');
  assert.equal(bucketInf, 2);
});

test('metrics reject unauthenticated scrapes', async (t) => {
  const dir = tempDir(t);
  const fake = await startFake(t);

  const withToken = await startRunning(t, writeConfig(dir, fake.url, { metrics: { enabled: true, token: TOKEN } }), { connect: false });
  const missing = await fetch(`${withToken.service.url}/metrics`);
  assert.equal(missing.status, 401);
  assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="metrics"');
  assert.deepEqual(await missing.json(), { error: 'missing bearer token' });
  const wrong = await fetch(`${withToken.service.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  assert.deepEqual(await wrong.json(), { error: 'invalid bearer token' });
  const logText = JSON.stringify(withToken.lines);
  assert.ok(!logText.includes(TOKEN), 'the token never reaches the log');

  const otherDir = tempDir(t);
  const elsewhere = await startRunning(t, writeConfig(otherDir, fake.url, { metrics: { enabled: true, allow: ['10.0.0.0/8'] } }), { connect: false });
  const forbidden = await fetch(`${elsewhere.service.url}/metrics`);
  assert.equal(forbidden.status, 403);
  assert.deepEqual(await forbidden.json(), { error: 'client address not in metrics.allow' });

  const offDir = tempDir(t);
  const off = await startRunning(t, writeConfig(offDir, fake.url), { connect: false });
  assert.equal((await fetch(`${off.service.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404, 'metrics are off by default');
});

test('metrics config is checked at start', () => {
  const base = { clients: [CLIENT] };
  const parse = (metrics: unknown, env: NodeJS.ProcessEnv = {}) => () => parseConfig(JSON.stringify({ ...base, metrics }), '/etc/rwgps-sync/config.json', env);
  assert.throws(parse({ enabled: true }), /metrics: expected metrics\.token \(or metrics\.tokenEnv\) or a metrics\.allow list/);
  assert.throws(parse({ enabled: true, allow: ['10.0.0.0/33'] }), /metrics\.allow\[0\]: expected an IP address or a CIDR block/);
  assert.throws(parse({ enabled: true, allow: ['localhost'] }), /metrics\.allow\[0\]/);
  assert.throws(parse({ enabled: true, tokenEnv: 'METRICS_TOKEN' }), /metrics\.tokenEnv: environment variable METRICS_TOKEN is not set/);
  const fromEnv = parse({ enabled: true, tokenEnv: 'METRICS_TOKEN' }, { METRICS_TOKEN: 'x' })();
  assert.equal(fromEnv.metrics.token, 'x');
  assert.deepEqual(fromEnv.inlineSecretKeys, ['clients[0].clientSecret']);
  assert.equal(parse(undefined)().metrics.enabled, false);
});

test('registry writes the exposition format', () => {
  const registry = new Registry();
  const counter = registry.counter('demo_total', 'A counter.');
  const histogram = registry.histogram('demo_seconds', 'A histogram.', [0.1, 1]);
  counter.inc({ reason: 'quote " and \\ and \n' }, 2);
  histogram.observe(0.05);
  histogram.observe(0.5);
  histogram.observe(5);
  assert.equal(
    registry.render(),
    [
      '# HELP demo_total A counter.',
      '# TYPE demo_total counter',
      'demo_total{reason="quote \\" and \\\\ and \\n"} 2',
      '# HELP demo_seconds A histogram.',
      '# TYPE demo_seconds histogram',
      'demo_seconds_bucket{le="0.1"} 1',
      'demo_seconds_bucket{le="1"} 2',
      'demo_seconds_bucket{le="+Inf"} 3',
      'demo_seconds_sum 5.55',
      'demo_seconds_count 3',
      '',
    ].join('\n'),
  );
  assert.throws(() => counter.inc({}, -1), /cannot decrease/);
});

test('backfill progress sums running backfills', async (t) => {
  const store = await openStore(join(tempDir(t), 'backfill.db'), { synchronous: 'normal', busyTimeoutMs: 1000 });
  t.after(() => store.close());
  assert.deepEqual(await backfillProgress(store.db), { users: 0, done: 0, remaining: 0 });

  const now = Date.now();
  const user = (id: number, state: 'syncing' | 'done', items: number) => ({
    id,
    client_api_key: CLIENT.apiKey,
    token: `token-${id}`,
    token_kind: 'oauth' as const,
    status: 'active' as const,
    status_reason: null,
    created_at: now,
    updated_at: now,
    sync_cursor: null,
    last_synced_at: null,
    backfill_state: state,
    backfill_items: items,
    backfill_started_at: now,
    backfill_finished_at: null,
  });
  await store.db.insertInto('users').values([user(1, 'syncing', 10), user(2, 'done', 50)]).execute();
  const job = (userId: number, itemId: number, state: 'available' | 'running' | 'completed') => ({
    kind: 'item',
    state,
    dedupe_key: `item:${userId}:route:${itemId}`,
    lock_key: `item:route:${itemId}`,
    user_id: userId,
    item_type: 'route' as const,
    item_id: itemId,
    action: 'updated',
    max_attempts: 3,
    run_at: now,
    created_at: now,
    updated_at: now,
  });
  await store.db
    .insertInto('jobs')
    .values([job(1, 1, 'available'), job(1, 2, 'running'), job(1, 3, 'completed'), job(2, 4, 'available')])
    .execute();

  // User 2's backfill is done, so its waiting job does not count.
  assert.deepEqual(await backfillProgress(store.db), { users: 1, done: 8, remaining: 2 });
});
