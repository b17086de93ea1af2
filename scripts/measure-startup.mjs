// Measures how fast a rwgps-sync command starts serving and how much memory
// it holds when idle:
//
//   node scripts/measure-startup.mjs [--runs 7] [--idle-ms 3000] -- dist/rwgps-sync
//   node scripts/measure-startup.mjs -- node_modules/.bin/deno run --allow-... src/main.ts
//
// Each run writes a config into a new temporary folder (fresh database,
// a free port on 127.0.0.1), starts `<command> serve --config <file>` there,
// polls GET /healthz every 2 ms and records the time from spawn to the first
// 200. After the last run's first 200 it waits --idle-ms and reads VmRSS
// from /proc (Linux only). The first run writes the native addon into an
// empty cache folder (RWGPS_SYNC_CACHE_DIR), so it is reported on its own;
// the median is over the remaining runs. CPU time (user plus system) up to
// the first 200 is printed too, because on a busy machine it varies less.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { runs: { type: 'string', default: '7' }, 'idle-ms': { type: 'string', default: '3000' } },
  allowPositionals: true,
});
const runs = Number(values.runs);
const idleMs = Number(values['idle-ms']);
if (positionals.length === 0 || !Number.isInteger(runs) || runs < 2 || !Number.isInteger(idleMs) || idleMs < 0) {
  console.error('usage: node scripts/measure-startup.mjs [--runs N>=2] [--idle-ms MS] -- <command> [args...]');
  process.exit(2);
}
const [program, ...programArgs] = positionals;
// The command runs in a temporary folder, so paths given relative to here are made absolute.
const command = program.includes('/') ? resolve(program) : program;
const resolvedArgs = programArgs.map((arg) => (!arg.startsWith('-') && existsSync(arg) ? resolve(arg) : arg));

const START_TIMEOUT_MS = 20_000;

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kib / 1024;
}

// User plus system CPU time of a process in milliseconds, from /proc/<pid>/stat
// (fields 14 and 15, in clock ticks of 10 ms on Linux). Less disturbed than
// wall time by other processes on a busy machine, but only 10 ms precise.
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function waitForHealthy(url, child, deadline) {
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the command exited with status ${child.exitCode} before /healthz responded`);
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((done) => setTimeout(done, 2));
  }
  throw new Error(`/healthz did not respond 200 within ${START_TIMEOUT_MS} ms`);
}

function stop(child) {
  return new Promise((done) => {
    if (child.exitCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}

async function measureOnce(cacheDir, measureRss) {
  const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-startup-'));
  const port = await freePort();
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      server: { host: '127.0.0.1', port },
      database: { path: './startup.db' },
      clients: [{ apiKey: 'measure-key', clientId: 'measure-client', clientSecret: 'measure-secret' }],
    }),
  );
  const started = performance.now();
  const child = spawn(command, [...resolvedArgs, 'serve', '--config', config], {
    cwd: dir,
    env: { ...process.env, RWGPS_SYNC_CACHE_DIR: cacheDir },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitForHealthy(`http://127.0.0.1:${port}/healthz`, child, started + START_TIMEOUT_MS);
    const ms = performance.now() - started;
    const cpu = cpuMs(child.pid);
    let rss;
    if (measureRss) {
      await new Promise((done) => setTimeout(done, idleMs));
      rss = rssMiB(child.pid);
    }
    return { ms, cpu, rss };
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(numbers) {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const cacheDir = mkdtempSync(join(tmpdir(), 'rwgps-sync-cache-'));
try {
  const times = [];
  const cpuTimes = [];
  let rss;
  for (let run = 1; run <= runs; run++) {
    const result = await measureOnce(cacheDir, run === runs);
    times.push(result.ms);
    cpuTimes.push(result.cpu);
    if (result.rss !== undefined) rss = result.rss;
    console.log(`run ${run}: ${result.ms.toFixed(0)} ms to the first 200, ${result.cpu} ms CPU${run === 1 ? ' (empty addon cache)' : ''}`);
  }
  const warm = times.slice(1);
  const warmCpu = cpuTimes.slice(1);
  console.log(`median of runs 2-${runs}: ${median(warm).toFixed(0)} ms (min ${Math.min(...warm).toFixed(0)}, max ${Math.max(...warm).toFixed(0)}), CPU ${median(warmCpu)} ms (mean ${(warmCpu.reduce((a, b) => a + b, 0) / warmCpu.length).toFixed(0)})`);
  console.log(`idle RSS ${idleMs} ms after the first 200: ${rss.toFixed(1)} MiB`);
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
