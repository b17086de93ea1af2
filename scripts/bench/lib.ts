// Helpers shared by the benchmarks: arguments, percentiles, tables, JSON
// results, machine facts and child processes that report when they are ready.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
// BENCH_RESULTS_DIR moves the JSON results elsewhere (the smoke test uses a temporary folder).
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? join(REPO_ROOT, 'bench-results');

export interface BenchArgs {
  /** A short run (about 10 s) that checks the benchmark works, for CI. */
  smoke: boolean;
}

export function parseBenchArgs(argv = process.argv.slice(2)): BenchArgs {
  const unknown = argv.filter((arg) => arg !== '--smoke');
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown[0]}; usage: [--smoke]`);
    process.exit(2);
  }
  return { smoke: argv.includes('--smoke') };
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Summarizes latencies in milliseconds (nearest-rank percentiles). */
export function summarize(latencies: number[]): LatencySummary {
  if (latencies.length === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(latencies).sort();
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { count: sorted.length, p50: rank(50), p99: rank(99), max: sorted[sorted.length - 1]! };
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Prints rows as an aligned text table under a title. */
export function printTable(title: string, rows: Record<string, string | number | boolean>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) {
    console.log('  (no rows)');
    return;
  }
  const columns = Object.keys(rows[0]!);
  const text = rows.map((row) => columns.map((column) => formatCell(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...text.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((cell, i) => cell.padStart(widths[i]!)).join('  ')}`;
  console.log(line(columns));
  console.log(line(widths.map((width) => '-'.repeat(width))));
  for (const cells of text) console.log(line(cells));
}

function formatCell(value: string | number | boolean | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || Number.isInteger(value)) return String(value);
    if (value >= 100) return value.toFixed(0);
    if (value >= 10) return value.toFixed(1);
    return value.toFixed(2);
  }
  return String(value);
}

/** Facts about the machine and software, stored with every result. */
export function machineInfo() {
  const pkg = (name: string) => {
    try {
      return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  const memory = new BetterSqlite3(':memory:');
  const sqlite = (memory.prepare('select sqlite_version() as v').get() as { v: string }).v;
  memory.close();
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    freeMemoryGiB: round(freemem() / 2 ** 30, 1),
    loadAverage: loadavg().map((value) => round(value, 2)),
    node: process.version,
    sqlite,
    versions: { 'better-sqlite3': pkg('better-sqlite3'), kysely: pkg('kysely'), hono: pkg('hono'), '@hono/node-server': pkg('@hono/node-server') },
  };
}

/**
 * Writes a benchmark's result to bench-results/<name>-<time>.json and
 * bench-results/<name>-latest.json, and prints the one-line summary.
 */
export function writeResult(name: string, args: BenchArgs, summary: string, data: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const finishedAt = new Date().toISOString();
  const result = { benchmark: name, smoke: args.smoke, finishedAt, summary, machine: machineInfo(), ...data };
  const text = `${JSON.stringify(result, null, 2)}\n`;
  const stamp = finishedAt.replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `${name}${args.smoke ? '-smoke' : ''}-${stamp}.json`);
  writeFileSync(file, text);
  writeFileSync(join(RESULTS_DIR, `${name}${args.smoke ? '-smoke' : ''}-latest.json`), text);
  console.log(`\nsummary: ${summary}`);
  console.log(`result: ${file}`);
  return file;
}

/** Creates a temporary folder that `cleanup()` removes. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `rwgps-bench-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export interface ReadyChild {
  child: ChildProcess;
  /** The JSON the child printed after READY. */
  info: Record<string, unknown>;
  /** Sends SIGTERM (or `signal`) to the node process itself and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `node --import tsx <script> ...args` (plain node with `withoutTsx`) and waits for it to print a
 * line `READY <json>` on stdout. Other stdout lines are passed to `onLine`;
 * stderr is inherited so a failing child explains itself.
 */
export function startReadyChild(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; onLine?: (line: string) => void; execArgv?: string[]; timeoutMs?: number; withoutTsx?: boolean } = {},
): Promise<ReadyChild> {
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of every child to <dir>.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const loader = options.withoutTsx ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...profile, ...(options.execArgv ?? []), ...loader, script, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop('SIGKILL');
      reject(new Error(`${script} did not print READY within ${options.timeoutMs ?? 30_000} ms`));
    }, options.timeoutMs ?? 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited before READY (code ${code}, signal ${signal})`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('READY ')) {
        clearTimeout(timer);
        resolve({ child, info: JSON.parse(line.slice(6)) as Record<string, unknown>, stop });
      } else {
        options.onLine?.(line);
      }
    });
  });
}

/** Reads the READY line's address for a child server started by startReadyChild. */
export function childUrl(ready: ReadyChild): string {
  const url = ready.info.url;
  if (typeof url !== 'string') throw new Error('child printed READY without a url');
  return url;
}
