import type { Config } from './config/config.ts';
import { warnIfSecretsReadable } from './config/permissions.ts';
import { createApp } from './http/app.ts';
import { listen, type Listener } from './http/listen.ts';
import { Worker } from './jobs/worker.ts';
import { OutageTracker, type Logger } from './log.ts';
import { ServiceMetrics } from './metrics/service-metrics.ts';
import { RwgpsClient } from './rwgps/client.ts';
import { openStore, type Store } from './store/db.ts';
import { startMaintenance } from './maintenance.ts';
import { BackfillTracker } from './sync/backfill-tracker.ts';
import { createItemJobHandler, ITEM_JOB } from './sync/item-job.ts';
import { SyncScheduler } from './sync/scheduler.ts';
import { createSyncJobHandler, SYNC_JOB } from './sync/sync-job.ts';
import { COMMIT, VERSION } from './version.ts';

// `serve`: the HTTP server and the worker in one process, over one database.

export interface Service {
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  readonly worker: Worker;
  readonly metrics: ServiceMetrics;
  /**
   * Stops accepting connections, answers the requests already accepted,
   * stops the worker (in-flight jobs get `graceMs`, default
   * worker.shutdownGraceMs, then their leases are handed back) and closes
   * the database.
   */
  close(graceMs?: number): Promise<void>;
}

// A claim loop that has not made a pass for this long is reported stuck by
// /readyz. One pass can wait for the database lock (busy timeout) twice.
const WORKER_STUCK_AFTER_MS = 60_000;

export async function startService(config: Config, logger: Logger): Promise<Service> {
  warnIfSecretsReadable(config, logger);
  const store = await openStore(config.database.path, {
    synchronous: config.database.synchronous,
    busyTimeoutMs: config.database.busyTimeoutMs,
  });
  const { db } = store;
  const metrics = new ServiceMetrics();
  const rwgpsOutage = new OutageTracker(logger, 'RWGPS');
  const databaseOutage = new OutageTracker(logger, 'database');
  let stopping = false;

  const rwgps = new RwgpsClient({
    baseUrl: config.rwgps.baseUrl,
    requestTimeoutMs: config.worker.requestTimeoutMs,
    maxRequestsPerSecond: config.rwgps.maxRequestsPerSecond,
    onRequest: (outcome) => {
      metrics.rwgpsRequest(outcome);
      // 429, 5xx, timeouts and connection errors mean RWGPS is unwell;
      // any other answer means it is up, whatever it said about the item.
      if (outcome.kind === 'retry') rwgpsOutage.failure(outcome.message ?? `status ${outcome.status}`);
      else rwgpsOutage.success();
    },
  });

  const backfills = new BackfillTracker(db, logger);
  // The sync handler and the scheduler wake the worker, which is created after them.
  const wakeWorker = () => worker.notify();
  const worker: Worker = new Worker({
    db,
    handlers: {
      [ITEM_JOB]: createItemJobHandler({ db, config, rwgps }),
      [SYNC_JOB]: createSyncJobHandler({ db, config, rwgps, onQueued: wakeWorker, logger }),
    },
    concurrency: config.worker.concurrency,
    leaseMs: config.worker.leaseMs,
    pollIntervalMs: config.worker.pollIntervalMs,
    backoff: { baseMs: config.worker.backoffBaseMs, maxMs: config.worker.backoffMaxMs },
    logger,
    onAttempt: (job, outcome, durationMs) => {
      metrics.jobAttempt(job, outcome, durationMs);
      if (job.kind === ITEM_JOB) backfills.noteItemAttempt(job.user_id);
    },
  });
  const scheduler = new SyncScheduler({
    db,
    intervalMs: config.sync.intervalMinutes * 60_000,
    maxAttempts: config.worker.maxAttempts,
    logger,
    onQueued: wakeWorker,
  });

  const maintenance = startMaintenance({ store, config, logger, busy: () => worker.inFlight > 0 });

  const app = createApp({
    db,
    config,
    logger,
    onQueued: () => worker.notify(),
    onOutcome: (outcome, _notifications, actions) => {
      metrics.deliveryOutcome(outcome, actions);
      maintenance.noteWrite();
      if (outcome === 'store_failed') databaseOutage.failure('a delivery could not be stored; webhooks are answered 503');
      else if (outcome === 'accepted' || outcome === 'malformed') databaseOutage.success();
    },
    readiness: {
      workerLastLoopAt: () => worker.lastLoopAt,
      workerStuckAfterMs: WORKER_STUCK_AFTER_MS + config.worker.pollIntervalMs,
      stopping: () => stopping,
      databaseOutage,
    },
    metrics: { config: config.metrics, render: () => metrics.render(db, store.path) },
  });

  let server: Listener;
  try {
    server = await listen((request, env) => app.fetch(request, env), config.server.host, config.server.port);
  } catch (error) {
    await maintenance.stop();
    await store.close();
    throw error;
  }
  const { port } = server;
  const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;

  worker.start();
  scheduler.start();
  if (config.server.publicUrl === null) {
    logger.warn('server.publicUrl is not set; GET /connect returns 503 until it is set', { config: config.file });
  }
  logger.info('rwgps-sync started', {
    version: VERSION,
    commit: COMMIT,
    runtime: runtimeName(),
    sqliteDriver: store.driver,
    host: config.server.host,
    port,
    database: config.database.path,
    synchronous: config.database.synchronous,
    clients: config.clients.length,
    concurrency: config.worker.concurrency,
    metrics: config.metrics.enabled,
    syncIntervalMinutes: config.sync.intervalMinutes,
  });

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    store,
    worker,
    metrics,
    close(graceMs = config.worker.shutdownGraceMs) {
      closing ??= (async () => {
        stopping = true;
        await server.close(graceMs);
        await scheduler.stop();
        await worker.stop(graceMs);
        await backfills.stop();
        await maintenance.stop();
        await store.close();
        logger.info('rwgps-sync stopped');
      })();
      return closing;
    },
  };
}

function runtimeName(): string {
  const deno = (globalThis as { Deno?: { version?: { deno?: string } } }).Deno;
  if (deno?.version?.deno) return `deno ${deno.version.deno}`;
  const sea = process.getBuiltinModule?.('node:sea') as { isSea(): boolean } | undefined;
  return `node ${process.version}${sea?.isSea() ? ' (single executable)' : ''}`;
}
