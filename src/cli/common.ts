import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, type Config } from '../config/config.ts';
import { createLogger, type Logger } from '../log.ts';
import { openStore, type Store } from '../store/db.ts';

/** A mistake in the command line; main prints it with the usage line and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CommandContext {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(context: CommandContext): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON_OPTIONS = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** Parses a command's arguments strictly; unknown options and bad values are usage errors. */
export function parseCommandArgs<T extends Options>(argv: string[], options: T, usage: string, positionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, usage);
  }
  const values = parsed.values as { help?: boolean };
  if (!values.help && parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`, usage);
  }
  return parsed as typeof parsed & { values: { config?: string; help?: boolean } };
}

export function configPath(values: { config?: string }, env: NodeJS.ProcessEnv): string {
  return values.config ?? env.RWGPS_SYNC_CONFIG ?? './config.json';
}

/** Loads the config and opens the database for a one-shot command; logs go to stderr. */
export async function openForCommand(
  values: { config?: string },
  context: CommandContext,
  options: { migrate?: boolean; mustExist?: boolean } = {},
): Promise<{ config: Config; store: Store; logger: Logger }> {
  const config = loadConfig(configPath(values, context.env), context.env);
  const logger = createLogger({ level: config.log.level, sink: context.stderr });
  const store = await openStore(config.database.path, {
    synchronous: config.database.synchronous,
    busyTimeoutMs: config.database.busyTimeoutMs,
    ...options,
  });
  return { config, store, logger };
}

export function parseId(text: string | undefined, name: string, usage: string): number {
  if (text === undefined) throw new UsageError(`missing ${name}`, usage);
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new UsageError(`${name} must be a positive integer, got "${text}"`, usage);
  return Number(text);
}

/** Writes rows as aligned columns; the header row comes first. */
export function printTable(out: NodeJS.WritableStream, header: string[], rows: (string | number | null)[][]): void {
  const cells = [header, ...rows.map((row) => row.map((cell) => (cell === null ? '-' : String(cell))))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  for (const row of cells) {
    out.write(`${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()}\n`);
  }
}

export function printJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function isoTime(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
