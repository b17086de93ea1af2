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
const EXPIRED_STATE_RETENTION_MS = 60 * 60_000;

/**
 * Maximum number of unexpired states. `GET /connect` needs no login, so
 * without a cap every request would add a row. A real connect holds one
 * state for 10 minutes, and 1,000 is an estimate well above the connects a
 * self-hosted server handles in that time. Used states count too, because a
 * callback marks its state used before the code is checked, and used states
 * would otherwise let anyone add rows past the cap.
 */
export const MAX_PENDING_OAUTH_STATES = 1000;

// Expired states deleted per new state. Each insert removes up to this many,
// which keeps up with the at most MAX_PENDING_OAUTH_STATES new rows per TTL.
const EXPIRED_DELETE_BATCH = 100;

export type StateCheck = { ok: true; clientApiKey: string } | { ok: false; reason: 'unknown' | 'expired' | 'used' };

export function hashState(state: string): string {
  return createHash('sha256').update(state).digest('hex');
}

/**
 * Creates and stores a new state for `clientApiKey` and returns the value to
 * send to RWGPS. Returns null, storing nothing, when MAX_PENDING_OAUTH_STATES
 * unexpired states exist already. Deletes a batch of long-expired states first.
 */
export async function createOAuthState(db: Kysely<Database>, clientApiKey: string, now = Date.now()): Promise<string | null> {
  const state = randomBytes(32).toString('base64url');
  const created = await db.transaction().execute(async (trx) => {
    const expired = trx
      .selectFrom('oauth_states')
      .select('state_sha256')
      .where('expires_at', '<', now - EXPIRED_STATE_RETENTION_MS)
      .limit(EXPIRED_DELETE_BATCH);
    await trx.deleteFrom('oauth_states').where('state_sha256', 'in', expired).execute();

    const pending = await trx
      .selectFrom((eb) => eb.selectFrom('oauth_states').select('state_sha256').where('expires_at', '>', now).limit(MAX_PENDING_OAUTH_STATES).as('p'))
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    if (Number(pending.n) >= MAX_PENDING_OAUTH_STATES) return false;

    await trx
      .insertInto('oauth_states')
      .values({ state_sha256: hashState(state), client_api_key: clientApiKey, created_at: now, expires_at: now + OAUTH_STATE_TTL_MS, used_at: null })
      .execute();
    return true;
  });
  return created ? state : null;
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
