// Benchmark 3, the job table on its own: a no-op handler and a ~200-byte
// payload, against a plain better-sqlite3 loop doing the same SQL work in
// the same run (the floor any SQLite queue sits on).
//
//   enqueue and drain: N jobs enqueued one transaction each, then drained
//                      (claim with one UPDATE ... RETURNING, complete with
//                      one UPDATE), jobs/s for both sides, in 4 alternating
//                      rounds of N/4
//   steady load:       2,000 jobs/s for 10 s through Worker, latency from
//                      enqueue to completion and the largest backlog
//
// Both synchronous settings. npx tsx scripts/bench/queue.ts [--smoke]

import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { enqueue, type Job, type NewJob } from '../../src/jobs/queue.ts';
import { Worker } from '../../src/jobs/worker.ts';
import { createLogger } from '../../src/log.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { parseBenchArgs, printTable, round, sleep, summarize, tempDir, writeResult, type LatencySummary } from './lib.ts';
import { openRaw } from './raw-store.ts';

const args = parseBenchArgs();
const JOBS = args.smoke ? 2000 : 20_000;
const STEADY_RATE = 2000;
const STEADY_MS = args.smoke ? 1500 : 10_000;
const STEADY_TICK_MS = 5;
const CONCURRENCY = 8;
const ROUNDS = 4;
const SYNCHRONOUS = ['normal', 'full'] as const;
const quietLogger = createLogger({ level: 'error', sink: { write: () => true } });

function payload(n: number, enqueuedAt: number): string {
  // About 200 bytes, with the enqueue time for the latency measurement.
  return JSON.stringify({ n, enqueuedAt, note: 'x'.repeat(150) });
}

function newJob(n: number, enqueuedAt = 0): NewJob {
  return { kind: 'noop', dedupeKey: `noop:${n}`, lockKey: `noop:${n}`, userId: 1, state: 'available', payload: payload(n, enqueuedAt), maxAttempts: 3 };
}

interface Throughput {
  enqueueSeconds: number;
  drainSeconds: number;
}

interface FloorStatements {
  insert: BetterSqlite3.Statement;
  claimOne: BetterSqlite3.Statement;
  completeOne: BetterSqlite3.Statement;
  begin: BetterSqlite3.Statement;
  commit: BetterSqlite3.Statement;
}

function prepareFloor(db: BetterSqlite3.Database): FloorStatements {
  return {
    insert: db.prepare(
      `insert into jobs (kind, state, dedupe_key, lock_key, user_id, payload, max_attempts, run_at, created_at, updated_at)
       values ('noop', 'available', ?, ?, 1, ?, 3, ?, ?, ?)`,
    ),
    claimOne: db.prepare(
      `update jobs set state = 'running', attempt = attempt + 1, lease_owner = ?, lease_until = ?, updated_at = ?
       where id = (select id from jobs indexed by jobs_runnable where state in ('available', 'retryable') and run_at <= ? order by run_at, id limit 1)
       returning *`,
    ),
    completeOne: db.prepare(
      `update jobs set state = 'completed', lease_owner = null, lease_until = null, finished_at = ?, updated_at = ?
       where id = ? and state = 'running' and lease_owner = ?`,
    ),
    begin: db.prepare('begin immediate'),
    commit: db.prepare('commit'),
  };
}

// One round of the floor: `count` jobs inserted one transaction each, then
// drained with one claim and one complete statement each (autocommit).
function floorRound(floor: FloorStatements, first: number, count: number): Throughput {
  let started = performance.now();
  for (let n = first; n < first + count; n++) {
    const now = Date.now();
    floor.begin.run();
    floor.insert.run(`noop:${n}`, `noop:${n}`, payload(n, 0), now, now, now);
    floor.commit.run();
  }
  const enqueueSeconds = (performance.now() - started) / 1000;

  started = performance.now();
  let drained = 0;
  for (;;) {
    const now = Date.now();
    const job = floor.claimOne.get('floor', now + 60_000, now, now) as { id: number } | undefined;
    if (!job) break;
    floor.completeOne.run(now, now, job.id, 'floor');
    drained++;
  }
  if (drained !== count) throw new Error(`floor drained ${drained} of ${count} jobs`);
  return { enqueueSeconds, drainSeconds: (performance.now() - started) / 1000 };
}

// One round of the real queue: enqueue() per job, then a Worker drains them.
async function queueRound(store: Store, first: number, count: number): Promise<Throughput> {
  let started = performance.now();
  for (let n = first; n < first + count; n++) await enqueue(store.db, [newJob(n)]);
  const enqueueSeconds = (performance.now() - started) / 1000;

  let completed = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  started = performance.now();
  const worker = startWorker(store, () => {
    if (++completed === count) finish();
  });
  const timeout = setTimeout(finish, 120_000);
  await done;
  clearTimeout(timeout);
  const drainSeconds = (performance.now() - started) / 1000;
  await worker.stop(5000);
  if (completed !== count) throw new Error(`worker drained ${completed} of ${count} jobs within 120 s`);
  return { enqueueSeconds, drainSeconds };
}

interface PairResult {
  floor: { enqueuePerSecond: number; drainPerSecond: number };
  queue: { enqueuePerSecond: number; drainPerSecond: number };
}

