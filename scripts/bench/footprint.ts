// Benchmark 6, footprint: resident memory of the service process when idle,
// after syncing a backlog (1,000 routes and 10 trips of 20,000 points sent
// as webhooks), and the peak while it stores one 60,000-point trip.
//
// The service runs as plain node from an esbuild bundle, as in production,
// so tsx's loader thread is not counted. Memory is read from
// /proc/<pid>/status (VmRSS, and VmHWM for the peak, which writing 5 to
// /proc/<pid>/clear_refs resets), so the measuring code is not in the
// measured process. Linux only.
//
//   npx tsx scripts/bench/footprint.ts [--smoke]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { build } from 'esbuild';
import { BENCH_CLIENT, ownerOf, sign } from './fixtures.ts';
import { childUrl, parseBenchArgs, printTable, REPO_ROOT, round, sleep, startReadyChild, tempDir, waitFor, writeResult } from './lib.ts';

const args = parseBenchArgs();
const ROUTES = args.smoke ? 200 : 1000;
const TRIPS = args.smoke ? 2 : 10;
const TRIP_POINTS = 20_000;
const BIG_TRIP_ID = 100_000;
const BIG_TRIP_POINTS = 60_000;
const IDLE_SETTLE_MS = args.smoke ? 1000 : 3000;
const MIB = 1024 * 1024;

function readStatus(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function sendDeliveries(url: string, items: { type: 'route' | 'trip'; id: number }[]): Promise<void> {
  for (let start = 0; start < items.length; start += 100) {
    const notifications = items.slice(start, start + 100).map(({ type, id }) => ({
      user_id: ownerOf(id),
      item_type: type,
      item_id: id,
      item_user_id: ownerOf(id),
      item_url: `https://ridewithgps.com/${type}s/${id}.json`,
      action: 'created',
      collection: null,
    }));
    const body = Buffer.from(JSON.stringify({ notifications }));
    const response = await fetch(`${url}/webhooks/rwgps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-rwgps-api-key': BENCH_CLIENT.apiKey, 'x-rwgps-signature': sign(body) },
      body,
    });
    if (response.status !== 200) throw new Error(`webhook answered ${response.status}: ${await response.text()}`);
  }
}

async function main(): Promise<void> {
  const dir = tempDir('footprint');
  const bundle = join(dir.path, 'service.cjs');
  await build({
    entryPoints: [join(REPO_ROOT, 'scripts/bench/ingest-server.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: bundle,
    external: ['better-sqlite3'],
    logLevel: 'warning',
    nodePaths: [join(REPO_ROOT, 'node_modules')],
  });

  const fake = await startReadyChild(join(import.meta.dirname, 'fake-server.ts'), [
    '--latency', '5', '--routes', String(ROUTES), '--trips', `${TRIPS}:${TRIP_POINTS}`, '--big-trip', `${BIG_TRIP_ID}:${BIG_TRIP_POINTS}`,
  ]);
  try {
    await measure(dir.path, bundle, childUrl(fake));
  } finally {
    await fake.stop();
    dir.cleanup();
  }
}

async function measure(dirPath: string, bundle: string, fakeUrl: string): Promise<void> {
  const dbPath = join(dirPath, 'footprint.db');
  const service = await startReadyChild(bundle, ['--mode', 'service', '--db', dbPath, '--fake', fakeUrl], {
    withoutTsx: true,
    env: { NODE_PATH: join(REPO_ROOT, 'node_modules') },
  });
  const pid = service.child.pid!;
  const url = childUrl(service);
  const reader = new BetterSqlite3(dbPath, { readonly: true, timeout: 5000 });
  const pending = reader.prepare(`select count(*) from jobs where state in ('available', 'running', 'retryable')`).pluck();
  const completed = reader.prepare(`select count(*) from jobs where state = 'completed'`).pluck();

  try {
    await sleep(IDLE_SETTLE_MS);
    const idle = readStatus(pid);

    const items: { type: 'route' | 'trip'; id: number }[] = [];
    for (let id = 1; id <= ROUTES; id++) items.push({ type: 'route', id });
    for (let id = 1; id <= TRIPS; id++) items.push({ type: 'trip', id });
    await sendDeliveries(url, items);
    await waitFor('the backlog to sync', 120_000, () => ((pending.get() as number) === 0 && (completed.get() as number) >= items.length ? true : undefined), 50);
    await sleep(1000);
    const afterSync = readStatus(pid);

    resetPeak(pid);
    const before = readStatus(pid);
    await sendDeliveries(url, [{ type: 'trip', id: BIG_TRIP_ID }]);
    await waitFor('the big trip to be stored', 60_000, () => ((pending.get() as number) === 0 && (completed.get() as number) > items.length ? true : undefined), 20);
    const peak = readStatus(pid);
    const tripBytes = reader.prepare(`select length(cast(body as blob)) from items where type = 'trip' and id = ?`).pluck().get(BIG_TRIP_ID) as number;
    const rise = peak.hwm - before.rss;

    printTable('Service resident memory (plain node, esbuild bundle)', [
      { moment: 'idle', 'RSS MiB': round(idle.rss / MIB, 1), 'peak MiB': round(idle.hwm / MIB, 1) },
      { moment: `after syncing ${ROUTES} routes, ${TRIPS} trips`, 'RSS MiB': round(afterSync.rss / MIB, 1), 'peak MiB': round(afterSync.hwm / MIB, 1) },
      { moment: `storing a ${BIG_TRIP_POINTS}-point trip`, 'RSS MiB': round(before.rss / MIB, 1), 'peak MiB': round(peak.hwm / MIB, 1) },
    ]);
    console.log(`\n${BIG_TRIP_POINTS}-point trip: ${round(tripBytes / MIB, 2)} MiB of JSON; peak rose ${round(rise / MIB, 1)} MiB = ${round(rise / tripBytes, 2)}x its size`);

    const met = idle.rss < 80 * MIB && rise <= 4 * tripBytes;
    const summary =
      `footprint: idle ${round(idle.rss / MIB, 1)} MiB (target < 80), after sync ${round(afterSync.rss / MIB, 1)} MiB, ` +
      `60k-point trip raised the peak ${round(rise / tripBytes, 2)}x its ${round(tripBytes / MIB, 1)} MiB JSON (target <= 4x); ${met ? 'targets met' : 'TARGET MISSED'}`;
    writeResult('footprint', args, summary, {
      idle,
      afterSync,
      beforeBigTrip: before,
      bigTripPeak: peak,
      bigTripBytes: tripBytes,
      bigTripPeakRise: rise,
      routes: ROUTES,
      trips: TRIPS,
      met,
    });
  } finally {
    reader.close();
    await service.stop();
  }
}

main().catch((error: unknown) => {
  console.error(`footprint benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
