// Measures the resident memory of `serve` under a sustained webhook write
// load and afterwards when idle (Linux only, reads /proc/<pid>/status):
//
//   npx tsx scripts/load-memory.ts --deno
//   npx tsx scripts/load-memory.ts -- dist/rwgps-sync
//   npx tsx scripts/load-memory.ts --seconds 30 --idle-seconds 30 --concurrency 8 --deno
//
// A fake Ride with GPS on 127.0.0.1 serves 500 routes of one connected user.
// For --seconds, --concurrency senders post signed deliveries to 127.0.0.1.
// Each has 1 to 100 notifications about random routes, so the SQL texts vary
// the way real batches do. The worker syncs the routes meanwhile. Then the
// load stops and memory is sampled for --idle-seconds more. The loop is
// bounded by time and by --max-deliveries.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FakeRwgps, sendWebhook } from './fake-rwgps.ts';
import { denoCommand } from './smoke.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  options: {
    deno: { type: 'boolean' },
    seconds: { type: 'string', default: '30' },
    'idle-seconds': { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '8' },
    'max-deliveries': { type: 'string', default: '200000' },
  },
  allowPositionals: true,
});
const loadMs = Number(values.seconds) * 1000;
const idleMs = Number(values['idle-seconds']) * 1000;
const concurrency = Number(values.concurrency);
const maxDeliveries = Number(values['max-deliveries']);
const command = values.deno ? denoCommand(root) : positionals.map((word) => (word.includes('/') ? resolve(word) : word));
if (command.length === 0 || ![loadMs, idleMs, concurrency, maxDeliveries].every((n) => Number.isFinite(n) && n >= 0)) {
  console.error('usage: tsx scripts/load-memory.ts [--seconds N] [--idle-seconds N] [--concurrency N] [--max-deliveries N] (--deno | -- <command>)');
  process.exit(2);
}

const CLIENT = { apiKey: 'load-key', clientId: 'load-client', clientSecret: 'load-secret' };
const ROUTES = 500;

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

function fileMiB(path: string): number {
  try {
    return statSync(path).size / (1024 * 1024);
  } catch {
    return 0;
  }
}

function randomBody(): string {
  const count = 1 + Math.floor(Math.random() * 100);
  const notifications = Array.from({ length: count }, () => {
    const id = 1 + Math.floor(Math.random() * ROUTES);
    return { user_id: 1, item_type: 'route', item_id: id, item_user_id: 1, item_url: `https://ridewithgps.com/routes/${id}.json`, action: 'updated', collection: null };
  });
  return JSON.stringify({ notifications });
}

async function waitForStart(child: ChildProcess): Promise<number> {
  let stdout = '';
  const collect = (chunk: string) => (stdout += chunk);
  child.stdout?.setEncoding('utf8').on('data', collect);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const line = stdout.split('\n').find((text) => text.includes('"rwgps-sync started"'));
    if (line) {
      // Keep reading the log, so serve does not block on a full pipe, but discard it.
      child.stdout?.off('data', collect).on('data', () => {});
      return (JSON.parse(line) as { port: number }).port;
    }
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${stdout}`);
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error('serve did not start within 30 s');
}

const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-load-'));
const fake = await FakeRwgps.start({ clients: [CLIENT] });
let child: ChildProcess | undefined;
try {
  fake.addUser({ id: 1, name: 'Load', accessToken: 'load-token' });
  for (let id = 1; id <= ROUTES; id++) fake.putRoute({ id, userId: 1, name: `Route ${id}` });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { path: './load.db' },
      rwgps: { baseUrl: fake.url },
      clients: [CLIENT],
      worker: { backoffBaseMs: 200, pollIntervalMs: 100 },
    }),
  );
  const [program, ...args] = command;
  const users = spawn(program!, [...args, 'users', 'add', '--user-id', '1', '--config', 'config.json'], { cwd: dir, env: { ...process.env, RWGPS_SYNC_USER_TOKEN: 'load-token' }, stdio: 'ignore' });
  await new Promise((done) => users.once('exit', done));

  child = spawn(program!, [...args, 'serve', '--config', 'config.json'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await waitForStart(child);
  const pid = child.pid!;
  const url = `http://127.0.0.1:${port}/webhooks/rwgps`;
  const started = Date.now();
  console.log(`serve pid ${pid} on port ${port}; ${(rssMiB(pid)).toFixed(1)} MiB at start`);
  console.log('second  phase  RSS MiB  deliveries  notifications  non-200  db+wal MiB');

  let deliveries = 0;
  let notifications = 0;
  let failures = 0;
  const loadEnds = started + loadMs;
  const senders = Array.from({ length: concurrency }, async () => {
    while (Date.now() < loadEnds && deliveries < maxDeliveries) {
      const body = randomBody();
      deliveries++;
      const answer = await sendWebhook(url, body, { apiKey: CLIENT.apiKey, secret: CLIENT.clientSecret });
      if (answer.status === 200) notifications += (JSON.parse(answer.body) as { notifications: number }).notifications;
      else failures++;
    }
  });

  let peak = 0;
  const samples: number[] = [];
  const sampler = setInterval(() => {
    const rss = rssMiB(pid);
    peak = Math.max(peak, rss);
    samples.push(rss);
    const second = Math.round((Date.now() - started) / 1000);
    const phase = Date.now() < loadEnds ? 'load' : 'idle';
    const db = fileMiB(join(dir, 'load.db')) + fileMiB(join(dir, 'load.db-wal'));
    console.log(`${String(second).padStart(6)}  ${phase}  ${rss.toFixed(1).padStart(7)}  ${String(deliveries).padStart(10)}  ${String(notifications).padStart(13)}  ${String(failures).padStart(7)}  ${db.toFixed(1).padStart(10)}`);
  }, 1000);
  await Promise.all(senders);
  const atLoadEnd = rssMiB(pid);
  await new Promise((done) => setTimeout(done, idleMs));
  clearInterval(sampler);
  const atIdleEnd = rssMiB(pid);
  console.log(`deliveries ${deliveries} (${failures} not answered 200), notifications ${notifications}`);
  console.log(`RSS: peak ${peak.toFixed(1)} MiB, at the end of the load ${atLoadEnd.toFixed(1)} MiB, after ${idleMs / 1000} s idle ${atIdleEnd.toFixed(1)} MiB`);
} finally {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((done) => child!.once('exit', done));
  }
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
}
