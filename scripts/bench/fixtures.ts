// Users, tokens and deliveries shared by the benchmarks and their child
// processes. No other benchmark module is imported here, so the service
// child can be bundled without them.

import { createHmac } from 'node:crypto';

export const BENCH_CLIENT = { apiKey: 'bench-api-key', clientId: 'bench-client', clientSecret: 'bench-secret' };
export const BENCH_USERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
export const NOTIFICATIONS_PER_DELIVERY = 100;

/** The benchmark user who owns route or trip `id` at the fake. */
export function ownerOf(id: number): number {
  return BENCH_USERS[id % BENCH_USERS.length]!;
}

export function userToken(userId: number): string {
  return `bench-token-${userId}`;
}

/**
 * Builds delivery number `n`: 100 notifications for items no other delivery
 * names, so none of its jobs merge into an earlier one. Pretty-printed like
 * the example in the RWGPS webhook documentation, about 25 KB.
 */
export function deliveryBody(n: number): Buffer {
  const notifications = [];
  for (let i = 0; i < NOTIFICATIONS_PER_DELIVERY; i++) {
    const itemId = n * NOTIFICATIONS_PER_DELIVERY + i + 1;
    const userId = BENCH_USERS[(n + i) % BENCH_USERS.length]!;
    const type = i % 4 === 0 ? 'trip' : 'route';
    const pinned = i % 10 === 9;
    const ownAction = i % 3 === 0 ? 'created' : 'updated';
    notifications.push({
      user_id: userId,
      item_type: type,
      item_id: itemId,
      item_user_id: pinned ? BENCH_USERS[(n + i + 1) % BENCH_USERS.length]! : userId,
      item_url: `https://ridewithgps.com/${type}s/${itemId}.json`,
      action: pinned ? 'added' : ownAction,
      collection: pinned ? { id: userId, type: 'pinned', url: null } : null,
    });
  }
  return Buffer.from(JSON.stringify({ notifications }, null, 2));
}

export function sign(body: Buffer): string {
  return createHmac('sha256', BENCH_CLIENT.clientSecret).update(body).digest('hex');
}
