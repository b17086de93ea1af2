// Child process of the ingest benchmark. Runs one of two servers on
// 127.0.0.1 and prints `READY {"url": ...}` once it listens:
//
//   --mode service   the real service (webhook, worker, database) with
//                    --synchronous full|normal, --db <file>, --fake <url>
//   --mode verify    the verify-only limit: a Hono route on @hono/node-server
//                    that reads the body, checks the HMAC and parses the
//                    JSON, then answers 200. Every correct receiver does this.
//
// Logs go to --log <file>, because a pipe to the parent would cost the
// parent's CPU, which generates the load.

import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createWriteStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { parseConfig } from '../../src/config/config.ts';
import { readBodyWithLimit } from '../../src/http/read-body.ts';
import { MAX_BODY_BYTES, WEBHOOK_PATH } from '../../src/http/webhook.ts';
import { checkSignature } from '../../src/intake/signature.ts';
import { createLogger } from '../../src/log.ts';
import { startService } from '../../src/service.ts';
import { connectUser } from '../../src/store/users.ts';
import { BENCH_CLIENT, BENCH_USERS, userToken } from './fixtures.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    synchronous: { type: 'string', default: 'full' },
    db: { type: 'string' },
    fake: { type: 'string' },
    log: { type: 'string', default: '/dev/null' },
    concurrency: { type: 'string', default: '4' },
  },
});

async function startVerifyOnly(): Promise<string> {
  const app = new Hono();
  app.post(WEBHOOK_PATH, async (c) => {
    if (c.req.header('x-rwgps-api-key') !== BENCH_CLIENT.apiKey) return c.json({ error: 'unknown API key' }, 401);
    const read = await readBodyWithLimit(c.req.raw, MAX_BODY_BYTES);
    if (!read.ok) return c.json({ error: 'body too large' }, 413);
    if (checkSignature(read.body, BENCH_CLIENT.clientSecret, c.req.header('x-rwgps-signature')) !== 'valid') {
      return c.json({ error: 'invalid signature' }, 401);
    }
    const parsed = JSON.parse(new TextDecoder().decode(read.body)) as { notifications: unknown[] };
    return c.json({ status: 'accepted', notifications: parsed.notifications.length });
  });
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => {
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

async function startRealService(): Promise<{ url: string; close: () => Promise<void> }> {
  if (!values.db || !values.fake) throw new Error('--mode service needs --db and --fake');
  const config = parseConfig(
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { path: values.db, synchronous: values.synchronous },
      rwgps: { baseUrl: values.fake, maxRequestsPerSecond: 0 },
      clients: [BENCH_CLIENT],
      worker: { concurrency: Number(values.concurrency), pollIntervalMs: 100 },
    }),
    `${values.db}.config.json`,
  );
  const logger = createLogger({ level: 'info', sink: createWriteStream(values.log) });
  const service = await startService(config, logger);
  for (const userId of BENCH_USERS) {
    await connectUser(service.store.db, { id: userId, clientApiKey: BENCH_CLIENT.apiKey, token: userToken(userId), tokenKind: 'oauth' });
  }
  return { url: service.url, close: () => service.close(5000) };
}

async function main(): Promise<void> {
  if (values.mode === 'verify') {
    const url = await startVerifyOnly();
    console.log(`READY ${JSON.stringify({ url })}`);
    process.once('SIGTERM', () => process.exit(0));
    return;
  }
  if (values.mode !== 'service') throw new Error('--mode must be service or verify');
  const service = await startRealService();
  console.log(`READY ${JSON.stringify({ url: service.url })}`);
  process.once('SIGTERM', () => {
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().catch((error: unknown) => {
  console.error(`ingest-server failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
