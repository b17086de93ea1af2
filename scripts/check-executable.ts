// End-to-end check of the shipped ways to run rwgps-sync:
//
//   npm run check:executable            build, then smoke dist/rwgps-sync
//   npm run check:executable -- --no-build
//   npm run check:executable -- --deno  smoke `npm run deno` from source
//
// The executable is copied alone into an empty temporary folder, with no
// node_modules beside it and no config but the one the smoke writes. Its
// native addon cache goes to a fresh XDG_CACHE_HOME, so a leftover cache or
// file from this checkout cannot make the check pass. scripts/smoke.ts has
// the steps.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { denoCommand, runServeSmoke } from './smoke.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { 'no-build': { type: 'boolean' }, deno: { type: 'boolean' } } });

const dir = mkdtempSync(join(tmpdir(), 'rwgps-sync-check-'));
const started = Date.now();
try {
  let command: string[];
  const env: NodeJS.ProcessEnv = {};
  if (values.deno) {
    command = denoCommand(root);
  } else {
    if (!values['no-build']) execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
    const executable = join(root, 'dist/rwgps-sync');
    if (!existsSync(executable)) throw new Error(`${executable} does not exist; run npm run build`);
    const work = join(dir, 'run');
    mkdirSync(work);
    copyFileSync(executable, join(work, 'rwgps-sync'));
    execFileSync('chmod', ['+x', join(work, 'rwgps-sync')]);
    command = [join(work, 'rwgps-sync')];
    // The default cache location, under a cache home made for this run.
    env.XDG_CACHE_HOME = join(dir, 'cache');
    env.RWGPS_SYNC_CACHE_DIR = '';
    console.log(`check: ${readdirSync(work).join(', ')} in ${work} (${(statSync(command[0]!).size / 1e6).toFixed(1)} MB)`);
  }
  const cwd = join(dir, 'cwd');
  mkdirSync(cwd, { recursive: true });
  const result = await runServeSmoke({ command, cwd, env, log: (message) => console.log(`check: ${message}`) });
  if (result.exitCode !== 0) throw new Error(`serve exited with code ${result.exitCode} after SIGTERM, expected 0`);
  if (!values.deno) {
    const cached = readdirSync(join(dir, 'cache', 'rwgps-sync'));
    console.log(`check: native addon cache: ${cached.join(', ')}`);
  }
  console.log(`check: passed in ${((Date.now() - started) / 1000).toFixed(1)} s (${values.deno ? 'deno from source' : 'single executable'})`);
} catch (error) {
  console.error(`check: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
