import type { Kysely } from 'kysely';
import { discard, retryDead } from '../jobs/queue.ts';
import type { Database, ItemType, JobState } from '../store/schema.ts';
import { isoTime, openForCommand, parseCommandArgs, parseId, printJson, printTable, UsageError, type Command } from './common.ts';

const USAGE = [
  'rwgps-sync jobs list [--state <state>] [--user <id>] [--item <route|trip>:<id>] [--limit <n>] [--json] [--config <file>]',
  'rwgps-sync jobs show <id> [--json] [--config <file>]',
  'rwgps-sync jobs retry <id> | --dead [--config <file>]',
  'rwgps-sync jobs discard <id> [--config <file>]',
].join('\n       ');

const STATES: readonly JobState[] = ['available', 'running', 'retryable', 'completed', 'dead', 'discarded', 'parked', 'no_token'];

export const jobsCommand: Command = {
  name: 'jobs',
  summary: 'list, inspect, retry or discard sync jobs',
  usage: USAGE,
  async run(context) {
    const [sub, ...rest] = context.argv;
    const next = { ...context, argv: rest };
    if (sub === 'list') return list(next);
    if (sub === 'show') return show(next);
    if (sub === 'retry') return retry(next);
    if (sub === 'discard') return discardCommand(next);
    if (sub === undefined || sub === '--help' || sub === '-h') {
      context.stdout.write(`usage: ${USAGE}\n\nJob states: ${STATES.join(', ')}\n`);
      return sub === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown jobs command "${sub}"`, USAGE);
  },
};

type Context = Parameters<Command['run']>[0];

function toJson(job: Awaited<ReturnType<typeof findJobs>>[number]) {
  return {
    id: job.id,
    kind: job.kind,
    state: job.state,
    userId: job.user_id,
    itemType: job.item_type,
    itemId: job.item_id,
    action: job.action,
    attempt: job.attempt,
    maxAttempts: job.max_attempts,
    runAt: isoTime(job.run_at),
    lastError: job.last_error,
    deliveryId: job.delivery_id,
    mergedCount: job.merged_count,
    createdAt: isoTime(job.created_at),
    updatedAt: isoTime(job.updated_at),
    finishedAt: isoTime(job.finished_at),
  };
}

interface JobFilter {
  state?: JobState;
  userId?: number;
  item?: { type: ItemType; id: number };
  limit: number;
}

async function findJobs(db: Kysely<Database>, filter: JobFilter) {
  let query = db.selectFrom('jobs').selectAll().orderBy('id', 'desc').limit(filter.limit);
  if (filter.state) query = query.where('state', '=', filter.state);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.item) query = query.where('item_type', '=', filter.item.type).where('item_id', '=', filter.item.id);
  return query.execute();
}

function parseItem(text: string): { type: ItemType; id: number } {
  const match = /^(route|trip):([1-9]\d{0,15})$/.exec(text);
  if (!match) throw new UsageError(`--item must look like route:123 or trip:456, got "${text}"`, USAGE);
  return { type: match[1] as ItemType, id: Number(match[2]) };
}

async function list(context: Context): Promise<number> {
  const { values } = parseCommandArgs(
    context.argv,
    { state: { type: 'string' }, user: { type: 'string' }, item: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    USAGE,
  );
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n\nJob states: ${STATES.join(', ')}\n`);
    return 0;
  }
  if (values.state !== undefined && !STATES.includes(values.state as JobState)) {
    throw new UsageError(`--state must be one of ${STATES.join(', ')}, got "${values.state}"`, USAGE);
  }
  const userId = values.user === undefined ? undefined : parseId(values.user, '--user', USAGE);
  const limit = values.limit === undefined ? 100 : parseId(values.limit, '--limit', USAGE);
  const item = values.item === undefined ? undefined : parseItem(values.item);

  const { store } = await openForCommand(values, context);
  try {
    const jobs = await findJobs(store.db, { state: values.state as JobState | undefined, userId, limit, ...(item ? { item } : {}) });
    if (values.json) {
      printJson(context.stdout, jobs.map(toJson));
      return 0;
    }
    if (jobs.length === 0) {
      context.stdout.write('no jobs match\n');
      return 0;
    }
    printTable(
      context.stdout,
      ['ID', 'STATE', 'USER', 'ITEM', 'ACTION', 'ATTEMPT', 'RUN AT', 'LAST ERROR'],
      jobs.map((job) => [
        job.id,
        job.state,
        job.user_id,
        job.item_type ? `${job.item_type}:${job.item_id}` : job.kind,
        job.action,
        `${job.attempt}/${job.max_attempts}`,
        isoTime(job.run_at),
        job.last_error === null ? null : job.last_error.slice(0, 80),
      ]),
    );
    return 0;
  } finally {
    await store.close();
  }
}

