import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from './ops-helpers.ts';

const UNIT = join(REPO_ROOT, 'docs', 'rwgps-sync.service');
const ANALYZE = '/usr/bin/systemd-analyze';

// systemd-analyze verify checks that ExecStart's binary exists, so the copy
// under test runs this node binary instead of /usr/bin/node.
function verify(dir: string, text: string): { status: number | null; output: string } {
  const path = join(dir, 'rwgps-sync.service');
  writeFileSync(path, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
  const result = spawnSync(ANALYZE, ['verify', path], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('systemd unit passes systemd-analyze verify', { skip: existsSync(ANALYZE) ? false : `${ANALYZE} not installed` }, (t) => {
  const dir = tempDir(t);
  const text = readFileSync(UNIT, 'utf8');
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/rwgps-sync', 'PrivateTmp=yes', 'User=rwgps-sync', 'Restart=on-failure']) {
    assert.ok(text.includes(`\n${line}\n`), `the unit sets ${line}`);
  }
  assert.match(text, /^ExecStart=\/usr\/bin\/node --import tsx \/opt\/rwgps-sync\/src\/main\.ts serve --config \/etc\/rwgps-sync\/config\.json$/m);

  const good = verify(dir, text);
  assert.equal(good.status, 0, good.output);
  assert.equal(good.output.trim(), '', 'no warnings');

  const bad = verify(dir, text.replace('Restart=on-failure', 'Restart=sometimes'));
  assert.match(bad.output, /restart specifier/i, 'verify reports a broken directive, so the check can fail');
});
