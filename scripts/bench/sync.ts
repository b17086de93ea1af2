// Benchmark 2, sync: a backlog of 5,000 items (4,950 routes of 100 points
// and 50 trips of 20,000 points, one trip every 100 items) against the fake
// RWGPS with 50 ms latency per request. The real worker and item handler
// drain it at concurrency 1, 4 and 16. The bound is concurrency / latency.
//
// At 20 items/s, concurrency 1 would need over 4 minutes for the whole
// backlog, so concurrency 1 and 4 run for a fixed time on the front of the
// backlog and concurrency 16 drains the rest. CPU time per item is this
// process's (worker and SQLite); the fake runs in a child process.
// The RWGPS rate limit is set above the bound, and the fake's request log is
// checked against it. Runs with synchronous normal, then full.
//
//   npx tsx scripts/bench/sync.ts [--smoke]

import { join } from 'node:path';
import { parseConfig } from '../../src/config/config.ts';
import { enqueue, type NewJob } from '../../src/jobs/queue.ts';
import { Worker } from '../../src/jobs/worker.ts';
import { createLogger } from '../../src/log.ts';
import { RwgpsClient } from '../../src/rwgps/client.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { connectUser } from '../../src/store/users.ts';
import { createItemJobHandler, ITEM_JOB, itemDedupeKey, itemLockKey } from '../../src/sync/item-job.ts';
import { BENCH_CLIENT, BENCH_USERS, ownerOf, userToken } from './fixtures.ts';
import { childUrl, parseBenchArgs, printTable, round, sleep, startReadyChild, tempDir, writeResult } from './lib.ts';

const args = parseBenchArgs();
const LATENCY_MS = 50;
const TRIPS = args.smoke ? 3 : 50;
const TRIP_POINTS = 20_000;
const ITEMS = args.smoke ? 300 : 5000;
const ROUTES = ITEMS - TRIPS;
const MAX_REQUESTS_PER_SECOND = Number(process.env.BENCH_SYNC_RATE ?? 400);
const PHASES = [
  { concurrency: 1, durationMs: args.smoke ? 1000 : 8000 },
  { concurrency: 4, durationMs: args.smoke ? 1000 : 10_000 },
  { concurrency: 16, durationMs: args.smoke ? 10_000 : 60_000 },
];
const quietLogger = createLogger({ level: 'error', sink: { write: () => true } });

interface PhaseResult {
  concurrency: number;
  items: number;
  trips: number;
  failures: number;
  seconds: number;
  itemsPerSecond: number;
  bound: number;
  ratio: number;
  cpuMsPerItem: number;
}

// The backlog in claim order: a trip every ITEMS / TRIPS items, routes between.
function backlog(): NewJob[] {
  const jobs: NewJob[] = [];
  let route = 0;
  let trip = 0;
  const tripEvery = Math.floor(ITEMS / TRIPS);
  for (let n = 0; n < ITEMS; n++) {
    const isTrip = n % tripEvery === tripEvery - 1 && trip < TRIPS;
    const type = isTrip ? 'trip' : 'route';
    const id = isTrip ? ++trip : ++route;
    const userId = ownerOf(id);
    jobs.push({
      kind: ITEM_JOB,
      dedupeKey: itemDedupeKey(userId, type, id, 'created'),
      lockKey: itemLockKey(type, id),
      userId,
      state: 'available',
      itemType: type,
      itemId: id,
      action: 'created',
      maxAttempts: 3,
    });
  }
  return jobs;
}

// Completions across all phases, including jobs that finish while a phase stops.
let completedTotal = 0;

async function runPhase(store: Store, rwgps: RwgpsClient, fakeUrl: string, concurrency: number, durationMs: number): Promise<PhaseResult> {
  const config = parseConfig(JSON.stringify({ rwgps: { baseUrl: fakeUrl }, clients: [BENCH_CLIENT] }), join(store.path, '..', 'config.json'));
  let items = 0;
  let trips = 0;
  let failures = 0;
  const worker = new Worker({
    db: store.db,
    handlers: { [ITEM_JOB]: createItemJobHandler({ db: store.db, config, rwgps }) },
    concurrency,
    leaseMs: 60_000,
    pollIntervalMs: 20,
    backoff: { baseMs: 1000, maxMs: 1000 },
    logger: quietLogger,
    onAttempt: (job, outcome) => {
      if (outcome === 'completed') {
        completedTotal++;
        items++;
        if (job.item_type === 'trip') trips++;
      } else {
        failures++;
      }
    },
  });

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  worker.start();
  while (performance.now() - started < durationMs && completedTotal < ITEMS) await sleep(10);
  const seconds = (performance.now() - started) / 1000;
  const counted = items;
  const cpu = process.cpuUsage(cpuBefore);
  await worker.stop(30_000);
  const itemsPerSecond = counted / seconds;
  const bound = concurrency / (LATENCY_MS / 1000);
  return {
    concurrency,
    items: counted,
    trips,
    failures,
    seconds,
    itemsPerSecond,
    bound,
    ratio: itemsPerSecond / bound,
    cpuMsPerItem: (cpu.user + cpu.system) / 1000 / Math.max(items, 1),
  };
}

