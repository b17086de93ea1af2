import type { Hono } from 'hono';
import type { Kysely } from 'kysely';
import { errorMessage, type OutageTracker } from '../log.ts';
import { probeWritable } from '../store/db.ts';
import { latestSchemaVersion } from '../store/migrations.ts';
import type { Database } from '../store/schema.ts';
import { appliedSchemaVersion } from '../store/stats.ts';

// GET /readyz: may this process take webhooks and sync now? 200 when the
// database takes writes, every migration this program knows is applied, and
// the worker's claim loop has made a pass recently; 503 with the failing
// checks otherwise. GET /healthz (in app.ts) only says the process is up.

export interface ReadinessDeps {
  db: Kysely<Database>;
  /** Time of the worker's last claim-loop pass, in ms since the epoch; 0 before the first. */
  workerLastLoopAt: () => number;
  /** A pass older than this means the loop is stuck, in milliseconds. */
  workerStuckAfterMs: number;
  /** True once shutdown began: a stopping process is not ready. */
  stopping: () => boolean;
  /** Logs the database going unwritable and coming back, once each. */
  databaseOutage: OutageTracker;
}

export function registerReadiness(app: Hono, deps: ReadinessDeps): void {
  app.get('/readyz', async (c) => {
    const checks: Record<string, string> = {};

    try {
      await probeWritable(deps.db);
      checks.database = 'ok';
      deps.databaseOutage.success();
    } catch (error) {
      checks.database = `not writable: ${errorMessage(error)}`;
      deps.databaseOutage.failure(error);
    }

    try {
      const applied = await appliedSchemaVersion(deps.db);
      const latest = latestSchemaVersion();
      checks.migrations = applied >= latest ? 'ok' : `schema version ${applied}, expected ${latest}`;
    } catch (error) {
      checks.migrations = `unreadable: ${errorMessage(error)}`;
    }

    const lastLoopAt = deps.workerLastLoopAt();
    const sinceMs = Date.now() - lastLoopAt;
    if (lastLoopAt === 0) checks.worker = 'not started';
    else if (sinceMs > deps.workerStuckAfterMs) checks.worker = `stuck: last claim-loop pass ${Math.round(sinceMs / 1000)} s ago`;
    else checks.worker = 'ok';

    if (deps.stopping()) checks.service = 'stopping';

    const failing = Object.entries(checks).filter(([, value]) => value !== 'ok');
    if (failing.length === 0) return c.json({ status: 'ready', checks });
    const error = failing.map(([name, value]) => `${name}: ${value}`).join('; ');
    return c.json({ status: 'unavailable', error, checks }, 503);
  });
}
