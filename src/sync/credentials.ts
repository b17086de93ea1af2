import type { Kysely } from 'kysely';
import type { Config } from '../config/config.ts';
import { findClient } from '../config/config.ts';
import { JobFailure } from '../jobs/worker.ts';
import type { Logger } from '../log.ts';
import type { Credentials } from '../rwgps/client.ts';
import type { Database } from '../store/schema.ts';
import { getUser, requireReauthorization } from '../store/users.ts';

// Token lookup and the 401 rule shared by item and sync jobs.

/** Returns the user's credentials, or throws the JobFailure that makes the job wait for a usable token. */
export async function credentialsFor(db: Kysely<Database>, config: Config, userId: number): Promise<Credentials> {
  const user = await getUser(db, userId);
  if (!user || user.status === 'disconnected') {
    throw new JobFailure('no_token', `no connected user ${userId}`);
  }
  if (user.status === 'reauthorization_required') {
    throw new JobFailure('parked', `user ${userId} needs to reconnect`);
  }
  const client = findClient(config, user.client_api_key);
  if (!client) {
    // Dead, not parked: nothing wakes parked jobs when the config changes.
    throw new JobFailure(
      'dead',
      `user ${userId} is connected through API client ${user.client_api_key}, which is not in the config; ` +
        'add it back and run "rwgps-sync jobs retry --dead"',
    );
  }
  return { token: user.token, kind: user.token_kind, client };
}

/**
 * Handles a 401 from RWGPS for `credentials`: marks the user "reauthorization
 * required", parks their waiting jobs and throws the failure that parks this
 * job too. When the user reconnected with a new token meanwhile, the job is
 * retried with that token instead.
 */
export async function parkRejectedUser(
  db: Kysely<Database>,
  userId: number,
  credentials: Credentials,
  message: string,
  logger: Logger,
): Promise<never> {
  const result = await requireReauthorization(db, userId, credentials.token, message);
  if (result === 'token_replaced') {
    throw new JobFailure('retry', `${message}; the user reconnected meanwhile, retrying with the new token`, 0);
  }
  if (result === 'parked') {
    logger.warn('RWGPS rejected the user token; user needs to reconnect, their jobs are parked', { userId });
  }
  throw new JobFailure('parked', message);
}
