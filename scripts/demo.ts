// npm run demo: the documented example webhook, end to end.
//
// Starts a fake Ride with GPS on 127.0.0.1, the real service on a temporary
// database, connects two users, sends the example delivery from the RWGPS
// webhook documentation and prints both users' mirrored libraries.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { listLibrary } from '../src/store/items.ts';
import { connectUser } from '../src/store/users.ts';
import { startService } from '../src/service.ts';
import { createLogger } from '../src/log.ts';
import { DEMO_CLIENT, EXAMPLE_BODY, seedDemoFake } from './example-delivery.ts';
import { FakeRwgps, sendWebhook } from './fake-rwgps.ts';

const CLIENT = DEMO_CLIENT;

async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-demo-'));
  const fake = await FakeRwgps.start({ clients: [CLIENT] });
  seedDemoFake(fake);

  const configPath = join(dir, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { path: './demo.db' },
      rwgps: { baseUrl: fake.url },
      clients: [CLIENT],
      worker: { backoffBaseMs: 200, pollIntervalMs: 100 },
    }),
  );
  const config = loadConfig(configPath);
  const service = await startService(config, createLogger({ level: 'info' }));

  try {
    console.log(`\nfake RWGPS at ${fake.url}; rwgps-sync at ${service.url}; database ${config.database.path}\n`);
    await connectUser(service.store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'demo-token-user-1', tokenKind: 'oauth' });
    await connectUser(service.store.db, { id: 2, clientApiKey: CLIENT.apiKey, token: 'demo-token-user-2', tokenKind: 'oauth' });

    const answer = await sendWebhook(`${service.url}/webhooks/rwgps`, EXAMPLE_BODY, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
    console.log(`\nwebhook answered ${answer.status} ${answer.body}\n`);
    if (answer.status !== 200) throw new Error('the webhook did not accept the example delivery');

    await waitForIdle(service.store.db, 15_000);
    for (const userId of [1, 2]) {
      console.log(`\nlibrary of user ${userId}:`);
      console.table(
        (await listLibrary(service.store.db, userId)).map((e) => ({
          type: e.type,
          id: e.id,
          owner: e.ownerId,
          relation: e.relation,
          name: e.name,
          deleted: e.deleted,
        })),
      );
    }
    console.log('\nroute 201 synced for its owner, route 102 pinned by user 2, route 101 deleted.');
  } finally {
    await service.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitForIdle(db: import('kysely').Kysely<import('../src/store/schema.ts').Database>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('state', 'in', ['available', 'running', 'retryable'])
      .executeTakeFirstOrThrow();
    if (Number(row.n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`jobs still pending after ${timeoutMs} ms`);
}

run().catch((error: unknown) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
