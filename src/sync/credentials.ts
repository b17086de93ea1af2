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
    throw new JobFailure('parked', `user ${userId} is connected through API client ${user.client_api_key}, which is not in the config`);
  }
  return { token: user.token, kind: user.token_kind, client };
}

/**
 * Handles a 401 from RWGPS: marks the user "reauthorization required", parks
 * their waiting jobs and throws the failure that parks this job too.
 */
export async function parkRejectedUser(db: Kysely<Database>, userId: number, message: string, logger: Logger): Promise<never> {
  const changed = await requireReauthorization(db, userId, message);
  if (changed) {
    logger.warn('RWGPS rejected the user token; user needs to reconnect, their jobs are parked', { userId });
  }
  throw new JobFailure('parked', message);
}
