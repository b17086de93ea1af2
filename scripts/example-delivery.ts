// The documented example webhook and the fake Ride with GPS state it needs,
// shared by `npm run demo` and the end-to-end smoke (scripts/smoke.ts).
import type { FakeRwgps } from './fake-rwgps.ts';

export const DEMO_CLIENT = { apiKey: 'demo-api-key', clientId: 'demo-client', clientSecret: 'demo-secret' };

export const DEMO_USERS = [
  { id: 1, name: 'Ada', token: 'demo-token-user-1' },
  { id: 2, name: 'Grace', token: 'demo-token-user-2' },
];

// The example body from the RWGPS webhook documentation, byte for byte in
// content: a deleted route, a route of user 1 pinned by user 2, a new route.
export const EXAMPLE_BODY = JSON.stringify({
  notifications: [
    { user_id: 1, item_type: 'route', item_id: 101, item_user_id: 1, item_url: 'https://ridewithgps.com/routes/101.json', action: 'deleted', collection: null },
    { user_id: 2, item_type: 'route', item_id: 102, item_user_id: 1, item_url: 'https://ridewithgps.com/routes/102.json', action: 'added', collection: { id: 2, type: 'pinned', url: null } },
    { user_id: 1, item_type: 'route', item_id: 201, item_user_id: 1, item_url: 'https://ridewithgps.com/routes/201.json', action: 'created', collection: null },
  ],
}, null, 2);

/** Adds the demo users and routes to a fake started with DEMO_CLIENT; route 101 is already deleted. */
export function seedDemoFake(fake: FakeRwgps): void {
  for (const user of DEMO_USERS) fake.addUser({ id: user.id, name: user.name, accessToken: user.token });
  fake.putRoute({ id: 101, userId: 1, name: 'Old loop (deleted)' });
  fake.putRoute({ id: 102, userId: 1, name: 'Coast road', visibility: 'public' });
  fake.putRoute({ id: 201, userId: 1, name: 'Morning climb' });
  fake.deleteItem('route', 101);
}
