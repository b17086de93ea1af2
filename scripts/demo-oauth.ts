// npm run demo:oauth: connect a user through OAuth, backfill, recover a lost delivery.
//
// Starts a fake Ride with GPS on 127.0.0.1 and the real service on a
// temporary database. Connects user 1 by following the OAuth redirects by
// hand and waits for the backfill of their library. Then changes a route at
// the fake and drops its webhook on purpose. A later webhook for the same
// user schedules a sync, which recovers the dropped change.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { startService } from '../src/service.ts';
import { listLibrary } from '../src/store/items.ts';
import { getUser, listUsers } from '../src/store/users.ts';
import { FakeRwgps, sendWebhook } from './fake-rwgps.ts';

const CLIENT = { apiKey: 'demo-api-key', clientId: 'demo-client', clientSecret: 'demo-secret' };
const LIBRARY_SIZE = 50;

function say(text: string): void {
  console.log(`\n== ${text}`);
}

async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-demo-oauth-'));
  const fake = await FakeRwgps.start({ clients: [CLIENT] });
  fake.addUser({ id: 1, name: 'Ada' });
  fake.oauth.authorizeAs = 1;
  for (let id = 1; id <= LIBRARY_SIZE; id++) fake.putRoute({ id, userId: 1, name: `Route ${id}`, trackPoints: 50 });
  fake.putTrip({ id: 900, userId: 1, name: 'Saturday ride', trackPoints: 2000 });
  fake.takeNotifications(); // made before the user connected: the backfill brings them in

  const port = await freePort();
  const configPath = join(dir, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port, publicUrl: `http://127.0.0.1:${port}` },
      database: { path: './demo.db' },
      rwgps: { baseUrl: fake.url },
      clients: [CLIENT],
      worker: { backoffBaseMs: 200, pollIntervalMs: 100 },
      sync: { intervalMinutes: 0, afterWebhookDelayMs: 500 },
      log: { level: 'warn' },
    }),
  );
  const config = loadConfig(configPath);
  const service = await startService(config, createLogger({ level: 'warn' }));
  const { db } = service.store;

  try {
    say(`fake RWGPS at ${fake.url}; rwgps-sync at ${service.url}`);

    say('1. The user opens /connect; we follow each redirect by hand');
    let url = `${service.url}/connect`;
    for (let hop = 1; ; hop++) {
      const response = await fetch(url, { redirect: 'manual' });
      const location = response.headers.get('location');
      const shown = new URL(url);
      console.log(`   ${hop}. GET ${shown.origin}${shown.pathname} -> ${response.status}${location ? ` redirect to ${new URL(location).origin}${new URL(location).pathname}` : ''}`);
      if (location === null) {
        const page = await response.text();
        console.log(`      page text: "${/<p>([^<]*)<\/p>/.exec(page)?.[1] ?? page.slice(0, 120)}"`);
        if (response.status !== 200) throw new Error('the OAuth flow did not connect the user');
        break;
      }
      url = new URL(location, url).href;
    }

    say(`2. Backfill: the sync endpoint lists ${LIBRARY_SIZE + 1} items since 1970; each becomes an item job`);
    const started = Date.now();
    await waitFor(async () => (await getUser(db, 1))?.backfill_state === 'done', 30_000);
    const summary = (await listUsers(db))[0]!;
    console.log(
      `   backfill ${summary.backfillState}: ${summary.backfillItemsSynced}/${summary.backfillItemsKnown} items in ${Date.now() - started} ms; cursor ${summary.syncCursor}`,
    );
    console.log(`   library of user 1: ${(await listLibrary(db, 1)).length} items`);

    say('3. Route 7 is renamed at RWGPS, and its webhook is lost on purpose');
    fake.putRoute({ id: 7, userId: 1, name: 'Route 7, renamed while we were not listening' });
    const lost = fake.takeNotifications();
    console.log(`   dropped: ${JSON.stringify(lost.map((n) => `${n.action} ${n.item_type} ${n.item_id}`))}`);
    console.log(`   our copy of route 7 is still named "${(await listLibrary(db, 1)).find((entry) => entry.id === 7)?.name}"`);

    say('4. A later change arrives with its webhook, which also schedules a sync of user 1');
    fake.putRoute({ id: 51, userId: 1, name: 'Route 51, delivered normally' });
    const answer = await sendWebhook(`${service.url}/webhooks/rwgps`, { notifications: fake.takeNotifications() }, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
    console.log(`   webhook response: ${answer.status} ${answer.body}`);

    await waitFor(async () => (await listLibrary(db, 1)).find((entry) => entry.id === 7)?.name?.includes('renamed') === true, 30_000);
    const library = await listLibrary(db, 1);
    console.log(`   route 7 is now named "${library.find((entry) => entry.id === 7)?.name}" (recovered by the sync)`);
    console.log(`   route 51 is named "${library.find((entry) => entry.id === 51)?.name}" (from the webhook)`);
    console.log(`   cursor moved to ${(await getUser(db, 1))?.sync_cursor}`);
    say(`done: connected through OAuth, backfilled ${summary.backfillItemsKnown} items, recovered 1 lost delivery`);
  } finally {
    await service.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

run().catch((error: unknown) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
