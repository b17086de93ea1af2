// Benchmark 1, ingest: signed 100-notification deliveries (about 25 KB) at
// 1, 8 and 32 connections against the real service with its worker running,
// with synchronous full and normal. In the same run it measures two limits:
// a verify-only Hono route (read, HMAC, JSON.parse, 200) and the raw store
// loop (the same rows in plain better-sqlite3, no HTTP). The service's
// ratio is taken against the lesser of the two.
//
//   npx tsx scripts/bench/ingest.ts [--smoke]

import { join } from 'node:path';
import { FakeRwgps } from '../fake-rwgps.ts';
import { BENCH_CLIENT, BENCH_USERS, userToken } from './fixtures.ts';
import { runLoad, type LoadResult } from './ingest-load.ts';
import { childUrl, parseBenchArgs, printTable, round, startReadyChild, tempDir, writeResult } from './lib.ts';
import { runRawStoreLoop, type RawStoreResult } from './raw-store.ts';

const args = parseBenchArgs();
const CONNECTIONS = [1, 8, 32];
const SYNCHRONOUS = ['normal', 'full'] as const;
const DURATION_MS = args.smoke ? 600 : 5000;
const MAX_REQUESTS = args.smoke ? 2000 : 40_000;
const RAW_DURATION_MS = args.smoke ? 500 : 3000;
const SERVER_SCRIPT = join(import.meta.dirname, 'ingest-server.ts');

interface TargetRun {
  target: string;
  synchronous: 'full' | 'normal' | null;
  runs: LoadResult[];
}

async function measureServer(target: string, serverArgs: string[], synchronous: 'full' | 'normal' | null, firstDelivery: number): Promise<TargetRun> {
  const server = await startReadyChild(SERVER_SCRIPT, serverArgs);
  const runs: LoadResult[] = [];
  try {
    const url = childUrl(server);
    // One short warm-up so JIT compilation is not in the first measurement.
    await runLoad(url, { connections: 8, durationMs: Math.min(500, DURATION_MS), maxRequests: 200, firstDelivery: firstDelivery + 900_000 });
    for (const connections of CONNECTIONS) {
      runs.push(await runLoad(url, { connections, durationMs: DURATION_MS, maxRequests: MAX_REQUESTS, firstDelivery: firstDelivery + connections * 100_000 }));
    }
  } finally {
    await server.stop();
  }
  return { target, synchronous, runs };
}

async function main(): Promise<void> {
  const dir = tempDir('ingest');
  const fake = await FakeRwgps.start({ clients: [BENCH_CLIENT], latencyMs: 50 });
  for (const id of BENCH_USERS) fake.addUser({ id, accessToken: userToken(id) });

  try {
    const verify = await measureServer('verify-only', ['--mode', 'verify'], null, 0);

    const raw: RawStoreResult[] = [];
    for (const synchronous of SYNCHRONOUS) {
      raw.push(await runRawStoreLoop(join(dir.path, `raw-${synchronous}.db`), synchronous, { durationMs: RAW_DURATION_MS, maxDeliveries: 50_000 }));
    }

    const services: TargetRun[] = [];
    for (const [index, synchronous] of SYNCHRONOUS.entries()) {
      const db = join(dir.path, `service-${synchronous}.db`);
      const serverArgs = ['--mode', 'service', '--synchronous', synchronous, '--db', db, '--fake', fake.url, '--log', join(dir.path, `service-${synchronous}.log`)];
      services.push(await measureServer(`service (${synchronous})`, serverArgs, synchronous, (index + 1) * 10_000_000));
    }

    const rows = [];
    const ratios: Record<string, Record<number, number>> = {};
    for (const run of [verify, ...services]) {
      for (const load of run.runs) {
        const verifyRps = verify.runs.find((r) => r.connections === load.connections)!.requestsPerSecond;
        const rawRps = run.synchronous === null ? Infinity : raw.find((r) => r.synchronous === run.synchronous)!.deliveriesPerSecond;
        const limit = Math.min(verifyRps, rawRps);
        const ratio = load.requestsPerSecond / limit;
        if (run.synchronous !== null) (ratios[run.synchronous] ??= {})[load.connections] = ratio;
        rows.push({
          target: run.target,
          conns: load.connections,
          'req/s': round(load.requestsPerSecond),
          'notif/s': Math.round(load.notificationsPerSecond),
          'p50 ms': round(load.latencyMs.p50, 2),
          'p99 ms': round(load.latencyMs.p99, 2),
          'max ms': round(load.latencyMs.max, 1),
          errors: load.errors,
          limit: run.synchronous === null ? '-' : rawRps < verifyRps ? 'raw store' : 'verify-only',
          ratio: run.synchronous === null ? '-' : `${Math.round(ratio * 100)}%`,
        });
      }
    }
    printTable('Ingest: 100-notification deliveries (requests/s, latency per request)', rows);
    printTable(
      'Raw store loop (plain better-sqlite3, one transaction per delivery)',
      raw.map((r) => ({ synchronous: r.synchronous, 'deliveries/s': round(r.deliveriesPerSecond), 'notif/s': Math.round(r.notificationsPerSecond), deliveries: r.deliveries })),
    );

    const at32 = (synchronous: 'full' | 'normal') => services.find((s) => s.synchronous === synchronous)!.runs.find((r) => r.connections === 32)!;
    const targets = {
      normalRatioAt32: { value: ratios.normal?.[32] ?? NaN, target: 0.7 },
      fullRatioAt32: { value: ratios.full?.[32] ?? NaN, target: 0.5 },
      normalP99At32Ms: { value: at32('normal').latencyMs.p99, target: 30 },
      fullP99At32Ms: { value: at32('full').latencyMs.p99, target: 30 },
    };
    const met =
      targets.normalRatioAt32.value >= 0.7 && targets.fullRatioAt32.value >= 0.5 && targets.normalP99At32Ms.value < 30 && targets.fullP99At32Ms.value < 30;
    const errors = [verify, ...services].flatMap((s) => s.runs).reduce((sum, r) => sum + r.errors, 0);
    const summary =
      `ingest at 32 connections: normal ${Math.round(targets.normalRatioAt32.value * 100)}% of limit (target 70%), ` +
      `full ${Math.round(targets.fullRatioAt32.value * 100)}% (target 50%), p99 ${round(targets.normalP99At32Ms.value)}/${round(targets.fullP99At32Ms.value)} ms ` +
      `(target < 30); ${errors} errors; ${met && errors === 0 ? 'targets met' : 'TARGET MISSED'}`;
    writeResult('ingest', args, summary, { durationMs: DURATION_MS, verify, raw, services, targets, met, errors });
    if (errors > 0) process.exitCode = 1;
  } finally {
    await fake.close();
    dir.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`ingest benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
