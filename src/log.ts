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

export interface LoggerOptions {
  level?: LogLevel;
  sink?: LogSink;
  base?: LogFields;
  /**
   * Window for counting repeats, in milliseconds (default 60 s; 0 turns
   * counting off). Within it, a warn or error line with the same message
   * and `error` field as an earlier one is not written. When the window
   * ends, one summary line gives the count.
   */
  repeatWindowMs?: number;
}

const DEFAULT_REPEAT_WINDOW_MS = 60_000;

export function createLogger(options: LoggerOptions = {}): Logger {
  const sink = options.sink ?? process.stdout;
  const windowMs = options.repeatWindowMs ?? DEFAULT_REPEAT_WINDOW_MS;
  const repeats = windowMs > 0 ? new RepeatCounter(windowMs, (level, fields) => write(sink, level, 'repeated log lines suppressed', fields)) : null;
  return buildLogger(LEVELS[options.level ?? 'info'], sink, options.base ?? {}, repeats);
}

function buildLogger(min: number, sink: LogSink, base: LogFields, repeats: RepeatCounter | null): Logger {
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    if (repeats && LEVELS[level] >= LEVELS.warn && fields?.error !== undefined) {
      if (!repeats.admit(level, msg, String(toLoggable(fields.error)))) return;
    }
    write(sink, level, msg, { ...base, ...fields });
  };

  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    // Children share the parent's repeat counter, so a repeat is counted
    // whichever job or delivery logged it.
    child: (fields) => buildLogger(min, sink, { ...base, ...fields }, repeats),
  };
}

function write(sink: LogSink, level: LogLevel, msg: string, fields: LogFields): void {
  const record: LogFields = { time: new Date().toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields)) {
    record[key] = SECRET_KEYS.test(key) ? '[redacted]' : toLoggable(value);
  }
  sink.write(`${JSON.stringify(record)}\n`);
}

// Counts warn and error lines by message and error text. The first line of a
// kind in a window is written; later ones are counted, and a timer writes one
// summary per kind when the window closes.
class RepeatCounter {
  readonly #windows = new Map<string, { level: LogLevel; msg: string; error: string; startedAt: number; suppressed: number }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    readonly windowMs: number,
    readonly summarize: (level: LogLevel, fields: LogFields) => void,
  ) {}

  admit(level: LogLevel, msg: string, error: string): boolean {
    const key = `${msg}\u0000${error}`;
    const window = this.#windows.get(key);
    if (window) {
      window.suppressed++;
      return false;
    }
    this.#windows.set(key, { level, msg, error, startedAt: Date.now(), suppressed: 0 });
    this.#schedule();
    return true;
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => this.#closeWindows(), this.windowMs);
    // Counting must never keep a stopping process alive.
    this.#timer.unref();
  }

  #closeWindows(): void {
    this.#timer = null;
    const now = Date.now();
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt < this.windowMs) continue;
      this.#windows.delete(key);
      if (window.suppressed > 0) {
        this.summarize(window.level, { repeatedMsg: window.msg, error: window.error, count: window.suppressed, windowMs: now - window.startedAt });
      }
    }
    if (this.#windows.size > 0) this.#schedule();
  }
}

/**
 * Logs the start and the end of an outage of one dependency (RWGPS, the
 * database) once each, however many requests fail in between. The single
 * failures are logged by their callers, and repeats of those are counted.
 */
export class OutageTracker {
  #failures = 0;
  #since = 0;
  #lastError = '';

  constructor(
    readonly logger: Logger,
    readonly name: string,
  ) {}

  get failing(): boolean {
    return this.#failures > 0;
  }

  failure(error: unknown): void {
    this.#lastError = errorMessage(error);
    if (this.#failures++ === 0) {
      this.#since = Date.now();
      this.logger.warn(`${this.name} unavailable`, { error: this.#lastError });
    }
  }

  success(): void {
    if (this.#failures === 0) return;
    this.logger.info(`${this.name} available again`, {
      failures: this.#failures,
      outageMs: Date.now() - this.#since,
      lastError: this.#lastError,
    });
    this.#failures = 0;
  }
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
export const silentLogger: Logger = createLogger({ sink: { write: () => true }, level: 'error', repeatWindowMs: 0 });
