// Child process of the crash benchmark: a Worker whose handler takes
// --handler-ms, over the database --db. It appends one line per event to
// --events with appendFileSync, so the lines survive a SIGKILL:
//
//   start <jobId> <owner> <epoch ms>      the handler began
//   done <jobId> <owner> <epoch ms>       the handler finished
//   completed <jobId> <owner> <epoch ms>  complete() stored the result (the lease was still held)
//   lost <jobId> <owner> <epoch ms>       the handler finished after the lease was lost
//
// Prints `READY {"owner": ...}` once the worker runs; SIGTERM stops it gracefully.

import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Worker } from '../../src/jobs/worker.ts';
import { createLogger } from '../../src/log.ts';
import { openStore } from '../../src/store/db.ts';

export const CRASH_JOB = 'crash';

const { values } = parseArgs({
  options: {
    db: { type: 'string' },
    events: { type: 'string' },
    lease: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    'handler-ms': { type: 'string', default: '50' },
  },
});

async function main(): Promise<void> {
  if (!values.db || !values.events) throw new Error('--db and --events are required');
  const events = values.events;
  const handlerMs = Number(values['handler-ms']);
  const store = await openStore(values.db, { synchronous: 'normal', busyTimeoutMs: 5000 });
  let owner = '';
  const record = (kind: string, jobId: unknown) => appendFileSync(events, `${kind} ${String(jobId)} ${owner} ${Date.now()}\n`);

  const logger = createLogger({
    level: 'info',
    sink: {
      write(line: string) {
        const entry = JSON.parse(line) as { msg: string; jobId?: number };
        if (entry.msg === 'job completed') record('completed', entry.jobId);
        else if (entry.msg.startsWith('job finished after its lease was lost')) record('lost', entry.jobId);
        return true;
      },
    },
  });
  const worker = new Worker({
    db: store.db,
    handlers: {
      [CRASH_JOB]: async (job) => {
        record('start', job.id);
        await new Promise((resolve) => setTimeout(resolve, handlerMs));
        record('done', job.id);
      },
    },
    concurrency: Number(values.concurrency),
    leaseMs: Number(values.lease),
    pollIntervalMs: 50,
    backoff: { baseMs: 100, maxMs: 1000 },
    logger,
  });
  owner = worker.owner;
  worker.start();
  console.log(`READY ${JSON.stringify({ owner })}`);
  process.once('SIGTERM', () => {
    worker
      .stop(5000)
      .then(() => store.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
}

main().catch((error: unknown) => {
  console.error(`crash-worker failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
