import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { Config } from './config/config.ts';
import { createApp } from './http/app.ts';
import { Worker } from './jobs/worker.ts';
import type { Logger } from './log.ts';
import { RwgpsClient } from './rwgps/client.ts';
import { openStore, type Store } from './store/db.ts';
import { createItemJobHandler, ITEM_JOB } from './sync/item-job.ts';
import { VERSION } from './version.ts';

// `serve`: the HTTP server and the worker in one process, over one database.

export interface Service {
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  readonly worker: Worker;
  /** Stops accepting requests, finishes in-flight ones, stops the worker and closes the database. */
  close(graceMs?: number): Promise<void>;
}

export async function startService(config: Config, logger: Logger): Promise<Service> {
  const store = await openStore(config.database.path, {
    synchronous: config.database.synchronous,
    busyTimeoutMs: config.database.busyTimeoutMs,
  });
  const { db } = store;
  const rwgps = new RwgpsClient({
    baseUrl: config.rwgps.baseUrl,
    requestTimeoutMs: config.worker.requestTimeoutMs,
    maxRequestsPerSecond: config.rwgps.maxRequestsPerSecond,
  });

  const worker = new Worker({
    db,
    handlers: { [ITEM_JOB]: createItemJobHandler({ db, config, rwgps }) },
    concurrency: config.worker.concurrency,
    leaseMs: config.worker.leaseMs,
    pollIntervalMs: config.worker.pollIntervalMs,
    backoff: { baseMs: config.worker.backoffBaseMs, maxMs: config.worker.backoffMaxMs },
    logger,
  });

  const app = createApp({ db, config, logger, onQueued: () => worker.notify() });

  let server: ServerType;
  try {
    server = await listen(app.fetch, config.server.host, config.server.port);
  } catch (error) {
    await store.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;

  worker.start();
  logger.info('rwgps-sync started', {
    version: VERSION,
    host: config.server.host,
    port,
    database: config.database.path,
    synchronous: config.database.synchronous,
    clients: config.clients.length,
    concurrency: config.worker.concurrency,
  });

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    store,
    worker,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await worker.stop(graceMs);
        await store.close();
        logger.info('rwgps-sync stopped');
      })();
      return closing;
    },
  };
}

function listen(fetch: Parameters<typeof serve>[0]['fetch'], hostname: string, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, () => resolve(server));
    server.once('error', reject);
  });
}
