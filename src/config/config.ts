import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseNetwork } from './networks.ts';
import { check, ConfigError, type Rule } from './schema.ts';

export { ConfigError } from './schema.ts';

export interface ClientConfig {
  apiKey: string;
  clientId: string;
  clientSecret: string;
}

export type Synchronous = 'full' | 'normal';

export interface Config {
  /** Absolute path of the file this config was read from. */
  file: string;
  /** Key paths of secrets written in the file (not taken from the environment). */
  inlineSecretKeys: readonly string[];
  server: { host: string; port: number; publicUrl: string | null };
  database: { path: string; synchronous: Synchronous; busyTimeoutMs: number; checkpointIntervalMs: number };
  rwgps: { baseUrl: string; maxRequestsPerSecond: number };
  clients: ClientConfig[];
  worker: {
    concurrency: number;
    maxAttempts: number;
    backoffBaseMs: number;
    backoffMaxMs: number;
    leaseMs: number;
    requestTimeoutMs: number;
    pollIntervalMs: number;
    shutdownGraceMs: number;
  };
  metrics: { enabled: boolean; token: string | null; allow: string[] };
  retention: { finishedJobsDays: number; deliveriesDays: number; attemptsDays: number; intervalMs: number };
  sync: {
    /** Value of the sync endpoint's assets parameter, such as "routes,trips". */
    assets: string;
    /** Minutes between reconciliation rounds; 0 disables them. Fractions are allowed. */
    intervalMinutes: number;
    /** Delay before the sync that a webhook schedules, so a burst of deliveries shares one sync. */
    afterWebhookDelayMs: number;
  };
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
}

const HOUR_MS = 3_600_000;

const rules: Rule = {
  type: 'object',
  fields: {
    server: {
      type: 'object',
      fields: {
        host: { type: 'string', default: '127.0.0.1', nonEmpty: true },
        port: { type: 'integer', default: 8787, min: 0, max: 65535 },
        publicUrl: { type: 'url', protocols: ['https', 'http'] },
      },
    },
    database: {
      type: 'object',
      fields: {
        path: { type: 'string', default: './rwgps-sync.db', nonEmpty: true },
        synchronous: { type: 'enum', default: 'full', values: ['full', 'normal'] },
        busyTimeoutMs: { type: 'integer', default: 5000, min: 0, max: 600_000 },
        checkpointIntervalMs: { type: 'integer', default: 30_000, min: 100, max: HOUR_MS },
      },
    },
    rwgps: {
      type: 'object',
      fields: {
        baseUrl: { type: 'url', default: 'https://ridewithgps.com', protocols: ['https', 'http'] },
        maxRequestsPerSecond: { type: 'integer', default: 10, min: 0, max: 10_000 },
      },
    },
    clients: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        fields: {
          apiKey: { type: 'string', required: true, nonEmpty: true },
          clientId: { type: 'string', required: true, nonEmpty: true },
          clientSecret: { type: 'string', required: true, secret: true, nonEmpty: true },
        },
      },
    },
    worker: {
      type: 'object',
      fields: {
        concurrency: { type: 'integer', default: 4, min: 1, max: 256 },
        maxAttempts: { type: 'integer', default: 12, min: 1, max: 100 },
        backoffBaseMs: { type: 'integer', default: 5000, min: 1, max: 24 * HOUR_MS },
        backoffMaxMs: { type: 'integer', default: HOUR_MS, min: 1, max: 7 * 24 * HOUR_MS },
        leaseMs: { type: 'integer', default: 120_000, min: 1000, max: 24 * HOUR_MS },
        requestTimeoutMs: { type: 'integer', default: 30_000, min: 100, max: HOUR_MS },
        pollIntervalMs: { type: 'integer', default: 1000, min: 10, max: 60_000 },
        shutdownGraceMs: { type: 'integer', default: 10_000, min: 0, max: 600_000 },
      },
    },
    metrics: {
      type: 'object',
      fields: {
        enabled: { type: 'boolean', default: false },
        token: { type: 'string', secret: true, nonEmpty: true },
        allow: { type: 'array', minItems: 0, items: { type: 'string', nonEmpty: true } },
      },
    },
    retention: {
      type: 'object',
      fields: {
        finishedJobsDays: { type: 'integer', default: 7, min: 0, max: 36_500 },
        deliveriesDays: { type: 'integer', default: 30, min: 0, max: 36_500 },
        attemptsDays: { type: 'integer', default: 30, min: 0, max: 36_500 },
        intervalMs: { type: 'integer', default: 600_000, min: 100, max: 24 * HOUR_MS },
      },
    },
    sync: {
      type: 'object',
      fields: {
        assets: { type: 'enum', default: 'routes,trips', values: ['routes,trips', 'routes', 'trips'] },
        intervalMinutes: { type: 'number', default: 60, min: 0, max: 7 * 24 * 60 },
        afterWebhookDelayMs: { type: 'integer', default: 5000, min: 0, max: HOUR_MS },
      },
    },
    log: {
      type: 'object',
      fields: {
        level: { type: 'enum', default: 'info', values: ['debug', 'info', 'warn', 'error'] },
      },
    },
  },
};

