import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

// OAuth `state` values: random, stored as SHA-256 hashes with an expiry, and
// good for one callback. A callback whose state is missing, unknown, expired
// or already used is rejected before anything is sent to RWGPS.

/** How long a user has to approve at RWGPS before the state expires. */
export const OAUTH_STATE_TTL_MS = 10 * 60_000;

// Expired states are deleted this long after they expire; until then a late
// callback is reported as "expired" rather than "unknown".
const EXPIRED_STATE_RETENTION_MS = 24 * 60 * 60_000;

export type StateCheck = { ok: true; clientApiKey: string } | { ok: false; reason: 'unknown' | 'expired' | 'used' };

export function hashState(state: string): string {
  return createHash('sha256').update(state).digest('hex');
}

/** Creates and stores a new state for `clientApiKey`; returns the value to send to RWGPS. */
export async function createOAuthState(db: Kysely<Database>, clientApiKey: string, now = Date.now()): Promise<string> {
  const state = randomBytes(32).toString('base64url');
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('oauth_states').where('expires_at', '<', now - EXPIRED_STATE_RETENTION_MS).execute();
    await trx
      .insertInto('oauth_states')
      .values({ state_sha256: hashState(state), client_api_key: clientApiKey, created_at: now, expires_at: now + OAUTH_STATE_TTL_MS, used_at: null })
      .execute();
  });
  return state;
}

/**
 * Marks a state used and returns its client. Marking and checking are one
 * statement, so two callbacks racing with the same state cannot both pass.
 */
export async function consumeOAuthState(db: Kysely<Database>, state: string, now = Date.now()): Promise<StateCheck> {
  const hash = hashState(state);
  const row = await db
    .updateTable('oauth_states')
    .set({ used_at: now })
    .where('state_sha256', '=', hash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning('client_api_key')
    .executeTakeFirst();
  if (row) return { ok: true, clientApiKey: row.client_api_key };

  const existing = await db.selectFrom('oauth_states').select(['used_at', 'expires_at']).where('state_sha256', '=', hash).executeTakeFirst();
  if (!existing) return { ok: false, reason: 'unknown' };
  if (existing.used_at !== null) return { ok: false, reason: 'used' };
  return { ok: false, reason: 'expired' };
}
