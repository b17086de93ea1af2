// Shared test setup: a temp folder per test, a config file, the real service
// started in-process with a capturing logger, the fake Ride with GPS, a
// polling helper with a deadline, and the CLI run as a real child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { FakeRwgps, sendWebhook } from '../scripts/fake-rwgps.ts';
import { loadConfig, type Config } from '../src/config/config.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import type { Database, JobState } from '../src/store/schema.ts';
import { connectUser } from '../src/store/users.ts';
import type { NewJob } from '../src/jobs/queue.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = join(REPO_ROOT, 'src', 'main.ts');

export const CLIENT = { apiKey: 'test-api-key', clientId: 'test-client-id', clientSecret: 'test-client-secret-5b1f0c' };

/** Tokens of the fake's users 1, 2 and 3; tests assert none of them reaches a log. */
export const TOKENS: Record<number, string> = {
  1: 'token-user-1-a7c3',
  2: 'token-user-2-d91e',
  3: 'token-user-3-42bb',
};

/** Creates a temp folder that is removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Overrides = Record<string, unknown>;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(base: Overrides, extra: Overrides): Overrides {
  const result: Overrides = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    result[key] = isObject(value) && isObject(base[key]) ? merge(base[key] as Overrides, value) : value;
  }
  return result;
}

/** Returns a config object with test defaults: port 0, fast polling and backoff, no RWGPS rate limit. */
export function testConfig(baseUrl: string, overrides: Overrides = {}): Overrides {
  const base: Overrides = {
    server: { host: '127.0.0.1', port: 0 },
    database: { path: './test.db', busyTimeoutMs: 2000 },
    rwgps: { baseUrl, maxRequestsPerSecond: 0 },
    clients: [CLIENT],
    worker: {
      concurrency: 4,
      maxAttempts: 5,
      backoffBaseMs: 20,
      backoffMaxMs: 200,
      leaseMs: 5000,
      requestTimeoutMs: 2000,
      pollIntervalMs: 20,
    },
    // Syncs from the sync endpoint have their own tests; here a webhook's
    // follow-up sync waits an hour and no reconciliation round runs, so the
    // item jobs and the fake's request log are all a test sees.
    sync: { intervalMinutes: 0, afterWebhookDelayMs: 3_600_000 },
    log: { level: 'debug' },
  };
  return merge(base, overrides);
}

/** Writes `config` (an object, or raw text) to dir/config.json and returns the path. */
export function writeConfig(dir: string, config: Overrides | string, name = 'config.json'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return path;
}

/** A logger whose JSON lines are kept for assertions. */
export class LogCapture {
  readonly lines: string[] = [];
  // Repeat counting is off so that tests see every line the service writes.
  readonly logger: Logger = createLogger({ level: 'debug', repeatWindowMs: 0, sink: { write: (line: string) => this.lines.push(line) } });

  get records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Returns the records whose msg equals `msg` and whose fields match `fields`. */
  find(msg: string, fields: Record<string, unknown> = {}): Record<string, unknown>[] {
    return this.records.filter(
      (record) => record.msg === msg && Object.entries(fields).every(([key, value]) => record[key] === value),
    );
  }

  get text(): string {
    return this.lines.join('');
  }
}

/** Starts a fake RWGPS with the test client and users 1, 2 and 3; closes it when the test ends. */
export async function startFake(t: TestContext): Promise<FakeRwgps> {
  const fake = await FakeRwgps.start({ clients: [CLIENT] });
  t.after(() => fake.close());
  for (const [id, token] of Object.entries(TOKENS)) fake.addUser({ id: Number(id), accessToken: token });
  return fake;
}

export interface TestService {
  service: Service;
  config: Config;
  configPath: string;
  dir: string;
  logs: LogCapture;
  fake: FakeRwgps;
  db: Kysely<Database>;
  /** POSTs a signed delivery to /webhooks/rwgps, as RWGPS does. */
  send(body: string | Uint8Array | { notifications: unknown[] }, options?: SendOptions): Promise<{ status: number; body: string }>;
}

export interface SendOptions {
  signature?: string;
  headers?: Record<string, string>;
  path?: string;
}

/**
 * Starts a fake RWGPS (unless given) and the real service on a temp database,
 * listening on 127.0.0.1. Both stop when the test ends.
 */
export async function startTestService(
  t: TestContext,
  options: { config?: Overrides; fake?: FakeRwgps; dir?: string } = {},
): Promise<TestService> {
  const fake = options.fake ?? (await startFake(t));
  const dir = options.dir ?? tempDir(t);
  const configPath = writeConfig(dir, testConfig(fake.url, options.config));
  const config = loadConfig(configPath, {});
  const logs = new LogCapture();
  const service = await startService(config, logs.logger);
  t.after(() => service.close(2000));
  const send: TestService['send'] = (body, sendOptions = {}) =>
    sendWebhook(`${service.url}${sendOptions.path ?? '/webhooks/rwgps'}`, body, {
      apiKey: CLIENT.apiKey,
      secret: CLIENT.clientSecret,
      ...(sendOptions.signature === undefined ? {} : { signature: sendOptions.signature }),
      ...(sendOptions.headers === undefined ? {} : { headers: sendOptions.headers }),
    });
  return { service, config, configPath, dir, logs, fake, db: service.store.db, send };
}

/** Stores user `id` with its fake token as an active OAuth user. */
export async function connect(db: Kysely<Database>, id: number, token = TOKENS[id] ?? `token-${id}`): Promise<void> {
  await connectUser(db, { id, clientApiKey: CLIENT.apiKey, token, tokenKind: 'oauth' });
}

