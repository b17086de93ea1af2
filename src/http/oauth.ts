import type { Context, Hono } from 'hono';
import type { Kysely } from 'kysely';
import type { ClientConfig, Config } from '../config/config.ts';
import { findClient } from '../config/config.ts';
import { errorMessage, type Logger } from '../log.ts';
import { RwgpsClient } from '../rwgps/client.ts';
import { authorizeUrl, exchangeCode, fetchTokenOwner } from '../rwgps/oauth.ts';
import { consumeOAuthState, createOAuthState, MAX_PENDING_OAUTH_STATES } from '../store/oauth-states.ts';
import type { Database } from '../store/schema.ts';
import { getUser } from '../store/users.ts';
import { connectUserAndSync } from '../sync/connect.ts';
import { htmlPage } from './html-page.ts';

// The OAuth connect flow for users in a browser:
//   GET /connect[?client=<apiKey>]  -> 302 to RWGPS /oauth/authorize with a fresh state
//   GET /oauth/callback?code&state  -> check the state, exchange the code, store the token
// The callback checks the state before anything else and sends nothing to
// RWGPS for a missing, unknown, expired or used one. Nothing is stored unless
// the exchange and the user lookup both succeed.

export const CONNECT_PATH = '/connect';
export const CALLBACK_PATH = '/oauth/callback';

export interface OAuthDeps {
  db: Kysely<Database>;
  config: Config;
  logger: Logger;
  /** Called after the connect sync was queued, to wake the worker. */
  onQueued: () => void;
}

const STATE_PROBLEMS = {
  missing: 'The link has no state parameter, so it did not come from this server.',
  unknown: 'The link\u2019s state is not one this server issued.',
  expired: 'The link has expired. Authorization links are valid for 10 minutes.',
  used: 'The link was already used.',
} as const;

export function registerOAuth(app: Hono, deps: OAuthDeps): void {
  const { db, config, logger, onQueued } = deps;
  const rwgps = new RwgpsClient({ baseUrl: config.rwgps.baseUrl, requestTimeoutMs: config.worker.requestTimeoutMs });
  const endpoints = { baseUrl: config.rwgps.baseUrl, requestTimeoutMs: config.worker.requestTimeoutMs };
  const publicUrl = config.server.publicUrl;
  const redirectUri = publicUrl === null ? null : `${publicUrl}${CALLBACK_PATH}`;

  const connectLink = (client: ClientConfig | undefined): string => {
    const path = `${publicUrl ?? ''}${CONNECT_PATH}`;
    return client !== undefined && config.clients.length > 1 ? `${path}?client=${encodeURIComponent(client.apiKey)}` : path;
  };

  // At most one log line per minute about rejected connects, with the count since the last one.
  let capLoggedAt = -Infinity;
  let capRejected = 0;
  const logCapReached = () => {
    capRejected++;
    const now = Date.now();
    if (now - capLoggedAt < 60_000) return;
    logger.warn('OAuth connect rejected: too many pending authorizations; GET /connect may be flooded', {
      limit: MAX_PENDING_OAUTH_STATES,
      rejected: capRejected,
    });
    capLoggedAt = now;
    capRejected = 0;
  };

  const notConfigured = (c: Context) =>
    c.json({ error: 'OAuth connect is disabled: server.publicUrl is not set in the config; set it to the https URL at which users reach this server' }, 503);

  app.get(CONNECT_PATH, async (c) => {
    if (redirectUri === null) return notConfigured(c);
    const apiKey = c.req.query('client');
    let client: ClientConfig | undefined;
    if (apiKey === undefined) {
      if (config.clients.length > 1) return c.json({ error: 'several API clients are configured; name one with ?client=<apiKey>' }, 400);
      client = config.clients[0];
    } else {
      client = findClient(config, apiKey);
      if (!client) return c.json({ error: 'unknown client; ?client= must be the apiKey of a configured API client' }, 400);
    }
    if (!client) return notConfigured(c);

    const state = await createOAuthState(db, client.apiKey);
    c.header('cache-control', 'no-store');
    if (state === null) {
      logCapReached();
      c.header('retry-after', '60');
      return c.json({ error: 'too many pending authorizations; try again in a few minutes' }, 429);
    }
    return c.redirect(authorizeUrl(config.rwgps.baseUrl, client, redirectUri, state), 302);
  });

  app.get(CALLBACK_PATH, async (c) => {
    if (redirectUri === null) return notConfigured(c);
    c.header('cache-control', 'no-store');
    const fail = (status: 400 | 403 | 502 | 503, title: string, message: string, reason: string, client?: ClientConfig) => {
      logger.warn('oauth callback failed', { reason, status, ...(client ? { apiKey: client.apiKey } : {}) });
      return c.html(htmlPage({ title, message, link: { href: connectLink(client), text: 'Connect again' } }), status);
    };

    const state = c.req.query('state');
    const checked = state === undefined || state === '' ? ({ ok: false, reason: 'missing' } as const) : await consumeOAuthState(db, state);
    if (!checked.ok) return fail(400, 'Connection failed', STATE_PROBLEMS[checked.reason], `state ${checked.reason}`);
    const client = findClient(config, checked.clientApiKey);
    if (!client) return fail(400, 'Connection failed', 'The API client of this link is no longer configured.', 'client removed from config');

    const error = c.req.query('error');
    if (error !== undefined) {
      const denied = error === 'access_denied';
      const message = denied
        ? 'Authorization was denied at Ride with GPS, so no account was connected.'
        : `Ride with GPS reported an error (${error.slice(0, 100)}), so no account was connected.`;
      return fail(denied ? 403 : 400, denied ? 'Authorization denied' : 'Connection failed', message, `rwgps error ${error.slice(0, 100)}`, client);
    }
    const code = c.req.query('code');
    if (code === undefined || code === '') {
      return fail(400, 'Connection failed', 'Ride with GPS sent no authorization code.', 'missing code', client);
    }

    const exchange = await exchangeCode(endpoints, client, code, redirectUri);
    if (!exchange.ok) {
      return exchange.kind === 'rejected'
        ? fail(400, 'Connection failed', 'Ride with GPS rejected the authorization code. It may have been used already or have expired.', exchange.message, client)
        : fail(502, 'Ride with GPS unavailable', 'Ride with GPS could not complete the connection. Please try again in a few minutes.', exchange.message, client);
    }

    let userId = exchange.userId;
    if (userId === null) {
      const owner = await fetchTokenOwner(rwgps, client, exchange.accessToken);
      if (!owner.ok) {
        return fail(502, 'Ride with GPS unavailable', 'Ride with GPS did not say which account was connected. Please try again.', owner.message, client);
      }
      userId = owner.userId;
    }

    try {
      const before = await getUser(db, userId);
      const result = await connectUserAndSync(db, { id: userId, clientApiKey: client.apiKey, token: exchange.accessToken, tokenKind: 'oauth' }, config.worker.maxAttempts);
      onQueued();
      logger.info('user connected through OAuth', {
        userId,
        apiKey: client.apiKey,
        previousStatus: before?.status ?? null,
        jobsWoken: result.jobsWoken,
        sync: result.backfill ? 'backfill' : 'catch-up',
      });
      const what = result.backfill ? 'Your routes and trips are being copied now.' : 'Changes since the last sync are being copied now.';
      return c.html(htmlPage({ title: 'Account connected', message: `Ride with GPS account ${userId} is connected. ${what}` }), 200);
    } catch (storeError) {
      logger.error('could not store the OAuth token', { userId, error: errorMessage(storeError) });
      return fail(503, 'Connection failed', 'The account could not be saved. Please try again.', 'store failed', client);
    }
  });
}
