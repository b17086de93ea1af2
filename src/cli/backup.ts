import { backupDatabase } from '../store/db.ts';
import { openForCommand, parseCommandArgs, printJson, printTable, UsageError, type Command } from './common.ts';

const USAGE = 'rwgps-sync backup <file> [--force] [--json] [--config <file>]';

const HELP = `usage: ${USAGE}

Writes a consistent copy of the database to <file> while serve keeps running,
checks the copy with PRAGMA integrity_check and prints its size and row counts.
An existing <file> is kept unless --force is given. Exit code 1 on any failure;
nothing is left at <file> then.

Copying the .db file with cp while serve runs is not a backup: recent
transactions live in the -wal file, and a copy taken mid-write can be corrupt.
`;

export const backupCommand: Command = {
  name: 'backup',
  summary: 'write a verified copy of the live database to a file',
  usage: USAGE,
  async run(context) {
    const { values, positionals } = parseCommandArgs(context.argv, { force: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE, 1);
    if (values.help) {
      context.stdout.write(HELP);
      return 0;
    }
    const target = positionals[0];
    if (target === undefined || target === '') throw new UsageError('missing the backup file name', USAGE);

    // No migrations here: a backup taken before an upgrade must hold the old schema.
    const { store } = await openForCommand(values, context, { migrate: false, mustExist: true });
    try {
      const result = await backupDatabase(store, target, { force: values.force === true });
      if (values.json) {
        printJson(context.stdout, { ...result, integrityCheck: 'ok' });
        return 0;
      }
      context.stdout.write(
        `backup written to ${result.path}: ${formatBytes(result.bytes)} in ${result.durationMs} ms; ` +
          `integrity check ok; schema version ${result.schemaVersion}\n`,
      );
      printTable(
        context.stdout,
        ['TABLE', 'ROWS'],
        Object.entries(result.tables).map(([name, rows]) => [name, rows]),
      );
      return 0;
    } finally {
      await store.close();
    }
  },
};

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