export interface NotificationFields {
  user_id: number;
  item_id: number;
  action?: string;
  item_type?: string;
  item_user_id?: number;
  collection?: unknown;
}

/** Builds one notification in the documented shape; `added`/`removed` get the user's pinned collection. */
export function notification(fields: NotificationFields): Record<string, unknown> {
  const action = fields.action ?? 'created';
  const type = fields.item_type ?? 'route';
  const pinned = action === 'added' || action === 'removed';
  const defaultCollection = pinned ? { id: fields.user_id, type: 'pinned', url: null } : null;
  return {
    user_id: fields.user_id,
    item_type: type,
    item_id: fields.item_id,
    item_user_id: fields.item_user_id ?? fields.user_id,
    item_url: `https://ridewithgps.com/${type}s/${fields.item_id}.json`,
    action,
    collection: 'collection' in fields ? fields.collection : defaultCollection,
  };
}

export function delivery(...notifications: NotificationFields[]): { notifications: Record<string, unknown>[] } {
  return { notifications: notifications.map(notification) };
}

/**
 * Polls `predicate` every `intervalMs` (default 25) until it returns a truthy
 * value, and returns that value. Fails with `what` and the last value seen when
 * `timeoutMs` (default 20 000) passes. The ops and sync helpers re-export it.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: { what: string; timeoutMs?: number; intervalMs?: number },
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await predicate();
    if (last) return last as NonNullable<T>;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what} (last value: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/** Returns the item jobs (not sync jobs) matching `filter`, oldest first. */
export async function jobRows(db: Kysely<Database>, filter: { state?: JobState; itemId?: number; userId?: number } = {}) {
  let query = db.selectFrom('jobs').selectAll().where('kind', '=', 'item').orderBy('id');
  if (filter.state) query = query.where('state', '=', filter.state);
  if (filter.itemId !== undefined) query = query.where('item_id', '=', filter.itemId);
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  return query.execute();
}

/** Waits until the job for (user, item) with the given state exists, and returns it. */
export function waitForJob(db: Kysely<Database>, filter: { userId: number; itemId: number; state: JobState }, timeoutMs = 10_000) {
  return waitFor(
    async () => (await jobRows(db, { userId: filter.userId, itemId: filter.itemId, state: filter.state }))[0],
    { what: `job of user ${filter.userId} for item ${filter.itemId} in state ${filter.state}`, timeoutMs },
  );
}

/** Waits until no item job is available, retryable or running. */
export function waitForIdle(db: Kysely<Database>, timeoutMs = 10_000) {
  return waitFor(
    async () => {
      const rows = await db
        .selectFrom('jobs')
        .select('id')
        .where('kind', '=', 'item')
        .where('state', 'in', ['available', 'retryable', 'running'])
        .execute();
      return rows.length === 0;
    },
    { what: 'the queue to be idle', timeoutMs },
  );
}

export async function itemRow(db: Kysely<Database>, type: 'route' | 'trip', id: number) {
  return db.selectFrom('items').selectAll().where('type', '=', type).where('id', '=', id).executeTakeFirst();
}

export async function libraryRows(db: Kysely<Database>, userId: number) {
  return db.selectFrom('library').select(['item_type', 'item_id', 'relation']).where('user_id', '=', userId).orderBy('item_id').execute();
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx src/main.ts ...args` and collects its output and exit code. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...cleanEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rwgps-sync ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// The environment of a child without variables that would change its config.
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.RWGPS_SYNC_CONFIG;
  delete env.RWGPS_SYNC_USER_TOKEN;
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** A `serve` child process: the node process itself, so signals reach the server. */
export class ServeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = '';
  stderr = '';

  constructor(configPath: string, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--config', configPath], {
      cwd: REPO_ROOT,
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString('utf8')));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The JSON log records printed so far. */
  get records(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Waits for the start log line and returns the service's base URL. */
  async started(timeoutMs = 20_000): Promise<string> {
    const record = await waitFor(
      () => {
        if (this.child.exitCode !== null) throw new Error(`serve exited with ${this.child.exitCode}: ${this.stderr}`);
        return this.records.find((entry) => entry.msg === 'rwgps-sync started');
      },
      { what: 'the "rwgps-sync started" log line of serve', timeoutMs, intervalMs: 50 },
    );
    return `http://127.0.0.1:${String(record.port)}`;
  }

  /** Sends SIGKILL to the node process if it still runs. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, signal);
  }
}

/** Starts `serve` as a child process; it is killed when the test ends if still running. */
export function startServe(t: TestContext, configPath: string, env: NodeJS.ProcessEnv = {}): ServeProcess {
  const serve = new ServeProcess(configPath, env);
  t.after(async () => {
    serve.kill();
    await serve.exited;
  });
  return serve;
}

/** Loads the config from `configPath` for direct database access in the test process. */
export function readConfig(configPath: string): Config {
  return loadConfig(configPath, {});
}

/** Builds an item job for user 1 and route `itemId`, for tests of the queue functions. */
export function newItemJob(itemId: number, overrides: Partial<NewJob> = {}): NewJob {
  return {
    kind: 'item',
    dedupeKey: `item:1:route:${itemId}`,
    lockKey: `item:route:${itemId}`,
    userId: 1,
    state: 'available',
    itemType: 'route',
    itemId,
    action: 'created',
    maxAttempts: 3,
    ...overrides,
  };
}
