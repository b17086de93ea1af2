import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Runs every benchmark in its smoke mode (about 35 s in all on two idle
// cores) so that the benchmarks cannot rot. Speed targets are not asserted
// here: the machine running the tests is shared and the numbers are noise.

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCHMARKS = ['ingest', 'sync', 'queue', 'claim-cost', 'crash', 'footprint'];

function runSmoke(resultsDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/run.ts', '--smoke'], {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_RESULTS_DIR: resultsDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

test('benchmark smoke runs write results', { timeout: 240_000 }, async (t) => {
  const resultsDir = mkdtempSync(join(tmpdir(), 'rwgps-bench-smoke-'));
  t.after(() => rmSync(resultsDir, { recursive: true, force: true }));

  const { code, output } = await runSmoke(resultsDir);
  assert.equal(code, 0, `npm run bench -- --smoke failed:\n${output.slice(-4000)}`);

  const files = readdirSync(resultsDir);
  for (const name of BENCHMARKS) {
    assert.ok(files.includes(`${name}-smoke-latest.json`), `${name} wrote no result; files: ${files.join(', ')}`);
    const result = JSON.parse(readFileSync(join(resultsDir, `${name}-smoke-latest.json`), 'utf8')) as Record<string, unknown>;
    assert.equal(result.benchmark, name);
    assert.equal(result.smoke, true);
    assert.equal(typeof result.summary, 'string');
    assert.match(output, new RegExp(`^${name} \\(\\d+ s\\): `, 'm'), `${name} has no line in the runner's summaries`);
  }

  // The one correctness property among the benchmarks: only the lease holder completes a job.
  const crash = JSON.parse(readFileSync(join(resultsDir, 'crash-smoke-latest.json'), 'utf8')) as { completedTwice: number; held: number };
  assert.equal(crash.completedTwice, 0, 'a job was completed twice after the crash');
  assert.ok(crash.held > 0, 'the worker held no job when it was killed, so the crash tested nothing');
});
