// Runs every test/*.test.ts through tsx's node:test runner.
// The files are listed here because on Node 20 `tsx --test` with a quoted glob
// finds nothing, and a folder argument runs zero tests while exiting 0.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const only = process.argv.slice(2);
const files = readdirSync('test')
  .filter((name) => name.endsWith('.test.ts'))
  .filter((name) => only.length === 0 || only.some((part) => name.includes(part)))
  .sort()
  .map((name) => join('test', name));

if (files.length === 0) {
  console.error('run-tests: no test files matched in test/');
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
