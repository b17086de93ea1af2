import { getItemBody, listLibrary } from '../store/items.ts';
import { openForCommand, parseCommandArgs, parseId, printJson, printTable, UsageError, type Command } from './common.ts';

const USAGE = [
  'rwgps-sync items list --user <id> [--json] [--config <file>]',
  'rwgps-sync items show <route|trip> <id> [--config <file>]',
].join('\n       ');

export const itemsCommand: Command = {
  name: 'items',
  summary: "list a user's mirrored library, or print one stored item",
  usage: USAGE,
  async run(context) {
    const [sub, ...rest] = context.argv;
    if (sub === 'list') return list({ ...context, argv: rest });
    if (sub === 'show') return show({ ...context, argv: rest });
    if (sub === undefined || sub === '--help' || sub === '-h') {
      context.stdout.write(`usage: ${USAGE}\n`);
      return sub === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown items command "${sub}"`, USAGE);
  },
};

async function list(context: Parameters<Command['run']>[0]): Promise<number> {
  const { values } = parseCommandArgs(context.argv, { user: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  const userId = parseId(values.user, '--user', USAGE);
  const { store } = await openForCommand(values, context);
  try {
    const entries = await listLibrary(store.db, userId);
    if (values.json) {
      printJson(context.stdout, entries);
      return 0;
    }
    if (entries.length === 0) {
      context.stdout.write(`no items for user ${userId}\n`);
      return 0;
    }
    printTable(
      context.stdout,
      ['TYPE', 'ID', 'OWNER', 'RELATION', 'DELETED', 'UPDATED (RWGPS)', 'SYNCED', 'NAME'],
      entries.map((e) => [e.type, e.id, e.ownerId, e.relation, e.deleted ? 'yes' : 'no', e.updatedAt, e.syncedAt, e.name]),
    );
    return 0;
  } finally {
    await store.close();
  }
}

async function show(context: Parameters<Command['run']>[0]): Promise<number> {
  const { values, positionals } = parseCommandArgs(context.argv, {}, USAGE, 2);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  const type = positionals[0];
  if (type !== 'route' && type !== 'trip') {
    throw new UsageError(`item type must be "route" or "trip", got ${type === undefined ? 'nothing' : `"${type}"`}`, USAGE);
  }
  const id = parseId(positionals[1], 'item id', USAGE);
  const { store } = await openForCommand(values, context);
  try {
    const row = await getItemBody(store.db, type, id);
    if (!row) {
      context.stderr.write(`error: ${type} ${id} not found in the database\n`);
      return 1;
    }
    if (row.body === null) {
      context.stderr.write(`error: ${type} ${id} was deleted at RWGPS before it was ever fetched; no copy is stored\n`);
      return 1;
    }
    if (row.deleted_at !== null) {
      context.stderr.write(`note: ${type} ${id} was deleted at RWGPS on ${new Date(row.deleted_at).toISOString()}; this is the last copy\n`);
    }
    context.stdout.write(row.body.endsWith('\n') ? row.body : `${row.body}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
