import { Hono } from 'hono';
import { sql, type Kysely } from 'kysely';
import { errorMessage, type Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { registerReadiness, type ReadinessDeps } from './health.ts';
import { registerMetrics, type MetricsDeps } from './metrics.ts';
import { registerOAuth } from './oauth.ts';
import { registerWebhook, type WebhookDeps } from './webhook.ts';

export interface AppDeps extends WebhookDeps {
  db: Kysely<Database>;
  logger: Logger;
  /** GET /readyz; absent in apps built without a worker. */
  readiness?: Omit<ReadinessDeps, 'db'>;
  /** GET /metrics; registered only when metrics are enabled. */
  metrics?: Omit<MetricsDeps, 'logger'>;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  // While the service stops, every answer closes its connection, so a
  // keep-alive client opens a new one, which the closed listener refuses,
  // instead of sending more requests on the old one.
  const stopping = deps.readiness?.stopping;
  if (stopping) {
    app.use('*', async (c, next) => {
      await next();
      if (stopping()) c.header('connection', 'close');
    });
  }

  registerWebhook(app, deps);
  if (deps.readiness) registerReadiness(app, { db: deps.db, ...deps.readiness });
  if (deps.metrics) registerMetrics(app, { logger: deps.logger, ...deps.metrics });
  registerOAuth(app, deps);

  app.get('/healthz', async (c) => {
    try {
      await sql`select 1`.execute(deps.db);
      return c.json({ status: 'ok' });
    } catch (error) {
      deps.logger.error('health check failed', { error: errorMessage(error) });
      return c.json({ status: 'unavailable', error: 'database unavailable' }, 503);
    }
  });

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // Unknown failures are ours: log them and answer a bare 500, never a 4xx.
  app.onError((error, c) => {
    deps.logger.error('request failed', { method: c.req.method, path: c.req.path, error: errorMessage(error) });
    return c.json({ error: 'internal error' }, 500);
  });

  return app;
}
