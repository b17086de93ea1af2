// JSON-lines logger: one object per line with time, level and message, then
// the fields of the event (delivery id, job id, user id, ...).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Keys whose values must never be written, whatever a caller passes. This is
// a safety net: callers are expected not to pass secrets at all.
const SECRET_KEYS = /^(token|accesstoken|access_token|authtoken|auth_token|secret|clientsecret|client_secret|authorization|signature|password|code)$/i;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LogSink {
  write(line: string): unknown;
}

export function createLogger(options: { level?: LogLevel; sink?: LogSink; base?: LogFields } = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const sink = options.sink ?? process.stdout;
  const base = options.base ?? {};

  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg, ...base };
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        record[key] = SECRET_KEYS.test(key) ? '[redacted]' : toLoggable(value);
      }
    }
    sink.write(`${JSON.stringify(record)}\n`);
  };

  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}

function toLoggable(value: unknown): unknown {
  if (value instanceof Error) return errorMessage(value);
  return value;
}

/** Returns an error's message with its causes, for logs and stored job errors. */
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  let text = error.message;
  let cause = (error as { cause?: unknown }).cause;
  for (let depth = 0; cause instanceof Error && depth < 3; depth++) {
    text += `: ${cause.message}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return text;
}

/** A logger that drops everything, for commands and tests that do not want output. */
export const silentLogger: Logger = createLogger({ sink: { write: () => true }, level: 'error' });