async function show(context: Context): Promise<number> {
  const { values, positionals } = parseCommandArgs(context.argv, { json: { type: 'boolean' } }, USAGE, 1);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  const id = parseId(positionals[0], 'job id', USAGE);
  const { store } = await openForCommand(values, context);
  try {
    const job = await store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!job) {
      context.stderr.write(`error: job ${id} not found\n`);
      return 1;
    }
    const attempts = await store.db.selectFrom('job_attempts').selectAll().where('job_id', '=', id).orderBy('attempt').execute();
    const history = attempts.map((a) => ({
      attempt: a.attempt,
      startedAt: isoTime(a.started_at),
      finishedAt: isoTime(a.finished_at),
      outcome: a.outcome,
      error: a.error,
    }));
    if (values.json) {
      printJson(context.stdout, { ...toJson(job), attempts: history });
      return 0;
    }
    for (const [key, value] of Object.entries(toJson(job))) context.stdout.write(`${key}: ${value ?? '-'}\n`);
    // Only failed attempts are stored; a successful one is the job's completion.
    context.stdout.write('attempt history:\n');
    if (history.length === 0 && job.attempt === 0) context.stdout.write('  not run yet\n');
    for (const entry of history) {
      context.stdout.write(`  #${entry.attempt} ${entry.startedAt} -> ${entry.finishedAt} ${entry.outcome}: ${entry.error}\n`);
    }
    if (job.state === 'completed') {
      context.stdout.write(`  #${job.attempt} completed at ${isoTime(job.finished_at)}\n`);
    } else if (job.state === 'running') {
      context.stdout.write(`  #${job.attempt} running, lease until ${isoTime(job.lease_until)}\n`);
    }
    const recorded = history.length + (job.state === 'completed' || job.state === 'running' ? 1 : 0);
    if (job.attempt > recorded) {
      context.stdout.write(`  ${job.attempt - recorded} attempt(s) left no record: a lease that expired, or history pruned by retention\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}

async function retry(context: Context): Promise<number> {
  const { values, positionals } = parseCommandArgs(context.argv, { dead: { type: 'boolean' } }, USAGE, 1);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n\nMoves a dead or discarded job (or with --dead, every dead job) back to available.\n`);
    return 0;
  }
  if (values.dead && positionals.length > 0) throw new UsageError('give a job id or --dead, not both', USAGE);
  if (!values.dead && positionals.length === 0) throw new UsageError('give a job id or --dead', USAGE);
  const target = values.dead ? 'all' : parseId(positionals[0], 'job id', USAGE);

  const { store } = await openForCommand(values, context);
  try {
    const count = await retryDead(store.db, target);
    if (target !== 'all' && count === 0) {
      context.stderr.write(`error: job ${target} is not dead or discarded, or a newer job for the same work is waiting\n`);
      return 1;
    }
    context.stdout.write(`${count} job${count === 1 ? '' : 's'} queued again\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function discardCommand(context: Context): Promise<number> {
  const { values, positionals } = parseCommandArgs(context.argv, {}, USAGE, 1);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n\nGives up a waiting or dead job; it is kept for history and never runs.\n`);
    return 0;
  }
  const id = parseId(positionals[0], 'job id', USAGE);
  const { store } = await openForCommand(values, context);
  try {
    if (!(await discard(store.db, id))) {
      context.stderr.write(`error: job ${id} is not waiting or dead (running, finished or unknown)\n`);
      return 1;
    }
    context.stdout.write(`job ${id} discarded\n`);
    return 0;
  } finally {
    await store.close();
  }
}