// The floor and the queue take turns in rounds, so that load from other
// processes on a shared machine falls on both sides alike.
async function enqueueAndDrain(dir: string, synchronous: 'full' | 'normal'): Promise<PairResult> {
  const rawDb = await openRaw(join(dir, `floor-${synchronous}.db`), synchronous);
  const floor = prepareFloor(rawDb);
  const store = await openStore(join(dir, `queue-${synchronous}.db`), { synchronous, busyTimeoutMs: 5000 });
  const total = { floor: { enqueueSeconds: 0, drainSeconds: 0 }, queue: { enqueueSeconds: 0, drainSeconds: 0 } };
  const perRound = JOBS / ROUNDS;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const f = floorRound(floor, round * perRound, perRound);
      const q = await queueRound(store, round * perRound, perRound);
      total.floor.enqueueSeconds += f.enqueueSeconds;
      total.floor.drainSeconds += f.drainSeconds;
      total.queue.enqueueSeconds += q.enqueueSeconds;
      total.queue.drainSeconds += q.drainSeconds;
    }
  } finally {
    rawDb.close();
    await store.close();
  }
  const rates = (t: Throughput) => ({ enqueuePerSecond: JOBS / t.enqueueSeconds, drainPerSecond: JOBS / t.drainSeconds });
  return { floor: rates(total.floor), queue: rates(total.queue) };
}

function startWorker(store: Store, onDone: (job: Job) => void): Worker {
  const worker = new Worker({
    db: store.db,
    handlers: { noop: async () => {} },
    concurrency: CONCURRENCY,
    leaseMs: 60_000,
    pollIntervalMs: 10,
    backoff: { baseMs: 100, maxMs: 1000 },
    logger: quietLogger,
    onAttempt: (job, outcome) => {
      if (outcome === 'completed') onDone(job);
    },
  });
  worker.start();
  return worker;
}

interface SteadyResult {
  rate: number;
  seconds: number;
  enqueued: number;
  completed: number;
  latencyMs: LatencySummary;
  maxBacklog: number;
}

// Enqueues STEADY_RATE jobs per second in small batches (one transaction
// each, like one webhook delivery) and measures enqueue-to-completion time.
async function steadyLoad(store: Store): Promise<SteadyResult> {
  const latencies: number[] = [];
  let enqueued = 0;
  let completed = 0;
  let maxBacklog = 0;
  const worker = startWorker(store, (job) => {
    completed++;
    const { enqueuedAt } = JSON.parse(job.payload!) as { enqueuedAt: number };
    latencies.push(performance.now() - enqueuedAt);
  });

  const started = performance.now();
  const base = 10_000_000;
  while (performance.now() - started < STEADY_MS) {
    const due = Math.floor(((performance.now() - started) / 1000) * STEADY_RATE);
    if (due > enqueued) {
      const batch: NewJob[] = [];
      const now = performance.now();
      for (; enqueued < due; enqueued++) batch.push(newJob(base + enqueued, now));
      await enqueue(store.db, batch);
      worker.notify();
    }
    maxBacklog = Math.max(maxBacklog, enqueued - completed);
    await sleep(STEADY_TICK_MS);
  }
  const seconds = (performance.now() - started) / 1000;
  const deadline = Date.now() + 10_000;
  while (completed < enqueued && Date.now() < deadline) await sleep(10);
  await worker.stop(5000);
  return { rate: STEADY_RATE, seconds, enqueued, completed, latencyMs: summarize(latencies), maxBacklog };
}

async function main(): Promise<void> {
  const dir = tempDir('queue');
  try {
    const results = [];
    for (const synchronous of SYNCHRONOUS) {
      const { floor, queue } = await enqueueAndDrain(dir.path, synchronous);

      const steadyStore = await openStore(join(dir.path, `steady-${synchronous}.db`), { synchronous, busyTimeoutMs: 5000 });
      const steady = await steadyLoad(steadyStore);
      await steadyStore.close();
      results.push({ synchronous, floor, queue, steady });
    }

    printTable(
      `Enqueue and drain of ${JOBS} jobs (jobs/s), no-op handler, worker concurrency ${CONCURRENCY}`,
      results.map((r) => ({
        synchronous: r.synchronous,
        'floor enqueue': Math.round(r.floor.enqueuePerSecond),
        'queue enqueue': Math.round(r.queue.enqueuePerSecond),
        'enqueue ratio': `${Math.round((r.queue.enqueuePerSecond / r.floor.enqueuePerSecond) * 100)}%`,
        'floor drain': Math.round(r.floor.drainPerSecond),
        'queue drain': Math.round(r.queue.drainPerSecond),
        'drain ratio': `${Math.round((r.queue.drainPerSecond / r.floor.drainPerSecond) * 100)}%`,
      })),
    );
    printTable(
      `Steady load: ${STEADY_RATE} jobs/s for ${STEADY_MS / 1000} s, enqueue to completion`,
      results.map((r) => ({
        synchronous: r.synchronous,
        enqueued: r.steady.enqueued,
        completed: r.steady.completed,
        'p50 ms': round(r.steady.latencyMs.p50, 2),
        'p99 ms': round(r.steady.latencyMs.p99, 2),
        'max ms': round(r.steady.latencyMs.max, 1),
        'max backlog': r.steady.maxBacklog,
      })),
    );

    const ratios = results.flatMap((r) => [r.queue.enqueuePerSecond / r.floor.enqueuePerSecond, r.queue.drainPerSecond / r.floor.drainPerSecond]);
    const worstRatio = Math.min(...ratios);
    const worstP99 = Math.max(...results.map((r) => r.steady.latencyMs.p99));
    const allDone = results.every((r) => r.steady.completed === r.steady.enqueued);
    const met = worstRatio >= 0.8 && worstP99 < 20 && allDone;
    const summary =
      `job table: worst ratio to floor ${Math.round(worstRatio * 100)}% (target 80%), steady ${STEADY_RATE}/s p99 ${round(worstP99, 1)} ms ` +
      `(target < 20); ${met ? 'targets met' : 'TARGET MISSED'}`;
    writeResult('queue', args, summary, { jobs: JOBS, concurrency: CONCURRENCY, results, worstRatio, worstP99, met });
    if (!allDone) process.exitCode = 1;
  } finally {
    dir.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`queue benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
