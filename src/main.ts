#!/usr/bin/env node
// rwgps-sync command-line entry: `rwgps-sync <command> [options]`.
import { backupCommand } from './cli/backup.ts';
import { itemsCommand } from './cli/items.ts';
import { jobsCommand } from './cli/jobs.ts';
import { serveCommand } from './cli/serve.ts';
import { statusCommand } from './cli/status.ts';
import { UsageError, type Command, type CommandContext } from './cli/common.ts';
import { usersCommand } from './cli/users.ts';
import { ConfigError } from './config/config.ts';
import { errorMessage } from './log.ts';
import { COMMIT, VERSION } from './version.ts';

const COMMANDS: Command[] = [serveCommand, usersCommand, itemsCommand, jobsCommand, statusCommand, backupCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  const lines = COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`);
  return [
    'usage: rwgps-sync <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Every command takes --config <file> (default ./config.json, or $RWGPS_SYNC_CONFIG) and --help.',
    'rwgps-sync --version prints the version and the commit it was built from.',
  ].join('\n');
}

export async function main(argv: string[], context: Omit<CommandContext, 'argv'>): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    context.stdout.write(`rwgps-sync ${VERSION} (${COMMIT})\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    context.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    context.stderr.write(`error: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }

  try {
    return await command.run({ ...context, argv: rest });
  } catch (error) {
    if (error instanceof UsageError) {
      context.stderr.write(`error: ${error.message}\nusage: ${error.usage}\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      context.stderr.write(`error: invalid config: ${error.message}\n`);
      return 2;
    }
    context.stderr.write(`error: ${errorMessage(error)}\n`);
    return 1;
  }
}

main(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: ${errorMessage(error)}\n`);
    process.exitCode = 1;
  },
);
