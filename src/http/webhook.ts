import type { Hono } from 'hono';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.ts';
import { findClient } from '../config/config.ts';
import { parseDeliveryBody } from '../intake/notifications.ts';
import { DeliveryCommitter } from '../intake/committer.ts';
import { recordRejectedDelivery } from '../intake/record.ts';
import { checkSignature } from '../intake/signature.ts';
import { errorMessage, type Logger } from '../log.ts';
import { isStoreUnavailable } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { readBodyWithLimit } from './read-body.ts';

// POST /webhooks/rwgps: verify, store, answer. RWGPS wants a 200 within one
// second and never retries, so this path does no network call: it checks the
// signature over the raw bytes, commits the delivery and its jobs in one
// transaction, and only then answers 200. Concurrent deliveries may share
// that transaction and its commit (see DeliveryCommitter). Our own failures answer 503, never
// 4xx, and never 200 for a delivery that was not committed.

export const WEBHOOK_PATH = '/webhooks/rwgps';
export const MAX_BODY_BYTES = 1024 * 1024;

export interface WebhookDeps {
  db: Kysely<Database>;
  config: Config;
  logger: Logger;
  /** Called after a delivery with work is committed, to wake the worker. */
  onQueued: () => void;
  /**
   * Called with every outcome, for metrics. An accepted delivery also
   * passes how many of its queued notifications had each action.
   */
  onOutcome?: (outcome: string, notifications: number, actions?: Record<string, number>) => void;
}

// Users whose notifications wait for a token, logged once per process.
const MAX_REMEMBERED_WAITING_USERS = 10_000;

export function registerWebhook(app: Hono, deps: WebhookDeps): void {
  const { db, config, logger, onQueued, onOutcome } = deps;
  const waitingUsersLogged = new Set<number>();
  const committer = new DeliveryCommitter(db, { maxAttempts: config.worker.maxAttempts, syncDelayMs: config.sync.afterWebhookDelayMs });

  const handler = async (c: import('hono').Context) => {
    const started = performance.now();
    const receivedAt = Date.now();
    const log = (
      level: 'info' | 'warn' | 'error',
      msg: string,
      outcome: string,
      fields: Record<string, unknown> = {},
      actions?: Record<string, number>,
    ) => {
      logger[level](msg, { outcome, durationMs: Math.round((performance.now() - started) * 100) / 100, ...fields });
      onOutcome?.(outcome, typeof fields.notifications === 'number' ? fields.notifications : 0, actions);
    };

    const apiKey = c.req.header('x-rwgps-api-key');
    const client = apiKey ? findClient(config, apiKey) : undefined;
    if (!client) {
      log('warn', 'delivery rejected', 'unknown_api_key', { reason: apiKey ? 'unknown x-rwgps-api-key' : 'missing x-rwgps-api-key' });
      return c.json({ error: apiKey ? 'unknown API key' : 'missing x-rwgps-api-key header' }, 401);
    }

    const read = await readBodyWithLimit(c.req.raw, MAX_BODY_BYTES);
    if (!read.ok) {
      log('warn', 'delivery rejected', 'too_large', { reason: `body over ${MAX_BODY_BYTES} bytes`, apiKey });
      return c.json({ error: `body larger than ${MAX_BODY_BYTES} bytes` }, 413);
    }
    const body = read.body;

    const signature = checkSignature(body, client.clientSecret, c.req.header('x-rwgps-signature'));
    if (signature !== 'valid') {
      log('warn', 'delivery rejected', `signature_${signature}`, { reason: `signature ${signature}`, apiKey, bytes: body.byteLength });
      return c.json({ error: signature === 'missing' ? 'missing x-rwgps-signature header' : 'invalid signature' }, 401);
    }

    // Decoding replaces invalid UTF-8 with U+FFFD; the stored body keeps the original bytes.
    const parsed = parseDeliveryBody(new TextDecoder().decode(body));
    try {
      if (!parsed.ok) {
        const deliveryId = await recordRejectedDelivery(db, client.apiKey, body, receivedAt, parsed.reason);
        log('warn', 'delivery rejected', 'malformed', { reason: parsed.reason, deliveryId, apiKey });
        return c.json({ error: parsed.reason }, 400);
      }

      const result = await committer.record({
        clientApiKey: client.apiKey,
        body,
        receivedAt,
        notifications: parsed.notifications,
        ignored: parsed.ignored,
        total: parsed.total,
      });
      if (result.queued > 0) onQueued();

      const actions: Record<string, number> = {};
      for (const notification of parsed.notifications) actions[notification.action] = (actions[notification.action] ?? 0) + 1;
      log(
        'info',
        'delivery accepted',
        'accepted',
        { deliveryId: result.deliveryId, apiKey, notifications: parsed.total, queued: result.queued, ignored: result.ignored },
        actions,
      );
      for (const entry of parsed.ignored) {
        logger.warn('notification ignored', { deliveryId: result.deliveryId, position: entry.position, reason: entry.reason });
      }
      if (parsed.total > 100) {
        logger.warn('delivery has more notifications than RWGPS documents (100); all were queued', {
          deliveryId: result.deliveryId,
          notifications: parsed.total,
        });
      }
      for (const userId of result.waitingUsers) {
        if (waitingUsersLogged.has(userId) || waitingUsersLogged.size >= MAX_REMEMBERED_WAITING_USERS) continue;
        waitingUsersLogged.add(userId);
        logger.warn('notifications queued for a user without a usable token; they wait until the user connects', { userId });
      }

      return c.json({
        status: 'accepted',
        delivery: result.deliveryId,
        notifications: parsed.total,
        queued: result.queued,
        ignored: result.ignored,
      });
    } catch (error) {
      const reason = isStoreUnavailable(error) ? 'database unavailable' : 'internal error';
      log('error', 'delivery not stored', 'store_failed', { reason, error: errorMessage(error), apiKey, bytes: body.byteLength });
      return c.json({ error: `${reason}; delivery not stored` }, 503);
    }
  };

  // A trailing slash is served the same way: RWGPS does not follow redirects.
  app.post(WEBHOOK_PATH, handler);
  app.post(`${WEBHOOK_PATH}/`, handler);
}
