// Benchmark 4, queue cost as the table grows: the time to claim and complete
// one job with 1,000 and with 1,000,000 jobs in the table, most of them
// completed or dead (the history kept for inspection). The big table is
// built with one INSERT ... SELECT from a recursive CTE.
//
//   npx tsx scripts/bench/claim-cost.ts [--smoke]   (smoke: 100,000 rows)

import { join } from 'node:path';
import { sql } from 'kysely';
import { claim, complete, enqueue, type NewJob } from '../../src/jobs/queue.ts';
import { openStore } from '../../src/store/db.ts';
import { parseBenchArgs, printTable, round, summarize, tempDir, writeResult } from './lib.ts';

const args = parseBenchArgs();
const SIZES = [1000, args.smoke ? 100_000 : 1_000_000];
const WAITING = 500;
const MEASURED = 480;
const ROUNDS = 4;

interface SizeResult {
  tableRows: number;
  buildSeconds: number;
  /** Median of the per-round medians, in milliseconds. */
  claimCompleteMs: number;
  p99Ms: number;
  plan: string[];
}

async function measure(dir: string, tableRows: number): Promise<SizeResult> {
  // NORMAL keeps fsync time, which does not depend on the table size, out of the comparison.
  const store = await openStore(join(dir, `claim-${tableRows}.db`), { synchronous: 'normal', busyTimeoutMs: 5000 });
  const { db } = store;
  const finished = tableRows - WAITING;
  const now = Date.now();

  const built = performance.now();
  // One in ten history rows is dead, the rest completed, as after months of use.
  await sql`
    with recursive n(i) as (select 1 union all select i + 1 from n where i < ${finished})
    insert into jobs (kind, state, dedupe_key, lock_key, user_id, item_type, item_id, action, attempt, max_attempts,
                      run_at, created_at, updated_at, finished_at)
    select 'item', case when i % 10 = 0 then 'dead' else 'completed' end, 'item:' || (i % 1000) || ':route:' || i,
           'item:route:' || i, i % 1000, 'route', i, 'updated', 1, 12, ${now} - i, ${now} - i, ${now} - i, ${now} - i
    from n`.execute(db);
  const buildSeconds = (performance.now() - built) / 1000;

  const waiting: NewJob[] = [];
  for (let n = 0; n < WAITING; n++) {
    waiting.push({ kind: 'item', dedupeKey: `wait:${n}`, lockKey: `wait:${n}`, userId: 1, state: 'available', itemType: 'route', itemId: n, action: 'updated', maxAttempts: 12 });
  }
  await enqueue(db, waiting, now);

  const plan = (await sql<{ detail: string }>`explain query plan
    select j.id from jobs as j indexed by jobs_runnable
    where j.state in ('available', 'retryable') and j.run_at <= ${now}
      and not exists (select 1 from jobs as r where r.state = 'running' and r.lock_key = j.lock_key)
    order by j.run_at, j.id limit 1`.execute(db)).rows.map((row) => row.detail);

  const medians: number[] = [];
  const all: number[] = [];
  const perRound = MEASURED / ROUNDS;
  for (let r = 0; r < ROUNDS; r++) {
    const times: number[] = [];
    for (let i = 0; i < perRound; i++) {
      const started = performance.now();
      const job = await claim(db, 'bench', 60_000);
      if (!job) throw new Error('no job to claim');
      if (!(await complete(db, job, 'bench'))) throw new Error(`lost the lease on job ${job.id}`);
      times.push(performance.now() - started);
    }
    // The first round warms up the JIT and SQLite's page cache; it is not counted.
    if (r === 0) continue;
    medians.push(summarize(times).p50);
    all.push(...times);
  }
  await store.close();
  return { tableRows, buildSeconds, claimCompleteMs: summarize(medians).p50, p99Ms: summarize(all).p99, plan };
}

async function main(): Promise<void> {
  const dir = tempDir('claim');
  try {
    const results: SizeResult[] = [];
    for (const size of SIZES) results.push(await measure(dir.path, size));
    const [small, large] = results as [SizeResult, SizeResult];
    const ratio = large.claimCompleteMs / small.claimCompleteMs;

    printTable(
      'Claim and complete one job (synchronous normal), by table size',
      results.map((r) => ({
        'table rows': r.tableRows,
        'build s': round(r.buildSeconds, 1),
        'median ms': round(r.claimCompleteMs, 3),
        'p99 ms': round(r.p99Ms, 3),
      })),
    );
    console.log(`\nclaim query plan at ${large.tableRows} rows: ${large.plan.join('; ')}`);
    const met = ratio <= 1.5;
    const summary = `claim+complete at ${large.tableRows} rows is ${ratio.toFixed(2)}x the cost at ${small.tableRows} (target <= 1.5x); ${met ? 'target met' : 'TARGET MISSED'}`;
    writeResult('claim-cost', args, summary, { results, ratio, met });
  } finally {
    dir.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`claim-cost benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
