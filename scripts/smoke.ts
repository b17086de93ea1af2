// End-to-end smoke of one way to run rwgps-sync: the single executable, or
// the source under Deno. It starts a fake Ride with GPS on 127.0.0.1, adds
// two users through the CLI and starts `serve` as a child process. Then it
// sends the documented example webhook and reads the libraries back through
// the CLI.
// Used by scripts/check-executable.ts and test/deno.test.ts.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEMO_CLIENT, DEMO_USERS, EXAMPLE_BODY, seedDemoFake } from './example-delivery.ts';
import { FakeRwgps, sendWebhook } from './fake-rwgps.ts';

const execFileAsync = promisify(execFile);

export interface SmokeOptions {
  /** The program and the arguments before the rwgps-sync command, e.g. ['./rwgps-sync'] or ['deno', 'run', ..., 'src/main.ts']. */
  command: string[];
  /** Working folder; config.json and the database are written here. */
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Progress messages. */
  log?: (message: string) => void;
  /** Upper bound for each wait (start, sync, stop), in milliseconds. */
  timeoutMs?: number;
}

export interface LibraryEntry {
  type: string;
  id: number;
  ownerId: number;
  relation: string;
  name: string | null;
  deleted: boolean;
  syncedAt: string | null;
}

export interface SmokeResult {
  startLog: Record<string, unknown>;
  webhookStatus: number;
  libraries: Record<number, LibraryEntry[]>;
  exitCode: number | null;
}

/**
 * Returns the program and arguments of `npm run deno`, read from package.json
 * so the smoke runs exactly the documented command, with node_modules/.bin/deno
 * as the program and absolute paths for deno.json and src/main.ts.
 */
export function denoCommand(root: string): string[] {
  const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const script = packageJson.scripts.deno;
  if (!script?.startsWith('deno ')) throw new Error('package.json has no "deno" script starting with "deno "');
  return script.split(/\s+/).map((word, index) => {
    if (index === 0) return join(root, 'node_modules', '.bin', 'deno');
    if (word === 'deno.json' || word === 'src/main.ts') return join(root, word);
    return word;
  });
}

export async function runServeSmoke(options: SmokeOptions): Promise<SmokeResult> {
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 30_000;
  const [program, ...baseArgs] = options.command;
  if (program === undefined) throw new Error('runServeSmoke: empty command');
  const env = { ...process.env, ...options.env };

  const fake = await FakeRwgps.start({ clients: [DEMO_CLIENT] });
  let serve: ChildProcess | undefined;
  try {
    seedDemoFake(fake);
    writeFileSync(
      join(options.cwd, 'config.json'),
      JSON.stringify({
        server: { host: '127.0.0.1', port: 0 },
        database: { path: './smoke.db' },
        rwgps: { baseUrl: fake.url },
        clients: [DEMO_CLIENT],
        worker: { backoffBaseMs: 200, pollIntervalMs: 100 },
      }),
    );

    const cli = async (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const { stdout } = await execFileAsync(program, [...baseArgs, ...args, '--config', 'config.json'], {
        cwd: options.cwd,
        env: { ...env, ...extraEnv },
        timeout: timeoutMs,
      });
      return stdout;
    };

    for (const user of DEMO_USERS) {
      // The token goes through the environment so it stays out of the process list.
      await cli(['users', 'add', '--user-id', String(user.id)], { RWGPS_SYNC_USER_TOKEN: user.token });
      log(`users add --user-id ${user.id}: done`);
    }

    const child = spawn(program, [...baseArgs, 'serve', '--config', 'config.json'], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    serve = child;
    const output = collectOutput(child);
    const startLog = await waitFor(() => output.lines().find((line) => line.msg === 'rwgps-sync started'), timeoutMs, () => `serve did not log "rwgps-sync started":\n${output.text()}`, child);
    log(`serve started: ${JSON.stringify(startLog)}`);
    const base = `http://127.0.0.1:${String(startLog.port)}`;

    const health = await fetch(`${base}/healthz`);
    if (health.status !== 200) throw new Error(`GET /healthz responded with status ${health.status}: ${await health.text()}`);
    log('GET /healthz: 200');

    const answer = await sendWebhook(`${base}/webhooks/rwgps`, EXAMPLE_BODY, { apiKey: DEMO_CLIENT.apiKey, secret: DEMO_CLIENT.clientSecret });
    log(`webhook: ${answer.status} ${answer.body}`);
    if (answer.status !== 200) throw new Error(`the webhook answered ${answer.status}: ${answer.body}`);

    const libraries: Record<number, LibraryEntry[]> = {};
    await waitFor(
      async () => {
        for (const user of DEMO_USERS) libraries[user.id] = JSON.parse(await cli(['items', 'list', '--user', String(user.id), '--json'])) as LibraryEntry[];
        return isExampleSynced(libraries) ? true : undefined;
      },
      timeoutMs,
      () => `the example delivery was not synced; libraries: ${JSON.stringify(libraries)}\n${output.text()}`,
      child,
    );
    log('items synced: route 201 for user 1, route 102 pinned by user 2, route 101 deleted');

    serve = undefined;
    const exitCode = await stopProcess(child, timeoutMs);
    log(`serve stopped with exit code ${exitCode}`);
    return { startLog, webhookStatus: answer.status, libraries, exitCode };
  } finally {
    if (serve) await stopProcess(serve, timeoutMs);
    await fake.close();
  }
}

/** Tells whether both libraries show what the example delivery should leave behind. */
export function isExampleSynced(libraries: Record<number, LibraryEntry[]>): boolean {
  const find = (userId: number, id: number) => libraries[userId]?.find((entry) => entry.type === 'route' && entry.id === id);
  const created = find(1, 201);
  const pinned = find(2, 102);
  const deleted = find(1, 101);
  return (
    created?.relation === 'owner' && created.name === 'Morning climb' && !created.deleted &&
    pinned?.relation === 'pinned' && pinned.name === 'Coast road' &&
    deleted?.deleted === true
  );
}

function collectOutput(child: ChildProcess) {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return {
    lines(): Record<string, unknown>[] {
      return stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    text: () => `--- serve stdout ---\n${stdout}--- serve stderr ---\n${stderr}`,
  };
}

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, describeFailure: () => string, child: ChildProcess): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`serve exited early (${child.exitCode ?? child.signalCode})\n${describeFailure()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${describeFailure()}`);
}

/** Sends SIGTERM and resolves with the exit code; SIGKILL after the timeout. */
function stopProcess(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}
