import { revokeToken } from '../rwgps/oauth.ts';
import { findClient } from '../config/config.ts';
import { disconnectUser, getUser, listUsers } from '../store/users.ts';
import { connectUserAndSync } from '../sync/connect.ts';
import { isoTime, openForCommand, parseCommandArgs, parseId, printJson, printTable, UsageError, type Command } from './common.ts';

const USAGE = [
  'rwgps-sync users add --user-id <id> --token <token> [--client <apiKey>] [--basic] [--config <file>]',
  'rwgps-sync users list [--json] [--config <file>]',
  'rwgps-sync users remove <id> [--revoke] [--purge] [--config <file>]',
].join('\n       ');

export const usersCommand: Command = {
  name: 'users',
  summary: 'import a user token, list users and their sync progress, or remove a user',
  usage: USAGE,
  async run(context) {
    const [sub, ...rest] = context.argv;
    if (sub === 'add') return add({ ...context, argv: rest });
    if (sub === 'list') return list({ ...context, argv: rest });
    if (sub === 'remove') return remove({ ...context, argv: rest });
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
        'Jobs that were waiting for this user start running, and a sync is queued: a backfill of the whole\n' +
        'library for a new user, or the changes since the last sync for a returning one. `serve` runs it.\n',
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
    const result = await connectUserAndSync(
      store.db,
      { id: userId, clientApiKey: apiKey, token, tokenKind: values.basic ? 'basic' : 'oauth' },
      config.worker.maxAttempts,
    );
    const sync = result.backfill ? 'backfill' : 'catch-up';
    logger.info('user connected', { userId, tokenKind: values.basic ? 'basic' : 'oauth', jobsWoken: result.jobsWoken, sync });
    context.stdout.write(
      `user ${userId} connected (${values.basic ? 'basic auth_token' : 'OAuth token'}); ${result.jobsWoken} waiting jobs queued; ${sync} sync queued\n`,
    );
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
        users.map((user) => ({
          ...user,
          connectedAt: isoTime(user.connectedAt),
          updatedAt: isoTime(user.updatedAt),
          lastSyncedAt: isoTime(user.lastSyncedAt),
          backfillStartedAt: isoTime(user.backfillStartedAt),
          backfillFinishedAt: isoTime(user.backfillFinishedAt),
        })),
      );
      return 0;
    }
    if (users.length === 0) {
      context.stdout.write('no users; add one with "rwgps-sync users add"\n');
      return 0;
    }
    printTable(
      context.stdout,
      ['USER', 'STATUS', 'TOKEN', 'ITEMS', 'PENDING', 'DEAD', 'BACKFILL', 'SYNCED/KNOWN', 'CURSOR', 'LAST SYNC'],
      users.map((user) => [
        user.userId,
        user.status,
        user.tokenKind,
        user.items,
        user.pendingJobs,
        user.failedJobs,
        user.backfillState,
        `${user.backfillItemsSynced}/${user.backfillItemsKnown}`,
        user.syncCursor,
        isoTime(user.lastSyncedAt),
      ]),
    );
    return 0;
  } finally {
    await store.close();
  }
}

async function remove(context: Parameters<Command['run']>[0]): Promise<number> {
  const { values, positionals } = parseCommandArgs(context.argv, { revoke: { type: 'boolean' }, purge: { type: 'boolean' } }, USAGE, 1);
  if (values.help) {
    context.stdout.write(
      `usage: ${USAGE}\n\nMarks a user disconnected and forgets their token; their mirrored library stays.\n` +
        '--revoke also revokes the OAuth token at RWGPS first (a Basic auth_token cannot be revoked this way).\n' +
        '--purge deletes the user\'s library and waiting jobs; items in another user\'s library stay.\n',
    );
    return 0;
  }
  const userId = parseId(positionals[0], '<id>', USAGE);
  const { config, store, logger } = await openForCommand(values, context);
  try {
    const user = await getUser(store.db, userId);
    if (!user) {
      context.stderr.write(`error: user ${userId} not found; "rwgps-sync users list" shows the known users\n`);
      return 1;
    }
    if (values.revoke) {
      if (user.token_kind !== 'oauth' || user.token === '') {
        const why = user.token === '' ? 'the user has no stored token' : 'a Basic auth_token is revoked in the RWGPS account settings, not through OAuth';
        context.stderr.write(`error: cannot --revoke user ${userId}: ${why}; run again without --revoke\n`);
        return 1;
      }
      const client = findClient(config, user.client_api_key);
      if (!client) {
        context.stderr.write(`error: cannot --revoke user ${userId}: API client ${user.client_api_key} is not in ${config.file}\n`);
        return 1;
      }
      const failure = await revokeToken({ baseUrl: config.rwgps.baseUrl, requestTimeoutMs: config.worker.requestTimeoutMs }, client, user.token);
      if (failure !== null) {
        context.stderr.write(`error: revoking the token of user ${userId} failed (${failure}); nothing was changed. Try again, or run without --revoke\n`);
        return 1;
      }
    }
    const result = await disconnectUser(store.db, userId, { purge: values.purge === true });
    logger.info('user removed', { userId, revoked: values.revoke === true, purged: values.purge === true, ...result });
    const parts = [`user ${userId} disconnected`];
    if (values.revoke) parts.push('token revoked at RWGPS');
    parts.push(values.purge ? `${result.itemsDeleted} items deleted, ${result.jobsDiscarded} waiting jobs discarded` : 'mirrored library kept');
    context.stdout.write(`${parts.join('; ')}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