/**
 * Parses and validates config text. Relative paths inside it (the database)
 * are resolved against the folder of `file`, so a service started from any
 * working directory finds the same database.
 */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const absolute = resolve(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(absolute, '', `not valid JSON: ${describeJsonError(error as Error, text)}`);
  }

  const inlineSecrets: string[] = [];
  const config = check(rules, raw, '', { file: absolute, env, inlineSecrets }) as Omit<Config, 'file' | 'inlineSecretKeys'>;
  checkRelations(config, absolute);
  config.database.path = resolve(dirname(absolute), config.database.path);
  return Object.freeze({ ...config, file: absolute, inlineSecretKeys: inlineSecrets });
}

/** Adds the line and column to JSON.parse's message, which gives only a character position. */
function describeJsonError(error: Error, text: string): string {
  const match = /at position (\d+)/.exec(error.message);
  if (!match) return error.message;
  const before = text.slice(0, Number(match[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${error.message} (line ${line}, column ${column})`;
}

function checkRelations(config: Omit<Config, 'file' | 'inlineSecretKeys'>, file: string): void {
  const { worker } = config;
  if (worker.backoffMaxMs < worker.backoffBaseMs) {
    throw new ConfigError(
      file,
      'worker.backoffMaxMs',
      `expected at least worker.backoffBaseMs (${worker.backoffBaseMs}), found ${worker.backoffMaxMs}`,
    );
  }
  // A lease shorter than one request would let a second worker claim a job
  // whose first request is still running.
  if (worker.leaseMs <= worker.requestTimeoutMs) {
    throw new ConfigError(
      file,
      'worker.leaseMs',
      `expected more than worker.requestTimeoutMs (${worker.requestTimeoutMs}), found ${worker.leaseMs}`,
    );
  }

  const { metrics } = config;
  metrics.allow.forEach((entry, index) => {
    if (parseNetwork(entry) === null) {
      throw new ConfigError(file, `metrics.allow[${index}]`, `expected an IP address or a CIDR block such as "10.0.0.0/8", found ${JSON.stringify(entry)}`);
    }
  });
  // /metrics shows user counts and error rates: it is never served open.
  if (metrics.enabled && metrics.token === null && metrics.allow.length === 0) {
    throw new ConfigError(
      file,
      'metrics',
      'expected metrics.token (or metrics.tokenEnv) or a metrics.allow list when metrics.enabled is true, found neither',
    );
  }

  const seen = new Set<string>();
  config.clients.forEach((client, index) => {
    if (seen.has(client.apiKey)) {
      throw new ConfigError(file, `clients[${index}].apiKey`, `duplicate API key ${JSON.stringify(client.apiKey)}`);
    }
    seen.add(client.apiKey);
  });
}

/** Reads and validates the config file; a missing or unreadable file is a ConfigError too. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const absolute = resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : `cannot be read (${code ?? (error as Error).message})`;
    throw new ConfigError(
      absolute,
      '',
      `${reason}; pass --config <file> or set RWGPS_SYNC_CONFIG (config.example.json shows every key)`,
    );
  }
  return parseConfig(text, absolute, env);
}

export function findClient(config: Config, apiKey: string): ClientConfig | undefined {
  return config.clients.find((client) => client.apiKey === apiKey);
}
