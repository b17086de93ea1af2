// Shared set-up for the OAuth and sync tests: a fake RWGPS, the real service
// on a temporary SQLite file and a free loopback port, and polling helpers.
import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { FakeRwgps } from '../scripts/fake-rwgps.ts';
import { waitFor } from './helpers.ts';

export const CLIENT = { apiKey: 'key-1', clientId: 'client-1', clientSecret: 'secret-1' };

export interface Stack {
  fake: FakeRwgps;
  service: Service;
  config: Config;
  dir: string;
  /** Every log line the service wrote, parsed. */
  logs: Record<string, unknown>[];
}

/** Starts the fake and the service; both stop when the test ends. `configure` edits the config JSON. */
export async function startStack(t: TestContext, configure: (config: Record<string, any>) => void = () => {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-test-'));
  const fake = await FakeRwgps.start({ clients: [CLIENT] });
  const port = await freePort();
  const raw: Record<string, any> = {
    server: { host: '127.0.0.1', port, publicUrl: `http://127.0.0.1:${port}` },
    database: { path: './test.db', synchronous: 'normal' },
    // No request rate limit: a backfill test syncs 1,000 items from the fake.
    rwgps: { baseUrl: fake.url, maxRequestsPerSecond: 0 },
    clients: [CLIENT],
    worker: { backoffBaseMs: 50, backoffMaxMs: 500, pollIntervalMs: 50, requestTimeoutMs: 5000, leaseMs: 10_000 },
    sync: { intervalMinutes: 0, afterWebhookDelayMs: 0 },
    log: { level: 'info' },
  };
  configure(raw);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  const config = loadConfig(join(dir, 'config.json'));
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', sink: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const service = await startService(config, logger);
  t.after(async () => {
    await service.close(2000);
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { fake, service, config, dir, logs };
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

export { waitFor };

export interface Hop {
  url: string;
  status: number;
  location: string | null;
}

/** GETs `url` and follows redirects by hand (at most 5), recording each hop. Returns the hops and the last response's text. */
export async function followRedirects(url: string): Promise<{ hops: Hop[]; status: number; body: string }> {
  const hops: Hop[] = [];
  let current = url;
  for (let i = 0; i < 5; i++) {
    const response = await fetch(current, { redirect: 'manual' });
    const location = response.headers.get('location');
    hops.push({ url: current, status: response.status, location });
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel();
      current = new URL(location, current).href;
      continue;
    }
    return { hops, status: response.status, body: await response.text() };
  }
  throw new Error(`more than 5 redirects from ${url}`);
}

/** Counts jobs of one kind and user in the given states. */
export async function countJobs(service: Service, kind: string, userId: number, states: string[]): Promise<number> {
  const row = await service.store.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('kind', '=', kind)
    .where('user_id', '=', userId)
    .where('state', 'in', states as any)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Waits until no job is available, running or retryable. */
export async function waitForIdle(service: Service, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const row = await service.store.db
        .selectFrom('jobs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('state', 'in', ['available', 'running', 'retryable'])
        .executeTakeFirstOrThrow();
      return Number(row.n) === 0;
    },
    { what: 'the queue to drain', timeoutMs },
  );
}
