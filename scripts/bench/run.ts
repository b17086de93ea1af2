// npm run bench [-- [--smoke] [name ...]]
//
// Runs the benchmarks one after another, each in its own process so that one
// cannot warm up or fill the memory of the next. With names, only those run
// (for example `npm run bench -- ingest`). Each prints its table and a
// one-line summary and writes bench-results/<name>-<time>.json; this runner
// repeats the summaries at the end and exits 1 if a benchmark failed to run.
// A missed target is reported, not a failure.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './lib.ts';

export const BENCHMARKS = ['ingest', 'sync', 'queue', 'claim-cost', 'crash', 'footprint'] as const;

const argv = process.argv.slice(2);
const smoke = argv.includes('--smoke');
const names = argv.filter((arg) => arg !== '--smoke');
const unknown = names.filter((name) => !(BENCHMARKS as readonly string[]).includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${BENCHMARKS.join(', ')}`);
  console.error('usage: npm run bench -- [--smoke] [name ...]');
  process.exit(2);
}

const selected = names.length > 0 ? names : [...BENCHMARKS];
const outcomes: { name: string; status: number | null; seconds: number; summary: string }[] = [];
for (const name of selected) {
  console.log(`\n=== ${name}${smoke ? ' (smoke)' : ''} ===`);
  const started = performance.now();
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/bench', `${name}.ts`), ...(smoke ? ['--smoke'] : [])], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(result.stdout ?? '');
  const summary = /^summary: (.*)$/m.exec(result.stdout ?? '')?.[1] ?? '(no summary printed)';
  outcomes.push({ name, status: result.status, seconds: (performance.now() - started) / 1000, summary });
}

console.log('\n=== summaries ===');
for (const outcome of outcomes) {
  const failed = outcome.status !== 0 ? ` [exit ${outcome.status}]` : '';
  console.log(`${outcome.name} (${outcome.seconds.toFixed(0)} s)${failed}: ${outcome.summary}`);
}
if (outcomes.some((outcome) => outcome.status !== 0)) process.exit(1);
