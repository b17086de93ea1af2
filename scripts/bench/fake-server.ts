// Child process for the sync and footprint benchmarks: a FakeRwgps on
// 127.0.0.1 with the benchmark users and items, in its own process so its
// CPU time and memory are not counted as the service's. Prints
// `READY {"url": ...}` once it listens; SIGTERM stops it.
//
//   --latency MS       delay before every API response
//   --routes N         routes 1..N owned by the benchmark users, 100 points each
//   --trips N:POINTS   trips 1..N with POINTS track points each
//   --big-trip ID:POINTS  one more trip, for the footprint benchmark

import { parseArgs } from 'node:util';
import { FakeRwgps } from '../fake-rwgps.ts';
import { BENCH_CLIENT, BENCH_USERS, ownerOf, userToken } from './fixtures.ts';

const { values } = parseArgs({
  options: {
    latency: { type: 'string', default: '50' },
    routes: { type: 'string', default: '0' },
    trips: { type: 'string', default: '0:0' },
    'big-trip': { type: 'string' },
  },
});

async function main(): Promise<void> {
  const fake = await FakeRwgps.start({ clients: [BENCH_CLIENT], latencyMs: Number(values.latency) });
  for (const id of BENCH_USERS) fake.addUser({ id, accessToken: userToken(id) });
  const routes = Number(values.routes);
  for (let id = 1; id <= routes; id++) fake.putRoute({ id, userId: ownerOf(id), trackPoints: 100 });
  const [trips, points] = values.trips.split(':').map(Number) as [number, number];
  for (let id = 1; id <= trips; id++) fake.putTrip({ id, userId: ownerOf(id), trackPoints: points });
  if (values['big-trip']) {
    const [id, bigPoints] = values['big-trip'].split(':').map(Number) as [number, number];
    fake.putTrip({ id, userId: ownerOf(id), trackPoints: bigPoints });
  }
  fake.takeNotifications();
  fake.renderItemBodies();

  console.log(`READY ${JSON.stringify({ url: fake.url })}`);
  process.once('SIGTERM', () => {
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().catch((error: unknown) => {
  console.error(`fake-server failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
