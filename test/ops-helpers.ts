// Shared set-up for the operations tests: a temp folder with a config file,
// the fake RWGPS, the real service, the CLI as a child process, and polling.
import type { TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../src/config/config.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { connectUser } from '../src/store/users.ts';
import { FakeRwgps, signBody } from '../scripts/fake-rwgps.ts';

export const CLIENT = { apiKey: 'ops-key', clientId: 'ops-client', clientSecret: 'ops-secret' };
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export function tempDir(t: TestContext, prefix = 'rwgps-sync-ops-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes config.json (mode 600) into `dir` with test-friendly timings and returns its path. */
export function writeConfig(dir: string, rwgpsUrl: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, 'config.json');
  const base: Record<string, any> = {
    server: { host: '127.0.0.1', port: 0 },
    database: { path: './sync.db', synchronous: 'normal' },
    // No request rate limit: the backup test drains a backlog of thousands of jobs from the fake.
    rwgps: { baseUrl: rwgpsUrl, maxRequestsPerSecond: 0 },
    clients: [CLIENT],
    worker: { backoffBaseMs: 50, backoffMaxMs: 500, pollIntervalMs: 50, leaseMs: 20_000, requestTimeoutMs: 10_000 },
  };
  for (const [key, value] of Object.entries(extra)) {
    base[key] = typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...base[key], ...value } : value;
  }
  writeFileSync(path, JSON.stringify(base, null, 2));
  chmodSync(path, 0o600);
  return path;
}

export async function startFake(t: TestContext, latencyMs = 0): Promise<FakeRwgps> {
  const fake = await FakeRwgps.start({ clients: [CLIENT], latencyMs });
  t.after(() => fake.close());
  fake.addUser({ id: 1, name: 'Ann', accessToken: 'token-1' });
  fake.addUser({ id: 2, name: 'Bob', accessToken: 'token-2' });
  return fake;
}

export interface Running {
  service: Service;
  config: Config;
  lines: Record<string, any>[];
  logger: Logger;
}

/** Starts the service in this process; its log lines are parsed into `lines`. */
export async function startRunning(t: TestContext, configPath: string, options: { connect?: boolean } = {}): Promise<Running> {
  const config = loadConfig(configPath, {});
  const lines: Record<string, any>[] = [];
  const logger = createLogger({
    level: 'debug',
    sink: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  const service = await startService(config, logger);
  t.after(() => service.close(1000));
  if (options.connect !== false) {
    await connectUser(service.store.db, { id: 1, clientApiKey: CLIENT.apiKey, token: 'token-1', tokenKind: 'oauth' });
    await connectUser(service.store.db, { id: 2, clientApiKey: CLIENT.apiKey, token: 'token-2', tokenKind: 'oauth' });
  }
  return { service, config, lines, logger };
}

export function notification(userId: number, itemId: number, action = 'created', itemType: 'route' | 'trip' = 'route') {
  return {
    user_id: userId,
    item_type: itemType,
    item_id: itemId,
    item_user_id: userId,
    item_url: `https://ridewithgps.com/${itemType}s/${itemId}.json`,
    action,
    collection: action === 'added' || action === 'removed' ? { id: userId, type: 'pinned', url: null } : null,
  };
}

export interface PostResult {
  status: number | null;
  body: string;
  /** Error code when no response came (ECONNREFUSED, ECONNRESET, ...). */
  error?: string;
}

/**
 * Posts a signed webhook on a connection of its own (no keep-alive), so a
 * refused connection and a request cut after it was accepted can be told
 * apart.
 */
export function postWebhook(url: string, body: string, signature = signBody(body, CLIENT.clientSecret)): Promise<PostResult> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/webhooks/rwgps`,
      {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          connection: 'close',
          'x-rwgps-api-key': CLIENT.apiKey,
          'x-rwgps-signature': signature,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? null, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ status: null, body: '', error: error.code ?? error.message }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: null, body: '', error: error.code ?? error.message }));
    req.end(body);
  });
}

export { waitFor } from './helpers.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx src/main.ts ...args` and collects its output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
