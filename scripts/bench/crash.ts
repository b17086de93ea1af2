// Benchmark 5, crash: 1,000 jobs whose handler takes 50 ms; the worker
// process is killed with SIGKILL after about 200 completions and a new one
// is started. Measures how long until the jobs the dead process held run
// again, how many jobs complete twice (complete() succeeding twice, which the
// lease forbids), how many handlers started twice (the held jobs, re-run
// under at-least-once) and how many ran to their end twice.
//
//   npx tsx scripts/bench/crash.ts [--smoke]

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { enqueue, type NewJob } from '../../src/jobs/queue.ts';
import { openStore } from '../../src/store/db.ts';
import { parseBenchArgs, printTable, round, startReadyChild, tempDir, waitFor, writeResult } from './lib.ts';

const args = parseBenchArgs();
const JOBS = args.smoke ? 300 : 1000;
const KILL_AFTER = args.smoke ? 60 : 200;
const LEASE_MS = args.smoke ? 1000 : 2000;
const CONCURRENCY = 8;
const WORKER_SCRIPT = join(import.meta.dirname, 'crash-worker.ts');

interface EventLine {
  kind: string;
  jobId: number;
  owner: string;
  at: number;
}

function readEvents(file: string): EventLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [kind, jobId, owner, at] = line.split(' ');
      return { kind: kind!, jobId: Number(jobId), owner: owner!, at: Number(at) };
    });
}

function countRepeats(events: EventLine[], kind: string): number {
  const counts = new Map<number, number>();
  for (const event of events) if (event.kind === kind) counts.set(event.jobId, (counts.get(event.jobId) ?? 0) + 1);
  return [...counts.values()].filter((count) => count > 1).length;
}

async function main(): Promise<void> {
  const dir = tempDir('crash');
  const dbPath = join(dir.path, 'crash.db');
  const eventsPath = join(dir.path, 'events.log');
  const workerArgs = ['--db', dbPath, '--events', eventsPath, '--lease', String(LEASE_MS), '--concurrency', String(CONCURRENCY)];
  try {
    const store = await openStore(dbPath, { synchronous: 'normal', busyTimeoutMs: 5000 });
    const jobs: NewJob[] = [];
    for (let n = 0; n < JOBS; n++) jobs.push({ kind: 'crash', dedupeKey: `crash:${n}`, lockKey: `crash:${n}`, userId: 1, state: 'available', maxAttempts: 5 });
    await enqueue(store.db, jobs);
    await store.close();

    const reader = new BetterSqlite3(dbPath, { readonly: true, timeout: 5000 });
    const countCompleted = reader.prepare(`select count(*) as n from jobs where state = 'completed'`).pluck();

    const first = await startReadyChild(WORKER_SCRIPT, workerArgs);
    const firstOwner = String(first.info.owner);
    await waitFor('the first completions', 60_000, () => ((countCompleted.get() as number) >= KILL_AFTER ? true : undefined), 5);
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await first.stop();
    const completedAtKill = countCompleted.get() as number;
    const held = reader
      .prepare(`select id from jobs where state = 'running' and lease_owner = ?`)
      .pluck()
      .all(firstOwner) as number[];

    const second = await startReadyChild(WORKER_SCRIPT, workerArgs);
    const secondOwner = String(second.info.owner);
    const secondReadyAt = Date.now();
    const rerunAt = await waitFor('the held jobs to run again', 60_000, () => {
      const starts = new Map<number, number>();
      for (const event of readEvents(eventsPath)) {
        if (event.kind === 'start' && event.owner === secondOwner && !starts.has(event.jobId)) starts.set(event.jobId, event.at);
      }
      if (!held.every((id) => starts.has(id))) return undefined;
      return Math.max(killedAt, ...held.map((id) => starts.get(id)!));
    });
    await waitFor('every job to complete', 120_000, () => ((countCompleted.get() as number) === JOBS ? true : undefined), 20);
    await second.stop();
    reader.close();

    const events = readEvents(eventsPath);
    const completedTwice = countRepeats(events, 'completed');
    const handlerRanTwice = countRepeats(events, 'done');
    const startedTwice = countRepeats(events, 'start');
    const lostLeases = events.filter((event) => event.kind === 'lost').length;
    const rerunMs = rerunAt - killedAt;

    printTable(`Crash: ${JOBS} jobs of 50 ms, SIGKILL after ${completedAtKill} completions, lease ${LEASE_MS} ms`, [
      {
        'held at kill': held.length,
        'restart ms': secondReadyAt - killedAt,
        'held re-run after ms': rerunMs,
        'limit ms (2 x lease)': 2 * LEASE_MS,
        'completed twice': completedTwice,
        'started twice': startedTwice,
        'handler ran twice': handlerRanTwice,
        'late finishes': lostLeases,
      },
    ]);
    const met = rerunMs <= 2 * LEASE_MS && completedTwice === 0;
    const summary =
      `crash: ${held.length} held jobs ran again ${rerunMs} ms after SIGKILL (target <= ${2 * LEASE_MS}), ` +
      `${completedTwice} completed twice (target 0), ${handlerRanTwice} handlers ran twice; ${met ? 'targets met' : 'TARGET MISSED'}`;
    writeResult('crash', args, summary, {
      jobs: JOBS,
      leaseMs: LEASE_MS,
      concurrency: CONCURRENCY,
      completedAtKill,
      held: held.length,
      restartMs: secondReadyAt - killedAt,
      rerunMs,
      completedTwice,
      handlerRanTwice,
      startedTwice,
      lostLeases,
      met,
    });
    if (completedTwice > 0) process.exitCode = 1;
  } finally {
    dir.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`crash benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
