import { databaseFileSizes } from '../store/db.ts';
import {
  appliedSchemaVersion,
  countDeadJobsSince,
  countJobsByState,
  countUsersByStatus,
  lastDeliveryAt,
  lastSyncPerUser,
  oldestPendingJob,
} from '../store/stats.ts';
import { COMMIT, VERSION } from '../version.ts';
import { formatBytes } from './backup.ts';
import { isoTime, openForCommand, parseCommandArgs, printJson, printTable, type Command } from './common.ts';

const USAGE = 'rwgps-sync status [--json] [--config <file>]';

const DAY_MS = 86_400_000;

export const statusCommand: Command = {
  name: 'status',
  summary: 'one screen of facts: database, users, jobs, backlog, last delivery, last sync per user',
  usage: USAGE,
  async run(context) {
    const { values } = parseCommandArgs(context.argv, { json: { type: 'boolean' } }, USAGE);
    if (values.help) {
      context.stdout.write(
        `usage: ${USAGE}\n\nReads the database (serve may be running) and prints its state. ` +
          'The oldest pending job is the due job that has waited longest for a worker: the backlog.\n',
      );
      return 0;
    }
    const { config, store } = await openForCommand(values, context, { migrate: false, mustExist: true });
    try {
      const now = Date.now();
      const db = store.db;
      const sizes = databaseFileSizes(store.path);
      const oldest = await oldestPendingJob(db, now);
      const report = {
        version: VERSION,
        commit: COMMIT,
        config: config.file,
        database: { path: store.path, bytes: sizes.database, walBytes: sizes.wal, schemaVersion: await appliedSchemaVersion(db) },
        usersByStatus: await countUsersByStatus(db),
        jobsByState: await countJobsByState(db),
        oldestPendingJob: oldest
          ? {
              id: oldest.id,
              state: oldest.state,
              createdAt: isoTime(oldest.createdAt),
              dueAt: isoTime(oldest.dueAt),
              waitingSeconds: Math.round((now - oldest.dueAt) / 1000),
            }
          : null,
        lastDeliveryAt: isoTime(await lastDeliveryAt(db)),
        deadJobsLastDay: await countDeadJobsSince(db, now - DAY_MS),
        users: (await lastSyncPerUser(db)).map((user) => ({
          ...user,
          lastItemSyncedAt: isoTime(user.lastItemSyncedAt),
          lastJobCompletedAt: isoTime(user.lastJobCompletedAt),
        })),
      };
      if (values.json) {
        printJson(context.stdout, report);
        return 0;
      }

      const out = context.stdout;
      const counts = (record: Record<string, number>) => Object.entries(record).map(([key, n]) => `${key} ${n}`).join(', ');
      out.write(`rwgps-sync ${report.version} (${report.commit})\n`);
      out.write(`config:            ${report.config}\n`);
      out.write(
        `database:          ${report.database.path} (${formatBytes(report.database.bytes)}, wal ${formatBytes(report.database.walBytes)}), ` +
          `schema version ${report.database.schemaVersion}\n`,
      );
      out.write(`users:             ${counts(report.usersByStatus)}\n`);
      out.write(`jobs:              ${counts(report.jobsByState)}\n`);
      out.write(
        `oldest pending:    ${oldest ? `job ${oldest.id} (${oldest.state}), due since ${report.oldestPendingJob?.dueAt}, waiting ${formatAge(now - oldest.dueAt)}` : 'none due'}\n`,
      );
      out.write(`last delivery:     ${report.lastDeliveryAt ?? 'none received'}\n`);
      out.write(`dead jobs, 24 h:   ${report.deadJobsLastDay}${report.deadJobsLastDay > 0 ? ' (see: rwgps-sync jobs list --state dead)' : ''}\n`);
      if (report.users.length > 0) {
        out.write('\n');
        printTable(
          out,
          ['USER', 'STATUS', 'LAST ITEM SYNC', 'LAST JOB COMPLETED', 'PENDING', 'DEAD'],
          report.users.map((user) => [user.userId, user.status, user.lastItemSyncedAt, user.lastJobCompletedAt, user.pendingJobs, user.deadJobs]),
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};

function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}
