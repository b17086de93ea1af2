import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { denoCommand, isExampleSynced, runServeSmoke } from '../scripts/smoke.ts';

// Runs the CLI from source under Deno, as `npm run deno` does. Deno comes
// from the `deno` devDependency; without it these tests are skipped.

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const DENO = join(REPO_ROOT, 'node_modules', '.bin', 'deno');

function denoMissingReason(): string | undefined {
  const result = spawnSync(DENO, ['--version'], { encoding: 'utf8' });
  if (result.error) return `deno is not installed at ${DENO} (${result.error.message}); run npm ci`;
  if (result.status !== 0) return `${DENO} --version failed with status ${result.status}: ${result.stderr.trim()}`;
  return undefined;
}

const skip = denoMissingReason() ?? false;

test('deno serve syncs signed delivery', { skip, timeout: 120_000 }, async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'rwgps-sync-deno-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));

  const result = await runServeSmoke({ command: denoCommand(REPO_ROOT), cwd, timeoutMs: 60_000 });

  assert.equal(result.startLog.sqliteDriver, 'node:sqlite');
  assert.match(String(result.startLog.runtime), /^deno /);
  assert.equal(result.webhookStatus, 200);
  assert.ok(isExampleSynced(result.libraries), JSON.stringify(result.libraries));
  assert.equal(result.exitCode, 0, 'serve exits 0 on SIGTERM');
});

test('deno check accepts source', { skip, timeout: 120_000 }, () => {
  const result = spawnSync(DENO, ['check', '--config', join(REPO_ROOT, 'deno.json'), join(REPO_ROOT, 'src/main.ts')], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
});