// The largest number of requests the fake saw in any one-second window.
function maxPerSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let max = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= 1000) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

interface ModeResult {
  synchronous: 'full' | 'normal';
  phases: PhaseResult[];
  peakRequestsPerSecond: number;
  requests: number;
  notCompleted: number;
  tripsStored: number;
}

async function runMode(dir: string, fakeUrl: string, synchronous: 'full' | 'normal'): Promise<ModeResult> {
  const store = await openStore(join(dir, `sync-${synchronous}.db`), { synchronous, busyTimeoutMs: 5000 });
  for (const id of BENCH_USERS) await connectUser(store.db, { id, clientApiKey: BENCH_CLIENT.apiKey, token: userToken(id), tokenKind: 'oauth' });
  await enqueue(store.db, backlog());
  await fetch(`${fakeUrl}/__fake/requests`, { method: 'DELETE' });
  completedTotal = 0;

  // One client for all phases, as in the service: the rate limit is client-wide.
  const rwgps = new RwgpsClient({ baseUrl: fakeUrl, requestTimeoutMs: 30_000, maxRequestsPerSecond: MAX_REQUESTS_PER_SECOND });
  const phases: PhaseResult[] = [];
  for (const phase of PHASES) phases.push(await runPhase(store, rwgps, fakeUrl, phase.concurrency, phase.durationMs));

  const left = await store.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('state', '!=', 'completed')
    .executeTakeFirstOrThrow();
  const trips = await store.db
    .selectFrom('items')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('type', '=', 'trip')
    .where('body', 'is not', null)
    .executeTakeFirstOrThrow();
  await store.close();

  const log = (await (await fetch(`${fakeUrl}/__fake/requests`)).json()) as { requests: { at: number }[] };
  return {
    synchronous,
    phases,
    peakRequestsPerSecond: maxPerSecond(log.requests.map((request) => request.at)),
    requests: log.requests.length,
    notCompleted: Number(left.n),
    tripsStored: Number(trips.n),
  };
}

async function main(): Promise<void> {
  const dir = tempDir('sync');
  const fake = await startReadyChild(join(import.meta.dirname, 'fake-server.ts'), [
    '--latency', String(LATENCY_MS), '--routes', String(ROUTES), '--trips', `${TRIPS}:${TRIP_POINTS}`,
  ]);
  try {
    const fakeUrl = childUrl(fake);
    const modes: ModeResult[] = [];
    for (const synchronous of ['normal', 'full'] as const) modes.push(await runMode(dir.path, fakeUrl, synchronous));

    printTable(
      `Sync: ${ITEMS} items (${TRIPS} trips of ${TRIP_POINTS} points), fake latency ${LATENCY_MS} ms, rate limit ${MAX_REQUESTS_PER_SECOND}/s`,
      modes.flatMap((m) =>
        m.phases.map((p) => ({
          synchronous: m.synchronous,
          concurrency: p.concurrency,
          items: p.items,
          trips: p.trips,
          failures: p.failures,
          seconds: round(p.seconds, 1),
          'items/s': round(p.itemsPerSecond, 1),
          'bound/s': p.bound,
          ratio: `${Math.round(p.ratio * 100)}%`,
          'cpu ms/item': round(p.cpuMsPerItem, 2),
        })),
      ),
    );
    for (const m of modes) {
      console.log(
        `${m.synchronous}: the fake saw ${m.requests} requests, at most ${m.peakRequestsPerSecond} in one second (limit ${MAX_REQUESTS_PER_SECOND}); ` +
          `jobs not completed: ${m.notCompleted}; trips stored: ${m.tripsStored}`,
      );
    }

    const all = modes.flatMap((m) => m.phases);
    const failures = all.reduce((sum, p) => sum + p.failures, 0);
    const peak = Math.max(...modes.map((m) => m.peakRequestsPerSecond));
    const incomplete = modes.reduce((sum, m) => sum + m.notCompleted, 0);
    const met = all.every((p) => p.ratio >= 0.9) && peak <= MAX_REQUESTS_PER_SECOND && incomplete === 0;
    const summary =
      `sync (of concurrency/latency, target 90%): ` +
      modes.map((m) => `${m.synchronous} ${m.phases.map((p) => `c=${p.concurrency} ${Math.round(p.ratio * 100)}%`).join(' ')}`).join('; ') +
      `; peak ${peak} req/s (limit ${MAX_REQUESTS_PER_SECOND}), ${failures} failures; ${met ? 'targets met' : 'TARGET MISSED'}`;
    writeResult('sync', args, summary, {
      items: ITEMS,
      trips: TRIPS,
      tripPoints: TRIP_POINTS,
      latencyMs: LATENCY_MS,
      maxRequestsPerSecond: MAX_REQUESTS_PER_SECOND,
      modes,
      met,
    });
    if (incomplete > 0 || peak > MAX_REQUESTS_PER_SECOND) process.exitCode = 1;
  } finally {
    await fake.stop();
    dir.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`sync benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
