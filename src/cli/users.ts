import { connectUser, listUsers } from '../store/users.ts';
import { isoTime, openForCommand, parseCommandArgs, parseId, printJson, printTable, UsageError, type Command } from './common.ts';

const USAGE = [
  'rwgps-sync users add --user-id <id> --token <token> [--client <apiKey>] [--basic] [--config <file>]',
  'rwgps-sync users list [--json] [--config <file>]',
].join('\n       ');

export const usersCommand: Command = {
  name: 'users',
  summary: 'import a user token, or list connected users',
  usage: USAGE,
  async run(context) {
    const [sub, ...rest] = context.argv;
    if (sub === 'add') return add({ ...context, argv: rest });
    if (sub === 'list') return list({ ...context, argv: rest });
    if (sub === undefined || sub === '--help' || sub === '-h') {
      context.stdout.write(`usage: ${USAGE}\n`);
      return sub === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown users command "${sub}"`, USAGE);
  },
};

async function add(context: Parameters<Command['run']>[0]): Promise<number> {
  const { values } = parseCommandArgs(
    context.argv,
    { 'user-id': { type: 'string' }, token: { type: 'string' }, client: { type: 'string' }, basic: { type: 'boolean' } },
    USAGE,
  );
  if (values.help) {
    context.stdout.write(
      `usage: ${USAGE}\n\nStores a user's token. --basic marks it as a Basic auth_token (sent with the client's API key);\n` +
        'otherwise it is an OAuth access token. --client names the API client by its apiKey (default: the only one).\n' +
        'Jobs that were waiting for this user start running.\n',
    );
    return 0;
  }
  const userId = parseId(values['user-id'], '--user-id', USAGE);
  const token = values.token ?? context.env.RWGPS_SYNC_USER_TOKEN;
  if (!token) throw new UsageError('missing --token (or the RWGPS_SYNC_USER_TOKEN environment variable)', USAGE);

  const { config, store, logger } = await openForCommand(values, context);
  try {
    let apiKey = values.client;
    if (apiKey === undefined) {
      if (config.clients.length > 1) {
        throw new UsageError(`several API clients are configured; name one with --client <apiKey>`, USAGE);
      }
      apiKey = config.clients[0]!.apiKey;
    } else if (!config.clients.some((client) => client.apiKey === apiKey)) {
      throw new UsageError(`--client "${apiKey}" is not an apiKey in ${config.file}`, USAGE);
    }
    const woken = await connectUser(store.db, {
      id: userId,
      clientApiKey: apiKey,
      token,
      tokenKind: values.basic ? 'basic' : 'oauth',
    });
    logger.info('user connected', { userId, tokenKind: values.basic ? 'basic' : 'oauth', jobsWoken: woken });
    context.stdout.write(`user ${userId} connected (${values.basic ? 'basic auth_token' : 'OAuth token'}); ${woken} waiting jobs queued\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function list(context: Parameters<Command['run']>[0]): Promise<number> {
  const { values } = parseCommandArgs(context.argv, { json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    context.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  const { store } = await openForCommand(values, context);
  try {
    const users = await listUsers(store.db);
    if (values.json) {
      printJson(
        context.stdout,
        users.map((user) => ({ ...user, connectedAt: isoTime(user.connectedAt), updatedAt: isoTime(user.updatedAt) })),
      );
      return 0;
    }
    if (users.length === 0) {
      context.stdout.write('no users; add one with "rwgps-sync users add"\n');
      return 0;
    }
    printTable(
      context.stdout,
      ['USER', 'STATUS', 'TOKEN', 'ITEMS', 'PENDING', 'DEAD', 'UPDATED'],
      users.map((user) => [user.userId, user.status, user.tokenKind, user.items, user.pendingJobs, user.failedJobs, isoTime(user.updatedAt)]),
    );
    return 0;
  } finally {
    await store.close();
  }
}
